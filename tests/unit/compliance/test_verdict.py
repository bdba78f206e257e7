"""Window verdicts: fail beats incomplete beats pass; every reason is listed; MKT never decides."""

from __future__ import annotations

from datetime import date

from controller.compliance.models import CompartmentMeta, ProbeMeta, Sample
from controller.compliance.verdict import Verdict, window_verdict
from tests.unit.compliance.support import T0, band, rules

TODAY = date(2026, 3, 1)


def _meta(volume_m3: float = 12.0) -> CompartmentMeta:
    return CompartmentMeta(
        compartment_id="c1",
        volume_m3=volume_m3,
        probes=tuple(
            ProbeMeta(probe_id=p, accuracy_c=0.5, calibration_due=date(2026, 12, 31))
            for p in ("p1", "p2")
        ),
    )


def _verdict(
    samples: list[Sample],
    *,
    start_s: float = T0,
    end_s: float | None = None,
    volume_m3: float = 12.0,
) -> Verdict:
    return window_verdict(
        samples=samples,
        band=band("refrigerated"),
        compartment=_meta(volume_m3),
        rules=rules(),
        window_start_s=start_s,
        window_end_s=end_s if end_s is not None else max(s.ts_s for s in samples),
        today=TODAY,
    )


def two_probes(values_c: list[float]) -> list[Sample]:
    """`p1` reads `values_c` every 30 s, `p2` the same 0.3 °C warmer (no probe is stuck)."""
    return [
        Sample(T0 + i * 30.0, p, v + offset_c)
        for i, v in enumerate(values_c)
        for p, offset_c in (("p1", 0.0), ("p2", 0.3))
    ]


def _wavy(n: int) -> list[float]:
    return [5.0 + 0.5 * ((i % 10) - 5) / 5 for i in range(n)]


def test_a_clean_window_passes() -> None:
    verdict = _verdict(two_probes(_wavy(121)))
    assert (verdict.status, verdict.reasons) == ("pass", ())
    assert verdict.accounting.in_band_s == 3600 and verdict.summary.covered_s == 3600
    assert verdict.rulebook_version == "gsp-2016.1" and verdict.band.name == "refrigerated"


def test_an_excursion_fails_the_window_whatever_the_mkt() -> None:
    values = _wavy(121)
    values[60:66] = [10.0] * 6  # 3 min at 10 °C in an hour near 5 °C
    verdict = _verdict(two_probes(values))
    assert verdict.status == "fail"
    [reason] = verdict.reasons
    assert (reason.code, reason.severity) == ("excursion", "fail")
    assert (reason.start_s, reason.end_s) == (T0 + 1800, T0 + 1980)
    assert "peak 10.30 °C" in reason.message and "冷藏" in reason.message
    mkt_c = verdict.summary.mkt_c
    assert mkt_c is not None and 2.0 < mkt_c < 8.0, "MKT in band does not excuse the excursion"


def test_only_excursions_overlapping_the_window_count() -> None:
    values = _wavy(121)
    values[10:16] = [10.0] * 6  # an excursion from +300 to +480
    samples = two_probes(values)
    assert _verdict(samples, start_s=T0 + 480).status == "pass", "it ended at the window start"
    assert _verdict(samples, start_s=T0 + 470).status == "fail"


def test_every_reason_is_listed_fail_first() -> None:
    values = _wavy(121)
    values[90:96] = [10.0] * 6
    samples = [s for s in two_probes(values) if not T0 + 600 <= s.ts_s < T0 + 1200]
    verdict = _verdict(samples, volume_m3=30.0)
    assert verdict.status == "fail"
    assert [r.code for r in verdict.reasons] == [
        "excursion",
        "probe_too_few_probes",
        "recording_gap",
    ]
    assert [r.severity for r in verdict.reasons] == ["fail", "incomplete", "incomplete"]


def test_gaps_no_data_and_unresolved_runs_are_incomplete() -> None:
    samples = [s for s in two_probes(_wavy(121)) if not T0 + 600 <= s.ts_s < T0 + 1200]
    gap = _verdict(samples)
    assert gap.status == "incomplete" and [r.code for r in gap.reasons] == ["recording_gap"]
    assert gap.accounting.gap_s == 630 and gap.accounting.in_band_s == 2970

    empty = window_verdict(
        samples=[],
        band=band("refrigerated"),
        compartment=_meta(),
        rules=rules(),
        window_start_s=T0,
        window_end_s=T0 + 60,
        today=TODAY,
    )
    assert empty.status == "incomplete"
    assert {r.code for r in empty.reasons} == {"no_data", "recording_gap"}
    assert empty.summary.min_c is None and empty.accounting.gap_s == 60

    values = _wavy(121)
    values[-2:] = [9.0, 9.0]
    ending = _verdict(two_probes(values))
    assert ending.status == "incomplete"
    assert [r.code for r in ending.reasons] == ["unresolved_out_of_band"]
    assert ending.accounting.unresolved_s == 30


def test_a_window_ending_inside_an_open_excursion_fails() -> None:
    values = _wavy(60) + [9.0] * 20
    verdict = _verdict(two_probes(values))
    assert verdict.status == "fail" and verdict.excursions[0].end_s is None
    assert "still open" in verdict.reasons[0].message
