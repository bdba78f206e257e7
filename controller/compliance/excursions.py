"""Excursion detection for one compartment: an incremental tracker the controller persists.

Rules (all numbers come from the rulebook and the compartment's `TemperatureClass`):

- Readings are grouped by instant (their exact timestamp). An instant is evaluated once a reading
  with a later timestamp arrives, or on `flush()`. Each probe contributes its readings at that
  instant, or its latest earlier ones if they are no older than `recording.max_gap_s` (a probe
  silent for longer no longer counts; `probes.py` reports it).
- The compartment is out of band at an instant when ANY probe is (the worst probe governs);
  values on a limit are inside. Physically impossible values (outside `probe_health`'s
  impossible range, or not finite) are ignored here and reported by `probes.py`.
- Time between consecutive instants [t_i, t_i+1) takes the state at t_i, unless it is longer
  than the recording limit for that state (`out_of_range_max_gap_s` when out of band, else
  `max_gap_s`): then the whole interval is a gap, counted neither in nor out of band.
- A run of consecutive out-of-band instants becomes an excursion once its out-of-band time
  (gaps excluded) reaches the class's `alarm_delay_s`, checked at every instant of the run and
  at the instant that ends it. The excursion starts at the run's first instant.
- An excursion ends at the first instant at which every probe is inside the band by the class's
  `hysteresis_c`; until then, in-band instants near the limit keep it open.
- Timestamps must not go backwards: a reading older than the instant being collected (or than
  the last evaluated one) is dropped and counted in `late_readings`. Repeated or conflicting
  readings of one probe at one instant all count (its lowest and highest value are kept), so
  their order never matters. `detect_excursions` sorts first, so batch and live agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from controller.compliance.errors import InvalidSampleError, TrackerStateError
from controller.compliance.rulebook import Rulebook, TemperatureClass
from controller.compliance.tracker_state import Episode, TrackerState

Direction = Literal["high", "low"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Excursion:
    """A period out of band that lasted at least the alarm delay.

    `end_s` is the first instant back inside by the hysteresis margin (None while open);
    `last_s` the latest instant seen while open (`end_s` once closed); `confirmed_s` when the
    alarm delay was met; `peak_c` the value furthest beyond the band on side `direction`;
    `gap_s` the recording-gap time inside [start_s, last_s).
    """

    start_s: float
    end_s: float | None
    last_s: float
    confirmed_s: float
    direction: Direction
    peak_c: float
    peak_s: float
    probe_ids: tuple[str, ...]
    gap_s: float

    @property
    def is_open(self) -> bool:
        """Whether no instant has closed the excursion yet."""
        return self.end_s is None

    @property
    def duration_s(self) -> float:
        """Wall time from start to end (to the last instant seen while open), gaps included."""
        return (self.last_s if self.end_s is None else self.end_s) - self.start_s


@dataclass(frozen=True, slots=True, kw_only=True)
class ExcursionOpened:
    """An excursion met the alarm delay at `at_s` (raise the alarm)."""

    at_s: float
    excursion: Excursion


@dataclass(frozen=True, slots=True, kw_only=True)
class ExcursionClosed:
    """An excursion ended at `at_s` (every probe back inside by the hysteresis margin)."""

    at_s: float
    excursion: Excursion


ExcursionEvent = ExcursionOpened | ExcursionClosed


class ExcursionTracker:
    """Incremental excursion detection for one compartment (see the module docstring).

    Feed readings in time order with `feed`; call `flush` when no more readings of the latest
    instant will come (e.g. at the end of a batch). `state` snapshots everything needed to
    resume with `ExcursionTracker(band=..., rules=..., state=...)` after a restart.
    """

    def __init__(
        self, *, band: TemperatureClass, rules: Rulebook, state: TrackerState | None = None
    ) -> None:
        if state is not None and (
            state.band_name != band.name or state.rulebook_version != rules.version
        ):
            raise TrackerStateError(
                "band_name",
                f"state of {state.band_name!r} under {state.rulebook_version!r} cannot resume "
                f"as {band.name!r} under {rules.version!r}",
            )
        self._band = band
        self._rules = rules
        start = state or TrackerState(band_name=band.name, rulebook_version=rules.version)
        # Mutable working copy of `TrackerState` (the hot path must not rebuild dataclasses).
        self._collecting_s = start.collecting_s
        self._collecting: dict[str, tuple[float, float]] = {
            p: (a, b) for p, a, b in start.collecting
        }
        self._latest: dict[str, tuple[float, float, float]] = {
            p: (t, a, b) for p, t, a, b in start.latest
        }
        self._last_instant_s = start.last_instant_s
        self._last_out_of_band = start.last_out_of_band
        self._episode = start.episode
        self._in_band_s = start.in_band_s
        self._out_of_band_s = start.out_of_band_s
        self._gap_s = start.gap_s
        self._late_readings = start.late_readings
        self._invalid_readings = start.invalid_readings
        # Filled by `analyse_samples` only: every evaluated instant and its raw state.
        self._instants: list[tuple[float, bool]] | None = None

    @property
    def state(self) -> TrackerState:
        """A snapshot of the tracker's state (persist `state.to_dict()`)."""
        return TrackerState(
            band_name=self._band.name,
            rulebook_version=self._rules.version,
            collecting_s=self._collecting_s,
            collecting=tuple((p, a, b) for p, (a, b) in sorted(self._collecting.items())),
            latest=tuple((p, t, a, b) for p, (t, a, b) in sorted(self._latest.items())),
            last_instant_s=self._last_instant_s,
            last_out_of_band=self._last_out_of_band,
            episode=self._episode,
            in_band_s=self._in_band_s,
            out_of_band_s=self._out_of_band_s,
            gap_s=self._gap_s,
            late_readings=self._late_readings,
            invalid_readings=self._invalid_readings,
        )

    @property
    def last_instant_s(self) -> float | None:
        """The latest evaluated instant (cheap: no snapshot)."""
        return self._last_instant_s

    @property
    def collecting_s(self) -> float | None:
        """The instant being collected, not yet evaluated (cheap: no snapshot)."""
        return self._collecting_s

    def collecting_probes(self) -> set[str]:
        """The probes that have reported the instant being collected."""
        return set(self._collecting)

    @property
    def phase(self) -> Literal["idle", "pending", "open"]:
        """No out-of-band run, one shorter than the alarm delay, or an open excursion."""
        episode = self._episode
        if episode is None:
            return "idle"
        return "pending" if episode.confirmed_s is None else "open"

    @property
    def open_excursion(self) -> Excursion | None:
        """The excursion open at the last evaluated instant, or None."""
        episode = self._episode
        if episode is None or episode.confirmed_s is None:
            return None
        return self._excursion(episode, end_s=None)

    @property
    def pending_since_s(self) -> float | None:
        """Start of an out-of-band run not yet as long as the alarm delay, or None."""
        episode = self._episode
        return episode.start_s if episode is not None and episode.confirmed_s is None else None

    def feed(self, ts_s: float, probe_id: str, value_c: float) -> list[ExcursionEvent]:
        """Take one reading; returns the events of the instant it completed (usually none)."""
        if not math.isfinite(ts_s):
            raise InvalidSampleError(ts_s, probe_id)
        health = self._rules.probe_health
        if not health.impossible_low_c <= value_c <= health.impossible_high_c:
            self._invalid_readings += 1
            return []
        collecting_s = self._collecting_s
        if collecting_s is not None:
            if ts_s < collecting_s:
                self._late_readings += 1
                return []
        elif self._last_instant_s is not None and ts_s <= self._last_instant_s:
            self._late_readings += 1
            return []
        events: list[ExcursionEvent] = []
        if collecting_s is not None and ts_s > collecting_s:
            events = self.flush()
        if self._collecting_s is None:
            self._collecting_s = ts_s
        low_c, high_c = self._collecting.get(probe_id, (value_c, value_c))
        self._collecting[probe_id] = (min(low_c, value_c), max(high_c, value_c))
        return events

    def flush(self) -> list[ExcursionEvent]:
        """Evaluate the instant being collected; later readings at that instant count as late."""
        at_s = self._collecting_s
        if at_s is None:
            return []
        for probe_id, (low_c, high_c) in self._collecting.items():
            self._latest[probe_id] = (at_s, low_c, high_c)
        self._collecting.clear()
        self._collecting_s = None
        self._attribute_interval_to(at_s)
        return self._evaluate(at_s)

    def _attribute_interval_to(self, at_s: float) -> None:
        if self._last_instant_s is None:
            return
        length_s = at_s - self._last_instant_s
        recording = self._rules.recording
        out = self._last_out_of_band
        limit_s = recording.out_of_range_max_gap_s if out else recording.max_gap_s
        episode = self._episode
        if length_s > limit_s:
            self._gap_s += length_s
            if episode is not None:
                self._episode = replace(episode, gap_s=episode.gap_s + length_s)
        elif out:
            self._out_of_band_s += length_s
            if episode is not None:
                self._episode = replace(episode, out_s=episode.out_s + length_s)
        else:
            self._in_band_s += length_s

    def _evaluate(self, at_s: float) -> list[ExcursionEvent]:
        band = self._band
        stale_before_s = at_s - self._rules.recording.max_gap_s
        current = [(p, lo, hi) for p, (t, lo, hi) in self._latest.items() if t >= stale_before_s]
        out_probes = tuple(
            sorted(
                p
                for p, lo, hi in current
                if band.side_outside(lo) is not None or band.side_outside(hi) is not None
            )
        )
        out_of_band = bool(out_probes)
        if self._instants is not None:
            self._instants.append((at_s, out_of_band))
        self._last_instant_s = at_s
        self._last_out_of_band = out_of_band
        episode = self._episode
        if episode is None and not out_of_band:
            return []  # the common case: in band, nothing pending

        events: list[ExcursionEvent] = []
        if episode is None:
            episode = Episode(
                start_s=at_s,
                confirmed_s=None,
                last_s=at_s,
                out_s=0.0,
                gap_s=0.0,
                max_c=-math.inf,
                max_at_s=at_s,
                min_c=math.inf,
                min_at_s=at_s,
                probe_ids=(),
            )
        if out_of_band or episode.confirmed_s is not None:
            episode = _observe(episode, at_s=at_s, current=current, out_probes=out_probes)
        episode = replace(episode, last_s=at_s)
        if episode.confirmed_s is None and episode.out_s >= band.alarm_delay_s:
            episode = replace(episode, confirmed_s=at_s)
            events.append(
                ExcursionOpened(at_s=at_s, excursion=self._excursion(episode, end_s=None))
            )
        if episode.confirmed_s is None and not out_of_band:
            self._episode = None  # a run shorter than the alarm delay: tolerated
        elif episode.confirmed_s is not None and all(
            band.inside_by_margin(lo) and band.inside_by_margin(hi) for _, lo, hi in current
        ):
            events.append(
                ExcursionClosed(at_s=at_s, excursion=self._excursion(episode, end_s=at_s))
            )
            self._episode = None
        else:
            self._episode = episode
        return events

    def _excursion(self, episode: Episode, *, end_s: float | None) -> Excursion:
        band = self._band
        above_c = episode.max_c - band.high_c if band.high_c is not None else -math.inf
        below_c = band.low_c - episode.min_c if band.low_c is not None else -math.inf
        high = above_c >= below_c
        return Excursion(
            start_s=episode.start_s,
            end_s=end_s,
            last_s=episode.last_s,
            confirmed_s=episode.confirmed_s if episode.confirmed_s is not None else episode.last_s,
            direction="high" if high else "low",
            peak_c=episode.max_c if high else episode.min_c,
            peak_s=episode.max_at_s if high else episode.min_at_s,
            probe_ids=episode.probe_ids,
            gap_s=episode.gap_s,
        )


def _observe(
    episode: Episode,
    *,
    at_s: float,
    current: list[tuple[str, float, float]],
    out_probes: tuple[str, ...],
) -> Episode:
    top_c = max(hi for _, _, hi in current)
    bottom_c = min(lo for _, lo, _ in current)
    if top_c > episode.max_c:
        episode = replace(episode, max_c=top_c, max_at_s=at_s)
    if bottom_c < episode.min_c:
        episode = replace(episode, min_c=bottom_c, min_at_s=at_s)
    if not set(out_probes) <= set(episode.probe_ids):
        episode = replace(episode, probe_ids=tuple(sorted({*episode.probe_ids, *out_probes})))
    return episode


@dataclass(frozen=True, slots=True, kw_only=True)
class ExcursionAnalysis:
    """A batch run of the tracker: excursions, the evaluated instants and what was dropped.

    `instants_s` are the evaluated instants (the compartment's records) and
    `instants_out_of_band` their raw state; `unresolved_since_s` starts a run still shorter than
    the alarm delay at the last instant (neither an excursion nor tolerated yet).
    """

    excursions: tuple[Excursion, ...]
    unresolved_since_s: float | None
    instants_s: tuple[float, ...]
    instants_out_of_band: tuple[bool, ...]
    late_readings: int
    invalid_readings: int


def analyse_samples(
    samples: Iterable[tuple[float, str, float]], *, band: TemperatureClass, rules: Rulebook
) -> ExcursionAnalysis:
    """Run the tracker over samples (sorted by time first) and flush the last instant."""
    tracker = ExcursionTracker(band=band, rules=rules)
    instants: list[tuple[float, bool]] = []
    tracker._instants = instants  # the batch run records what a live run need not
    excursions: list[Excursion] = []
    for ts_s, probe_id, value_c in sorted(samples, key=lambda sample: sample[0]):
        excursions.extend(_closed(tracker.feed(ts_s, probe_id, value_c)))
    excursions.extend(_closed(tracker.flush()))
    still_open = tracker.open_excursion
    if still_open is not None:
        excursions.append(still_open)
    return ExcursionAnalysis(
        excursions=tuple(excursions),
        unresolved_since_s=tracker.pending_since_s,
        instants_s=tuple(t for t, _ in instants),
        instants_out_of_band=tuple(out for _, out in instants),
        late_readings=tracker.state.late_readings,
        invalid_readings=tracker.state.invalid_readings,
    )


def detect_excursions(
    samples: Iterable[tuple[float, str, float]], *, band: TemperatureClass, rules: Rulebook
) -> list[Excursion]:
    """Excursions in samples of one compartment (the last one open when `end_s` is None)."""
    return list(analyse_samples(samples, band=band, rules=rules).excursions)


def _closed(events: list[ExcursionEvent]) -> list[Excursion]:
    return [event.excursion for event in events if isinstance(event, ExcursionClosed)]
