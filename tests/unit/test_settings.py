"""Settings via `load_settings`: TOML file, environment precedence, errors that name the key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from coldchain_protocol.config import ConfigError, load_settings
from controller.settings import ControllerSettings
from edge_agent.settings import AgentSettings, CompartmentConfig

AGENT_TOML = """
vehicle_id = "TRUCK-01"
mqtt_url = "mqtt://broker.example:1883"
topic_prefix = "fleet"
private_key_file = "/etc/coldchain/TRUCK-01.key"
sample_interval_s = 20
alarm_command = ["/usr/local/bin/siren", "--loud"]

[[compartments]]
compartment_id = "front"
low_c = 2
high_c = 8
probes = ["p1", "p2"]

[[compartments]]
compartment_id = "back"
temperature_class = "cool"
high_c = 20
probes = ["p1", "p2", "p3"]
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No COLDCHAIN_* variable of the surrounding shell leaks into these tests."""
    for name in list(os.environ):
        if name.upper().startswith("COLDCHAIN_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str, name: str = "agent.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def agent_error(tmp_path: Path, text: str, **overrides: object) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings(AgentSettings, config_file=write(tmp_path, text), **overrides)
    return info.value


# -- agent -------------------------------------------------------------------------------------


def test_agent_settings_from_a_toml_file(tmp_path: Path) -> None:
    s = load_settings(AgentSettings, config_file=write(tmp_path, AGENT_TOML))
    assert s.vehicle_id == "TRUCK-01"
    assert s.mqtt_url == "mqtt://broker.example:1883"
    assert s.topic_prefix == "fleet"
    assert s.private_key_file == Path("/etc/coldchain/TRUCK-01.key")
    assert s.sample_interval_s == 20
    assert s.alarm_command == ["/usr/local/bin/siren", "--loud"]
    assert s.compartments == [
        CompartmentConfig(compartment_id="front", low_c=2, high_c=8, probes=["p1", "p2"]),
        CompartmentConfig(
            compartment_id="back",
            temperature_class="cool",
            low_c=None,
            high_c=20,
            probes=["p1", "p2", "p3"],
        ),
    ]
    # Defaults for what the file leaves out, with the GSP numbers.
    assert s.excursion_publish_interval_s == 120
    assert s.publish_interval_s == 30
    assert s.alarm_delay_s == 300
    assert s.outbox_synchronous == "FULL"
    assert s.status_file is None


def test_environment_overrides_the_file_and_arguments_override_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, AGENT_TOML)
    monkeypatch.setenv("COLDCHAIN_EDGE_SAMPLE_INTERVAL_S", "10")
    monkeypatch.setenv("COLDCHAIN_EDGE_TOPIC_PREFIX", "from-env")
    monkeypatch.setenv("COLDCHAIN_EDGE_OUTBOX_BUDGET_BYTES", "1048576")
    s = load_settings(AgentSettings, config_file=path)
    assert (s.sample_interval_s, s.topic_prefix, s.outbox_budget_bytes) == (10, "from-env", 2**20)
    assert s.vehicle_id == "TRUCK-01", "keys not in the environment still come from the file"

    s = load_settings(AgentSettings, config_file=path, sample_interval_s=5)
    assert (s.sample_interval_s, s.topic_prefix) == (5, "from-env")


def test_environment_can_carry_compartments_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLDCHAIN_EDGE_VEHICLE_ID", "VAN-7")
    monkeypatch.setenv("COLDCHAIN_EDGE_PRIVATE_KEY_FILE", "/k")
    monkeypatch.setenv(
        "COLDCHAIN_EDGE_COMPARTMENTS",
        '[{"compartment_id": "c1", "low_c": -25, "high_c": -10, "probes": ["a", "b"]}]',
    )
    s = load_settings(AgentSettings)
    assert s.vehicle_id == "VAN-7"
    assert [(c.compartment_id, c.low_c, c.high_c) for c in s.compartments] == [("c1", -25, -10)]


def test_gsp_sampling_limit(tmp_path: Path) -> None:
    error = agent_error(
        tmp_path, AGENT_TOML.replace("sample_interval_s = 20", "sample_interval_s = 90")
    )
    assert error.key == "sample_interval_s"
    assert "sample_interval_s" in str(error) and "60" in str(error)
    ok = load_settings(
        AgentSettings,
        config_file=write(
            tmp_path, AGENT_TOML.replace("sample_interval_s = 20", "sample_interval_s = 60")
        ),
    )
    assert ok.sample_interval_s == 60


def test_gsp_limit_also_applies_to_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLDCHAIN_EDGE_SAMPLE_INTERVAL_S", "61")
    with pytest.raises(ConfigError) as info:
        load_settings(AgentSettings, config_file=write(tmp_path, AGENT_TOML))
    assert info.value.key == "sample_interval_s"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("excursion_publish_interval_s", 121),
        ("excursion_publish_interval_s", 0),
        ("sample_interval_s", 0),
        ("outbox_budget_bytes", 1024),
        ("max_batch_readings", 0),
        ("alarm_delay_s", -1),
        ("outbox_synchronous", "OFF"),
        ("mqtt_url", "http://broker:1883"),
        ("vehicle_id", "bad id!"),
        ("driver", "modbus"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, key: str, value: object) -> None:
    error = agent_error(tmp_path, AGENT_TOML, **{key: value})
    assert error.key == key
    assert key in str(error)


def test_excursion_publish_interval_at_the_gsp_limit_is_accepted(tmp_path: Path) -> None:
    s = load_settings(
        AgentSettings, config_file=write(tmp_path, AGENT_TOML), excursion_publish_interval_s=120
    )
    assert s.excursion_publish_interval_s == 120


def test_unknown_key_is_named(tmp_path: Path) -> None:
    error = agent_error(tmp_path, "sampel_interval_s = 10\n" + AGENT_TOML)
    assert error.key == "sampel_interval_s"
    assert "sampel_interval_s" in str(error)
    error = agent_error(tmp_path, AGENT_TOML, publish_every=3)
    assert error.key == "publish_every"


def test_missing_required_key_is_named(tmp_path: Path) -> None:
    text = AGENT_TOML.replace('vehicle_id = "TRUCK-01"\n', "")
    assert agent_error(tmp_path, text).key == "vehicle_id"


@pytest.mark.parametrize(
    ("replace", "by", "key"),
    [
        ('probes = ["p1", "p2"]', 'probes = ["p1"]', "compartments.0.probes"),
        ("high_c = 20", "high_c = 20\nvolume = 3", "compartments.1.volume"),
        (
            'compartment_id = "back"',
            'compartment_id = "back side"',
            "compartments.1.compartment_id",
        ),
        ("high_c = 8", 'high_c = "warm"', "compartments.0.high_c"),
        ("low_c = 2", "low_c = 9", "compartments.0"),
        ('probes = ["p1", "p2", "p3"]', 'probes = ["p1", "p 2"]', "compartments.1"),
    ],
)
def test_nested_compartment_errors_name_the_key_path(
    tmp_path: Path, replace: str, by: str, key: str
) -> None:
    assert replace in AGENT_TOML
    error = agent_error(tmp_path, AGENT_TOML.replace(replace, by, 1))
    assert error.key == key
    assert repr(key) in str(error)


def test_compartment_rules_in_the_message(tmp_path: Path) -> None:
    error = agent_error(tmp_path, AGENT_TOML.replace("low_c = 2", "low_c = 9"))
    assert "low_c must be below high_c" in error.message
    error = agent_error(tmp_path, AGENT_TOML.replace('"back"', '"front"'))
    assert "compartment ids must be unique" in error.message
    error = agent_error(tmp_path, AGENT_TOML, reconnect_min_s=10, reconnect_max_s=1)
    assert "reconnect_min_s" in error.message


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigError) as info:
        load_settings(AgentSettings, config_file=missing)
    assert info.value.key == "config"
    assert str(missing) in str(info.value)


def test_toml_syntax_error(tmp_path: Path) -> None:
    error = agent_error(tmp_path, AGENT_TOML + "\nthis is = = not toml\n")
    assert error.key == "config"
    assert "agent.toml" in str(error)


# -- controller --------------------------------------------------------------------------------

CONTROLLER_TOML = """
environment = "production"
database_url = "postgresql://coldchain@db.example:5432/coldchain"
mqtt_url = "mqtts://broker.example:8883"
gap_grace_s = 45
api_port = 9000
"""


def test_controller_settings_from_file_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, CONTROLLER_TOML, "controller.toml")
    s = load_settings(ControllerSettings, config_file=path)
    assert s.environment == "production"
    assert s.database_url == "postgresql://coldchain@db.example:5432/coldchain"
    assert (s.gap_grace_s, s.api_port, s.share_group) == (45, 9000, "coldchain-ingest")

    monkeypatch.setenv("COLDCHAIN_GAP_GRACE_S", "5")
    monkeypatch.setenv("COLDCHAIN_SHARE_GROUP", "replicas")
    s = load_settings(ControllerSettings, config_file=path)
    assert (s.gap_grace_s, s.share_group, s.api_port) == (5, "replicas", 9000)
    s = load_settings(ControllerSettings, config_file=path, gap_grace_s=1)
    assert s.gap_grace_s == 1


def test_controller_defaults_without_a_file() -> None:
    s = load_settings(ControllerSettings)
    assert s.environment == "development"
    assert s.database_url.startswith("postgresql://")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("database_url", "mysql://db/coldchain"),
        ("mqtt_url", "tcp://broker:1883"),
        ("api_port", 70000),
        ("environment", "staging"),
        ("share_group", "a/b"),
        ("gap_check_interval_s", 0),
        ("ingest_group_max_messages", 0),
    ],
)
def test_controller_bad_values_are_named(tmp_path: Path, key: str, value: object) -> None:
    path = write(tmp_path, CONTROLLER_TOML, "controller.toml")
    with pytest.raises(ConfigError) as info:
        load_settings(ControllerSettings, config_file=path, **{key: value})
    assert info.value.key == key


def test_controller_unknown_key_and_bad_environment_value_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, CONTROLLER_TOML + "databse_url = 'x'\n", "controller.toml")
    with pytest.raises(ConfigError) as info:
        load_settings(ControllerSettings, config_file=path)
    assert info.value.key == "databse_url"

    monkeypatch.setenv("COLDCHAIN_API_PORT", "not-a-port")
    with pytest.raises(ConfigError) as info:
        load_settings(ControllerSettings)
    assert info.value.key == "api_port"


def test_a_bad_rulebook_stops_startup_naming_the_setting_and_the_rule(tmp_path: Path) -> None:
    from controller.compliance.rulebook import SHIPPED_RULEBOOK

    text = SHIPPED_RULEBOOK.read_text(encoding="utf-8").replace(
        "    low_c: -25.0\n", "    low_c: -5.0\n", 1
    )
    assert "low_c: -5.0" in text  # frozen now claims -5..-10 °C: low above high
    rulebook = tmp_path / "rulebook.yaml"
    rulebook.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(ControllerSettings, rulebook_file=str(rulebook))
    assert info.value.key == "rulebook_file"
    assert "classes.frozen" in str(info.value)
    good = load_settings(ControllerSettings, rulebook_file=str(SHIPPED_RULEBOOK))
    assert good.rulebook_file == str(SHIPPED_RULEBOOK)
