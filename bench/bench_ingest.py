"""Ingest benchmark: end-to-end rate vs the raw binary-COPY ceiling, in one run.

End to end = real edge agents (outbox, signing, MQTT QoS 1) -> the machine's Mosquitto -> a
controller process (checks, COPY, dedup, commit, acknowledgement) -> rows in TimescaleDB; a
reading counts once it is committed, deduplicated and acknowledged. The ceiling is one
connection doing binary COPY (write_row) of prepared rows into the same hypertable.

Usage: python bench/bench_ingest.py [--vehicles N] [--probes N] [--interval S] [--duration S]
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
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from controller.storage.db import migrate
from edge_agent.clock import SystemClock
from simulators.fleet import FleetSpec, SimulatedFleet
from simulators.load import run_load

ADMIN_URL = os.environ.get(
    "COLDCHAIN_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
MQTT_URL = os.environ.get("COLDCHAIN_BENCH_MQTT_URL", "mqtt://127.0.0.1:1883")


def copy_ceiling(url: str, rows: int) -> float:
    """Rows/s of binary COPY (write_row) into `readings` on one connection."""
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
    types = ["text", "int8", "timestamptz", "text", "float8", "bool", "bool", "text", "timestamptz"]
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY readings (vehicle_id, seq, ts, channel, value, clock_synced, history, boot_id,"
                " received_at) FROM STDIN (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(types)
            for row in prepared:
                copy.write_row(row)
        conn.commit()
        return rows / (time.perf_counter() - started)


def count_rows(url: str, prefix: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM readings WHERE vehicle_id LIKE %s", (prefix + "%",)
        ).fetchone()
    return int(row[0]) if row else 0


async def end_to_end(args: argparse.Namespace, url: str, workdir: Path) -> dict[str, object]:
    prefix = f"bench/{uuid.uuid4().hex[:8]}"
    env = dict(
        os.environ,
        COLDCHAIN_DATABASE_URL=url,
        COLDCHAIN_MQTT_URL=MQTT_URL,
        COLDCHAIN_TOPIC_PREFIX=prefix,
        COLDCHAIN_SHARE_GROUP="bench",
        COLDCHAIN_INGEST_GROUP_MAX_MESSAGES=str(args.group),
    )
    controller = subprocess.Popen(  # noqa: ASYNC220 - started once, before the load
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
        spec = FleetSpec(
            vehicles=args.vehicles,
            id_prefix="LOAD",
            probes_per_compartment=args.probes,
            sample_interval_s=args.interval,
            publish_interval_s=args.interval,
            max_batch_readings=args.batch,
            ack_timeout_s=30.0,
            outbox_synchronous=args.sync,
        )
        fleet = SimulatedFleet(
            spec=spec, mqtt_url=MQTT_URL, topic_prefix=prefix, workdir=workdir, clock=SystemClock()
        )
        with psycopg.connect(url) as conn:
            fleet.provision(conn)
        await asyncio.sleep(1.0)  # the controller subscribes
        samples: list[tuple[float, int]] = []

        async def watch() -> None:
            while True:
                samples.append((time.monotonic(), await asyncio.to_thread(count_rows, url, "LOAD")))
                await asyncio.sleep(1.0)

        watcher = asyncio.create_task(watch())
        started = time.monotonic()
        report = await run_load(fleet, duration_s=args.duration, drain_timeout_s=args.drain_timeout)
        finished = time.monotonic()
        watcher.cancel()
        fleet.close()
    finally:
        controller.terminate()
        controller.wait(30)
    stored = count_rows(url, "LOAD")
    with psycopg.connect(url) as conn:
        distinct = conn.execute(
            "SELECT count(*) FROM (SELECT DISTINCT vehicle_id, seq FROM readings"
            " WHERE vehicle_id LIKE 'LOAD%') d"
        ).fetchone()
    # Steady state: the best 5-second window while sampling.
    window = []
    for i, (t0, n0) in enumerate(samples):
        for t1, n1 in samples[i + 1 :]:
            if t1 - t0 >= 5:
                window.append((n1 - n0) / (t1 - t0))
                break
    return {
        "vehicles": args.vehicles,
        "channels_per_vehicle": args.probes + 5,
        "offered_readings_s": round(args.vehicles * (args.probes + 5) / args.interval),
        "committed": report.total_committed,
        "stored": stored,
        "distinct": int(distinct[0]) if distinct else -1,
        "exactly_once": stored == report.total_committed == (int(distinct[0]) if distinct else -1),
        "drained": report.drained,
        "overall_readings_s": round(stored / (finished - started)),
        "steady_readings_s": round(max(window)) if window else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vehicles", type=int, default=100)
    parser.add_argument(
        "--probes", type=int, default=45, help="probes per vehicle (+5 other channels)"
    )
    parser.add_argument("--interval", type=float, default=0.02, help="sample interval, seconds")
    parser.add_argument("--batch", type=int, default=1000, help="readings per batch")
    parser.add_argument(
        "--group", type=int, default=200, help="messages per controller transaction"
    )
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--ceiling-rows", type=int, default=1_000_000)
    parser.add_argument(
        "--sync",
        choices=["FULL", "NORMAL"],
        default="NORMAL",
        help="agent outbox SQLite synchronous mode",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    name = f"coldchain_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        migrate(url)
        ceiling = copy_ceiling(url, args.ceiling_rows)
        with tempfile.TemporaryDirectory(prefix="coldchain-bench-") as tmp:
            e2e = asyncio.run(end_to_end(args, url, Path(tmp)))
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    result = {"copy_ceiling_rows_s": round(ceiling), **e2e}
    steady = e2e["steady_readings_s"]
    result["ratio_steady_to_ceiling"] = (
        round(steady / ceiling, 3) if isinstance(steady, int) else None
    )
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
