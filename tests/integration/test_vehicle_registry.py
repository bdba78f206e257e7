"""Vehicle registry against real PostgreSQL and a private Mosquitto using the generated files."""

from __future__ import annotations

import queue
import re
import stat
import threading
import tomllib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode
from typer.testing import CliRunner

from coldchain_protocol.signing import load_private_key, load_public_key, sign_body, verify_signed
from coldchain_protocol.topics import Topics
from controller.errors import NotFound, RegistrationError
from controller.settings import ControllerSettings
from controller.vehicles.cli import app
from controller.vehicles.credentials import upsert_password, verify_password, write_acl
from controller.vehicles.models import CompartmentSpec, ProbeSpec, VehicleSpec
from controller.vehicles.rules import ProbeRules
from controller.vehicles.service import (
    RegistrationResult,
    get_vehicle,
    list_vehicles,
    public_keys,
    register_vehicle,
)

pytestmark = pytest.mark.integration

TODAY = date(2026, 3, 1)
REPO = Path(__file__).resolve().parents[2]
WAIT_S = 3.0
# Test files live under pytest's 0700 root-owned tmp dirs, and Mosquitto reads its password and
# ACL files after dropping privileges to the `mosquitto` user: stay root (no effect as non-root).
STAY_USER = "user root\n"


def vehicle_spec(vehicle_id: str) -> VehicleSpec:
    due = date(2027, 1, 31)
    return VehicleSpec(
        vehicle_id,
        f"Truck {vehicle_id}",
        (
            CompartmentSpec(
                "front",
                "refrigerated",
                18.0,
                (ProbeSpec("p1", "front top", 0.3, due), ProbeSpec("p2", "rear bottom", 0.3, due)),
            ),
            CompartmentSpec(
                "deep",
                "frozen",
                6.0,
                (ProbeSpec("f1", "left", 1.0, due), ProbeSpec("f2", "right", 0.8, due)),
            ),
        ),
    )


@dataclass
class Registrar:
    """Registers vehicles into the test's database with the test's files."""

    database_url: str
    credentials_dir: Path
    password_file: Path
    topic_prefix: str
    broker_url: str = "mqtt://127.0.0.1:1883"

    def register(self, spec: VehicleSpec) -> RegistrationResult:
        with psycopg.connect(self.database_url) as conn:
            return register_vehicle(
                conn,
                spec,
                rules=ProbeRules(),
                today=TODAY,
                credentials_dir=self.credentials_dir,
                password_file=self.password_file,
                broker_url=self.broker_url,
                topic_prefix=self.topic_prefix,
            )


@pytest.fixture
def registrar(database_url: str, tmp_path: Path, topic_prefix: str) -> Registrar:
    return Registrar(
        database_url=database_url,
        credentials_dir=tmp_path / "credentials",
        password_file=tmp_path / "auth" / "passwords",
        topic_prefix=topic_prefix,
    )


def by_id(spec: VehicleSpec) -> VehicleSpec:
    """The spec as the registry returns it: compartments and probes ordered by id."""
    compartments = sorted(spec.compartments, key=lambda c: c.compartment_id)
    return VehicleSpec(
        spec.vehicle_id,
        spec.display_name,
        tuple(
            CompartmentSpec(
                c.compartment_id,
                c.temperature_class,
                c.volume_m3,
                tuple(sorted(c.probes, key=lambda p: p.probe_id)),
            )
            for c in compartments
        ),
    )


def agent_config(result: RegistrationResult) -> dict[str, Any]:
    return tomllib.loads(result.agent_config_file.read_text())


def agent_password(result: RegistrationResult) -> str:
    password = urlsplit(str(agent_config(result)["mqtt_url"])).password
    assert password
    return password


# --- registry ----------------------------------------------------------------------------


def test_registration_stores_vehicle_and_writes_gateway_files(registrar: Registrar) -> None:
    spec = vehicle_spec("TRUCK-A")
    result = registrar.register(spec)

    with psycopg.connect(registrar.database_url) as conn:
        record = get_vehicle(conn, "TRUCK-A")
        keys = public_keys(conn)
    assert record.spec == by_id(spec)
    assert keys == {"TRUCK-A": result.public_key_pem}
    assert result.warnings == ()

    folder = registrar.credentials_dir / "TRUCK-A"
    assert result.private_key_file == folder / "vehicle.key"
    for path in (result.private_key_file, result.agent_config_file, registrar.password_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    key = load_private_key(result.private_key_file.read_bytes())
    signed = sign_body(b'{"v":1}', key)
    assert verify_signed(signed, load_public_key(record.public_key_pem)) == b'{"v":1}'

    config = agent_config(result)
    url = urlsplit(config["mqtt_url"])
    assert (url.scheme, url.username, url.hostname, url.port) == (
        "mqtt",
        "TRUCK-A",
        "127.0.0.1",
        1883,
    )
    assert config["vehicle_id"] == "TRUCK-A"
    assert config["topic_prefix"] == registrar.topic_prefix
    assert config["outbox_path"] == "/var/lib/coldchain-edge/outbox.db"
    assert [c["compartment_id"] for c in config["compartments"]] == ["front", "deep"]
    assert config["compartments"][1] == {
        "compartment_id": "deep",
        "temperature_class": "frozen",
        "low_c": -25.0,
        "high_c": -10.0,
        "probes": ["f1", "f2"],
    }
    line = registrar.password_file.read_text().strip()
    user, _, encoded = line.partition(":")
    assert user == "TRUCK-A"
    assert verify_password(agent_password(result), encoded)


def test_duplicate_vehicle_refused_and_first_credentials_untouched(registrar: Registrar) -> None:
    first = registrar.register(vehicle_spec("TRUCK-A"))
    key_before = first.private_key_file.read_bytes()
    passwords_before = registrar.password_file.read_text()

    with pytest.raises(RegistrationError) as caught:
        registrar.register(vehicle_spec("TRUCK-A"))
    assert (caught.value.field, caught.value.message) == ("vehicle_id", "already registered")
    assert first.private_key_file.read_bytes() == key_before
    assert registrar.password_file.read_text() == passwords_before
    with psycopg.connect(registrar.database_url) as conn:
        assert public_keys(conn) == {"TRUCK-A": first.public_key_pem}


def test_rule_errors_block_registration_and_leave_nothing(registrar: Registrar) -> None:
    base = vehicle_spec("TRUCK-A")
    big = CompartmentSpec("front", "refrigerated", 20.01, base.compartments[0].probes)
    with pytest.raises(RegistrationError) as caught:
        registrar.register(VehicleSpec("TRUCK-A", "Truck", (big,)))
    assert caught.value.field == "compartments.front.probes"
    with psycopg.connect(registrar.database_url) as conn:
        assert list_vehicles(conn) == []
        with pytest.raises(NotFound):
            get_vehicle(conn, "TRUCK-A")
    assert not registrar.credentials_dir.exists()
    assert not registrar.password_file.exists()


def test_overdue_calibration_registers_with_a_warning(registrar: Registrar) -> None:
    base = vehicle_spec("TRUCK-A")
    late = ProbeSpec("p9", "door", 0.3, date(2026, 2, 1))
    front = base.compartments[0]
    front = CompartmentSpec(front.compartment_id, "refrigerated", 5.0, (*front.probes, late))
    result = registrar.register(VehicleSpec("TRUCK-A", "Truck", (front,)))
    assert [w.field for w in result.warnings] == ["compartments.front.probes.p9.calibration_due"]


def test_controller_user_name_cannot_be_a_vehicle(registrar: Registrar) -> None:
    with pytest.raises(RegistrationError) as caught:
        registrar.register(vehicle_spec("controller"))
    assert caught.value.field == "vehicle_id"


def test_list_vehicles_in_id_order(registrar: Registrar) -> None:
    for vehicle_id in ("TRUCK-C", "TRUCK-A", "TRUCK-B"):
        registrar.register(vehicle_spec(vehicle_id))
    with psycopg.connect(registrar.database_url) as conn:
        records = list_vehicles(conn)
    assert [r.spec.vehicle_id for r in records] == ["TRUCK-A", "TRUCK-B", "TRUCK-C"]
    assert all(r.spec == by_id(vehicle_spec(r.spec.vehicle_id)) for r in records)


# --- broker ------------------------------------------------------------------------------


class Peer:
    """A paho MQTT v5 client whose callbacks feed queues the test waits on."""

    def __init__(self, port: int, *, username: str, password: str) -> None:
        self.port = port
        self.connack: queue.Queue[ReasonCode] = queue.Queue()
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._pubacks: dict[int, ReasonCode] = {}
        self._puback_cond = threading.Condition()
        self._subacked = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"test-{username}-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5,
            reconnect_on_failure=False,
        )
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self.connack.put(reason)

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        self.messages.put((message.topic, bytes(message.payload)))

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        with self._puback_cond:
            self._pubacks[mid] = reason
            self._puback_cond.notify_all()

    def _on_subscribe(self, _c: Any, _u: Any, _mid: int, _reasons: Any, _p: Any) -> None:
        self._subacked.set()

    def connect(self) -> ReasonCode:
        self.client.connect("127.0.0.1", self.port, keepalive=10)
        self.client.loop_start()
        return self.connack.get(timeout=WAIT_S)

    def subscribe(self, topic: str) -> None:
        self._subacked.clear()
        self.client.subscribe(topic, qos=1)
        assert self._subacked.wait(WAIT_S), f"no SUBACK for {topic}"

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        info = self.client.publish(topic, payload, qos=1)
        with self._puback_cond:
            assert self._puback_cond.wait_for(lambda: info.mid in self._pubacks, WAIT_S)
            return self._pubacks[info.mid]

    def next_message(self) -> tuple[str, bytes]:
        return self.messages.get(timeout=WAIT_S)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Fleet:
    """Two registered vehicles, the controller user and a broker running on generated files."""

    port: int
    topics: Topics
    passwords: dict[str, str]
    peers: list[Peer]

    def peer(self, username: str, *, password: str | None = None) -> Peer:
        password = self.passwords[username] if password is None else password
        peer = Peer(self.port, username=username, password=password)
        self.peers.append(peer)
        return peer

    def connected(self, username: str) -> Peer:
        peer = self.peer(username)
        reason = peer.connect()
        assert not reason.is_failure, f"{username} refused: {reason}"
        return peer


def broker_files_config(*, password_file: Path, acl_file: Path) -> str:
    return f"{STAY_USER}allow_anonymous false\npassword_file {password_file}\nacl_file {acl_file}\n"


@pytest.fixture
def fleet(
    registrar: Registrar, private_broker: Callable[..., Any], tmp_path: Path
) -> Iterator[Fleet]:
    acl_file = tmp_path / "auth" / "acl"
    broker = private_broker(
        broker_files_config(password_file=registrar.password_file, acl_file=acl_file),
        start=False,
    )
    registrar.broker_url = broker.url
    passwords = {"controller": uuid.uuid4().hex}
    for vehicle_id in ("TRUCK-A", "TRUCK-B"):
        passwords[vehicle_id] = agent_password(registrar.register(vehicle_spec(vehicle_id)))
    upsert_password(
        registrar.password_file, username="controller", password=passwords["controller"]
    )
    write_acl(acl_file, topic_prefix=registrar.topic_prefix)
    broker.start()
    fleet = Fleet(broker.port, Topics(registrar.topic_prefix), passwords, [])
    yield fleet
    for peer in fleet.peers:
        peer.close()


def test_vehicle_telemetry_reaches_controller_but_not_under_another_vehicle(fleet: Fleet) -> None:
    topics = fleet.topics
    controller = fleet.connected("controller")
    controller.subscribe(topics.shared("coldchain-ingest", topics.all_telemetry()))
    truck_a = fleet.connected("TRUCK-A")

    # Refused first, then allowed: the broker handles one client's messages in order, so once the
    # allowed one arrives the refused one would have arrived before it if it were delivered.
    refused = truck_a.publish(topics.telemetry("TRUCK-B"), b"forged")
    allowed = truck_a.publish(topics.telemetry("TRUCK-A"), b"genuine")
    assert refused.is_failure and refused.getName() == "Not authorized"
    assert not allowed.is_failure
    assert controller.next_message() == (topics.telemetry("TRUCK-A"), b"genuine")
    assert controller.messages.empty()


def test_wrong_password_is_refused_at_connect(fleet: Fleet) -> None:
    reason = fleet.peer("TRUCK-A", password=fleet.passwords["TRUCK-B"]).connect()
    assert reason.is_failure
    assert reason.getName() in ("Bad user name or password", "Not authorized")
    unknown = fleet.peer("TRUCK-Z", password="whatever").connect()
    assert unknown.is_failure
    anonymous = fleet.peer("", password="").connect()
    assert anonymous.is_failure


def test_acks_reach_only_their_vehicle(fleet: Fleet) -> None:
    topics = fleet.topics
    truck_a = fleet.connected("TRUCK-A")
    truck_a.subscribe(topics.ack("TRUCK-A"))
    truck_a.subscribe(topics.ack("TRUCK-B"))  # Mosquitto grants it but must deliver nothing.
    controller = fleet.connected("controller")

    assert not controller.publish(topics.ack("TRUCK-B"), b"for B").is_failure
    assert not controller.publish(topics.ack("TRUCK-A"), b"for A").is_failure
    assert truck_a.next_message() == (topics.ack("TRUCK-A"), b"for A")
    assert truck_a.messages.empty()
    # A vehicle cannot forge acks or resend requests, nor the controller telemetry.
    assert truck_a.publish(topics.ack("TRUCK-A"), b"x").is_failure
    assert truck_a.publish(topics.resend("TRUCK-A"), b"x").is_failure
    assert controller.publish(topics.telemetry("TRUCK-A"), b"x").is_failure


def test_production_mosquitto_conf_runs_with_generated_files(
    registrar: Registrar, private_broker: Callable[..., Any], tmp_path: Path
) -> None:
    conf = (REPO / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
    acl_file = tmp_path / "auth" / "acl"
    data_dir = tmp_path / "broker-data"
    data_dir.mkdir()
    # The fixture supplies its own listener (a free port on 127.0.0.1); everything else is as in
    # production, with the file locations moved into the test's folder.
    conf = re.sub(r"^listener 1883$", "", conf, flags=re.MULTILINE)
    conf = conf.replace("/etc/mosquitto/coldchain/passwords", str(registrar.password_file))
    conf = conf.replace("/etc/mosquitto/acl", str(acl_file))
    conf = conf.replace("/var/lib/mosquitto/", f"{data_dir}/")
    broker = private_broker(STAY_USER + conf, start=False)
    registrar.broker_url = broker.url
    password = agent_password(registrar.register(vehicle_spec("TRUCK-A")))
    upsert_password(registrar.password_file, username="controller", password="ctl-pw")
    write_acl(acl_file, topic_prefix=registrar.topic_prefix)
    broker.start()
    topics = Topics(registrar.topic_prefix)
    controller = Peer(broker.port, username="controller", password="ctl-pw")
    truck = Peer(broker.port, username="TRUCK-A", password=password)
    try:
        assert not controller.connect().is_failure
        controller.subscribe(topics.all_telemetry())
        assert not truck.connect().is_failure
        assert not truck.publish(topics.telemetry("TRUCK-A"), b"batch").is_failure
        assert controller.next_message() == (topics.telemetry("TRUCK-A"), b"batch")
    finally:
        truck.close()
        controller.close()


# --- CLI ---------------------------------------------------------------------------------


@pytest.fixture
def settings(registrar: Registrar) -> ControllerSettings:
    return ControllerSettings(
        database_url=registrar.database_url,
        mqtt_url="mqtt://controller:secret@broker.internal:1883",
        topic_prefix=registrar.topic_prefix,
        credentials_dir=str(registrar.credentials_dir),
        broker_password_file=str(registrar.password_file),
    )


def test_cli_add_with_options_then_list(settings: ControllerSettings, registrar: Registrar) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "add",
            "--id",
            "TRUCK-A",
            "--name",
            "Truck A",
            "--compartment",
            "front:refrigerated:18",
            "--probe",
            "front:p1:front: top:0.3:2027-01-31",
            "--probe",
            "front:p2:rear:0.3:2026-01-31",
        ],
        obj=settings,
    )
    assert result.exit_code == 0, result.output
    assert "registered vehicle TRUCK-A" in result.output
    assert "calibration overdue" in result.output
    config = tomllib.loads((registrar.credentials_dir / "TRUCK-A" / "agent.toml").read_text())
    assert urlsplit(config["mqtt_url"]).hostname == "broker.internal"
    assert urlsplit(config["mqtt_url"]).username == "TRUCK-A"
    with psycopg.connect(registrar.database_url) as conn:
        probes = get_vehicle(conn, "TRUCK-A").spec.compartments[0].probes
    assert [p.position for p in probes] == ["front: top", "rear"]

    listed = runner.invoke(app, ["list"], obj=settings)
    assert listed.exit_code == 0, listed.output
    assert "TRUCK-A" in listed.output
    assert "2026-01-31" in listed.output


def vehicle_toml(n_probes: int) -> str:
    probes = "".join(
        f'  {{ probe_id = "p{i}", position = "level {i}", accuracy_c = 0.2,'
        " calibration_due = 2027-01-01 },\n"
        for i in range(n_probes)
    )
    return (
        'vehicle_id = "TRUCK-F"\ndisplay_name = "From file"\n'
        "[[compartments]]\n"
        'compartment_id = "main"\ntemperature_class = "cold"\nvolume_m3 = 25\n'
        f"probes = [\n{probes}]\n"
    )


def test_cli_add_from_file_and_errors_exit_2(settings: ControllerSettings, tmp_path: Path) -> None:
    vehicle_file = tmp_path / "truck.toml"
    vehicle_file.write_text(vehicle_toml(2))
    runner = CliRunner()
    too_few = runner.invoke(app, ["add", "--file", str(vehicle_file)], obj=settings)
    assert too_few.exit_code == 2
    assert "compartments.main.probes" in too_few.output
    assert "Traceback" not in too_few.output

    vehicle_file.write_text(vehicle_toml(3))
    added = runner.invoke(app, ["add", "--file", str(vehicle_file)], obj=settings)
    assert added.exit_code == 0, added.output
    again = runner.invoke(app, ["add", "--file", str(vehicle_file)], obj=settings)
    assert again.exit_code == 2
    assert "vehicle_id: already registered" in again.output

    bad_option = runner.invoke(
        app,
        ["add", "--id", "T", "--name", "n", "--compartment", "front:refrigerated"],
        obj=settings,
    )
    assert bad_option.exit_code == 2
    assert "--compartment" in bad_option.output
    missing = runner.invoke(app, ["add", "--file", str(tmp_path / "nope.toml")], obj=settings)
    assert missing.exit_code == 2
    assert "cannot read" in missing.output
