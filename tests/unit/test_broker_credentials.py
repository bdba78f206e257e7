"""Broker credentials (Mosquitto `$7$` hashes, password file, ACL), agent.toml and deploy files."""

from __future__ import annotations

import base64
import re
import shutil
import stat
import subprocess
import threading
import tomllib
from datetime import date
from pathlib import Path

import pytest
import yaml

from controller.errors import RegistrationError
from controller.vehicles.credentials import (
    generate_password,
    hash_password,
    password_line,
    password_users,
    render_acl,
    upsert_password,
    upsert_password_text,
    verify_password,
)
from controller.vehicles.models import CompartmentSpec, ProbeSpec, VehicleSpec
from controller.vehicles.service import GatewayPaths, agent_mqtt_url, render_agent_config

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"

# Written by the real `mosquitto_passwd -b` of Mosquitto 2.0.11 for password "s3cret".
MOSQUITTO_LINE = (
    "veh-1:$7$101$jbLX67eKD+KsVsqo$brhuYXPYCmrkTC5GHq3HhRCnUT+HsM23EkRfYS2HNewQn2OauzJTmHFghL01"
    "pCBaKeKDyTGpPJK76AvVG6ZIiA=="
)
HASH_FORMAT = re.compile(r"^\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$")


def mosquitto_passwd() -> str:
    binary = shutil.which("mosquitto_passwd")
    assert binary, "mosquitto_passwd is not installed (apt-get install mosquitto)"
    return binary


# --- hashes ------------------------------------------------------------------------------


def test_hash_matches_golden_line_of_mosquitto_passwd() -> None:
    user, _, encoded = MOSQUITTO_LINE.partition(":")
    salt = base64.b64decode(encoded.split("$")[3])
    assert hash_password("s3cret", salt=salt) == encoded
    assert password_line(user, "s3cret", salt=salt) == MOSQUITTO_LINE


def test_hash_format_and_random_salt() -> None:
    first, second = hash_password("pw"), hash_password("pw")
    assert HASH_FORMAT.match(first)
    assert first != second
    assert verify_password("pw", first) and verify_password("pw", second)


@pytest.mark.parametrize("password", ["s3cret", "with space", "ünïcødé-密码", "a:b$c"])
def test_verifies_what_the_real_mosquitto_passwd_writes(tmp_path: Path, password: str) -> None:
    pwfile = tmp_path / "passwords"
    subprocess.run(
        [mosquitto_passwd(), "-c", "-b", str(pwfile), "veh-1", password],
        check=True,
        capture_output=True,
        timeout=10,
    )
    user, _, encoded = pwfile.read_text().strip().partition(":")
    assert user == "veh-1"
    assert HASH_FORMAT.match(encoded)
    assert verify_password(password, encoded)
    assert not verify_password(password + "x", encoded)


@pytest.mark.parametrize(
    "encoded", ["", "plain", "$6$salt$hash", "$7$101$not base64!$abc", "$7$x$AAAA$AAAA"]
)
def test_verify_rejects_malformed_hashes(encoded: str) -> None:
    assert not verify_password("pw", encoded)


def test_generated_passwords_are_url_safe_and_distinct() -> None:
    passwords = {generate_password() for _ in range(50)}
    assert len(passwords) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{32}", p) for p in passwords)


@pytest.mark.parametrize("username", ["", "a:b", "a b"])
def test_bad_usernames_refused(username: str) -> None:
    with pytest.raises(RegistrationError) as caught:
        password_line(username, "pw")
    assert caught.value.field == "username"


# --- password file -----------------------------------------------------------------------


def test_upsert_text_replaces_one_user_and_keeps_the_rest() -> None:
    existing = "# broker users\nalpha:$7$old\nbeta:$7$old\n"
    text = upsert_password_text(existing, username="alpha", password="new")
    lines = text.splitlines()
    assert lines[0] == "# broker users"
    assert lines[2] == "beta:$7$old"
    assert verify_password("new", lines[1].partition(":")[2])
    appended = upsert_password_text(text, username="gamma", password="g")
    assert password_users(appended) == ["alpha", "beta", "gamma"]


def test_upsert_password_file_is_private_and_atomic(tmp_path: Path) -> None:
    pwfile = tmp_path / "mosquitto" / "passwords"
    upsert_password(pwfile, username="veh-1", password="one")
    upsert_password(pwfile, username="controller", password="ctl")
    upsert_password(pwfile, username="veh-1", password="two")
    assert stat.S_IMODE(pwfile.stat().st_mode) == 0o600
    lines = dict(line.split(":", 1) for line in pwfile.read_text().splitlines())
    assert sorted(lines) == ["controller", "veh-1"]
    assert verify_password("two", lines["veh-1"])
    assert verify_password("ctl", lines["controller"])
    leftovers = [p.name for p in pwfile.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_upsert_keeps_a_group_readable_mode_but_never_world(tmp_path: Path) -> None:
    pwfile = tmp_path / "passwords"
    pwfile.write_text("")
    pwfile.chmod(0o644)
    upsert_password(pwfile, username="veh-1", password="pw")
    assert stat.S_IMODE(pwfile.stat().st_mode) == 0o640


def test_concurrent_upserts_lose_no_user(tmp_path: Path) -> None:
    pwfile = tmp_path / "passwords"
    threads = [
        threading.Thread(
            target=upsert_password, args=(pwfile,), kwargs={"username": f"v{i}", "password": "p"}
        )
        for i in range(12)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(password_users(pwfile.read_text())) == sorted(f"v{i}" for i in range(12))


# --- ACL ---------------------------------------------------------------------------------


def test_deploy_acl_is_the_rendered_acl_for_the_default_prefix() -> None:
    assert (DEPLOY / "mosquitto" / "acl").read_text() == render_acl(topic_prefix="coldchain")


def test_acl_rules() -> None:
    rules = [
        line for line in render_acl(topic_prefix="fleet/eu").splitlines() if line and line[0] != "#"
    ]
    assert rules == [
        "user controller",
        "topic read fleet/eu/v1/+/telemetry",
        "topic read fleet/eu/v1/+/status",
        "topic write fleet/eu/v1/+/ack",
        "topic write fleet/eu/v1/+/resend",
        "pattern write fleet/eu/v1/%u/telemetry",
        "pattern write fleet/eu/v1/%u/status",
        "pattern read fleet/eu/v1/%u/ack",
        "pattern read fleet/eu/v1/%u/resend",
    ]


@pytest.mark.parametrize("prefix", ["", "a/+/b", "a/#", "a//b", "/a", "a b", "a/%u"])
def test_acl_refuses_prefixes_that_are_not_plain_topics(prefix: str) -> None:
    with pytest.raises(RegistrationError) as caught:
        render_acl(topic_prefix=prefix)
    assert caught.value.field == "topic_prefix"


# --- agent.toml --------------------------------------------------------------------------


def test_agent_mqtt_url_embeds_credentials_and_drops_others() -> None:
    url = agent_mqtt_url(
        "mqtt://controller:secret@broker.example:1883", username="T-1", password="p_w"
    )
    assert url == "mqtt://T-1:p_w@broker.example:1883"
    assert (
        agent_mqtt_url("mqtts://[::1]:8883", username="T", password="p") == "mqtts://T:p@[::1]:8883"
    )
    assert agent_mqtt_url("mqtt://broker", username="T", password="p") == "mqtt://T:p@broker"
    with pytest.raises(RegistrationError) as caught:
        agent_mqtt_url("http://broker", username="T", password="p")
    assert caught.value.field == "broker_url"


def test_agent_config_round_trips_through_toml() -> None:
    due = date(2027, 1, 1)
    spec = VehicleSpec(
        "TRUCK-01",
        'Truck "one"',
        (
            CompartmentSpec(
                "front",
                "refrigerated",
                10,
                (ProbeSpec("p1", "top", 0.3, due), ProbeSpec("p2", "x", 0.3, due)),
            ),
            CompartmentSpec("shelf", "cool", 5, (ProbeSpec("c1", "y", 0.3, due),)),
        ),
    )
    text = render_agent_config(
        spec, mqtt_url="mqtt://TRUCK-01:pw@h:1883", topic_prefix="coldchain", paths=GatewayPaths()
    )
    config = tomllib.loads(text)
    assert config == {
        "vehicle_id": "TRUCK-01",
        "mqtt_url": "mqtt://TRUCK-01:pw@h:1883",
        "topic_prefix": "coldchain",
        "private_key_file": "/etc/coldchain-edge/vehicle.key",
        "outbox_path": "/var/lib/coldchain-edge/outbox.db",
        "compartments": [
            {
                "compartment_id": "front",
                "temperature_class": "refrigerated",
                "low_c": 2.0,
                "high_c": 8.0,
                "probes": ["p1", "p2"],
            },
            {
                "compartment_id": "shelf",
                "temperature_class": "cool",
                "high_c": 20.0,
                "probes": ["c1"],
            },
        ],
    }


# --- deploy files ------------------------------------------------------------------------


def test_compose_parses_and_refers_to_existing_files() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"timescaledb", "mosquitto", "controller"}
    named_volumes = set(compose["volumes"])
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).is_file(), f"{name}: {source} does not exist"
            else:
                assert source in named_volumes, f"{name}: volume {source} is not declared"
    build = services["controller"]["build"]
    context = (DEPLOY / build["context"]).resolve()
    assert (context / build["dockerfile"]).is_file()
    assert (context / "pyproject.toml").is_file()
    conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    mounted = [v.split(":")[1] for v in services["mosquitto"]["volumes"]]
    for option in ("password_file", "acl_file", "persistence_location"):
        path = re.search(rf"^{option} (\S+)$", conf, re.MULTILINE)
        assert path, option
        assert any(path.group(1).startswith(m) for m in mounted), f"{option} is not mounted"


def test_mosquitto_conf_does_not_drop_queued_messages_early() -> None:
    conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    options = dict(
        line.split(None, 1)
        for line in conf.splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert options["allow_anonymous"] == "false"
    assert options["persistence"] == "true"
    assert int(options["max_queued_messages"]) >= 100_000
    assert int(options["max_queued_bytes"]) > 0


@pytest.mark.parametrize(
    ("unit", "command"),
    [
        (
            "coldchain-controller.service",
            "coldchain controller run --config /etc/coldchain/controller.toml",
        ),
        ("coldchain-edge.service", "coldchain-edge run --config /etc/coldchain-edge/agent.toml"),
    ],
)
def test_systemd_units(unit: str, command: str) -> None:
    text = (DEPLOY / "systemd" / unit).read_text()
    exec_start = re.search(r"^ExecStart=(\S+) (.*)$", text, re.MULTILINE)
    assert exec_start
    assert f"{Path(exec_start.group(1)).name} {exec_start.group(2)}" == command
    for hardening in ("NoNewPrivileges=yes", "ProtectSystem=strict", "CapabilityBoundingSet="):
        assert f"\n{hardening}\n" in text
