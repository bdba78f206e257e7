"""Where the time of a window went: in band, in excursions, tolerated, unresolved or a gap.

The attribution is the tracker's (see `excursions.py`): the interval after an instant takes that
instant's state unless it is longer than the recording limit for that state, in which case the
whole interval is a gap. At the window's edges:

- before the first instant (when none precedes the window), the interval from the window start
  takes the first instant's state if it is within that state's limit, else it is a gap;
- after the last instant (when none follows the window), the interval to the window end takes
  the last instant's state if it is within that state's limit, else it is a gap.

These are exactly the intervals `gaps.recording_gap_findings` reports, so `gap_s` equals the
summed duration of those findings for the same instants and out-of-band mask.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from controller.compliance.excursions import Excursion, ExcursionAnalysis
from controller.compliance.rulebook import Rulebook


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeAccounting:
    """A window's time split into parts that add up to `window_s`.

    `in_band_s` is covered time in band outside excursions; `excursion_s` covered time inside
    excursions (including in-band time before the hysteresis margin is regained); `tolerated_s`
    covered time out of band in runs shorter than the alarm delay; `unresolved_s` an out-of-band
    run at the end of the data not yet as long as the delay; `gap_s` time no record vouches for.
    `out_of_band_s` (not part of the sum) is all covered time with some probe out of band.
    """

    window_s: float
    in_band_s: float
    excursion_s: float
    tolerated_s: float
    unresolved_s: float
    gap_s: float
    out_of_band_s: float

    @property
    def covered_s(self) -> float:
        """Time of the window some record vouches for."""
        return self.window_s - self.gap_s


def excursion_overlaps(excursion: Excursion, *, window_start_s: float, window_end_s: float) -> bool:
    """Whether an excursion has any time inside [window_start_s, window_end_s)."""
    ends_s = excursion.end_s if excursion.end_s is not None else float("inf")
    return excursion.start_s < window_end_s and ends_s > window_start_s


def account_time(
    analysis: ExcursionAnalysis, *, rules: Rulebook, window_start_s: float, window_end_s: float
) -> TimeAccounting:
    """Split [window_start_s, window_end_s) by the state the analysis attributes to each part."""
    window_s = max(0.0, window_end_s - window_start_s)
    totals = {"in_band": 0.0, "excursion": 0.0, "tolerated": 0.0, "unresolved": 0.0, "gap": 0.0}
    out_of_band_s = 0.0
    instants = analysis.instants_s
    flags = analysis.instants_out_of_band
    recording = rules.recording
    starts = [e.start_s for e in analysis.excursions]

    def limit_s(index: int) -> float:
        return recording.out_of_range_max_gap_s if flags[index] else recording.max_gap_s

    def add(start_s: float, end_s: float, state_index: int | None, covered: bool) -> None:
        nonlocal out_of_band_s
        length_s = min(end_s, window_end_s) - max(start_s, window_start_s)
        if length_s <= 0:
            return
        if state_index is None or not covered:
            totals["gap"] += length_s
            return
        at_s = instants[state_index]
        if flags[state_index]:
            out_of_band_s += length_s
        totals[_bucket(analysis, starts, at_s=at_s, out_of_band=flags[state_index])] += length_s

    if window_s == 0:
        pass
    elif not instants:
        add(window_start_s, window_end_s, None, covered=False)
    else:
        first_s, last_s = instants[0], instants[-1]
        if first_s > window_start_s:
            add(window_start_s, first_s, 0, covered=first_s - window_start_s <= limit_s(0))
        lo = max(0, bisect.bisect_right(instants, window_start_s) - 1)
        hi = min(len(instants) - 1, bisect.bisect_left(instants, window_end_s))
        for i in range(lo, hi):
            length_s = instants[i + 1] - instants[i]
            add(instants[i], instants[i + 1], i, covered=length_s <= limit_s(i))
        last = len(instants) - 1
        if last_s < window_end_s:
            add(last_s, window_end_s, last, covered=window_end_s - last_s <= limit_s(last))
    return TimeAccounting(
        window_s=window_s,
        in_band_s=totals["in_band"],
        excursion_s=totals["excursion"],
        tolerated_s=totals["tolerated"],
        unresolved_s=totals["unresolved"],
        gap_s=totals["gap"],
        out_of_band_s=out_of_band_s,
    )


def _bucket(
    analysis: ExcursionAnalysis, starts: list[float], *, at_s: float, out_of_band: bool
) -> str:
    index = bisect.bisect_right(starts, at_s) - 1
    if index >= 0:
        excursion = analysis.excursions[index]
        if excursion.end_s is None or at_s < excursion.end_s:
            return "excursion"
    unresolved_s = analysis.unresolved_since_s
    if unresolved_s is not None and at_s >= unresolved_s:
        return "unresolved"
    return "tolerated" if out_of_band else "in_band"
