"""Scenario files: validation with the offending key named, and faults in force over time."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.sensors.thermal import Faults
from simulators.scenario import (
    ScenarioError,
    faults_at,
    load_scenario,
    named_scenarios,
    parse_scenario,
)


def test_every_shipped_scenario_loads() -> None:
    names = named_scenarios()
    assert {"quiet-day", "peak-day", "compressor-failure", "power-loss", "probe-failure"} <= set(
        names
    )
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
    scenario = load_scenario("compressor-failure")  # vehicle 1, from 1800 s for 7200 s
    before = faults_at(scenario, vehicle=1, compartment="c1", elapsed_s=1799, start_s=0)
    during = faults_at(scenario, vehicle=1, compartment="c1", elapsed_s=1800, start_s=0)
    other = faults_at(scenario, vehicle=2, compartment="c1", elapsed_s=3000, start_s=0)
    after = faults_at(scenario, vehicle=1, compartment="c1", elapsed_s=9000, start_s=0)
    assert before == Faults() and other == Faults() and after == Faults()
    assert during == Faults(compressor_failed=True)


def test_probe_faults_start_when_scripted() -> None:
    scenario = load_scenario("probe-failure")
    faults = faults_at(scenario, vehicle=2, compartment="c1", elapsed_s=2000, start_s=1000.0)
    assert faults.compressor_failed
    stuck = faults.stuck_for("p1")
    assert stuck is not None and stuck.since_s == 1000.0 + 1200 and stuck.value_c == 4.0
