"""The reefer thermal model: pre-cooling, cycling, failures, doors, defrost and stability."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.sensors.thermal import (
    NO_FAULTS,
    Faults,
    ReeferParams,
    ReeferState,
    ambient_c,
    initial_state,
    is_defrosting,
    max_stable_substep_s,
    step,
)

SHANGHAI = timezone(timedelta(hours=8))
MIDNIGHT_S = datetime(2025, 7, 1, tzinfo=SHANGHAI).timestamp()
BAND_LOW_C = 2.0
BAND_HIGH_C = 8.0

# Constant 30 °C outside, so a behaviour does not depend on the hour it is tested at.
STEADY_30 = ReeferParams(ambient_mean_c=30.0, ambient_amplitude_c=0.0)
EMPTY_BOX = replace(STEADY_30, product_capacitance_j_per_k=60_000.0)


def run(
    state: ReeferState,
    *,
    params: ReeferParams,
    start_s: float,
    duration_s: float,
    dt_s: float = 30.0,
    door_open: Callable[[float], bool] = lambda t_s: False,
    faults: Faults = NO_FAULTS,
) -> list[tuple[float, ReeferState]]:
    """Step from `start_s` for `duration_s`; return (time after the step, state) pairs."""
    trace: list[tuple[float, ReeferState]] = []
    steps = round(duration_s / dt_s)
    for i in range(steps):
        t_s = start_s + i * dt_s
        state = step(
            state, params=params, dt_s=dt_s, now_s=t_s, door_open=door_open(t_s), faults=faults
        )
        trace.append((t_s + dt_s, state))
    return trace


def settled(params: ReeferParams, *, at_s: float = MIDNIGHT_S) -> ReeferState:
    """A loaded compartment that has been cycling in band for an hour before `at_s`."""
    state = initial_state(params=params, now_s=at_s - 3600.0, air_c=5.0)
    return run(state, params=params, start_s=at_s - 3600.0, duration_s=3600.0)[-1][1]


def minutes_until_above(
    trace: list[tuple[float, ReeferState]], *, start_s: float, limit_c: float
) -> float:
    """Minutes from `start_s` until the air first exceeds `limit_c` (inf when it never does)."""
    return next(((t - start_s) / 60.0 for t, s in trace if s.air_c > limit_c), math.inf)


def test_ambient_follows_the_daily_sinusoid_in_local_time() -> None:
    params = ReeferParams(ambient_mean_c=30.0, ambient_amplitude_c=5.0, ambient_peak_hour=15.0)
    assert ambient_c(params=params, now_s=MIDNIGHT_S + 15 * 3600) == pytest.approx(35.0)
    assert ambient_c(params=params, now_s=MIDNIGHT_S + 3 * 3600) == pytest.approx(25.0)
    assert ambient_c(params=params, now_s=MIDNIGHT_S + 9 * 3600) == pytest.approx(30.0)
    # The same instant is 14:00 in a UTC+7 zone, an hour before that zone's peak.
    utc7 = replace(params, utc_offset_h=7.0)
    expected_c = 30.0 + 5.0 * math.cos(2 * math.pi / 24)
    assert ambient_c(params=utc7, now_s=MIDNIGHT_S + 15 * 3600) == pytest.approx(expected_c)


def test_empty_box_precools_from_ambient_into_the_band_within_tens_of_minutes() -> None:
    state = initial_state(params=EMPTY_BOX, now_s=MIDNIGHT_S, air_c=30.0)
    trace = run(state, params=EMPTY_BOX, start_s=MIDNIGHT_S, duration_s=4 * 3600.0)

    reached_s = next(t for t, s in trace if s.air_c <= BAND_HIGH_C)
    assert 10.0 <= (reached_s - MIDNIGHT_S) / 60.0 <= 40.0

    after = [(t, s) for t, s in trace if t >= reached_s + 600.0]
    airs = [s.air_c for _, s in after]
    assert min(airs) > BAND_LOW_C and max(airs) < BAND_HIGH_C
    assert 3.5 <= min(airs) <= 4.2 and 5.8 <= max(airs) <= 7.0
    switches = sum(a.compressor_on != b.compressor_on for (_, a), (_, b) in pairwise(after))
    assert switches >= 10, "the thermostat should cycle, not hold the compressor on"


def test_loaded_van_holds_the_band_through_a_shanghai_summer_day_with_defrosts() -> None:
    params = ReeferParams()
    state = initial_state(params=params, now_s=MIDNIGHT_S, air_c=5.0)
    trace = run(state, params=params, start_s=MIDNIGHT_S, duration_s=24 * 3600.0)

    airs = [s.air_c for _, s in trace]
    products = [s.product_c for _, s in trace]
    assert min(airs) > BAND_LOW_C and max(airs) < BAND_HIGH_C
    assert min(products) > 4.5 and max(products) < 7.0
    defrost_steps = [s for t, s in trace if is_defrosting(s, now_s=t - 30.0)]
    # Every 6 h after switch-on for 12 min: at 06:00, 12:00 and 18:00, 24 steps of 30 s each.
    assert len(defrost_steps) == 3 * 24
    assert not any(s.compressor_on for s in defrost_steps)


@pytest.mark.parametrize(
    ("product_capacitance_j_per_k", "low_min", "high_min"),
    [(600_000.0, 12.0, 35.0), (1_200_000.0, 25.0, 60.0), (2_400_000.0, 55.0, 100.0)],
)
def test_compressor_failure_at_30c_leaves_the_band_in_tens_of_minutes(
    product_capacitance_j_per_k: float, low_min: float, high_min: float
) -> None:
    params = replace(STEADY_30, product_capacitance_j_per_k=product_capacitance_j_per_k)
    state = settled(params)
    trace = run(
        state,
        params=params,
        start_s=MIDNIGHT_S,
        duration_s=3 * 3600.0,
        faults=Faults(compressor_failed=True),
    )
    assert (
        low_min <= minutes_until_above(trace, start_s=MIDNIGHT_S, limit_c=BAND_HIGH_C) <= high_min
    )
    assert not any(s.compressor_on for _, s in trace)


def test_default_load_leaves_the_band_between_20_and_90_minutes_and_mass_slows_it() -> None:
    exits = []
    for product_capacitance_j_per_k in (300_000.0, 1_200_000.0, 3_000_000.0):
        params = replace(STEADY_30, product_capacitance_j_per_k=product_capacitance_j_per_k)
        trace = run(
            settled(params),
            params=params,
            start_s=MIDNIGHT_S,
            duration_s=4 * 3600.0,
            faults=Faults(compressor_failed=True),
        )
        exits.append(minutes_until_above(trace, start_s=MIDNIGHT_S, limit_c=BAND_HIGH_C))
    assert exits == sorted(exits) and len(set(exits)) == 3
    assert 20.0 <= exits[1] <= 90.0


def test_power_loss_stops_the_compressor_and_the_air_warms_toward_ambient() -> None:
    params = STEADY_30
    trace = run(
        settled(params),
        params=params,
        start_s=MIDNIGHT_S,
        duration_s=12 * 3600.0,
        faults=Faults(power_lost=True),
    )
    assert not any(s.compressor_on for _, s in trace)
    airs = [s.air_c for _, s in trace]
    assert all(b >= a - 1e-9 for a, b in pairwise(airs[60:])), "warms monotonically"
    assert 15.0 < airs[-1] < 30.0


@pytest.mark.parametrize("open_min", [2, 3, 5])
def test_door_opening_raises_the_air_a_few_degrees_and_it_recovers(open_min: int) -> None:
    params = STEADY_30
    before = settled(params)
    close_s = MIDNIGHT_S + open_min * 60.0
    trace = run(
        before,
        params=params,
        start_s=MIDNIGHT_S,
        duration_s=40 * 60.0,
        dt_s=10.0,
        door_open=lambda t_s: t_s < close_s,
    )
    peak_c = max(s.air_c for t, s in trace if t <= close_s)
    assert 1.5 <= peak_c - before.air_c <= 6.0
    assert 8.0 <= peak_c <= 11.0
    recovered_s = next(t for t, s in trace if t > close_s and s.air_c <= 6.5)
    assert recovered_s - close_s <= 5 * 60.0
    tail = [s.air_c for t, s in trace if t >= close_s + 15 * 60.0]
    assert min(tail) > BAND_LOW_C and max(tail) < BAND_HIGH_C


def test_door_stuck_open_fault_keeps_the_heat_coming() -> None:
    params = STEADY_30
    closed = run(settled(params), params=params, start_s=MIDNIGHT_S, duration_s=3600.0)
    stuck = run(
        settled(params),
        params=params,
        start_s=MIDNIGHT_S,
        duration_s=3600.0,
        faults=Faults(door_stuck_open=True),
    )
    assert stuck[-1][1].product_c > closed[-1][1].product_c + 0.5
    assert max(s.air_c for _, s in stuck) > BAND_HIGH_C


def test_defrost_stops_the_compressor_on_schedule_and_warms_the_air() -> None:
    params = replace(STEADY_30, defrost_interval_h=1.0, defrost_duration_min=15.0)
    state = initial_state(params=params, now_s=MIDNIGHT_S, air_c=5.0)
    trace = run(state, params=params, start_s=MIDNIGHT_S, duration_s=2 * 3600.0)
    window = [s for t, s in trace if MIDNIGHT_S + 3600 < t <= MIDNIGHT_S + 3600 + 15 * 60]
    assert window and not any(s.compressor_on for s in window)
    assert window[-1].air_c > 6.0
    assert trace[-1][1].next_defrost_s == pytest.approx(MIDNIGHT_S + 2 * 3600.0)

    no_defrost = replace(params, defrost_duration_min=0.0)
    state = initial_state(params=no_defrost, now_s=MIDNIGHT_S, air_c=5.0)
    assert state.next_defrost_s == math.inf
    trace = run(state, params=no_defrost, start_s=MIDNIGHT_S, duration_s=2 * 3600.0)
    assert not any(is_defrosting(s, now_s=t) for t, s in trace)


def test_a_600_s_step_matches_30_s_steps_and_stays_finite() -> None:
    params = ReeferParams()
    start = initial_state(params=params, now_s=MIDNIGHT_S, air_c=20.0)
    fine = run(start, params=params, start_s=MIDNIGHT_S, duration_s=6 * 3600.0, dt_s=30.0)
    coarse = run(start, params=params, start_s=MIDNIGHT_S, duration_s=6 * 3600.0, dt_s=600.0)
    assert all(math.isfinite(s.air_c) and math.isfinite(s.product_c) for _, s in coarse)
    fine_by_time = dict(fine)
    for t, s in coarse:
        assert s.product_c == pytest.approx(fine_by_time[t].product_c, abs=0.05)
        assert s.air_c == pytest.approx(fine_by_time[t].air_c, abs=2.0)


def test_stiff_parameters_shorten_the_substep() -> None:
    stiff = ReeferParams(air_capacitance_j_per_k=2_000.0, product_coupling_w_per_k=2_000.0)
    assert max_stable_substep_s(params=stiff) < 1.0
    state = initial_state(params=stiff, now_s=MIDNIGHT_S, air_c=25.0)
    after = step(state, params=stiff, dt_s=3600.0, now_s=MIDNIGHT_S, door_open=True)
    assert math.isfinite(after.air_c) and -20.0 < after.air_c < 40.0


@settings(max_examples=60, deadline=None)
@given(
    dt_s=st.floats(min_value=0.0, max_value=3600.0),
    air_c=st.floats(min_value=-30.0, max_value=50.0),
    product_c=st.floats(min_value=-30.0, max_value=50.0),
    door_open=st.booleans(),
    compressor_failed=st.booleans(),
    power_lost=st.booleans(),
    hour=st.floats(min_value=0.0, max_value=24.0),
)
def test_any_step_stays_finite_and_between_physical_bounds(
    dt_s: float,
    air_c: float,
    product_c: float,
    door_open: bool,
    compressor_failed: bool,
    power_lost: bool,
    hour: float,
) -> None:
    params = ReeferParams()
    now_s = MIDNIGHT_S + hour * 3600.0
    state = ReeferState(air_c=air_c, product_c=product_c, next_defrost_s=now_s + 60.0)
    faults = Faults(compressor_failed=compressor_failed, power_lost=power_lost)
    after = step(state, params=params, dt_s=dt_s, now_s=now_s, door_open=door_open, faults=faults)
    # The compressor never pushes the air more than one substep's worth below the cut-out point;
    # nothing heats it beyond the hottest ambient (35 °C) plus what the defrost heater can add.
    thermostat_low_c = params.setpoint_c - params.hysteresis_c
    low_c = min(air_c, product_c, thermostat_low_c) - 0.5
    high_c = max(air_c, product_c, 35.0) + params.defrost_heater_w / params.ua_w_per_k
    assert low_c <= after.air_c <= high_c
    assert low_c <= after.product_c <= high_c
    if compressor_failed or power_lost:
        assert not after.compressor_on


def test_step_is_deterministic_and_a_zero_step_changes_nothing() -> None:
    params = ReeferParams()
    state = initial_state(params=params, now_s=MIDNIGHT_S, air_c=12.0)
    one = step(state, params=params, dt_s=300.0, now_s=MIDNIGHT_S, door_open=False)
    two = step(state, params=params, dt_s=300.0, now_s=MIDNIGHT_S, door_open=False)
    assert one == two
    assert step(state, params=params, dt_s=0.0, now_s=MIDNIGHT_S, door_open=True) is state


@pytest.mark.parametrize(
    "changes",
    [
        {"ua_w_per_k": 0.0},
        {"air_capacitance_j_per_k": -1.0},
        {"compressor_capacity_w": -5.0},
        {"probe_noise_sigma_c": math.nan},
        {"ambient_peak_hour": 24.0},
        {"defrost_interval_h": 0.1, "defrost_duration_min": 30.0},
    ],
)
def test_params_refuse_impossible_values(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="ReeferParams"):
        ReeferParams(**changes)


def test_step_refuses_a_negative_or_infinite_dt() -> None:
    params = ReeferParams()
    state = initial_state(params=params, now_s=MIDNIGHT_S, air_c=5.0)
    for dt_s in (-1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="dt_s"):
            step(state, params=params, dt_s=dt_s, now_s=MIDNIGHT_S, door_open=False)
