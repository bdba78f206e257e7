"""The persisted state of an `ExcursionTracker`: an immutable snapshot with a JSON form.

`TrackerState.to_dict()` returns plain lists, numbers, strings and None (safe for `json.dumps`
and a JSONB column); `TrackerState.from_dict()` rebuilds it or raises `TrackerStateError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.compliance.errors import TrackerStateError

STATE_FORMAT = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Episode:
    """An out-of-band run being tracked: pending (`confirmed_s` None) or an open excursion."""

    start_s: float
    confirmed_s: float | None
    last_s: float
    out_s: float
    gap_s: float
    max_c: float
    max_at_s: float
    min_c: float
    min_at_s: float
    probe_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackerState:
    """Everything an `ExcursionTracker` needs to resume after a restart (JSON via `to_dict`)."""

    band_name: str
    rulebook_version: str
    collecting_s: float | None = None
    collecting: tuple[tuple[str, float, float], ...] = ()
    latest: tuple[tuple[str, float, float, float], ...] = ()
    last_instant_s: float | None = None
    last_out_of_band: bool = False
    episode: Episode | None = None
    in_band_s: float = 0.0
    out_of_band_s: float = 0.0
    gap_s: float = 0.0
    late_readings: int = 0
    invalid_readings: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (lists, numbers, strings, None) of this state."""
        episode = self.episode
        return {
            "format": STATE_FORMAT,
            "band_name": self.band_name,
            "rulebook_version": self.rulebook_version,
            "collecting_s": self.collecting_s,
            "collecting": [list(item) for item in self.collecting],
            "latest": [list(item) for item in self.latest],
            "last_instant_s": self.last_instant_s,
            "last_out_of_band": self.last_out_of_band,
            "episode": None
            if episode is None
            else {
                name: list(value) if isinstance(value, tuple) else value
                for name, value in _episode_items(episode)
            },
            "in_band_s": self.in_band_s,
            "out_of_band_s": self.out_of_band_s,
            "gap_s": self.gap_s,
            "late_readings": self.late_readings,
            "invalid_readings": self.invalid_readings,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrackerState:
        """Rebuild a state from `to_dict` output; raises `TrackerStateError` when malformed."""
        if data.get("format") != STATE_FORMAT:
            raise TrackerStateError("format", f"expected {STATE_FORMAT}, got {data.get('format')}")
        try:
            raw_episode = data["episode"]
            episode = None
            if raw_episode is not None:
                values = dict(raw_episode)
                values["probe_ids"] = tuple(str(p) for p in values["probe_ids"])
                episode = Episode(**values)
            return cls(
                band_name=str(data["band_name"]),
                rulebook_version=str(data["rulebook_version"]),
                collecting_s=_opt_float(data["collecting_s"]),
                collecting=tuple((str(p), float(a), float(b)) for p, a, b in data["collecting"]),
                latest=tuple(
                    (str(p), float(t), float(a), float(b)) for p, t, a, b in data["latest"]
                ),
                last_instant_s=_opt_float(data["last_instant_s"]),
                last_out_of_band=bool(data["last_out_of_band"]),
                episode=episode,
                in_band_s=float(data["in_band_s"]),
                out_of_band_s=float(data["out_of_band_s"]),
                gap_s=float(data["gap_s"]),
                late_readings=int(data["late_readings"]),
                invalid_readings=int(data["invalid_readings"]),
            )
        except KeyError as exc:
            raise TrackerStateError(str(exc.args[0]), "missing") from exc
        except (TypeError, ValueError) as exc:
            raise TrackerStateError("", f"malformed: {exc}") from exc


def _episode_items(episode: Episode) -> list[tuple[str, Any]]:
    return [(name, getattr(episode, name)) for name in Episode.__dataclass_fields__]


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
