"""Excursion rules: worst probe, alarm delay, hysteresis, per-class bands, gaps, late data."""

from __future__ import annotations

import json

import pytest

from controller.compliance.errors import InvalidSampleError, TrackerStateError
from controller.compliance.excursions import (
    ExcursionClosed,
    ExcursionOpened,
    ExcursionTracker,
    analyse_samples,
    detect_excursions,
)
from controller.compliance.models import Sample
from controller.compliance.tracker_state import TrackerState
from tests.unit.compliance.support import T0, band, rules, series, two_probes

REFRIGERATED = band("refrigerated")


def test_in_band_has_no_excursion() -> None:
    assert detect_excursions(two_probes([5.0] * 20), band=REFRIGERATED, rules=rules()) == []


def test_alarm_delay_suppresses_a_60_s_blip() -> None:
    # Out at +60 s and +90 s, back in at +120 s: 60 s out of band, delay 120 s.
    samples = two_probes([5, 5, 9, 9, 5, 5, 5])
    analysis = analyse_samples(samples, band=REFRIGERATED, rules=rules())
    assert analysis.excursions == ()
    assert analysis.unresolved_since_s is None


def test_an_excursion_counts_from_its_first_out_sample_once_out_for_the_delay() -> None:
    samples = two_probes([5, 5, 9, 9.5, 9, 9, 5, 5])  # out at +60..+150, back at +180
    [excursion] = detect_excursions(samples, band=REFRIGERATED, rules=rules())
    assert excursion.start_s == T0 + 60, "the start is the first out-of-band sample"
    assert excursion.confirmed_s == T0 + 180, "the alarm delay is met 120 s after the start"
    assert excursion.end_s == T0 + 180
    assert excursion.duration_s == 120
    assert (excursion.direction, excursion.peak_c, excursion.peak_s) == ("high", 9.5, T0 + 90)
    assert excursion.probe_ids == ("p1",)


def test_exactly_the_delay_counts_and_delay_zero_alarms_at_once() -> None:
    samples = two_probes([5, 9, 9, 9, 9, 5])  # out +30..+120, back at +150: 120 s out
    assert len(detect_excursions(samples, band=REFRIGERATED, rules=rules())) == 1
    instant = band("refrigerated", alarm_delay_s=0.0)
    tracker = ExcursionTracker(band=instant, rules=rules())
    events = [e for s in two_probes([5, 9, 5]) for e in tracker.feed(*s)] + tracker.flush()
    assert [type(e) for e in events] == [ExcursionOpened, ExcursionClosed]
    assert events[0].at_s == events[0].excursion.start_s == T0 + 30


def test_the_worst_probe_governs() -> None:
    samples = [
        *series([5.0] * 12, probe_id="p1"),
        *series([5, 5, 1.5, 1.2, 1.4, 1.0, 1.6, 5, 5, 5, 5, 5], probe_id="p2"),
    ]
    [excursion] = detect_excursions(samples, band=REFRIGERATED, rules=rules())
    assert (excursion.direction, excursion.peak_c, excursion.probe_ids) == ("low", 1.0, ("p2",))
    assert (excursion.start_s, excursion.end_s) == (T0 + 60, T0 + 210)


def test_limits_are_inside_the_band() -> None:
    samples = two_probes([8.0] * 10, other_c=2.0)
    assert detect_excursions(samples, band=REFRIGERATED, rules=rules()) == []


def test_hysteresis_keeps_one_excursion_through_noise_at_the_edge() -> None:
    noisy_edge = [9, 9, 9, 9, 9, 7.9, 8.1, 7.8, 8.05, 7.95, 8.2, 7.9, 7.8, 7.75, 7.6, 5, 5]
    [excursion] = detect_excursions(two_probes(noisy_edge), band=REFRIGERATED, rules=rules())
    assert excursion.start_s == T0
    assert excursion.end_s == T0 + 14 * 30, "ends at the first sample <= 8.0 - 0.3"
    no_hysteresis = band("refrigerated", hysteresis_c=0.0)
    flapping = detect_excursions(two_probes(noisy_edge), band=no_hysteresis, rules=rules())
    assert len(flapping) == 1 and flapping[0].end_s == T0 + 5 * 30


def test_noise_at_the_edge_without_a_long_run_raises_nothing() -> None:
    noise = [7.9, 8.1, 7.8, 8.05, 7.95, 8.2, 7.9, 8.1, 7.9] * 3
    analysis = analyse_samples(two_probes(noise), band=REFRIGERATED, rules=rules())
    assert analysis.excursions == ()


@pytest.mark.parametrize(
    ("class_name", "value_c", "excursions"),
    [
        ("refrigerated", 9.0, 1),
        ("cold_place", 9.0, 0),
        ("cold_place", 10.5, 1),
        ("room", 9.0, 1),
        ("room", 25.0, 0),
        ("cool", 19.0, 0),
        ("cool", -30.0, 0),
        ("cool", 21.0, 1),
        ("frozen", -18.0, 0),
        ("frozen", -9.5, 1),
        ("frozen", -26.0, 1),
    ],
)
def test_per_class_bands(class_name: str, value_c: float, excursions: int) -> None:
    cls = band(class_name)
    values = [value_c] * 10
    middle_c = (
        (cls.high_c or 0.0) - 1.0 if cls.low_c is None else (cls.low_c + (cls.high_c or 0)) / 2
    )
    found = detect_excursions(two_probes(values, other_c=middle_c), band=cls, rules=rules())
    assert len(found) == excursions


def test_frozen_directions_and_negative_peaks() -> None:
    frozen = band("frozen")
    warm = detect_excursions(
        two_probes([-18, -9.0, -8.0, -9.5, -9.0, -9.2, -12.0, -18], other_c=-18),
        band=frozen,
        rules=rules(),
    )
    assert [(e.direction, e.peak_c) for e in warm] == [("high", -8.0)]
    cold = detect_excursions(
        two_probes([-18, -26, -27.5, -26, -26, -26, -24.0, -18], other_c=-18),
        band=frozen,
        rules=rules(),
    )
    assert [(e.direction, e.peak_c, e.end_s) for e in cold] == [("low", -27.5, T0 + 180)]


def test_an_excursion_open_at_the_end_has_no_end() -> None:
    [excursion] = detect_excursions(
        two_probes([5, 9, 9, 9, 9, 9]), band=REFRIGERATED, rules=rules()
    )
    assert excursion.end_s is None and excursion.is_open
    assert excursion.last_s == T0 + 150 and excursion.duration_s == 120


def test_an_out_of_band_run_at_the_end_is_unresolved() -> None:
    analysis = analyse_samples(two_probes([5, 5, 9, 9]), band=REFRIGERATED, rules=rules())
    assert analysis.excursions == () and analysis.unresolved_since_s == T0 + 60


def test_a_gap_is_neither_in_nor_out_and_an_open_excursion_spans_it() -> None:
    samples = two_probes([9, 9, 9, 9, 9]) + two_probes([9, 5], start_s=T0 + 1200)
    analysis = analyse_samples(samples, band=REFRIGERATED, rules=rules())
    [excursion] = analysis.excursions
    assert (excursion.start_s, excursion.end_s) == (T0, T0 + 1230)
    assert excursion.gap_s == 1080, "120 s between the last out sample and the next is over 2 min"


def test_out_of_band_intervals_use_the_shorter_recording_limit() -> None:
    # 150 s between out-of-band records exceeds the 120 s limit: a gap, not out-of-band time.
    samples = two_probes([9, 9], step_s=150) + two_probes([9, 5], start_s=T0 + 300, step_s=150)
    analysis = analyse_samples(samples, band=REFRIGERATED, rules=rules())
    assert analysis.excursions == (), "the delay counts covered time only"
    tracker = ExcursionTracker(band=REFRIGERATED, rules=rules())
    for sample in samples:
        tracker.feed(*sample)
    tracker.flush()
    assert (tracker.state.gap_s, tracker.state.out_of_band_s) == (450.0, 0.0)


def test_a_silent_probe_stops_counting_after_the_recording_limit() -> None:
    # p2 reads 9 once and falls silent: it governs for 300 s, then only p1 counts.
    samples = [Sample(T0, "p2", 9.0), *series([5.0] * 20, probe_id="p1")]
    [excursion] = detect_excursions(samples, band=REFRIGERATED, rules=rules())
    assert (excursion.start_s, excursion.end_s) == (T0, T0 + 330)


def test_impossible_values_are_ignored_and_counted() -> None:
    samples = two_probes([5, 150.0, 5, float("nan"), 5])
    analysis = analyse_samples(samples, band=REFRIGERATED, rules=rules())
    assert analysis.excursions == () and analysis.invalid_readings == 2
    with pytest.raises(InvalidSampleError):
        ExcursionTracker(band=REFRIGERATED, rules=rules()).feed(float("inf"), "p1", 5.0)


def test_late_readings_are_dropped_and_counted() -> None:
    tracker = ExcursionTracker(band=REFRIGERATED, rules=rules())
    tracker.feed(T0 + 60, "p1", 5.0)
    assert tracker.feed(T0 + 30, "p1", 9.0) == [], "older than the instant being collected"
    tracker.feed(T0 + 90, "p1", 5.0)  # evaluates +60
    assert tracker.feed(T0 + 60, "p2", 9.0) == [], "the +60 instant is already decided"
    assert tracker.state.late_readings == 2
    assert tracker.last_instant_s == T0 + 60 and tracker.collecting_s == T0 + 90


def test_duplicates_and_conflicting_readings_at_one_instant_do_not_depend_on_order() -> None:
    base = two_probes([5, 5, 9, 9, 9, 9, 9, 5, 5])
    extra = [Sample(T0 + 30, "p1", 9.5), Sample(T0 + 30, "p1", 5.0), Sample(T0 + 240, "p2", 5.0)]
    forward = detect_excursions(base + extra, band=REFRIGERATED, rules=rules())
    backward = detect_excursions(list(reversed(base + extra)), band=REFRIGERATED, rules=rules())
    assert forward == backward
    [excursion] = forward
    assert excursion.start_s == T0 + 30, "a conflicting 9.5 at +30 counts: the worst value governs"


def test_state_round_trips_through_json_and_checks_its_band() -> None:
    tracker = ExcursionTracker(band=REFRIGERATED, rules=rules())
    for sample in two_probes([5, 9, 9, 9, 9, 9, 9]):
        tracker.feed(*sample)
    assert tracker.collecting_s == T0 + 180, "the last instant is still being collected"
    saved = json.loads(json.dumps(tracker.state.to_dict()))
    state = TrackerState.from_dict(saved)
    assert state == tracker.state
    resumed = ExcursionTracker(band=REFRIGERATED, rules=rules(), state=state)
    assert resumed.phase == "open" and resumed.open_excursion == tracker.open_excursion
    with pytest.raises(TrackerStateError):
        ExcursionTracker(band=band("frozen"), rules=rules(), state=state)
    with pytest.raises(TrackerStateError):
        TrackerState.from_dict({**saved, "format": 99})
    with pytest.raises(TrackerStateError):
        TrackerState.from_dict({k: v for k, v in saved.items() if k != "latest"})


def test_events_carry_the_excursion() -> None:
    tracker = ExcursionTracker(band=REFRIGERATED, rules=rules())
    events = [e for s in two_probes([5, 9, 9, 9, 9, 9, 5, 5]) for e in tracker.feed(*s)]
    opened, closed = events
    assert isinstance(opened, ExcursionOpened) and isinstance(closed, ExcursionClosed)
    assert opened.at_s == T0 + 150 and opened.excursion.end_s is None
    assert closed.at_s == closed.excursion.end_s == T0 + 180
    assert tracker.phase == "idle"
