"""Golden scenario records, generated from the simulator's physics with a fixed seed.

The CSV files under `data/` are the fixtures the golden tests read; this module made them and
remakes them (``python -m tests.unit.compliance.fixtures``) if a scenario is ever changed on
purpose. Each scenario is two hours of one refrigerated compartment (two probes, 12 m3) sampled
every 30 s from `T0`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from controller.compliance.models import Sample
from edge_agent.sensors.simulated import CompartmentSpec, SimulatedVehicleDriver
from edge_agent.sensors.thermal import Faults, ProbeDrift, ProbeStuck

DATA = Path(__file__).with_name("data")
T0 = 1_751_299_200.0  # 2025-07-01 00:00 Shanghai
HOURS = 2.0
STEP_S = 30.0


@dataclass(frozen=True, slots=True)
class Scenario:
    """A scripted two hours: door openings, faults from a time on, and dropped stretches."""

    name: str
    doors: tuple[tuple[float, float], ...] = ()
    faults: tuple[tuple[float, Faults], ...] = ()
    dropped: tuple[tuple[float, float], ...] = field(default=())


def _minutes(start: float, end: float) -> tuple[float, float]:
    return (T0 + start * 60.0, T0 + end * 60.0)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("steady"),
        Scenario("doors", doors=(_minutes(30, 31), _minutes(60, 61.5), _minutes(90, 94))),
        Scenario("compressor_failure", faults=((T0 + 40 * 60, Faults(compressor_failed=True)),)),
        Scenario(
            "probe_drift",
            faults=(
                (
                    T0 + 20 * 60,
                    Faults(
                        probe_drifts=(
                            ProbeDrift(probe_id="p2", rate_c_per_h=1.2, start_s=T0 + 20 * 60),
                        )
                    ),
                ),
            ),
        ),
        Scenario(
            "probe_stuck",
            faults=(
                (
                    T0 + 15 * 60,
                    Faults(probes_stuck=(ProbeStuck(probe_id="p1", since_s=T0 + 15 * 60),)),
                ),
            ),
        ),
        Scenario("link_outage", dropped=(_minutes(50, 65),)),
    )
}


def generate(scenario: Scenario, *, seed: int = 2025) -> list[Sample]:
    """Run the simulator through a scenario and return its temperature samples."""

    def door_open(_compartment_id: str, now_s: float) -> bool:
        return any(a <= now_s < b for a, b in scenario.doors)

    driver = SimulatedVehicleDriver(
        compartments=[CompartmentSpec(compartment_id="c1", probe_ids=("p1", "p2"))],
        seed=seed,
        door_open=door_open,
    )
    samples: list[Sample] = []
    pending = sorted(scenario.faults, key=lambda item: item[0])
    for i in range(round(HOURS * 3600 / STEP_S) + 1):
        now_s = T0 + i * STEP_S
        while pending and pending[0][0] <= now_s:
            driver.inject("c1", pending.pop(0)[1])
        readings = driver.sample(now_s)
        if any(a <= now_s < b for a, b in scenario.dropped):
            continue
        for channel, value_c in readings:
            if channel.startswith("temp:c1:"):
                samples.append(Sample(now_s, channel.rsplit(":", 1)[1], value_c))
    return samples


def read(name: str) -> list[Sample]:
    """The stored fixture of a scenario."""
    with (DATA / f"{name}.csv").open(newline="", encoding="utf-8") as handle:
        return [
            Sample(float(row["ts_s"]), row["probe_id"], float(row["value_c"]))
            for row in csv.DictReader(handle)
        ]


def write(name: str, samples: list[Sample]) -> None:
    """Store a scenario's samples as CSV (ts_s, probe_id, value_c)."""
    DATA.mkdir(exist_ok=True)
    with (DATA / f"{name}.csv").open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["ts_s", "probe_id", "value_c"])
        out.writerows((f"{s.ts_s:.1f}", s.probe_id, f"{s.value_c:.2f}") for s in samples)


if __name__ == "__main__":
    for scenario in SCENARIOS.values():
        write(scenario.name, generate(scenario))
