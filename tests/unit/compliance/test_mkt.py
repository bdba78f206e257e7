"""Mean kinetic temperature and the time-weighted summary."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.compliance.errors import InsufficientDataError
from controller.compliance.mkt import mean_kinetic_temperature_c, temperature_summary


def _haynes_c(values_c: list[float], weights: list[float]) -> float:
    kelvin = [v + 273.15 for v in values_c]
    mean = sum(w * math.exp(-10_000.0 / k) for w, k in zip(weights, kelvin, strict=True))
    return 10_000.0 / -math.log(mean / sum(weights)) - 273.15


def test_constant_temperature_is_its_own_mkt() -> None:
    assert mean_kinetic_temperature_c([0, 60, 120], [5.0, 5.0, 5.0]) == pytest.approx(5.0)


def test_mkt_matches_haynes_with_durations_as_weights() -> None:
    # Each value stands for the interval up to the next sample; the last one for none.
    got = mean_kinetic_temperature_c([0, 100, 400, 500], [5.0, 25.0, 8.0, 40.0])
    assert got == pytest.approx(_haynes_c([5.0, 25.0, 8.0], [100, 300, 100]), abs=1e-9)
    assert got > (5 * 100 + 25 * 300 + 8 * 100) / 500, "MKT weighs warm spells more than the mean"


def test_gaps_carry_no_weight() -> None:
    got = mean_kinetic_temperature_c([0, 60, 3600, 3660], [5.0, 30.0, 5.0, 5.0], max_gap_s=300)
    assert got == pytest.approx(5.0), "the 30 °C sample stands for a 59 min gap: no weight"


def test_samples_of_several_probes_at_one_instant_are_averaged() -> None:
    got = mean_kinetic_temperature_c([0, 0, 60, 60, 120], [4.0, 6.0, 4.0, 6.0, 5.0])
    assert got == pytest.approx(5.0)


def test_no_covered_time_raises() -> None:
    with pytest.raises(InsufficientDataError):
        mean_kinetic_temperature_c([0], [5.0])
    with pytest.raises(InsufficientDataError):
        mean_kinetic_temperature_c([0, 600], [5.0, 6.0], max_gap_s=300)


def test_summary_over_a_window() -> None:
    summary = temperature_summary(
        [0, 10, 20, 20], [5.0, 25.0, 0.0, 100.0], window_start_s=-5, window_end_s=30, max_gap_s=10
    )
    # Instants 0, 10, 20 (mean 50) weigh 15 (5 s lead-in), 10, 10.
    assert summary.covered_s == 35
    assert summary.mean_c == pytest.approx((5 * 15 + 25 * 10 + 50 * 10) / 35)
    assert (summary.min_c, summary.max_c, summary.samples) == (0.0, 100.0, 4)
    assert summary.mkt_c is not None and summary.mean_c <= summary.mkt_c <= summary.max_c
    empty = temperature_summary([], [])
    assert (empty.min_c, empty.mkt_c, empty.covered_s) == (None, None, 0.0)
    lone = temperature_summary([0], [5.0])
    assert (lone.min_c, lone.max_c, lone.mean_c, lone.mkt_c) == (5.0, 5.0, None, None)


@st.composite
def irregular(draw: st.DrawFn) -> tuple[list[float], list[float]]:
    steps = draw(st.lists(st.floats(0.5, 900.0), min_size=1, max_size=60))
    times = list(np.cumsum([0.0, *steps]))
    values = draw(st.lists(st.floats(-40.0, 60.0), min_size=len(times), max_size=len(times)))
    return times, values


@settings(max_examples=150, deadline=None)
@given(record=irregular(), max_gap_s=st.one_of(st.none(), st.floats(30.0, 1000.0)))
def test_mkt_lies_between_the_mean_and_the_maximum(
    record: tuple[list[float], list[float]], max_gap_s: float | None
) -> None:
    times, values = record
    summary = temperature_summary(times, values, max_gap_s=max_gap_s)
    assert summary.min_c is not None and summary.max_c is not None
    if summary.mkt_c is None:
        assert summary.covered_s == 0
        return
    assert summary.mean_c is not None
    assert summary.min_c <= summary.mean_c <= summary.mkt_c <= summary.max_c
    assert mean_kinetic_temperature_c(times, values, max_gap_s=max_gap_s) == summary.mkt_c
