"""What one compartment's new readings mean: excursions opened/closed, status, pre-cooling time.

Pure: the evaluation service loads a `CompartmentView` (the saved tracker state and the time the
compartment has been in band since), feeds it the readings of a committed batch, and applies
the `Effect`s it returns in one transaction. The same code re-runs history for back-filled data,
so live and late data give the same excursions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from controller.compliance.errors import TrackerStateError
from controller.compliance.excursions import (
    Excursion,
    ExcursionClosed,
    ExcursionOpened,
    ExcursionTracker,
)
from controller.compliance.models import Sample
from controller.compliance.rulebook import Rulebook
from controller.compliance.rulebook_sections import TemperatureClass
from controller.compliance.tracker_state import TrackerState

Status = Literal["no_data", "in_band", "pending", "excursion"]


@dataclass(frozen=True, slots=True)
class ExcursionStarted:
    """An excursion met the alarm delay: store it and raise the alarm."""

    excursion: Excursion


@dataclass(frozen=True, slots=True)
class ExcursionEnded:
    """An excursion ended: close its record and clear the alarm's condition."""

    excursion: Excursion


Effect = ExcursionStarted | ExcursionEnded


@dataclass(slots=True)
class CompartmentView:
    """One compartment's evaluation state between batches (persisted in `compartment_state`)."""

    band: TemperatureClass
    rules: Rulebook
    probe_ids: tuple[str, ...]
    tracker: ExcursionTracker
    in_band_since_s: float | None = None
    latest_c: dict[str, float] = field(default_factory=dict)
    restarted: bool = False  # the saved state could not be resumed (e.g. a new rulebook)
    # The predictor: when it last ran and last warned (data time), whether its alarm is up.
    predicted_at_s: float | None = None
    warned_at_s: float | None = None
    prediction_alarm: bool = False

    @classmethod
    def resume(
        cls,
        *,
        band: TemperatureClass,
        rules: Rulebook,
        probe_ids: Sequence[str],
        saved: dict[str, Any] | None,
    ) -> CompartmentView:
        """Resume from a saved state, or start afresh when there is none or it cannot resume."""
        restarted = False
        tracker: ExcursionTracker | None = None
        if saved is not None:
            try:
                state = TrackerState.from_dict(saved["tracker"])
                tracker = ExcursionTracker(band=band, rules=rules, state=state)
            except (TrackerStateError, KeyError):
                restarted = True
        view = cls(
            band=band,
            rules=rules,
            probe_ids=tuple(probe_ids),
            tracker=tracker or ExcursionTracker(band=band, rules=rules),
            restarted=restarted,
        )
        if saved is not None and tracker is not None:
            view.in_band_since_s = saved.get("in_band_since_s")
            view.latest_c = dict(saved.get("latest_c", {}))
            view.predicted_at_s = saved.get("predicted_at_s")
            view.warned_at_s = saved.get("warned_at_s")
            view.prediction_alarm = bool(saved.get("prediction_alarm", False))
        return view

    @property
    def last_instant_s(self) -> float | None:
        """The latest instant evaluated (or being collected)."""
        collecting_s = self.tracker.collecting_s
        return collecting_s if collecting_s is not None else self.tracker.last_instant_s

    @property
    def status(self) -> Status:
        """Where the compartment stands at its latest evaluated instant."""
        phase = self.tracker.phase
        if phase == "open":
            return "excursion"
        if phase == "pending":
            return "pending"
        return "no_data" if self.tracker.last_instant_s is None else "in_band"

    def is_late(self, samples: Sequence[Sample]) -> bool:
        """Whether any sample is older than what has already been evaluated (a back-fill)."""
        floor_s = self.tracker.last_instant_s
        return floor_s is not None and any(s.ts_s <= floor_s for s in samples)

    def feed(self, samples: Sequence[Sample]) -> list[Effect]:
        """Take one batch's samples of this compartment (in time order)."""
        effects: list[Effect] = []
        previous_s = self.tracker.last_instant_s
        wanted = set(self.probe_ids)
        for sample in sorted(samples):
            events = self.tracker.feed(sample.ts_s, sample.probe_id, sample.value_c)
            if self.tracker.last_instant_s != previous_s or events:
                self._after(events, effects, previous_s)
                previous_s = self.tracker.last_instant_s
            self.latest_c[sample.probe_id] = sample.value_c
        if self.tracker.collecting_s is not None and self.tracker.collecting_probes() >= wanted:
            # Every probe has reported this instant: decide it now rather than at the next one.
            self._after(self.tracker.flush(), effects, previous_s)
        return effects

    def _after(
        self,
        events: Sequence[ExcursionOpened | ExcursionClosed],
        effects: list[Effect],
        previous_s: float | None,
    ) -> None:
        for event in events:
            if isinstance(event, ExcursionOpened):
                effects.append(ExcursionStarted(event.excursion))
            else:
                effects.append(ExcursionEnded(event.excursion))
        at_s = self.tracker.last_instant_s
        if at_s is None or at_s == previous_s:
            return
        gap = previous_s is not None and at_s - previous_s > self.rules.recording.max_gap_s
        if self.status != "in_band":
            self.in_band_since_s = None
        elif self.in_band_since_s is None or gap:
            # Pre-cooling time counts from here: a recording gap restarts it (a missing record
            # is never in band).
            self.in_band_since_s = at_s

    def in_band_for_s(self, now_s: float) -> float:
        """How long the compartment has been continuously in band, as of `now_s`."""
        if self.status != "in_band" or self.in_band_since_s is None:
            return 0.0
        return max(0.0, now_s - self.in_band_since_s)

    def saved(self) -> dict[str, Any]:
        """The JSON form stored in `compartment_state` (resumed with `resume`)."""
        return {
            "tracker": self.tracker.state.to_dict(),
            "in_band_since_s": self.in_band_since_s,
            "latest_c": self.latest_c,
            "predicted_at_s": self.predicted_at_s,
            "warned_at_s": self.warned_at_s,
            "prediction_alarm": self.prediction_alarm,
        }


def replay(
    *,
    band: TemperatureClass,
    rules: Rulebook,
    probe_ids: Sequence[str],
    samples: Sequence[Sample],
) -> tuple[CompartmentView, list[Excursion]]:
    """Evaluate a stretch of history from scratch: the view at its end and every excursion
    that started in it (closed ones with their end, an open one last)."""
    view = CompartmentView.resume(band=band, rules=rules, probe_ids=probe_ids, saved=None)
    started: dict[float, Excursion] = {}
    for effect in view.feed(samples):
        started[effect.excursion.start_s] = effect.excursion
    return view, sorted(started.values(), key=lambda e: e.start_s)
