"""Probe health findings for one compartment: data that cannot vouch for the temperature.

Kinds (thresholds from the rulebook's `probe_health`, `probes` and `recording` sections):

- ``impossible``: values outside the physically possible range (or not finite), per run;
- ``jump``: a change larger than `jump_c` between consecutive samples at most `jump_within_s`
  apart (consecutive jumps merge into one finding);
- ``stuck``: a probe unchanged within `stuck_tolerance_c` for at least `stuck_min_s` while
  another probe's range over the same time exceeds `others_moving_c`;
- ``disagreement``: two probes further apart than the sum of the accuracies the rulebook
  requires at their measured values, for at least `disagreement_min_s`;
- ``silent``: a registered probe without a record for longer than `recording.max_gap_s` while
  another probe of the compartment reported;
- ``unknown_probe``: readings from a probe that is not registered;
- ``calibration_overdue``: a calibration due date before `today`;
- ``accuracy``: a declared accuracy coarser than the rulebook requires at the measured values;
- ``too_few_probes``: fewer registered probes than the compartment's volume requires.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Literal

import numpy as np
import numpy.typing as npt

from controller.compliance.gaps import recording_gap_findings
from controller.compliance.models import CompartmentMeta
from controller.compliance.rulebook import Rulebook

ProbeFindingKind = Literal[
    "impossible",
    "jump",
    "stuck",
    "disagreement",
    "silent",
    "unknown_probe",
    "calibration_overdue",
    "accuracy",
    "too_few_probes",
]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeFinding:
    """One probe health finding; a time span, a date, or neither (e.g. too few probes)."""

    kind: ProbeFindingKind
    probe_ids: tuple[str, ...]
    detail: str
    start_s: float | None = None
    end_s: float | None = None
    on_date: date | None = None


@dataclass(frozen=True, slots=True)
class _Series:
    ts_s: FloatArray
    values_c: FloatArray


def probe_findings(
    *,
    samples: Iterable[tuple[float, str, float]],
    compartment: CompartmentMeta,
    rules: Rulebook,
    today: date,
    window_start_s: float | None = None,
    window_end_s: float | None = None,
) -> list[ProbeFinding]:
    """Every probe health finding of a compartment over a window (all samples when None)."""
    start_s = -np.inf if window_start_s is None else window_start_s
    end_s = np.inf if window_end_s is None else window_end_s
    raw: dict[str, list[tuple[float, float]]] = {}
    for ts_s, probe_id, value_c in samples:
        if start_s <= ts_s <= end_s:
            raw.setdefault(probe_id, []).append((ts_s, value_c))
    series = {p: _to_series(points) for p, points in sorted(raw.items())}
    health = rules.probe_health
    valid: dict[str, _Series] = {}
    findings: list[ProbeFinding] = []
    for probe_id, s in series.items():
        ok = (
            np.isfinite(s.values_c)
            & (s.values_c >= health.impossible_low_c)
            & (s.values_c <= health.impossible_high_c)
        )
        findings.extend(_runs("impossible", probe_id, s.ts_s, ~ok, min_s=0.0, rules=rules))
        valid[probe_id] = _Series(s.ts_s[ok], s.values_c[ok])
        findings.extend(_jumps(probe_id, valid[probe_id], rules=rules))
    findings.extend(_stuck(valid, rules=rules))
    findings.extend(_disagreements(valid, rules=rules))
    findings.extend(_registry_findings(valid, compartment=compartment, rules=rules, today=today))
    if valid:
        all_ts = np.concatenate([s.ts_s for s in valid.values()])
        first_s = float(all_ts.min()) if window_start_s is None else window_start_s
        last_s = float(all_ts.max()) if window_end_s is None else window_end_s
        findings.extend(
            _silent(valid, compartment=compartment, rules=rules, span=(first_s, last_s))
        )
    return sorted(
        findings,
        key=lambda f: (-np.inf if f.start_s is None else f.start_s, f.kind, f.probe_ids),
    )


def _to_series(points: list[tuple[float, float]]) -> _Series:
    points.sort(key=lambda point: point[0])
    return _Series(
        np.array([t for t, _ in points], dtype=np.float64),
        np.array([v for _, v in points], dtype=np.float64),
    )


def _runs(
    kind: ProbeFindingKind,
    probe_id: str,
    ts_s: FloatArray,
    flags: npt.NDArray[np.bool_],
    *,
    min_s: float,
    rules: Rulebook,
    detail: str = "",
    probe_ids: tuple[str, ...] | None = None,
) -> list[ProbeFinding]:
    """Maximal runs of `flags`; a run lasts until the next unflagged sample (or its last one)."""
    findings: list[ProbeFinding] = []
    n = len(flags)
    i = 0
    while i < n:
        if not flags[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and flags[j + 1]:
            j += 1
        run_end_s = float(ts_s[j + 1]) if j + 1 < n else float(ts_s[j])
        if run_end_s - float(ts_s[i]) >= min_s:
            text = detail or (
                f"{j - i + 1} value(s) outside the possible "
                f"{rules.probe_health.impossible_low_c:g}..{rules.probe_health.impossible_high_c:g} °C"
            )
            findings.append(
                ProbeFinding(
                    kind=kind,
                    probe_ids=probe_ids or (probe_id,),
                    detail=text,
                    start_s=float(ts_s[i]),
                    end_s=run_end_s,
                )
            )
        i = j + 1
    return findings


def _jumps(probe_id: str, s: _Series, *, rules: Rulebook) -> list[ProbeFinding]:
    health = rules.probe_health
    if s.ts_s.size < 2:
        return []
    steps_c = np.abs(np.diff(s.values_c))
    close = np.diff(s.ts_s) <= health.jump_within_s
    findings: list[ProbeFinding] = []
    for i in np.flatnonzero((steps_c > health.jump_c) & close).tolist():
        start_s, end_s = float(s.ts_s[i]), float(s.ts_s[i + 1])
        previous = findings[-1] if findings else None
        if previous is not None and previous.end_s == start_s and previous.start_s is not None:
            findings.pop()
            start_s = previous.start_s
        findings.append(
            ProbeFinding(
                kind="jump",
                probe_ids=(probe_id,),
                detail=f"changed by more than {health.jump_c:g} °C within "
                f"{health.jump_within_s:g} s (last step {steps_c[i]:.2f} °C)",
                start_s=start_s,
                end_s=end_s,
            )
        )
    return findings


def _stuck(valid: dict[str, _Series], *, rules: Rulebook) -> list[ProbeFinding]:
    health = rules.probe_health
    findings: list[ProbeFinding] = []
    for probe_id, s in valid.items():
        values, times = s.values_c.tolist(), s.ts_s.tolist()
        i, n = 0, len(values)
        while i < n:
            lo = hi = values[i]
            j = i
            while j + 1 < n and max(hi, values[j + 1]) - min(lo, values[j + 1]) <= (
                health.stuck_tolerance_c + 1e-9
            ):
                j += 1
                lo, hi = min(lo, values[j]), max(hi, values[j])
            if times[j] - times[i] < health.stuck_min_s:
                i += 1
                continue
            moving = [
                other
                for other, o in valid.items()
                if other != probe_id and _range_c(o, times[i], times[j]) > health.others_moving_c
            ]
            if moving:
                findings.append(
                    ProbeFinding(
                        kind="stuck",
                        probe_ids=(probe_id,),
                        detail=f"unchanged at {values[i]:.2f} °C for "
                        f"{(times[j] - times[i]) / 60:.0f} min while {', '.join(moving)} moved",
                        start_s=times[i],
                        end_s=times[j],
                    )
                )
            i = j + 1
    return findings


def _range_c(s: _Series, start_s: float, end_s: float) -> float:
    inside = s.values_c[(s.ts_s >= start_s) & (s.ts_s <= end_s)]
    return float(inside.max() - inside.min()) if inside.size else 0.0


def _disagreements(valid: dict[str, _Series], *, rules: Rulebook) -> list[ProbeFinding]:
    health = rules.probe_health
    accuracy = np.vectorize(rules.accuracy_required_c, otypes=[np.float64])
    findings: list[ProbeFinding] = []
    for (p, a), (q, b) in itertools.combinations(valid.items(), 2):
        if a.ts_s.size == 0 or b.ts_s.size == 0:
            continue
        index = np.searchsorted(b.ts_s, a.ts_s, side="right") - 1
        has = index >= 0
        index = np.clip(index, 0, None)
        fresh = has & (a.ts_s - b.ts_s[index] <= rules.recording.max_gap_s)
        other_c = b.values_c[index]
        allowed_c = accuracy(a.values_c) + accuracy(other_c)
        apart = fresh & (np.abs(a.values_c - other_c) > allowed_c)
        findings.extend(
            _runs(
                "disagreement",
                p,
                a.ts_s[fresh],
                apart[fresh],
                min_s=health.disagreement_min_s,
                rules=rules,
                detail=f"{p} and {q} differ by more than their summed required accuracies",
                probe_ids=(p, q),
            )
        )
    return findings


def _registry_findings(
    valid: dict[str, _Series], *, compartment: CompartmentMeta, rules: Rulebook, today: date
) -> list[ProbeFinding]:
    findings: list[ProbeFinding] = []
    registered = {probe.probe_id for probe in compartment.probes}
    needed = rules.required_probes(compartment.volume_m3)
    if len(registered) < needed:
        findings.append(
            ProbeFinding(
                kind="too_few_probes",
                probe_ids=tuple(sorted(registered)),
                detail=f"{len(registered)} probe(s) for {compartment.volume_m3:g} m3; "
                f"the rulebook requires at least {needed}",
            )
        )
    for probe_id in sorted(set(valid) - registered):
        findings.append(
            ProbeFinding(
                kind="unknown_probe",
                probe_ids=(probe_id,),
                detail=f"readings from {probe_id!r}, which is not registered for "
                f"compartment {compartment.compartment_id!r}",
            )
        )
    for probe in compartment.probes:
        if probe.calibration_due < today:
            findings.append(
                ProbeFinding(
                    kind="calibration_overdue",
                    probe_ids=(probe.probe_id,),
                    detail=f"calibration was due on {probe.calibration_due.isoformat()}",
                    on_date=probe.calibration_due,
                )
            )
        s = valid.get(probe.probe_id)
        if s is None or s.values_c.size == 0:
            continue
        required_c = min(rules.accuracy_required_c(v) for v in np.unique(np.round(s.values_c, 1)))
        if probe.accuracy_c > required_c:
            findings.append(
                ProbeFinding(
                    kind="accuracy",
                    probe_ids=(probe.probe_id,),
                    detail=f"declared ±{probe.accuracy_c:g} °C; ±{required_c:g} °C is required "
                    "at the measured values",
                )
            )
    return findings


def _silent(
    valid: dict[str, _Series],
    *,
    compartment: CompartmentMeta,
    rules: Rulebook,
    span: tuple[float, float],
) -> list[ProbeFinding]:
    findings: list[ProbeFinding] = []
    for probe in compartment.probes:
        own = valid.get(probe.probe_id, _Series(np.empty(0), np.empty(0)))
        others = [s.ts_s for p, s in valid.items() if p != probe.probe_id]
        if not others:
            continue
        other_ts = np.concatenate(others)
        for gap in recording_gap_findings(
            own.ts_s,
            window_start_s=span[0],
            window_end_s=span[1],
            max_gap_s=rules.recording.max_gap_s,
        ):
            if np.any((other_ts > gap.start_s) & (other_ts < gap.end_s)):
                findings.append(
                    ProbeFinding(
                        kind="silent",
                        probe_ids=(probe.probe_id,),
                        detail=f"no reading for {gap.duration_s / 60:.1f} min while other "
                        "probes reported",
                        start_s=gap.start_s,
                        end_s=gap.end_s,
                    )
                )
    return findings
