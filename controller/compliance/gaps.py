"""Recording-gap findings: stretches of a window with no record for longer than GSP allows.

GSP asks for a record at least every `max_gap_s` (5 min in transit) and, while the temperature
is outside its limits, every `out_of_range_max_gap_s` (2 min). The limit of the interval after a
record is chosen by that record's state (`out_of_range_mask`). A missing record is never in
range: the whole interval counts as a gap, not just its part beyond the limit.

Intervals are judged on their real length and reported clipped to the window. At the edges,
with no record before the window start (or after its end) the window edge stands in for the
missing record; a leading interval's limit follows the first record's state. Without any record
the whole window is one gap, however short.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True, kw_only=True)
class GapFinding:
    """No record for longer than `limit_s`: [start_s, end_s) clipped to the window."""

    start_s: float
    end_s: float
    duration_s: float
    limit_s: float


def recording_gap_findings(
    ts_s: Sequence[float] | npt.NDArray[np.float64],
    *,
    window_start_s: float,
    window_end_s: float,
    max_gap_s: float,
    out_of_range_max_gap_s: float | None = None,
    out_of_range_mask: Sequence[bool] | npt.NDArray[np.bool_] | None = None,
) -> list[GapFinding]:
    """Gaps between records (sorted UTC seconds) longer than their limit, within the window."""
    times = np.sort(np.asarray(ts_s, dtype=np.float64), kind="stable")
    if out_of_range_mask is None:
        mask = np.zeros(times.shape, dtype=bool)
    else:
        raw_mask = np.asarray(out_of_range_mask, dtype=bool)
        if raw_mask.shape != times.shape:
            raise ValueError(
                f"out_of_range_mask has {raw_mask.size} entries for {times.size} timestamps"
            )
        mask = raw_mask[np.argsort(np.asarray(ts_s, dtype=np.float64), kind="stable")]
    if window_end_s <= window_start_s:
        return []
    oor_limit_s = max_gap_s if out_of_range_max_gap_s is None else out_of_range_max_gap_s
    limits_s = np.where(mask, oor_limit_s, max_gap_s)
    findings: list[GapFinding] = []

    def report(start_s: float, end_s: float, length_s: float, limit_s: float) -> None:
        clipped_start_s = max(start_s, window_start_s)
        clipped_end_s = min(end_s, window_end_s)
        if length_s > limit_s and clipped_end_s > clipped_start_s:
            findings.append(
                GapFinding(
                    start_s=clipped_start_s,
                    end_s=clipped_end_s,
                    duration_s=clipped_end_s - clipped_start_s,
                    limit_s=limit_s,
                )
            )

    if times.size == 0:
        # Nothing vouches for any of the window, however short it is.
        report(window_start_s, window_end_s, np.inf, max_gap_s)
        return findings
    values = times.tolist()
    first_s, last_s = values[0], values[-1]
    if first_s > window_start_s:
        report(window_start_s, first_s, first_s - window_start_s, float(limits_s[0]))
    lo = max(0, bisect.bisect_right(values, window_start_s) - 1)
    hi = min(len(values) - 1, bisect.bisect_left(values, window_end_s))
    if hi > lo:
        starts = times[lo:hi]
        ends = times[lo + 1 : hi + 1]
        lengths = ends - starts
        for i in np.flatnonzero(lengths > limits_s[lo:hi]).tolist():
            report(float(starts[i]), float(ends[i]), float(lengths[i]), float(limits_s[lo + i]))
    if last_s < window_end_s:
        report(last_s, window_end_s, window_end_s - last_s, float(limits_s[-1]))
    return findings
