"""The compliance core's errors; each carries the data a caller needs to act on it."""

from __future__ import annotations

from controller.errors import ControllerError


class ComplianceError(ControllerError):
    """Base of every error raised by the GSP compliance core."""


class RulebookError(ComplianceError):
    """The rulebook is invalid; `key` is the dotted path of the offending value."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.message = message


class UnknownTemperatureClassError(ComplianceError, KeyError):
    """No temperature class (or alias) of the rulebook has this name."""

    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        super().__init__(name)
        self.name = name
        self.known = known

    def __str__(self) -> str:
        return f"unknown temperature class {self.name!r} (known: {', '.join(self.known)})"


class TrackerStateError(ComplianceError):
    """A persisted tracker state cannot be restored; `key` names the offending entry."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"tracker state {key}: {message}")
        self.key = key
        self.message = message


class InsufficientDataError(ComplianceError):
    """A statistic needs covered time (two samples no further apart than the gap limit)."""

    def __init__(self, what: str, samples: int) -> None:
        super().__init__(f"{what} needs covered time; got {samples} sample(s) and no covered span")
        self.what = what
        self.samples = samples


class InvalidSampleError(ComplianceError, ValueError):
    """A sample's timestamp is not a finite number."""

    def __init__(self, ts_s: float, probe_id: str) -> None:
        super().__init__(f"sample of probe {probe_id!r} has a non-finite timestamp {ts_s!r}")
        self.ts_s = ts_s
        self.probe_id = probe_id
