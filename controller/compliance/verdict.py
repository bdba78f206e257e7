"""The GSP verdict on one compartment over one window: pass, fail or incomplete, with reasons.

- fail: an excursion (one that met the alarm delay) has time inside the window;
- incomplete (when not fail): a recording gap, a probe finding (too few probes, silent, stuck,
  disagreeing, impossible values, jumps, unknown probe, overdue calibration, coarse accuracy),
  no data at all, or an out-of-band run still shorter than the alarm delay at the end of the
  data (it cannot be decided yet);
- pass: none of these.

Every reason is listed, fail reasons first. The summary (min, max, time-weighted mean, MKT) is
information only: MKT never turns a fail into a pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

from controller.compliance.accounting import TimeAccounting, account_time, excursion_overlaps
from controller.compliance.excursions import Excursion, analyse_samples
from controller.compliance.gaps import GapFinding, recording_gap_findings
from controller.compliance.mkt import Summary, temperature_summary
from controller.compliance.models import CompartmentMeta, Sample
from controller.compliance.probes import ProbeFinding, probe_findings
from controller.compliance.rulebook import Rulebook, TemperatureClass

Status = Literal["pass", "fail", "incomplete"]
Severity = Literal["fail", "incomplete"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Reason:
    """Why a window did not pass: a code (``excursion``, ``recording_gap``, ``probe_stuck``…)."""

    code: str
    severity: Severity
    message: str
    start_s: float | None = None
    end_s: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """The decision on a window and everything it rests on (all of it serialisable data)."""

    status: Status
    reasons: tuple[Reason, ...]
    summary: Summary
    accounting: TimeAccounting
    excursions: tuple[Excursion, ...]
    gaps: tuple[GapFinding, ...]
    probe_findings: tuple[ProbeFinding, ...]
    band: TemperatureClass
    window_start_s: float
    window_end_s: float
    rulebook_version: str


def window_verdict(
    *,
    samples: Iterable[tuple[float, str, float]],
    band: TemperatureClass,
    compartment: CompartmentMeta,
    rules: Rulebook,
    window_start_s: float,
    window_end_s: float,
    today: date,
) -> Verdict:
    """Decide a compartment's window; pass samples from a little before the window for context."""
    readings = [Sample(*sample) for sample in samples]
    analysis = analyse_samples(readings, band=band, rules=rules)
    excursions = tuple(
        e
        for e in analysis.excursions
        if excursion_overlaps(e, window_start_s=window_start_s, window_end_s=window_end_s)
    )
    gaps = tuple(
        recording_gap_findings(
            analysis.instants_s,
            window_start_s=window_start_s,
            window_end_s=window_end_s,
            max_gap_s=rules.recording.max_gap_s,
            out_of_range_max_gap_s=rules.recording.out_of_range_max_gap_s,
            out_of_range_mask=analysis.instants_out_of_band,
        )
    )
    findings = tuple(
        probe_findings(
            samples=readings,
            compartment=compartment,
            rules=rules,
            today=today,
            window_start_s=window_start_s,
            window_end_s=window_end_s,
        )
    )
    accounting = account_time(
        analysis, rules=rules, window_start_s=window_start_s, window_end_s=window_end_s
    )
    health = rules.probe_health
    valid = [
        r for r in readings if health.impossible_low_c <= r.value_c <= health.impossible_high_c
    ]
    summary = temperature_summary(
        [r.ts_s for r in valid],
        [r.value_c for r in valid],
        delta_h_over_r_k=rules.mkt.delta_h_over_r_k,
        max_gap_s=rules.recording.max_gap_s,
        window_start_s=window_start_s,
        window_end_s=window_end_s,
    )

    reasons: list[Reason] = [_excursion_reason(e, band=band) for e in excursions]
    reasons.extend(
        Reason(
            code="recording_gap",
            severity="incomplete",
            message=f"no record for {g.duration_s / 60:.1f} min (limit {g.limit_s / 60:g} min)",
            start_s=g.start_s,
            end_s=g.end_s,
        )
        for g in gaps
    )
    if accounting.covered_s == 0 and accounting.window_s > 0:
        reasons.append(
            Reason(code="no_data", severity="incomplete", message="no record covers the window")
        )
    unresolved_s = analysis.unresolved_since_s
    if unresolved_s is not None and unresolved_s < window_end_s:
        reasons.append(
            Reason(
                code="unresolved_out_of_band",
                severity="incomplete",
                message="out of band at the end of the data for less than the alarm delay "
                f"({band.alarm_delay_s:g} s); cannot be decided yet",
                start_s=unresolved_s,
            )
        )
    reasons.extend(
        Reason(
            code=f"probe_{f.kind}",
            severity="incomplete",
            message=f"{', '.join(f.probe_ids)}: {f.detail}" if f.probe_ids else f.detail,
            start_s=f.start_s,
            end_s=f.end_s,
        )
        for f in findings
    )
    reasons.sort(
        key=lambda r: (r.severity != "fail", -1e300 if r.start_s is None else r.start_s, r.code)
    )
    status: Status = "pass"
    if any(r.severity == "fail" for r in reasons):
        status = "fail"
    elif reasons:
        status = "incomplete"
    return Verdict(
        status=status,
        reasons=tuple(reasons),
        summary=summary,
        accounting=accounting,
        excursions=excursions,
        gaps=gaps,
        probe_findings=findings,
        band=band,
        window_start_s=window_start_s,
        window_end_s=window_end_s,
        rulebook_version=rules.version,
    )


def _excursion_reason(excursion: Excursion, *, band: TemperatureClass) -> Reason:
    limit_c = band.high_c if excursion.direction == "high" else band.low_c
    started = datetime.fromtimestamp(excursion.start_s, UTC).strftime("%Y-%m-%d %H:%M:%S")
    ended = "still open" if excursion.end_s is None else f"{excursion.duration_s / 60:.1f} min"
    return Reason(
        code="excursion",
        severity="fail",
        message=f"{excursion.direction} excursion from {started} UTC ({ended}), peak "
        f"{excursion.peak_c:.2f} °C beyond the {limit_c:g} °C limit of {band.name} "
        f"({band.label_zh}); probes {', '.join(excursion.probe_ids)}",
        start_s=excursion.start_s,
        end_s=excursion.end_s,
    )
