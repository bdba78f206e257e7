"""Ingest benchmark: end-to-end rates vs the raw binary-COPY ceiling, measured in one run.

Ceiling: one connection doing binary COPY (write_row) of prepared rows into the same hypertable
(with its one unique index).

End to end, two phases, both with real edge agents (durable SQLite outbox, Ed25519 signing,
MQTT QoS 1, acknowledgement handling) -> the machine's Mosquitto -> a controller process
(checks, COPY, dedup, commit, acknowledgement) -> rows in TimescaleDB. A reading counts once it
is committed, deduplicated and acknowledged; afterwards the run checks exactly-once.

- backlog: every agent starts with a pre-committed backlog in its outbox (as after an outage)
  and drains it at an unlimited backlog rate: the ingest path's capacity.
- live: agents sampling many probes as fast as they can: the whole pipeline, sensors included.

The publishers run on the same 2-core machine as the controller and PostgreSQL.

Usage: python bench/bench_ingest.py [--vehicles N] [--backlog N] [--probes N] [--duration S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from coldchain_protocol.mqtt import clear_retained
from controller.storage.db import temporary_database
from edge_agent.clock import SystemClock
from edge_agent.outbox import Outbox
from simulators.fleet import FleetSpec, SimulatedFleet
from simulators.load import run_load

ADMIN_URL = os.environ.get(
    "COLDCHAIN_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
MQTT_URL = os.environ.get("COLDCHAIN_BENCH_MQTT_URL", "mqtt://127.0.0.1:1883")
COLUMNS = "vehicle_id, seq, ts, channel, value, clock_synced, history, boot_id, received_at"
TYPES = ["text", "int8", "timestamptz", "text", "float8", "bool", "bool", "text", "timestamptz"]


def copy_ceiling(url: str, rows: int) -> float:
    """Rows/s of binary COPY (write_row) of prepared rows into `readings` on one connection."""
    base = datetime.now(UTC) - timedelta(days=1)
    received = datetime.now(UTC)
    prepared = [
        (
            "CEIL",
            seq,
            base + timedelta(milliseconds=seq),
            "temp:c1:p1",
            5.0,
            True,
            False,
            "b",
            received,
        )
        for seq in range(1, rows + 1)
    ]
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy(f"COPY readings ({COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            copy.set_types(TYPES)
            for row in prepared:
                copy.write_row(row)
        conn.commit()
        return rows / (time.perf_counter() - started)


def count_rows(url: str, pattern: str) -> int:
    """Rows stored for vehicles whose id matches a LIKE pattern."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM readings WHERE vehicle_id LIKE %s", (pattern,)
        ).fetchone()
    return int(row[0]) if row else 0


def distinct_rows(url: str, pattern: str) -> int:
    """Distinct (vehicle, seq) pairs stored for matching vehicles."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM (SELECT DISTINCT vehicle_id, seq FROM readings"
            " WHERE vehicle_id LIKE %s) d",
            (pattern,),
        ).fetchone()
    return int(row[0]) if row else 0


@contextmanager
def retained_cleared(prefix: str) -> Iterator[None]:
    """Remove the run's retained status messages from the broker, however the run ends."""
    try:
        yield
    finally:
        clear_retained(MQTT_URL, prefix)


@contextmanager
def controller_process(url: str, prefix: str, group: int) -> Iterator[None]:
    """A controller (ingest only) in its own process, as in production."""
    env = dict(
        os.environ,
        COLDCHAIN_DATABASE_URL=url,
        COLDCHAIN_MQTT_URL=MQTT_URL,
        COLDCHAIN_TOPIC_PREFIX=prefix,
        COLDCHAIN_SHARE_GROUP="bench",
        COLDCHAIN_INGEST_GROUP_MAX_MESSAGES=str(group),
    )
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "coldchain"),
            "--log-level",
            "WARNING",
            "controller",
            "run",
            "--no-api",
        ],
        env=env,
    )
    try:
        time.sleep(1.5)  # connect and subscribe
        yield
    finally:
        process.terminate()
        process.wait(30)


def prefill(workdir: Path, spec: FleetSpec, per_vehicle: int) -> None:
    """Commit a backlog into each vehicle's outbox, as an outage would leave it."""
    start_ms = int((time.time() - 3600) * 1000)
    for vid in spec.vehicle_ids():
        outbox = Outbox(workdir / f"{vid}.outbox.db", budget_bytes=2**40, synchronous="NORMAL")
        chunk = [
            (start_ms + i * 100, f"temp:c1:p{i % spec.probes_per_compartment + 1}", 5.0, True)
            for i in range(per_vehicle)
        ]
        outbox.append(chunk)
        outbox.close()


async def phase(
    *,
    url: str,
    spec: FleetSpec,
    workdir: Path,
    duration_s: float,
    group: int,
    drain_timeout_s: float,
    backlog: int,
) -> dict[str, Any]:
    """Run one fleet against a fresh controller; return rates and the exactly-once check."""
    prefix = f"bench/{uuid.uuid4().hex[:8]}"
    pattern = spec.id_prefix + "%"
    if backlog:
        prefill(workdir, spec, backlog)
    with controller_process(url, prefix, group), retained_cleared(prefix):
        fleet = SimulatedFleet(
            spec=spec, mqtt_url=MQTT_URL, topic_prefix=prefix, workdir=workdir, clock=SystemClock()
        )
        with psycopg.connect(url) as conn:
            fleet.provision(conn)
        samples: list[tuple[float, int]] = []

        async def watch() -> None:
            while True:
                samples.append(
                    (time.monotonic(), await asyncio.to_thread(count_rows, url, pattern))
                )
                await asyncio.sleep(0.5)

        watcher = asyncio.create_task(watch())
        started = time.monotonic()
        report = await run_load(fleet, duration_s=duration_s, drain_timeout_s=drain_timeout_s)
        elapsed = time.monotonic() - started
        watcher.cancel()
        fleet.close()
    stored = count_rows(url, pattern)
    distinct = distinct_rows(url, pattern)
    rates = []
    for i, (t0, n0) in enumerate(samples):
        for t1, n1 in samples[i + 1 :]:
            if t1 - t0 >= 3:
                rates.append((n1 - n0) / (t1 - t0))
                break
    if os.environ.get("BENCH_TIMELINE"):
        t0 = samples[0][0] if samples else 0.0
        print([(round(t - t0, 1), n) for t, n in samples], file=sys.stderr)
    return {
        "vehicles": spec.vehicles,
        "committed": report.total_committed,
        "stored": stored,
        "exactly_once": stored == distinct == report.total_committed,
        "drained": report.drained,
        "elapsed_s": round(elapsed, 1),
        "overall_readings_s": round(stored / elapsed),
        "best_3s_readings_s": round(max(rates)) if rates else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vehicles", type=int, default=40)
    parser.add_argument("--backlog", type=int, default=25_000, help="readings per vehicle")
    parser.add_argument("--probes", type=int, default=45, help="live phase: probes per vehicle")
    parser.add_argument("--interval", type=float, default=0.02, help="live phase: sample interval")
    parser.add_argument("--duration", type=float, default=15.0, help="live phase: seconds")
    parser.add_argument("--batch", type=int, default=2000, help="readings per batch")
    parser.add_argument("--group", type=int, default=100, help="messages per transaction")
    parser.add_argument("--ceiling-rows", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    result: dict[str, Any] = {}
    with temporary_database(ADMIN_URL, prefix="coldchain_bench") as url:
        result["copy_ceiling_rows_s"] = round(copy_ceiling(url, args.ceiling_rows))
        common = {
            "max_batch_readings": args.batch,
            "ack_timeout_s": 60.0,
            "outbox_synchronous": "NORMAL",
            "max_inflight_batches": 8,
        }
        with tempfile.TemporaryDirectory(prefix="coldchain-bench-") as tmp:
            backlog_spec = FleetSpec(
                vehicles=args.vehicles,
                id_prefix="BACKLOG",
                probes_per_compartment=2,
                sample_interval_s=60.0,
                publish_interval_s=60.0,
                backlog_rate_readings_s=1e9,
                **common,
            )
            result["backlog"] = asyncio.run(
                phase(
                    url=url,
                    spec=backlog_spec,
                    workdir=Path(tmp) / "backlog",
                    duration_s=0.5,
                    group=args.group,
                    drain_timeout_s=300,
                    backlog=args.backlog,
                )
            )
            live_spec = FleetSpec(
                vehicles=args.vehicles,
                id_prefix="LIVE",
                probes_per_compartment=args.probes,
                sample_interval_s=args.interval,
                publish_interval_s=args.interval,
                **common,
            )
            result["live"] = asyncio.run(
                phase(
                    url=url,
                    spec=live_spec,
                    workdir=Path(tmp) / "live",
                    duration_s=args.duration,
                    group=args.group,
                    drain_timeout_s=120,
                    backlog=0,
                )
            )
            result["live"]["offered_readings_s"] = round(
                args.vehicles * (args.probes + 5) / args.interval
            )
    ceiling = result["copy_ceiling_rows_s"]
    for key in ("backlog", "live"):
        best = result[key]["best_3s_readings_s"]
        result[key]["ratio_to_ceiling"] = round(best / ceiling, 3) if best else None
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
