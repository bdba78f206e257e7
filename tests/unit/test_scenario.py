"""Scenario files: validation with the offending key named, and faults in force over time."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.sensors.thermal import Faults
from simulators.scenario import (
    DEFAULT_REBOOT_S,
    ScenarioError,
    faults_at,
    load_scenario,
    named_scenarios,
    parse_scenario,
    reboots_due,
)


def test_every_shipped_scenario_loads() -> None:
    names = named_scenarios()
    assert {
        "quiet-day",
        "peak-day",
        "compressor-failure",
        "power-loss",
        "probe-failure",
        "network-outage",
        "regional-outbreak",
    } <= set(names)
    for name in names:
        scenario = load_scenario(name)
        assert scenario.description and scenario.vehicles >= 1 and scenario.duration_s > 0


@pytest.mark.parametrize(
    ("doc", "key"),
    [
        ({"vehicles": 0}, "vehicles"),
        ({"speed": -1}, "(document).speed"),
        ({"bogus": 1}, "bogus"),
        ({"failures": {}}, "failures"),
        ({"failures": [{"at_s": 1, "kind": "meteor"}]}, "failures[0].kind"),
        (
            {"vehicles": 3, "failures": [{"at_s": 1, "kind": "power_loss", "vehicles": 4}]},
            "failures[0].vehicles",
        ),
        ({"failures": [{"at_s": -5, "kind": "power_loss"}]}, "failures[0].at_s"),
        ({"failures": [{"at_s": 5, "kind": "power_loss", "colour": "red"}]}, "failures[0].colour"),
        ({"start_local": "25:00"}, "start_local"),
        ({"start_local": "noon"}, "start_local"),
        ({"city": {"hospitals": 0}}, "city.hospitals"),
        ({"city": {"depots": 9}}, "city.depots"),
        ({"orders": {"per_day": -3}}, "orders.per_day"),
        (
            {"orders": {"priorities": {"routine": 0.5, "urgent": 0.1}}},
            "orders.priorities.emergency",
        ),
        ({"orders": {"scripted": [{"at_s": 1}]}}, "orders.scripted[0].hospital"),
        (
            {"orders": {"scripted": [{"at_s": 1, "hospital": "H1", "priority": "asap"}]}},
            "orders.scripted[0].priority",
        ),
        (
            {"vehicles": 2, "orders": {"scripted": [{"at_s": 1, "hospital": "H1", "vehicle": 3}]}},
            "orders.scripted[0].vehicle",
        ),
        (
            {"outbreak": {"at_s": 0, "duration_s": 60, "lat": 31.1, "lon": 121.4}},
            "outbreak.radius_km",
        ),
        (
            {"outbreak": {"at_s": 0, "duration_s": 60, "lat": 31.1, "lon": 121.4, "radius_km": -1}},
            "outbreak.radius_km",
        ),
        ({"outbreak": {"at_s": 0, "epicentre": 1}}, "outbreak.epicentre"),
    ],
)
def test_invalid_documents_name_the_key(doc: dict[str, object], key: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(doc, name="t")
    assert caught.value.key == key


def test_unknown_name_lists_the_shipped_ones() -> None:
    with pytest.raises(ScenarioError, match="quiet-day"):
        load_scenario("no-such-scenario")


def test_yaml_file_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("vehicles: 4\nfailures:\n  - {at_s: 60, vehicles: '50%', kind: power_loss}\n")
    scenario = load_scenario(str(path))
    assert scenario.name == "mine"
    assert scenario.failures[0].vehicles == (1, 2)


def test_faults_follow_the_script() -> None:
    scenario = load_scenario("compressor-failure")  # vehicle 1, from 1500 s for 7200 s
    before = faults_at(scenario, vehicle=1, compartment="c1", elapsed_s=1499, start_s=0)
    during = faults_at(scenario, vehicle=1, compartment="c1", elapsed_s=1500, start_s=0)
    other = faults_at(scenario, vehicle=2, compartment="c1", elapsed_s=3000, start_s=0)
    after = faults_at(scenario, vehicle=1, compartment="c1", elapsed_s=8700, start_s=0)
    assert before == Faults() and other == Faults() and after == Faults()
    assert during == Faults(compressor_failed=True)


def test_probe_faults_start_when_scripted() -> None:
    scenario = load_scenario("probe-failure")
    faults = faults_at(scenario, vehicle=2, compartment="c1", elapsed_s=2000, start_s=1000.0)
    assert faults.compressor_failed
    stuck = faults.stuck_for("p1")
    assert stuck is not None and stuck.since_s == 1000.0 + 1200 and stuck.value_c == 4.0


def test_gateway_reboots_are_one_shot_events_with_the_time_left_down() -> None:
    scenario = parse_scenario(
        {
            "vehicles": 3,
            "failures": [
                {"at_s": 100, "vehicles": [2, 3], "kind": "gateway_reboot", "duration_s": 300},
                {"at_s": 1000, "vehicles": 2, "kind": "gateway_reboot"},
            ],
        },
        name="t",
    )
    assert reboots_due(scenario, vehicle=2, elapsed_s=50) == []
    assert reboots_due(scenario, vehicle=2, elapsed_s=150) == [(0, 250)]
    assert reboots_due(scenario, vehicle=1, elapsed_s=150) == []
    assert reboots_due(scenario, vehicle=2, elapsed_s=1030) == [(1, DEFAULT_REBOOT_S - 30)]
    # A reboot is not a compartment fault.
    assert faults_at(scenario, vehicle=2, compartment="c1", elapsed_s=150, start_s=0) == Faults()
