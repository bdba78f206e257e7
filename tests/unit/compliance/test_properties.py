"""Properties of excursion tracking and time accounting over arbitrary compartment records."""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.compliance.accounting import account_time, excursion_overlaps
from controller.compliance.excursions import (
    Excursion,
    ExcursionClosed,
    ExcursionTracker,
    analyse_samples,
    detect_excursions,
)
from controller.compliance.gaps import recording_gap_findings
from controller.compliance.models import Sample
from controller.compliance.tracker_state import TrackerState
from tests.unit.compliance.support import T0, band, rules

REFRIGERATED = band("refrigerated")

# Values cluster around the limits so that blips, excursions and hysteresis all occur.
values_c = st.one_of(
    st.floats(4.0, 6.0),
    st.floats(7.5, 8.6),
    st.floats(1.5, 2.5),
    st.sampled_from([2.0, 8.0, 7.7, 2.3, 9.5]),
)


@st.composite
def records(draw: st.DrawFn) -> list[Sample]:
    """A compartment record: 1-3 probes, irregular steps (some beyond the gap limits)."""
    probes = draw(st.sampled_from([("p1",), ("p1", "p2"), ("p1", "p2", "p3")]))
    steps_s = draw(
        st.lists(
            st.one_of(st.sampled_from([30.0, 30.0, 30.0, 60.0]), st.floats(1.0, 700.0)),
            min_size=0,
            max_size=50,
        )
    )
    samples: list[Sample] = []
    ts_s = T0
    for step_s in [0.0, *steps_s]:
        ts_s += step_s
        reporting = draw(st.lists(st.sampled_from(probes), min_size=1, max_size=len(probes)))
        samples.extend(Sample(ts_s, probe, draw(values_c)) for probe in reporting)
    return samples


def _live(samples: list[Sample], *, restart_at: int) -> list[Excursion]:
    tracker = ExcursionTracker(band=REFRIGERATED, rules=rules())
    found: list[Excursion] = []
    for index, sample in enumerate(samples):
        if index == restart_at:
            saved = json.loads(json.dumps(tracker.state.to_dict()))
            tracker = ExcursionTracker(
                band=REFRIGERATED, rules=rules(), state=TrackerState.from_dict(saved)
            )
        found += [e.excursion for e in tracker.feed(*sample) if isinstance(e, ExcursionClosed)]
    found += [e.excursion for e in tracker.flush() if isinstance(e, ExcursionClosed)]
    if tracker.open_excursion is not None:
        found.append(tracker.open_excursion)
    return found


@settings(max_examples=80, deadline=None)
@given(samples=records(), data=st.data())
def test_live_feeding_with_a_restart_equals_the_batch(
    samples: list[Sample], data: st.DataObject
) -> None:
    restart_at = data.draw(st.integers(0, len(samples)))
    assert _live(samples, restart_at=restart_at) == detect_excursions(
        samples, band=REFRIGERATED, rules=rules()
    )


@settings(max_examples=60, deadline=None)
@given(samples=records(), seed=st.randoms(use_true_random=False))
def test_the_batch_does_not_depend_on_input_order(samples: list[Sample], seed: object) -> None:
    shuffled = list(samples)
    seed.shuffle(shuffled)  # type: ignore[attr-defined]
    assert detect_excursions(shuffled, band=REFRIGERATED, rules=rules()) == detect_excursions(
        samples, band=REFRIGERATED, rules=rules()
    )


@settings(max_examples=80, deadline=None)
@given(
    samples=records(),
    start_offset_s=st.floats(-900.0, 3000.0),
    length_s=st.floats(0.0, 20_000.0),
)
def test_time_accounting_adds_up_and_gaps_are_never_compliant(
    samples: list[Sample], start_offset_s: float, length_s: float
) -> None:
    book = rules()
    analysis = analyse_samples(samples, band=REFRIGERATED, rules=book)
    window = (T0 + start_offset_s, T0 + start_offset_s + length_s)
    accounting = account_time(
        analysis, rules=book, window_start_s=window[0], window_end_s=window[1]
    )
    parts = (
        accounting.in_band_s,
        accounting.excursion_s,
        accounting.tolerated_s,
        accounting.unresolved_s,
        accounting.gap_s,
    )
    assert all(part >= 0 for part in parts)
    assert math.isclose(sum(parts), accounting.window_s, rel_tol=1e-9, abs_tol=1e-6)
    assert accounting.out_of_band_s <= accounting.covered_s + 1e-6

    findings = recording_gap_findings(
        analysis.instants_s,
        window_start_s=window[0],
        window_end_s=window[1],
        max_gap_s=book.recording.max_gap_s,
        out_of_range_max_gap_s=book.recording.out_of_range_max_gap_s,
        out_of_range_mask=analysis.instants_out_of_band,
    )
    total_gap_s = sum(f.duration_s for f in findings)
    assert math.isclose(accounting.gap_s, total_gap_s, rel_tol=1e-9, abs_tol=1e-6)
    for finding in findings:
        inside = account_time(
            analysis, rules=book, window_start_s=finding.start_s, window_end_s=finding.end_s
        )
        assert inside.in_band_s == 0.0, "a gap is never counted as compliant time"
        assert math.isclose(inside.gap_s, finding.duration_s, rel_tol=1e-9, abs_tol=1e-6)

    # Excursion time is exactly the covered time inside the excursions, clipped to the window.
    covered_in_excursions_s = 0.0
    for excursion in analysis.excursions:
        if not excursion_overlaps(excursion, window_start_s=window[0], window_end_s=window[1]):
            continue
        end_s = excursion.end_s if excursion.end_s is not None else window[1]
        part = account_time(
            analysis,
            rules=book,
            window_start_s=max(window[0], excursion.start_s),
            window_end_s=min(window[1], max(end_s, excursion.start_s)),
        )
        covered_in_excursions_s += part.excursion_s
        assert part.in_band_s == part.tolerated_s == 0.0
    assert math.isclose(accounting.excursion_s, covered_in_excursions_s, abs_tol=1e-6)


@settings(max_examples=60, deadline=None)
@given(samples=records())
def test_tracker_counters_cover_the_span_between_its_instants(samples: list[Sample]) -> None:
    tracker = ExcursionTracker(band=REFRIGERATED, rules=rules())
    for sample in samples:
        tracker.feed(*sample)
    tracker.flush()
    state = tracker.state
    span_s = max(s.ts_s for s in samples) - min(s.ts_s for s in samples)
    total_s = state.in_band_s + state.out_of_band_s + state.gap_s
    assert math.isclose(total_s, span_s, rel_tol=1e-9, abs_tol=1e-6)
