"""Evaluate the band-exit predictor on compartments simulated with the edge agent's physics.

Each simulated compartment (refrigerated, two probes) runs normal operation: compressor
cycling, a defrost every 6 h, door openings of 30-90 s every 40-120 min, a daily ambient swing;
a share of them get a compressor failure at a random time. The predictor runs on every sample
(every 30 s) as the controller runs it live. Excursions are decided by `detect_excursions`.

- Lead time: for each failed compartment, from the first warning at or after the failure to the
  start of the first excursion after it (0 when no warning came first: `missed`). Failures whose
  excursion started sooner than `prediction.min_span_s` after the failure cannot be warned of
  (the fit needs that much data) and are only counted (`too_fast`).
- False warnings: warning episodes (warned samples; episodes less than `warn_before_exit_s`
  apart merge) before any failure after which no probe leaves the band within twice
  `warn_before_exit_s`, per compartment-day of operation without a failure. Those starting
  during a defrost (or 5 min after one) are also counted apart; `warnings_without_excursion`
  counts the episodes followed by no excursion (a short blip out of band may have followed).

This module imports the simulator and is meant for benchmarks and tests, not the live path.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass, field, replace

from controller.compliance.excursions import detect_excursions
from controller.compliance.models import Sample
from controller.compliance.prediction import predict_band_exit
from controller.compliance.rulebook import Rulebook, load_rulebook
from edge_agent.sensors.simulated import CompartmentSpec, SimulatedVehicleDriver
from edge_agent.sensors.thermal import Faults, ReeferParams, is_defrosting

# 2025-07-01 00:00 in Shanghai (UTC+8): the start of every simulated run.
RUN_START_S = 1_751_299_200.0
_SECONDS_PER_DAY = 86_400.0
# A false warning starting during a defrost or this soon after it is attributed to the defrost.
_DEFROST_MARGIN_S = 300.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PredictionEvaluation:
    """Figures of one evaluation run (lead times in minutes; rate per compartment-day)."""

    compartments: int
    failures: int
    exits_after_failure_min: tuple[float, ...]
    too_fast: int
    missed: int
    lead_times_min: tuple[float, ...]
    median_lead_min: float | None
    min_lead_min: float | None
    false_warnings: int
    false_warnings_in_defrost: int
    warnings_without_excursion: int
    normal_compartment_days: float
    false_warnings_per_compartment_day: float


@dataclass(slots=True)
class _Scenario:
    compartment_id: str
    failure_s: float | None
    doors: list[tuple[float, float]] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    warned_s: list[float] = field(default_factory=list)
    defrosting_s: list[float] = field(default_factory=list)


def evaluate_predictor(
    *,
    compartments: int,
    hours: float,
    seed: int,
    failure_share: float = 0.5,
    rules: Rulebook | None = None,
    sample_interval_s: float = 30.0,
) -> PredictionEvaluation:
    """Simulate `compartments` refrigerated compartments for `hours` and score the predictor."""
    rulebook = rules if rules is not None else load_rulebook()
    band = rulebook.temperature_class("refrigerated")
    rng = random.Random(seed)
    duration_s = hours * 3600.0
    scenarios, specs = _scenarios(rng, compartments=compartments, hours=hours, share=failure_share)
    by_id = {s.compartment_id: s for s in scenarios}

    def door_open(compartment_id: str, now_s: float) -> bool:
        return any(a <= now_s < b for a, b in by_id[compartment_id].doors)

    driver = SimulatedVehicleDriver(compartments=specs, seed=seed, door_open=door_open)
    window_s = rulebook.prediction.window_s + rulebook.prediction.confirm_s
    steps = int(duration_s // sample_interval_s) + 1
    for i in range(steps):
        now_s = RUN_START_S + i * sample_interval_s
        for scenario in scenarios:
            failing = scenario.failure_s is not None and now_s >= scenario.failure_s
            if failing and not driver.faults(scenario.compartment_id).compressor_failed:
                driver.inject(scenario.compartment_id, Faults(compressor_failed=True))
        readings = driver.sample(now_s)
        for scenario in scenarios:
            if is_defrosting(driver.compartment_state(scenario.compartment_id), now_s=now_s):
                scenario.defrosting_s.append(now_s)
        for channel, value_c in readings:
            kind, _, rest = channel.partition(":")
            if kind != "temp":
                continue
            compartment_id, _, probe_id = rest.partition(":")
            by_id[compartment_id].samples.append(Sample(now_s, probe_id, value_c))
        for scenario in scenarios:
            recent = [s for s in scenario.samples[-240:] if s.ts_s >= now_s - window_s]
            prediction = predict_band_exit(recent, band=band, rules=rulebook, now_s=now_s)
            if prediction.warn:
                scenario.warned_s.append(now_s)
    return _score(scenarios, rules=rulebook, duration_s=duration_s, step_s=sample_interval_s)


def _scenarios(
    rng: random.Random, *, compartments: int, hours: float, share: float
) -> tuple[list[_Scenario], list[CompartmentSpec]]:
    scenarios: list[_Scenario] = []
    specs: list[CompartmentSpec] = []
    failures = round(compartments * share)
    end_s = RUN_START_S + hours * 3600.0
    for index in range(compartments):
        compartment_id = f"c{index + 1}"
        params = replace(
            ReeferParams(),
            ambient_mean_c=rng.uniform(24.0, 34.0),
            hysteresis_c=rng.uniform(0.8, 1.2),
            setpoint_c=rng.uniform(4.5, 5.5),
        )
        failure_s = None
        if index < failures:
            failure_s = RUN_START_S + rng.uniform(1.0, max(1.0, hours - 2.0)) * 3600.0
        scenario = _Scenario(compartment_id=compartment_id, failure_s=failure_s)
        # Deliveries: the door opens for 30-90 s every 40-120 min.
        t_s = RUN_START_S + rng.uniform(20.0, 60.0) * 60.0
        while t_s < end_s:
            scenario.doors.append((t_s, t_s + rng.uniform(30.0, 90.0)))
            t_s += rng.uniform(40.0, 120.0) * 60.0
        scenarios.append(scenario)
        specs.append(
            CompartmentSpec(compartment_id=compartment_id, probe_ids=("p1", "p2"), params=params)
        )
    return scenarios, specs


def _episodes(warned_s: list[float], *, step_s: float, merge_s: float) -> list[float]:
    starts: list[float] = []
    previous_s: float | None = None
    for t_s in warned_s:
        if previous_s is None or t_s - previous_s > max(step_s, merge_s):
            starts.append(t_s)
        previous_s = t_s
    return starts


def _score(
    scenarios: list[_Scenario], *, rules: Rulebook, duration_s: float, step_s: float
) -> PredictionEvaluation:
    band = rules.temperature_class("refrigerated")
    horizon_s = rules.prediction.warn_before_exit_s
    too_fast_s = rules.prediction.min_span_s
    leads_min: list[float] = []
    exits_after_min: list[float] = []
    missed = too_fast = false_warnings = unconfirmed = in_defrost = 0
    normal_s = 0.0
    for scenario in scenarios:
        excursions_s = [
            e.start_s for e in detect_excursions(scenario.samples, band=band, rules=rules)
        ]
        out_s = sorted(
            {s.ts_s for s in scenario.samples if band.side_outside(s.value_c) is not None}
        )
        failure_s = scenario.failure_s
        normal_s += duration_s if failure_s is None else failure_s - scenario.samples[0].ts_s
        for start_s in _episodes(scenario.warned_s, step_s=step_s, merge_s=horizon_s):
            if failure_s is not None and start_s >= failure_s:
                continue
            follows = (start_s, start_s + 2.0 * horizon_s)
            if not any(follows[0] <= x <= follows[1] for x in excursions_s):
                unconfirmed += 1
                if not any(follows[0] <= x <= follows[1] for x in out_s):
                    false_warnings += 1
                    if any(
                        start_s - _DEFROST_MARGIN_S <= d <= start_s for d in scenario.defrosting_s
                    ):
                        in_defrost += 1
        if failure_s is None:
            continue
        exit_s = next((x for x in excursions_s if x >= failure_s), None)
        if exit_s is None:
            continue  # the run ended before the band was left
        exits_after_min.append((exit_s - failure_s) / 60.0)
        if exit_s - failure_s < too_fast_s:
            too_fast += 1
            continue
        warned = [t for t in scenario.warned_s if failure_s <= t <= exit_s]
        if warned:
            leads_min.append((exit_s - warned[0]) / 60.0)
        else:
            missed += 1
            leads_min.append(0.0)
    days = normal_s / _SECONDS_PER_DAY
    return PredictionEvaluation(
        compartments=len(scenarios),
        failures=sum(s.failure_s is not None for s in scenarios),
        exits_after_failure_min=tuple(exits_after_min),
        too_fast=too_fast,
        missed=missed,
        lead_times_min=tuple(leads_min),
        median_lead_min=statistics.median(leads_min) if leads_min else None,
        min_lead_min=min(leads_min) if leads_min else None,
        false_warnings=false_warnings,
        false_warnings_in_defrost=in_defrost,
        warnings_without_excursion=unconfirmed,
        normal_compartment_days=days,
        false_warnings_per_compartment_day=false_warnings / days if days > 0 else 0.0,
    )
