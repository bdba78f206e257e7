"""The band-exit predictor: exact on clean models, quiet on normal operation, early on failures."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest

from controller.compliance.excursions import detect_excursions
from controller.compliance.models import Sample
from controller.compliance.prediction import predict_band_exit
from controller.compliance.prediction_eval import evaluate_predictor
from edge_agent.sensors.simulated import CompartmentSpec, SimulatedVehicleDriver
from edge_agent.sensors.thermal import Faults
from tests.unit.compliance.support import T0, band, rules

REFRIGERATED = band("refrigerated")


def _clean(curve: Callable[[float], float], *, minutes: float = 20.0) -> list[Sample]:
    """Two probes following `curve` with the simulator's noise (0.05 °C) and 0.01 °C rounding."""
    noise = random.Random(11)
    return [
        Sample(T0 + i * 30.0, probe, round(curve(i * 30.0) + noise.gauss(0.0, 0.05), 2))
        for i in range(round(minutes * 2) + 1)
        for probe in ("p1", "p2")
    ]


def test_a_linear_rise_exits_when_the_line_reaches_the_limit() -> None:
    samples = _clean(lambda t: 5.0 + t / 1200.0)  # +3 °C/h, 6.0 °C at the last instant
    prediction = predict_band_exit(samples, band=REFRIGERATED, rules=rules(), now_s=T0 + 1200)
    assert prediction.model == "linear"
    assert prediction.rate_c_per_h == pytest.approx(3.0, rel=0.05)
    assert prediction.time_to_leave_band_s == pytest.approx(2400.0, rel=0.1)
    assert prediction.predicted_exit == "high" and not prediction.warn
    assert prediction.fit_quality > 0.95


def test_an_exponential_approach_beyond_the_band() -> None:
    tau_s = 1800.0
    samples = _clean(lambda t: 9.0 - 5.0 * math.exp(-t / tau_s))
    prediction = predict_band_exit(samples, band=REFRIGERATED, rules=rules(), now_s=T0 + 1200)
    assert prediction.model == "exponential"
    assert prediction.t_inf_c == pytest.approx(9.0, abs=0.5)
    assert prediction.tau_s == pytest.approx(tau_s, rel=0.3)
    now_c = 9.0 - 5.0 * math.exp(-1200 / tau_s)
    expected_s = tau_s * math.log((9.0 - now_c) / (9.0 - 8.0))
    assert prediction.time_to_leave_band_s == pytest.approx(expected_s, rel=0.15)
    assert prediction.warn, "exit in about 28 min"


def test_a_compartment_settling_inside_the_band_has_no_exit() -> None:
    samples = _clean(lambda t: 5.0 + 2.5 * math.exp(-t / 300.0))
    prediction = predict_band_exit(samples, band=REFRIGERATED, rules=rules(), now_s=T0 + 1200)
    assert prediction.time_to_leave_band_s is None and prediction.predicted_exit is None
    assert not prediction.warn


def test_a_falling_temperature_exits_low() -> None:
    samples = _clean(lambda t: 4.0 - t / 900.0)  # -4 °C/h towards 2 °C
    prediction = predict_band_exit(samples, band=REFRIGERATED, rules=rules(), now_s=T0 + 1200)
    assert prediction.predicted_exit == "low"
    # Exit when the line reaches 2.0 °C: 4.0 - 1200/900 = 2.67 °C now, falling 4 °C/h.
    assert prediction.time_to_leave_band_s == pytest.approx(0.6667 * 900, rel=0.1)


def test_too_little_data_and_already_out() -> None:
    few = _clean(lambda t: 5.0, minutes=5)
    assert (
        predict_band_exit(few, band=REFRIGERATED, rules=rules(), now_s=T0 + 300).model
        == "insufficient"
    )
    assert predict_band_exit([], band=REFRIGERATED, rules=rules(), now_s=T0).model == "insufficient"
    hot = _clean(lambda t: 7.0 + t / 600.0)
    prediction = predict_band_exit(hot, band=REFRIGERATED, rules=rules(), now_s=T0 + 1200)
    assert prediction.time_to_leave_band_s == 0.0 and prediction.predicted_exit == "high"
    assert not prediction.warn, "once out of band the excursion tracker is in charge"


def _simulate(
    *, hours: float, failure_s: float | None = None, doors: tuple[tuple[float, float], ...] = ()
) -> list[Sample]:
    driver = SimulatedVehicleDriver(
        compartments=[CompartmentSpec(compartment_id="c1", probe_ids=("p1", "p2"))],
        seed=7,
        door_open=lambda _c, t: any(a <= t < b for a, b in doors),
    )
    samples: list[Sample] = []
    for i in range(round(hours * 120) + 1):
        now_s = T0 + i * 30.0
        if (
            failure_s is not None
            and now_s >= failure_s
            and not driver.faults("c1").compressor_failed
        ):
            driver.inject("c1", Faults(compressor_failed=True))
        for channel, value_c in driver.sample(now_s):
            if channel.startswith("temp:c1:"):
                samples.append(Sample(now_s, channel.rsplit(":", 1)[1], value_c))
    return samples


def _warnings(samples: list[Sample], *, from_s: float) -> list[float]:
    book = rules()
    span_s = book.prediction.window_s + book.prediction.confirm_s
    warned: list[float] = []
    for now_s in sorted({s.ts_s for s in samples if s.ts_s >= from_s}):
        recent = [s for s in samples if now_s - span_s <= s.ts_s <= now_s]
        if predict_band_exit(recent, band=REFRIGERATED, rules=book, now_s=now_s).warn:
            warned.append(now_s)
    return warned


def test_normal_cycling_and_short_door_openings_do_not_warn() -> None:
    doors = ((T0 + 3600, T0 + 3660), (T0 + 5400, T0 + 5490))
    samples = _simulate(hours=2.5, doors=doors)
    assert _warnings(samples, from_s=T0 + 1200) == []


def test_a_compressor_failure_warns_minutes_before_the_band_is_left() -> None:
    failure_s = T0 + 3600
    samples = _simulate(hours=2.5, failure_s=failure_s)
    exit_s = next(
        e.start_s
        for e in detect_excursions(samples, band=REFRIGERATED, rules=rules())
        if e.start_s >= failure_s
    )
    warned = [t for t in _warnings(samples, from_s=T0 + 2400) if t <= exit_s]
    assert warned and warned[0] >= failure_s, "no warning before the failure"
    assert exit_s - warned[0] >= 10 * 60, "warned at least 10 minutes ahead"


def test_the_evaluation_reports_lead_times_and_false_warnings() -> None:
    result = evaluate_predictor(compartments=3, hours=3.0, seed=2)
    assert result.failures == 2 and result.compartments == 3
    assert result.lead_times_min and result.missed == 0
    assert result.min_lead_min is not None and result.min_lead_min > 0
    assert result.median_lead_min is not None and result.median_lead_min >= result.min_lead_min
    assert result.false_warnings_per_compartment_day <= 1.0
