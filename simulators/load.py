"""Load mode: a large fleet for a bounded time, then a drain; reports what it sent.

Benchmarks compare the report with what arrived in the database.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from simulators.fleet import SimulatedFleet


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What the fleet committed to its outboxes, and what the controller acknowledged."""

    vehicles: int
    committed: dict[str, int]  # vehicle id -> highest seq committed (gap-free from 1)
    acked: int
    refused: int
    sampling_s: float
    drained: bool
    drain_s: float

    @property
    def total_committed(self) -> int:
        """Readings committed by every agent."""
        return sum(self.committed.values())


async def run_load(
    fleet: SimulatedFleet, *, duration_s: float, drain_timeout_s: float
) -> LoadReport:
    """Sample for `duration_s` real seconds, then stop sampling and wait for the outboxes to drain."""
    task = asyncio.create_task(fleet.run(), name="load-fleet")
    started = time.monotonic()
    try:
        await asyncio.sleep(duration_s)
        sampling_s = time.monotonic() - started
        drain_start = time.monotonic()
        drained = await fleet.drain(timeout_s=drain_timeout_s)
        drain_s = time.monotonic() - drain_start
    finally:
        fleet.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    totals = fleet.totals()
    return LoadReport(
        vehicles=len(fleet.agents),
        committed={a.settings.vehicle_id: a.outbox.max_seq() for a in fleet.agents},
        acked=totals.acked,
        refused=totals.refused,
        sampling_s=sampling_s,
        drained=drained,
        drain_s=drain_s,
    )
