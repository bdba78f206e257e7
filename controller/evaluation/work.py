"""The evaluation's work queue: alarm-relevant batches first, link checks in between."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence

from coldchain_protocol import TelemetryBatch


class WorkQueue:
    """Batches waiting for evaluation, alarm-relevant ones first, plus link-check requests."""

    def __init__(self) -> None:
        self._urgent: deque[TelemetryBatch] = deque()
        self._normal: deque[TelemetryBatch] = deque()
        self._link_check = False
        self._busy = False
        self._changed = asyncio.Event()

    def put(self, *, urgent: Sequence[TelemetryBatch], normal: Sequence[TelemetryBatch]) -> None:
        """Queue committed batches."""
        self._urgent.extend(urgent)
        self._normal.extend(normal)
        self._changed.set()

    def put_link_check(self) -> None:
        """Ask for a look at silent vehicles after the urgent work."""
        self._link_check = True
        self._changed.set()

    def pending(self) -> int:
        """Batches waiting."""
        return len(self._urgent) + len(self._normal)

    async def take(self, *, limit: int) -> list[TelemetryBatch] | None:
        """The next group (urgent batches first, at most `limit`), or None for a link check."""
        while True:
            if self._urgent or self._normal:
                source = self._urgent or self._normal
                group = [source.popleft() for _ in range(min(limit, len(source)))]
                self._busy = True
                return group
            if self._link_check:
                self._link_check = False
                self._busy = True
                return None
            self._changed.clear()
            await self._changed.wait()

    def done(self) -> None:
        """The group taken last is finished."""
        self._busy = False
        self._changed.set()

    async def idle(self) -> None:
        """Return once nothing is queued or being evaluated."""
        while self._busy or self._urgent or self._normal:
            self._changed.clear()
            await self._changed.wait()
