"""Local alarms: decided on the gateway from its own readings, so they fire while offline.

`LocalAlarmMonitor` is pure (time is passed in); outputs are pluggable.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

log = logging.getLogger(__name__)

AlarmKind = Literal["excursion", "power_loss", "outbox_full"]


@dataclass(frozen=True, slots=True)
class Band:
    """A compartment's allowed temperature band, in °C."""

    low_c: float
    high_c: float


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """An alarm raised or cleared on the gateway."""

    kind: AlarmKind
    subject: str
    raised: bool
    at_s: float
    detail: str


class AlarmOutput(Protocol):
    """Where local alarms go: a log, a buzzer, a relay, a command."""

    async def emit(self, event: AlarmEvent) -> None:
        """Deliver one alarm event."""
        ...


class LogAlarmOutput:
    """Writes alarms to the agent's log (always on)."""

    async def emit(self, event: AlarmEvent) -> None:
        """Log the event at ERROR when raised, WARNING when cleared."""
        level = logging.ERROR if event.raised else logging.WARNING
        state = "RAISED" if event.raised else "cleared"
        log.log(level, "local alarm %s %s %s: %s", event.kind, event.subject, state, event.detail)


@dataclass(slots=True)
class CommandAlarmOutput:
    """Runs a command (e.g. a siren/relay script) with the alarm in COLDCHAIN_ALARM_* variables."""

    argv: Sequence[str]
    timeout_s: float = 10.0

    async def emit(self, event: AlarmEvent) -> None:
        """Run the command; a failing command is logged, never fatal to the agent."""
        env = dict(os.environ)
        env.update(
            COLDCHAIN_ALARM_KIND=event.kind,
            COLDCHAIN_ALARM_SUBJECT=event.subject,
            COLDCHAIN_ALARM_STATE="raised" if event.raised else "cleared",
            COLDCHAIN_ALARM_DETAIL=event.detail,
        )
        try:
            proc = await asyncio.create_subprocess_exec(*self.argv, env=env)
        except OSError as exc:
            log.error("alarm command %s failed to start: %s", list(self.argv), exc)
            return
        try:
            async with asyncio.timeout(self.timeout_s):
                code = await proc.wait()
        except TimeoutError:
            log.error(
                "alarm command %s timed out after %ss: killed", list(self.argv), self.timeout_s
            )
            proc.kill()
            await proc.wait()
            return
        if code != 0:
            log.error("alarm command %s exited with %s", list(self.argv), code)


@dataclass(slots=True)
class CallbackAlarmOutput:
    """Hands alarms to a function (simulators and tests observe alarms this way)."""

    callback: Callable[[AlarmEvent], None]

    async def emit(self, event: AlarmEvent) -> None:
        """Call the callback."""
        self.callback(event)


@dataclass(slots=True)
class _CompartmentState:
    out_since_s: float | None = None
    alarmed: bool = False


@dataclass(slots=True)
class LocalAlarmMonitor:
    """Excursion and power-loss alarms with an alarm delay and a clearing hysteresis."""

    bands: dict[str, Band]
    alarm_delay_s: float = 60.0
    hysteresis_c: float = 0.3
    _state: dict[str, _CompartmentState] = field(default_factory=dict)
    _power_lost: bool = False

    def out_of_band(self) -> bool:
        """Whether any compartment is out of its band now (the agent tightens its cadence)."""
        return any(s.out_since_s is not None for s in self._state.values())

    def update(self, now_s: float, readings: Sequence[tuple[str, float]]) -> list[AlarmEvent]:
        """Feed one sample of every channel; return alarms raised or cleared by it."""
        events: list[AlarmEvent] = []
        worst: dict[str, float] = {}
        for channel, value in readings:
            if channel.startswith("temp:"):
                compartment = channel.split(":")[1]
                band = self.bands.get(compartment)
                if band is None:
                    continue
                # Distance outside the band, negative when inside: the worst probe decides.
                distance = max(band.low_c - value, value - band.high_c)
                worst[compartment] = max(worst.get(compartment, distance), distance)
            elif channel == "power":
                lost = value < 0.5
                if lost != self._power_lost:
                    self._power_lost = lost
                    events.append(
                        AlarmEvent(
                            "power_loss",
                            "power",
                            lost,
                            now_s,
                            "refrigeration unit lost power" if lost else "power restored",
                        )
                    )
        for compartment, distance in worst.items():
            state = self._state.setdefault(compartment, _CompartmentState())
            band = self.bands[compartment]
            if distance > 0:
                if state.out_since_s is None:
                    state.out_since_s = now_s
                if not state.alarmed and now_s - state.out_since_s >= self.alarm_delay_s:
                    state.alarmed = True
                    events.append(
                        AlarmEvent(
                            "excursion",
                            compartment,
                            True,
                            now_s,
                            f"out of {band.low_c}..{band.high_c} °C by {distance:.2f} °C",
                        )
                    )
            elif distance <= -self.hysteresis_c or not state.alarmed:
                if state.alarmed:
                    events.append(
                        AlarmEvent(
                            "excursion",
                            compartment,
                            False,
                            now_s,
                            f"back inside {band.low_c}..{band.high_c} °C",
                        )
                    )
                state.out_since_s = None
                state.alarmed = False
        return events
