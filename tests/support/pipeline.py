"""Helpers to run real agents and a real ingest service inside a test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coldchain_protocol import generate_private_key, public_key_pem
from coldchain_protocol.config import load_settings
from controller.ingest.service import IngestService
from controller.settings import ControllerSettings
from edge_agent.agent import EdgeAgent, run_until_stopped
from edge_agent.clock import SystemClock
from edge_agent.outbox import Outbox
from edge_agent.settings import AgentSettings


@dataclass
class CountingDriver:
    """A test sensor: two probes whose values encode the sample number; logs what it produced."""

    compartment: str = "c1"
    limit: int | None = None
    produced: list[tuple[int, str, float]] = field(default_factory=list)
    calls: int = 0

    def sample(self, now_s: float) -> Sequence[tuple[str, float]]:
        """Return two probe readings until `limit` samples were taken, then nothing."""
        if self.limit is not None and self.calls >= self.limit:
            return []
        self.calls += 1
        ts_ms = int(now_s * 1000)
        values = [
            (f"temp:{self.compartment}:p1", 4.0 + (self.calls % 100) / 100),
            (f"temp:{self.compartment}:p2", 5.0 + (self.calls % 100) / 100),
        ]
        self.produced.extend((ts_ms, ch, v) for ch, v in values)
        return values


def register_vehicle(database_url: str, vehicle_id: str) -> Ed25519PrivateKey:
    """Insert a vehicle with a fresh key straight into the registry tables."""
    key = generate_private_key()
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO vehicles (vehicle_id, display_name, public_key_pem) VALUES (%s, %s, %s)",
            (vehicle_id, vehicle_id, public_key_pem(key)),
        )
    return key


def agent_settings(
    *, vehicle_id: str, mqtt_url: str, topic_prefix: str, workdir: Path, **overrides: object
) -> AgentSettings:
    """Settings for a fast test agent."""
    values: dict[str, object] = {
        "vehicle_id": vehicle_id,
        "mqtt_url": mqtt_url,
        "topic_prefix": topic_prefix,
        "private_key_file": workdir / f"{vehicle_id}.key",
        "outbox_path": workdir / f"{vehicle_id}.db",
        "compartments": [{"compartment_id": "c1", "low_c": 2, "high_c": 8, "probes": ["p1", "p2"]}],
        "sample_interval_s": 0.05,
        "publish_interval_s": 0.05,
        "ack_timeout_s": 2.0,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.5,
        "status_interval_s": 1.0,
        "alarm_delay_s": 0.0,
    }
    values.update(overrides)
    return load_settings(AgentSettings, **values)


def make_agent(
    settings: AgentSettings, key: Ed25519PrivateKey, driver: CountingDriver
) -> EdgeAgent:
    """An agent with its own outbox on disk."""
    outbox = Outbox(settings.outbox_path, budget_bytes=settings.outbox_budget_bytes)
    return EdgeAgent(settings=settings, driver=driver, clock=SystemClock(), key=key, outbox=outbox)


def controller_settings(
    *, database_url: str, mqtt_url: str, topic_prefix: str, **overrides: object
) -> ControllerSettings:
    """Settings for a test controller with fast gap checks."""
    values: dict[str, object] = {
        "database_url": database_url,
        "mqtt_url": mqtt_url,
        "topic_prefix": topic_prefix,
        "share_group": "cctest",
        "gap_grace_s": 1.0,
        "gap_check_interval_s": 0.5,
    }
    values.update(overrides)
    return load_settings(ControllerSettings, **values)


@contextlib.asynccontextmanager
async def running(
    *runners: Callable[[], Awaitable[None]],
) -> AsyncIterator[list[asyncio.Task[None]]]:
    """Run coroutines as tasks for the duration of the block, then cancel them."""
    tasks = [asyncio.create_task(r()) for r in runners]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        _done, pending = await asyncio.wait(tasks, timeout=15)
        if pending:
            stacks = [
                f"{t.get_name()}: "
                + " <- ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in t.get_stack())
                for t in asyncio.all_tasks()
                if not t.done()
            ]
            raise AssertionError("tasks ignored cancellation:\n" + "\n".join(stacks))


async def run_ingest(settings: ControllerSettings) -> IngestService:
    """Create an ingest service (the caller runs `service.run`)."""
    return IngestService(settings=settings, clock=SystemClock())


async def wait_until(
    predicate: Callable[[], bool],
    *,
    timeout_s: float,
    what: str,
    detail: Callable[[], object] | None = None,
) -> None:
    """Poll a condition (test-side only) until it holds or fail with `what` (and `detail()`)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            extra = f": {detail()}" if detail is not None else ""
            raise AssertionError(f"timed out waiting for {what}{extra}")
        await asyncio.sleep(0.05)


def stored_readings(database_url: str, vehicle_id: str) -> list[tuple[int, int, str, float]]:
    """(seq, ts_ms, channel, value) of a vehicle's stored readings, by seq."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT seq, (extract(epoch FROM ts) * 1000)::int8, channel, value FROM readings"
            " WHERE vehicle_id = %s ORDER BY seq",
            (vehicle_id,),
        ).fetchall()
    return [(int(s), int(t), str(c), float(v)) for s, t, c, v in rows]


def assert_exactly_once(database_url: str, vehicle_id: str, driver: CountingDriver) -> None:
    """Every reading the driver produced is stored once, with its original timestamp."""
    rows = stored_readings(database_url, vehicle_id)
    seqs = [r[0] for r in rows]
    assert seqs == list(range(1, len(driver.produced) + 1)), "seqs not 1..N exactly once"
    assert sorted((t, c, v) for _, t, c, v in rows) == sorted(driver.produced)


__all__ = [
    "CountingDriver",
    "agent_settings",
    "assert_exactly_once",
    "controller_settings",
    "make_agent",
    "register_vehicle",
    "run_ingest",
    "run_until_stopped",
    "running",
    "stored_readings",
    "wait_until",
]


def run_coldchain(
    *args: str, database_url: str, mqtt_url: str, topic_prefix: str, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the `coldchain` command (warnings only) against the test's services."""
    env = dict(
        os.environ,
        COLDCHAIN_DATABASE_URL=database_url,
        COLDCHAIN_MQTT_URL=mqtt_url,
        COLDCHAIN_TOPIC_PREFIX=topic_prefix,
    )
    return subprocess.run(
        [str(Path(sys.executable).parent / "coldchain"), "--log-level", "WARNING", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
