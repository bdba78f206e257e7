"""Recording-gap findings: interior gaps, window edges and the out-of-range limit."""

from __future__ import annotations

import pytest

from controller.compliance.gaps import GapFinding, recording_gap_findings


def _spans(findings: list[GapFinding]) -> list[tuple[float, float, float]]:
    return [(f.start_s, f.end_s, f.limit_s) for f in findings]


def test_a_regular_record_has_no_gap() -> None:
    ts = [float(t) for t in range(0, 3601, 30)]
    assert recording_gap_findings(ts, window_start_s=0, window_end_s=3600, max_gap_s=300) == []


def test_an_interval_of_exactly_the_limit_is_not_a_gap() -> None:
    assert (
        recording_gap_findings([0, 300, 600], window_start_s=0, window_end_s=600, max_gap_s=300)
        == []
    )


def test_interior_gap_is_reported_whole() -> None:
    findings = recording_gap_findings(
        [0, 30, 400, 430], window_start_s=0, window_end_s=430, max_gap_s=300
    )
    assert findings == [GapFinding(start_s=30, end_s=400, duration_s=370, limit_s=300)]


def test_window_edges_count_as_missing_records() -> None:
    findings = recording_gap_findings(
        [400, 430], window_start_s=0, window_end_s=1000, max_gap_s=300
    )
    assert _spans(findings) == [(0, 400, 300), (430, 1000, 300)]
    short = recording_gap_findings([100, 130], window_start_s=0, window_end_s=200, max_gap_s=300)
    assert short == [], "edges within the limit are covered"
    assert _spans(recording_gap_findings([], window_start_s=0, window_end_s=50, max_gap_s=300)) == [
        (0, 50, 300)
    ]


def test_a_gap_straddling_the_window_start_is_judged_on_its_real_length() -> None:
    findings = recording_gap_findings(
        [-100, 250, 280], window_start_s=0, window_end_s=280, max_gap_s=300
    )
    assert findings == [GapFinding(start_s=0, end_s=250, duration_s=250, limit_s=300)]


def test_out_of_range_records_use_the_shorter_limit() -> None:
    ts = [0, 150, 300, 450]
    mask = [False, True, True, False]
    findings = recording_gap_findings(
        ts,
        window_start_s=0,
        window_end_s=450,
        max_gap_s=300,
        out_of_range_max_gap_s=120,
        out_of_range_mask=mask,
    )
    assert _spans(findings) == [(150, 300, 120), (300, 450, 120)]


def test_unsorted_input_and_a_bad_mask() -> None:
    findings = recording_gap_findings(
        [450, 0, 300, 150],
        window_start_s=0,
        window_end_s=450,
        max_gap_s=300,
        out_of_range_max_gap_s=120,
        out_of_range_mask=[False, False, True, True],
    )
    assert _spans(findings) == [(150, 300, 120), (300, 450, 120)]
    with pytest.raises(ValueError, match="entries"):
        recording_gap_findings(
            [0, 1], window_start_s=0, window_end_s=1, max_gap_s=300, out_of_range_mask=[True]
        )
