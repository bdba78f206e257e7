"""Golden results on simulator-made scenario records (`fixtures.py`, CSV files under `data/`)."""

from __future__ import annotations

from datetime import date

import pytest

from controller.compliance.models import CompartmentMeta, ProbeMeta
from controller.compliance.prediction import predict_band_exit
from controller.compliance.verdict import Verdict, window_verdict
from tests.unit.compliance.fixtures import HOURS, SCENARIOS, T0, read
from tests.unit.compliance.support import band, rules

REFRIGERATED = band("refrigerated")
COMPARTMENT = CompartmentMeta(
    compartment_id="c1",
    volume_m3=12.0,
    probes=tuple(
        ProbeMeta(probe_id=p, accuracy_c=0.5, calibration_due=date(2026, 1, 1))
        for p in ("p1", "p2")
    ),
)


def _minute(ts_s: float | None) -> float | None:
    return None if ts_s is None else (ts_s - T0) / 60.0


def _verdict(name: str) -> Verdict:
    return window_verdict(
        samples=read(name),
        band=REFRIGERATED,
        compartment=COMPARTMENT,
        rules=rules(),
        window_start_s=T0,
        window_end_s=T0 + HOURS * 3600,
        today=date(2025, 7, 1),
    )


def test_every_scenario_has_a_fixture() -> None:
    for name in SCENARIOS:
        assert len(read(name)) > 400, name


# name: (status, [(excursion start, end) in minutes], [reason codes], in-band s, gap s)
GOLDEN: dict[str, tuple[str, list[tuple[float, float | None]], list[str], float, float]] = {
    "steady": ("pass", [], [], 7200.0, 0.0),
    "doors": ("pass", [], [], 7110.0, 0.0),
    "compressor_failure": ("fail", [(86.0, None)], ["excursion"], 5130.0, 0.0),
    "probe_drift": ("incomplete", [], ["probe_disagreement"], 6810.0, 0.0),
    "probe_stuck": ("incomplete", [], ["probe_stuck"], 7200.0, 0.0),
    "link_outage": ("incomplete", [], ["recording_gap"], 6270.0, 930.0),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_verdicts(name: str) -> None:
    status, excursions, codes, in_band_s, gap_s = GOLDEN[name]
    verdict = _verdict(name)
    assert verdict.status == status
    assert [(_minute(e.start_s), _minute(e.end_s)) for e in verdict.excursions] == excursions
    assert [r.code for r in verdict.reasons] == codes
    assert verdict.accounting.in_band_s == in_band_s
    assert verdict.accounting.gap_s == gap_s
    assert verdict.rulebook_version == "gsp-2016.1"


def test_golden_details() -> None:
    [failure] = _verdict("compressor_failure").excursions
    assert (failure.direction, failure.peak_c, failure.probe_ids) == ("high", 9.1, ("p1", "p2"))
    assert _minute(failure.confirmed_s) == 88.0
    doors = _verdict("doors")
    assert doors.accounting.tolerated_s == 90.0, "a 4 min door opening blips out for 90 s"
    assert doors.summary.max_c == 8.74
    [stuck] = _verdict("probe_stuck").probe_findings
    assert (stuck.kind, stuck.probe_ids, _minute(stuck.start_s)) == ("stuck", ("p1",), 15.0)
    [apart] = _verdict("probe_drift").probe_findings
    assert (apart.kind, _minute(apart.start_s), _minute(apart.end_s)) == (
        "disagreement",
        46.0,
        120.0,
    )
    [gap] = _verdict("link_outage").gaps
    assert (_minute(gap.start_s), _minute(gap.end_s), gap.limit_s) == (49.5, 65.0, 300.0)
    assert _verdict("steady").summary.mkt_c == pytest.approx(5.3352, abs=1e-4)


@pytest.mark.parametrize(
    ("name", "first_warning_min"), [("steady", None), ("doors", None), ("compressor_failure", 54.5)]
)
def test_golden_warnings(name: str, first_warning_min: float | None) -> None:
    book = rules()
    samples = read(name)
    span_s = book.prediction.window_s + book.prediction.confirm_s
    warned = [
        now_s
        for now_s in sorted({s.ts_s for s in samples})
        if predict_band_exit(
            [s for s in samples if now_s - span_s <= s.ts_s <= now_s],
            band=REFRIGERATED,
            rules=book,
            now_s=now_s,
        ).warn
    ]
    assert _minute(warned[0] if warned else None) == first_warning_min
