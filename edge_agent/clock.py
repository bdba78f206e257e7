"""Clocks: the system's, and a scaled one that simulations share with the controller."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class Clock(Protocol):
    """Wall time (UTC seconds since the epoch), its sync state, and sleeping in that time."""

    def now_s(self) -> float:
        """Current UTC time in seconds."""
        ...

    def synced(self) -> bool:
        """Whether the clock is synchronised (NTP/GPS); recorded with every reading."""
        ...

    async def sleep(self, duration_s: float) -> None:
        """Sleep for `duration_s` of this clock's seconds."""
        ...

    async def wait(self, event: asyncio.Event, timeout_s: float) -> bool:
        """Wait for `event` at most `timeout_s` of this clock's seconds; True when it was set."""
        ...


async def _wait_real(event: asyncio.Event, timeout_s: float) -> bool:
    # asyncio.timeout, not wait_for: on Python 3.11 wait_for drops a cancellation that arrives
    # as the event fires (CPython gh-86296), and the waiting loop would never stop.
    try:
        async with asyncio.timeout(max(0.0, timeout_s)):
            await event.wait()
    except TimeoutError:
        return False
    return True


@functools.cache
def _adjtimex() -> Callable[[ctypes.Array[ctypes.c_char]], int] | None:
    """libc's adjtimex, looked up once (find_library runs ldconfig: never per reading)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        function: Callable[[ctypes.Array[ctypes.c_char]], int] = libc.adjtimex
    except (OSError, AttributeError):
        return None
    return function


@dataclass(slots=True)
class SystemClock:
    """The host's clock. `synced` comes from the kernel's NTP state where it can be read."""

    def now_s(self) -> float:
        """Current UTC time in seconds."""
        return time.time()

    def synced(self) -> bool:
        """Ask the kernel whether its clock is synchronised (adjtimex: not TIME_ERROR)."""
        adjtimex = _adjtimex()
        if adjtimex is None:
            return False
        buf = ctypes.create_string_buffer(512)  # struct timex, modes = 0: read only
        time_error = 5
        return bool(adjtimex(buf) != time_error)

    async def sleep(self, duration_s: float) -> None:
        """Sleep in real time."""
        await asyncio.sleep(max(0.0, duration_s))

    async def wait(self, event: asyncio.Event, timeout_s: float) -> bool:
        """Wait for `event` at most `timeout_s` real seconds."""
        return await _wait_real(event, timeout_s)


@dataclass(slots=True)
class ScaledClock:
    """Simulated time running `speed` times faster than real time from `start_s`."""

    speed: float = 1.0
    start_s: float = field(default_factory=time.time)
    _mono0: float = field(default_factory=time.monotonic)

    def now_s(self) -> float:
        """Simulated UTC time in seconds."""
        return self.start_s + (time.monotonic() - self._mono0) * self.speed

    def synced(self) -> bool:
        """A simulated clock is always in sync."""
        return True

    async def sleep(self, duration_s: float) -> None:
        """Sleep for `duration_s` simulated seconds."""
        await asyncio.sleep(max(0.0, duration_s) / self.speed)

    async def wait(self, event: asyncio.Event, timeout_s: float) -> bool:
        """Wait for `event` at most `timeout_s` simulated seconds."""
        return await _wait_real(event, timeout_s / self.speed)
