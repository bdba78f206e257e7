"""The simulated vehicle driver: channels, determinism, probes, faults, doors, GPS and stability."""

from __future__ import annotations

import math
import statistics
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coldchain_protocol.channels import ChannelKind, channel_kind, plausible
from edge_agent.sensors import SensorDriver
from edge_agent.sensors.simulated import (
    SHANGHAI_LAT,
    SHANGHAI_LON,
    CompartmentSpec,
    DoorSchedule,
    PositionSource,
    SimulatedVehicleDriver,
    UnknownCompartmentError,
)
from edge_agent.sensors.thermal import Faults, ProbeDrift, ProbeStuck, ReeferParams

START_S = datetime(2025, 7, 1, 8, 0, tzinfo=timezone(timedelta(hours=8))).timestamp()
SAMPLE_S = 30.0
STEADY_30 = ReeferParams(ambient_mean_c=30.0, ambient_amplitude_c=0.0)


def two_compartment_van(
    *,
    seed: int = 7,
    params: ReeferParams = STEADY_30,
    position: PositionSource | None = None,
    door_open: DoorSchedule | None = None,
) -> SimulatedVehicleDriver:
    """A van with a front (3 probes) and a rear (2 probes) compartment, both starting at 5 °C."""
    return SimulatedVehicleDriver(
        compartments=[
            CompartmentSpec(compartment_id="front", probe_ids=("p1", "p2", "p3"), params=params),
            CompartmentSpec(compartment_id="rear", probe_ids=("p1", "p2"), params=params),
        ],
        seed=seed,
        position=position,
        door_open=door_open,
    )


def run(
    driver: SimulatedVehicleDriver, *, start_s: float, duration_s: float, every_s: float = SAMPLE_S
) -> list[tuple[float, dict[str, float]]]:
    """Sample every `every_s` from `start_s` (inclusive) for `duration_s`."""
    samples = []
    for i in range(round(duration_s / every_s) + 1):
        now_s = start_s + i * every_s
        samples.append((now_s, dict(driver.sample(now_s))))
    return samples


def test_it_is_a_sensor_driver() -> None:
    driver: SensorDriver = two_compartment_van()
    assert driver.sample(START_S)


def test_every_channel_is_well_formed_and_plausible_through_a_day() -> None:
    driver = two_compartment_van(params=ReeferParams())
    expected = {
        "temp:front:p1",
        "temp:front:p2",
        "temp:front:p3",
        "temp:rear:p1",
        "temp:rear:p2",
        "door:front",
        "door:rear",
        "power",
        "gps:lat",
        "gps:lon",
        "gps:speed",
    }
    for _, readings in run(driver, start_s=START_S, duration_s=24 * 3600.0, every_s=300.0):
        assert set(readings) == expected
        for channel, value in readings.items():
            assert channel_kind(channel) is not None, channel
            assert plausible(channel, value), (channel, value)
        temps = [v for c, v in readings.items() if channel_kind(c) is ChannelKind.TEMPERATURE]
        assert all(1.5 < v < 8.5 for v in temps)


def test_readings_come_in_a_stable_order() -> None:
    channels = [c for c, _ in two_compartment_van().sample(START_S)]
    assert channels == [
        "temp:front:p1",
        "temp:front:p2",
        "temp:front:p3",
        "door:front",
        "temp:rear:p1",
        "temp:rear:p2",
        "door:rear",
        "power",
        "gps:lat",
        "gps:lon",
        "gps:speed",
    ]


def test_same_seed_and_calls_give_the_same_readings_and_another_seed_does_not() -> None:
    times = [START_S + t for t in (0.0, 30.0, 95.0, 600.0, 601.0, 4000.0)]
    first = two_compartment_van(seed=42)
    second = two_compartment_van(seed=42)
    other = two_compartment_van(seed=43)
    a = [list(first.sample(t)) for t in times]
    b = [list(second.sample(t)) for t in times]
    c = [list(other.sample(t)) for t in times]
    assert a == b
    assert a != c


def test_the_first_sample_switches_on_and_later_ones_advance_the_physics() -> None:
    params = replace(STEADY_30, product_capacitance_j_per_k=60_000.0)
    driver = SimulatedVehicleDriver(
        compartments=[
            CompartmentSpec(
                compartment_id="box", probe_ids=("a", "b"), params=params, initial_air_c=30.0
            )
        ],
        seed=1,
    )
    assert driver.compartment_air_c("box") == 30.0
    driver.sample(START_S + 10 * 3600.0)
    assert driver.compartment_air_c("box") == 30.0, "the first call only initialises"
    driver.sample(START_S + 10 * 3600.0 + 40 * 60.0)
    assert 2.0 < driver.compartment_air_c("box") < 8.0, "pre-cooled into the band in 40 min"


def test_probes_read_the_air_plus_a_fixed_gradient_plus_small_noise() -> None:
    driver = two_compartment_van()
    deviations: dict[str, list[float]] = {"p1": [], "p2": [], "p3": []}
    for i in range(360):
        readings = dict(driver.sample(START_S + i * SAMPLE_S))
        air_c = driver.compartment_air_c("front")
        for probe in deviations:
            value = readings[f"temp:front:{probe}"]
            assert value == round(value, 2)
            deviations[probe].append(value - air_c)
    assert statistics.fmean(deviations["p1"]) == pytest.approx(-0.3, abs=0.02)
    assert statistics.fmean(deviations["p2"]) == pytest.approx(0.0, abs=0.02)
    assert statistics.fmean(deviations["p3"]) == pytest.approx(0.3, abs=0.02)
    for values in deviations.values():
        assert 0.03 < statistics.stdev(values) < 0.08
        assert max(abs(v - statistics.fmean(values)) for v in values) < 0.3


def test_a_stuck_probe_repeats_its_value_while_the_others_move() -> None:
    driver = two_compartment_van()
    run(driver, start_s=START_S, duration_s=600.0)
    stuck_from_s = START_S + 900.0
    driver.inject("front", Faults(probes_stuck=(ProbeStuck(probe_id="p2", since_s=stuck_from_s),)))
    samples = run(driver, start_s=START_S + 630.0, duration_s=3600.0)
    before = [r["temp:front:p2"] for t, r in samples if t < stuck_from_s]
    after = [r["temp:front:p2"] for t, r in samples if t >= stuck_from_s]
    others = [r["temp:front:p1"] for t, r in samples if t >= stuck_from_s]
    assert len(set(before)) > 1
    assert len(after) > 100 and len(set(after)) == 1
    assert len(set(others)) > 20

    driver.inject(
        "front", Faults(probes_stuck=(ProbeStuck(probe_id="p1", since_s=0.0, value_c=-3.5),))
    )
    readings = dict(driver.sample(START_S + 5000.0))
    assert readings["temp:front:p1"] == -3.5
    later = [
        dict(driver.sample(START_S + 5000.0 + i * 30.0))["temp:front:p2"] for i in range(1, 20)
    ]
    assert len(set(later)) > 1


def test_a_stuck_probe_stays_frozen_across_reinjection_until_its_fault_changes() -> None:
    driver = two_compartment_van()
    stuck = ProbeStuck(probe_id="p1", since_s=START_S)
    driver.inject("rear", Faults(probes_stuck=(stuck,)))
    frozen = dict(driver.sample(START_S))["temp:rear:p1"]
    driver.inject("rear", Faults(compressor_failed=True, probes_stuck=(stuck,)))
    samples = run(driver, start_s=START_S + 30.0, duration_s=2 * 3600.0)
    assert {r["temp:rear:p1"] for _, r in samples} == {frozen}
    assert samples[-1][1]["temp:rear:p2"] > 8.0, "the other probe sees the warming"

    driver.inject("rear", Faults(probes_stuck=(replace(stuck, since_s=START_S + 7300.0),)))
    refrozen = dict(driver.sample(START_S + 7300.0))["temp:rear:p1"]
    assert refrozen > 8.0 and refrozen != frozen


def test_a_drifting_probe_departs_from_the_air_at_its_rate() -> None:
    driver = two_compartment_van()
    drift_from_s = START_S + 3600.0
    driver.inject(
        "rear",
        Faults(probe_drifts=(ProbeDrift(probe_id="p2", rate_c_per_h=1.5, start_s=drift_from_s),)),
    )
    error_by_hour: dict[int, list[float]] = {}
    for i in range(600):
        now_s = START_S + i * SAMPLE_S
        readings = dict(driver.sample(now_s))
        hours = math.floor((now_s - START_S) / 3600.0)
        error = readings["temp:rear:p2"] - driver.compartment_air_c("rear") - 0.3
        error_by_hour.setdefault(hours, []).append(error)
    means = [statistics.fmean(error_by_hour[h]) for h in range(5)]
    assert means[0] == pytest.approx(0.0, abs=0.05)
    for hour in range(1, 5):
        assert means[hour] == pytest.approx(1.5 * (hour - 1) + 0.75, abs=0.1)
    assert means == sorted(means)


def test_power_loss_reports_zero_and_the_whole_vehicle_warms() -> None:
    driver = two_compartment_van()
    run(driver, start_s=START_S, duration_s=3600.0)
    driver.inject("rear", Faults(power_lost=True))
    assert driver.power_lost()
    samples = run(driver, start_s=START_S + 3630.0, duration_s=2 * 3600.0)
    assert all(r["power"] == 0.0 for _, r in samples)
    for compartment in ("front", "rear"):
        assert driver.compartment_air_c(compartment) > 8.0
        assert not driver.compartment_state(compartment).compressor_on

    driver.clear_faults()
    samples = run(driver, start_s=START_S + 3 * 3600.0 + 30.0, duration_s=2 * 3600.0)
    assert all(r["power"] == 1.0 for _, r in samples)
    assert driver.compartment_air_c("front") < 8.0


def test_a_compressor_failure_warms_only_its_compartment() -> None:
    driver = two_compartment_van()
    run(driver, start_s=START_S, duration_s=3600.0)
    driver.inject("front", Faults(compressor_failed=True))
    samples = run(driver, start_s=START_S + 3630.0, duration_s=2 * 3600.0)
    assert all(r["power"] == 1.0 for _, r in samples)
    assert driver.compartment_air_c("front") > 8.0
    assert 2.0 < driver.compartment_air_c("rear") < 8.0
    assert driver.faults("front").compressor_failed
    assert not driver.faults("rear").compressor_failed


def test_the_door_schedule_opens_the_door_and_warms_the_air() -> None:
    open_from_s = START_S + 3600.0
    open_until_s = open_from_s + 4 * 60.0

    def rear_door(compartment_id: str, now_s: float) -> bool:
        return compartment_id == "rear" and open_from_s <= now_s < open_until_s

    driver = two_compartment_van(door_open=rear_door)
    samples = run(driver, start_s=START_S, duration_s=2 * 3600.0)
    rear_open = [t for t, r in samples if r["door:rear"] == 1.0]
    assert rear_open == [t for t, _ in samples if open_from_s <= t < open_until_s]
    assert all(r["door:front"] == 0.0 for _, r in samples)

    def peak(compartment: str) -> float:
        return max(
            r[f"temp:{compartment}:p1"] for t, r in samples if open_from_s <= t <= open_until_s
        )

    assert peak("rear") - peak("front") > 1.5
    assert samples[-1][1]["temp:rear:p1"] < 7.0, "recovered after closing"


def test_a_door_stuck_open_reads_open() -> None:
    driver = two_compartment_van()
    driver.sample(START_S)
    driver.inject("front", Faults(door_stuck_open=True))
    readings = dict(driver.sample(START_S + 30.0))
    assert readings["door:front"] == 1.0 and readings["door:rear"] == 0.0


def test_gps_comes_from_the_route_or_defaults_to_shanghai() -> None:
    readings = dict(two_compartment_van().sample(START_S))
    assert (readings["gps:lat"], readings["gps:lon"], readings["gps:speed"]) == (
        SHANGHAI_LAT,
        SHANGHAI_LON,
        0.0,
    )

    def route(now_s: float) -> tuple[float, float, float]:
        return (31.0 + (now_s - START_S) / 36_000.0, 121.0, 60.0)

    driver = two_compartment_van(position=route)
    later = dict(driver.sample(START_S + 3600.0))
    assert later["gps:lat"] == pytest.approx(31.1)
    assert later["gps:speed"] == 60.0


def test_ten_minute_samples_and_a_one_day_jump_stay_finite_and_in_band() -> None:
    driver = two_compartment_van(params=ReeferParams())
    for _, readings in run(driver, start_s=START_S, duration_s=24 * 3600.0, every_s=600.0):
        assert all(math.isfinite(v) for v in readings.values())
        assert 2.0 < driver.compartment_air_c("front") < 8.0
    readings = dict(driver.sample(START_S + 48 * 3600.0))
    assert all(math.isfinite(v) for v in readings.values())
    assert 2.0 < driver.compartment_air_c("rear") < 8.0


def test_a_clock_stepping_back_does_not_move_the_physics() -> None:
    driver = two_compartment_van(params=replace(STEADY_30, hysteresis_c=0.5))
    run(driver, start_s=START_S, duration_s=1800.0)
    state = driver.compartment_state("front")
    readings = driver.sample(START_S + 600.0)
    assert driver.compartment_state("front") == state
    assert len(readings) == 11


def test_bad_configuration_and_unknown_compartments_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 2 probes"):
        CompartmentSpec(compartment_id="box", probe_ids=("only",))
    with pytest.raises(ValueError, match="repeats"):
        CompartmentSpec(compartment_id="box", probe_ids=("a", "a"))
    with pytest.raises(ValueError, match="':'"):
        CompartmentSpec(compartment_id="a:b", probe_ids=("x", "y"))
    spec = CompartmentSpec(compartment_id="box", probe_ids=("a", "b"))
    with pytest.raises(ValueError, match="unique"):
        SimulatedVehicleDriver(compartments=[spec, spec], seed=0)
    with pytest.raises(ValueError, match="at least one"):
        SimulatedVehicleDriver(compartments=[], seed=0)
    driver = SimulatedVehicleDriver(compartments=[spec], seed=0)
    with pytest.raises(UnknownCompartmentError) as caught:
        driver.compartment_air_c("nope")
    assert caught.value.compartment_id == "nope"
    with pytest.raises(KeyError):
        driver.inject("nope", Faults())


@settings(max_examples=25, deadline=None)
@given(
    gaps_s=st.lists(st.floats(min_value=0.0, max_value=1800.0), min_size=1, max_size=15),
    seed=st.integers(min_value=0, max_value=2**32),
    compressor_failed=st.booleans(),
    door_stuck_open=st.booleans(),
)
def test_any_sampling_pattern_gives_plausible_readings(
    gaps_s: list[float], seed: int, compressor_failed: bool, door_stuck_open: bool
) -> None:
    driver = two_compartment_van(seed=seed, params=ReeferParams())
    driver.inject(
        "front", Faults(compressor_failed=compressor_failed, door_stuck_open=door_stuck_open)
    )
    now_s = START_S
    for gap_s in [0.0, *gaps_s]:
        now_s += gap_s
        for channel, value in driver.sample(now_s):
            assert channel_kind(channel) is not None
            assert plausible(channel, value), (channel, value)
