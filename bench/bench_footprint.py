"""Edge-agent footprint benchmark: memory, CPU and backlog drain of one real agent process.

The agent runs exactly as deployed: `coldchain-edge run --config FILE` in its own process with
the simulated driver (1 compartment, 8 probes: 8 temperatures + door + power + 3 GPS = 13
channels per sample), sample_interval_s = publish_interval_s = 1.0, the shipped outbox
durability (synchronous=FULL) and the shipped defaults for everything else. It talks to the
machine's Mosquitto and to a controller process (`coldchain controller run --no-api`) that
commits to a throwaway TimescaleDB database and acknowledges, so the ack path (SQLite deletes)
is part of every figure.

Phases, measured in one run:

1. live: resident memory (VmRSS) ~10 s after the agent's first reading is stored, and its peak
   (VmHWM); then CPU seconds (utime + stime from /proc/<pid>/stat) over a window, reported as a
   percentage of one core, with VmRSS sampled every second to show any growth.
2. backlog at the shipped rate: a fresh outbox pre-filled with N hours x 13 channels x 1 Hz of
   readings (timestamps spanning the past N hours, as an outage would leave it); the agent is
   started with the shipped backlog_rate_readings_s and timed until every pre-filled reading is
   acknowledged (polled read-only from the agent's SQLite file). drain_s counts from the agent
   process's start (interpreter start-up and connecting included: see first_backlog_ack_s);
   the agent samples live readings throughout, as it would after an outage.
3. backlog with --backlog-rate: the same with the rate limit raised, to show that the limit, not
   the pipeline, bounds the drain.

After each phase the database must hold every committed reading exactly once: distinct seqs ==
rows == the outbox's highest committed seq (meta next_seq - 1), apart from readings still
unacknowledged in the outbox when the agent was stopped (reported; normally none).

Usage: python bench/bench_footprint.py [--cpu-window S] [--backlog-hours H] [--backlog-rate R]
Quick run: python bench/bench_footprint.py --backlog-hours 1 --cpu-window 15
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import psycopg

from coldchain_protocol import generate_private_key, private_key_pem, public_key_pem
from coldchain_protocol.mqtt import clear_retained
from controller.storage.db import temporary_database
from edge_agent.outbox import Outbox
from edge_agent.settings import AgentSettings

ADMIN_URL = os.environ.get(
    "COLDCHAIN_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
MQTT_URL = os.environ.get("COLDCHAIN_BENCH_MQTT_URL", "mqtt://127.0.0.1:1883")
BIN = Path(sys.executable).parent
CLK_TCK = os.sysconf("SC_CLK_TCK")

PROBES = 8
CHANNELS = PROBES + 5  # temperatures + door + power + gps lat/lon/speed
SAMPLE_INTERVAL_S = 1.0
PUBLISH_INTERVAL_S = 1.0

SHIPPED = AgentSettings.model_fields
SHIPPED_BACKLOG_RATE = float(SHIPPED["backlog_rate_readings_s"].default)
SHIPPED_SYNCHRONOUS = str(SHIPPED["outbox_synchronous"].default)
SHIPPED_BUDGET = int(SHIPPED["outbox_budget_bytes"].default)

# What each pre-filled sample holds: plausible values for every channel the driver reports.
_PREFILL_TEMPLATE: list[tuple[str, float]] = [
    *((f"temp:c1:p{p + 1}", 4.5 + 0.1 * p) for p in range(PROBES)),
    ("door:c1", 0.0),
    ("power", 1.0),
    ("gps:lat", 31.23),
    ("gps:lon", 121.47),
    ("gps:speed", 0.0),
]
assert len(_PREFILL_TEMPLATE) == CHANNELS


class BenchError(RuntimeError):
    """The benchmark could not complete; the message says what was being waited for."""


# -- processes --------------------------------------------------------------------------------


@dataclass(slots=True)
class Proc:
    """A child process with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: TextIO

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise BenchError(f"{self.name} exited with code {code}; its log ends:\n{self.tail()}")

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout_s`; the exit code (None when it had to be killed)."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
                self.log_file.close()
                return None
        self.log_file.close()
        return self.popen.returncode


@contextmanager
def running(name: str, argv: Sequence[str], env: dict[str, str], log_path: Path) -> Iterator[Proc]:
    """Start a process logging to `log_path`; always stop it on the way out."""
    log_file = log_path.open("w")
    popen = subprocess.Popen(
        list(argv), env=env, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    proc = Proc(name, popen, log_path, log_file)
    try:
        yield proc
    finally:
        proc.stop()


def wait_until(
    predicate: Callable[[], bool],
    *,
    timeout_s: float,
    what: str,
    watch: Sequence[Proc] = (),
    interval_s: float = 0.2,
) -> float:
    """Poll until `predicate()` holds; return the seconds waited. Raise BenchError on timeout
    or when a watched process dies."""
    started = time.monotonic()
    while True:
        for proc in watch:
            proc.check_alive()
        if predicate():
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            logs = "".join(f"\n--- {p.name} log ends:\n{p.tail()}" for p in watch)
            raise BenchError(f"timed out after {timeout_s:.0f} s waiting for {what}{logs}")
        time.sleep(interval_s)


def proc_memory(pid: int) -> dict[str, float]:
    """VmRSS, VmHWM, RssAnon and RssFile in MiB, and the thread count, from /proc/<pid>/status."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
        elif key == "Threads":
            out[key] = int(value)
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used (/proc/<pid>/stat utime + stime)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # fields[0] is field 3 (state)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


@contextmanager
def controller_process(url: str, prefix: str, log_path: Path) -> Iterator[Proc]:
    """The controller (ingest only) in its own process, as in production."""
    env = dict(
        os.environ,
        COLDCHAIN_DATABASE_URL=url,
        COLDCHAIN_MQTT_URL=MQTT_URL,
        COLDCHAIN_TOPIC_PREFIX=prefix,
        COLDCHAIN_SHARE_GROUP=f"bench{uuid.uuid4().hex[:8]}",
    )
    argv = [str(BIN / "coldchain"), "--log-level", "WARNING", "controller", "run", "--no-api"]
    with running("controller", argv, env, log_path) as proc:
        time.sleep(1.5)  # connect and subscribe
        proc.check_alive()
        yield proc


# -- one vehicle ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Vehicle:
    """A registered vehicle with its key, agent config and outbox location."""

    vehicle_id: str
    workdir: Path
    config: Path
    outbox_path: Path
    status_path: Path


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def make_vehicle(
    url: str, root: Path, vehicle_id: str, prefix: str, extra: dict[str, object]
) -> Vehicle:
    """Register the vehicle's public key and write its agent config (shipped defaults + extra)."""
    workdir = root / vehicle_id
    workdir.mkdir(parents=True)
    key = generate_private_key()
    key_file = workdir / "vehicle.key"
    key_file.write_bytes(private_key_pem(key))
    key_file.chmod(0o600)
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO vehicles (vehicle_id, display_name, public_key_pem) VALUES (%s, %s, %s)",
            (vehicle_id, f"footprint bench {vehicle_id}", public_key_pem(key)),
        )
    vehicle = Vehicle(
        vehicle_id=vehicle_id,
        workdir=workdir,
        config=workdir / "agent.toml",
        outbox_path=workdir / "outbox.db",
        status_path=workdir / "status.json",
    )
    settings: dict[str, object] = {
        "vehicle_id": vehicle_id,
        "mqtt_url": MQTT_URL,
        "topic_prefix": prefix,
        "private_key_file": key_file,
        "outbox_path": vehicle.outbox_path,
        "status_file": vehicle.status_path,
        "sample_interval_s": SAMPLE_INTERVAL_S,
        "publish_interval_s": PUBLISH_INTERVAL_S,
        **extra,
    }
    lines = [f"{k} = {_toml(v)}" for k, v in settings.items()]
    probes = ", ".join(f'"p{p + 1}"' for p in range(PROBES))
    lines += [
        "",
        "[[compartments]]",
        'compartment_id = "c1"',
        "low_c = 2.0",
        "high_c = 8.0",
        f"probes = [{probes}]",
    ]
    vehicle.config.write_text("\n".join(lines) + "\n")
    return vehicle


@contextmanager
def agent_process(vehicle: Vehicle) -> Iterator[Proc]:
    """`coldchain-edge run --config FILE` as deployed (INFO logging, the shipped default)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLDCHAIN_EDGE_")}
    argv = [str(BIN / "coldchain-edge"), "run", "--config", str(vehicle.config)]
    with running(f"agent {vehicle.vehicle_id}", argv, env, vehicle.workdir / "agent.log") as p:
        yield p


# -- outbox and database ----------------------------------------------------------------------


def outbox_row(path: Path, sql: str, params: Sequence[object] = ()) -> tuple[Any, ...]:
    """One row from the agent's SQLite file, read-only (never writes or checkpoints it)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        row = db.execute(sql, tuple(params)).fetchone()
        return tuple(row) if row is not None else ()
    finally:
        db.close()


def outbox_depth(path: Path) -> int:
    return int(outbox_row(path, "SELECT count(*) FROM outbox")[0])


def outbox_files_bytes(path: Path) -> int:
    total = 0
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            total += Path(str(path) + suffix).stat().st_size
    return total


def stored_count(url: str, vehicle_id: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM readings WHERE vehicle_id = %s", (vehicle_id,)
        ).fetchone()
    return int(row[0]) if row else 0


def prefill(path: Path, hours: float) -> dict[str, Any]:
    """Commit `hours` of 1 Hz samples (13 channels each, timestamps over the past `hours`)."""
    seconds = round(hours * 3600)
    start_ms = int(time.time() * 1000) - seconds * 1000
    outbox = Outbox(path, budget_bytes=2**40, synchronous="NORMAL")
    started = time.monotonic()
    try:
        chunk_s = 3600
        for first in range(0, seconds, chunk_s):
            outbox.append(
                [
                    (start_ms + s * 1000, channel, value, True)
                    for s in range(first, min(first + chunk_s, seconds))
                    for channel, value in _PREFILL_TEMPLATE
                ]
            )
        stats = outbox.stats()
    finally:
        outbox.close()
    size = outbox_files_bytes(path)
    return {
        "readings": stats.depth,
        "prefill_s": round(time.monotonic() - started, 1),
        "outbox_file_bytes": size,
        "outbox_file_mib": round(size / 2**20, 1),
        "bytes_per_reading": round(size / max(1, stats.depth), 1),
        "outbox_used_bytes": stats.used_bytes,
        "shipped_budget_bytes": SHIPPED_BUDGET,
        "fits_shipped_budget": stats.used_bytes < SHIPPED_BUDGET,
    }


def quiesce_and_stop(agent: Proc, vehicle: Vehicle) -> dict[str, Any]:
    """Stop the agent just after its outbox emptied (so nothing is left unacknowledged)."""
    with contextlib.suppress(BenchError):
        wait_until(
            lambda: outbox_depth(vehicle.outbox_path) == 0,
            timeout_s=30,
            what="an empty outbox",
            watch=[agent],
            interval_s=0.02,
        )
    code = agent.stop()
    return {"exit_code": code, "clean_exit": code == 0}


def verify(url: str, vehicle: Vehicle) -> dict[str, Any]:
    """Exactly-once: the database against the outbox's committed seqs and what it still holds."""
    (next_seq,) = outbox_row(vehicle.outbox_path, "SELECT value FROM meta WHERE key='next_seq'")
    max_seq = int(next_seq) - 1
    db = sqlite3.connect(f"file:{vehicle.outbox_path}?mode=ro", uri=True)
    try:
        left = [int(r[0]) for r in db.execute("SELECT seq FROM outbox")]
    finally:
        db.close()

    def settled() -> bool:  # the controller may still be committing the agent's last batch
        first = stored_count(url, vehicle.vehicle_id)
        time.sleep(1.0)
        return stored_count(url, vehicle.vehicle_id) == first

    wait_until(settled, timeout_s=30, what="the stored count to settle")
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM readings"
            " WHERE vehicle_id = %s",
            (vehicle.vehicle_id,),
        ).fetchone()
        assert row is not None
        count, distinct, low, high = (int(v) if v is not None else None for v in row)
        left_stored_row = conn.execute(
            "SELECT count(DISTINCT seq) FROM readings WHERE vehicle_id = %s AND seq = ANY(%s)",
            (vehicle.vehicle_id, left),
        ).fetchone()
        gaps = conn.execute(
            "SELECT count(*), coalesce(sum(resend_requests), 0) FROM sequence_gaps"
            " WHERE vehicle_id = %s",
            (vehicle.vehicle_id,),
        ).fetchone()
        dead = conn.execute(
            "SELECT count(*) FROM dead_letters WHERE vehicle_id = %s", (vehicle.vehicle_id,)
        ).fetchone()
    assert count is not None and distinct is not None
    left_stored = int(left_stored_row[0]) if left_stored_row else 0
    lost = max_seq - distinct - (len(left) - left_stored)
    in_range = low is None or (low >= 1 and high is not None and high <= max_seq)
    return {
        "committed_max_seq": max_seq,
        "stored": count,
        "distinct_seqs": distinct,
        "left_in_outbox": len(left),
        "lost": lost,
        "exactly_once": count == distinct and in_range and lost == 0,
        "all_stored": count == distinct == max_seq,
        "gaps_chased": int(gaps[0]) if gaps else 0,
        "resend_requests_sent": int(gaps[1]) if gaps else 0,
        "dead_letters": int(dead[0]) if dead else 0,
    }


def last_status(vehicle: Vehicle) -> dict[str, Any]:
    """The agent's last status file (written every status_interval_s), if any."""
    try:
        status: dict[str, Any] = json.loads(vehicle.status_path.read_text())
    except (OSError, ValueError):
        return {}
    keys = (
        "sampled",
        "refused",
        "published_batches",
        "published_readings",
        "acked_readings",
        "reconnects",
        "resend_requests",
        "expired_batches",
        "rejected_batches",
    )
    return {k: status[k] for k in keys if k in status}


# -- phases -----------------------------------------------------------------------------------


def live_phase(
    url: str, root: Path, prefix: str, controller: Proc, *, steady_s: float, window_s: float
) -> dict[str, Any]:
    """Memory after ~steady_s connected, then CPU over window_s, acknowledged by the controller."""
    vehicle = make_vehicle(url, root, "FPLIVE", prefix, {})
    with agent_process(vehicle) as agent:
        watch = [agent, controller]
        started = time.monotonic()
        wait_until(
            lambda: stored_count(url, vehicle.vehicle_id) > 0,
            timeout_s=30,
            what="the agent's first readings stored and acknowledged",
            watch=watch,
        )
        connected_s = time.monotonic() - started
        time.sleep(steady_s)
        agent.check_alive()
        steady = proc_memory(agent.pid)
        stored0, cpu0 = stored_count(url, vehicle.vehicle_id), cpu_seconds(agent.pid)
        t0 = time.monotonic()
        rss: list[float] = []
        depth_max = 0
        while time.monotonic() - t0 < window_s:
            time.sleep(1.0)
            for proc in watch:
                proc.check_alive()
            rss.append(proc_memory(agent.pid)["VmRSS"])
            depth_max = max(depth_max, outbox_depth(vehicle.outbox_path))
        elapsed = time.monotonic() - t0
        cpu = cpu_seconds(agent.pid) - cpu0
        stored = stored_count(url, vehicle.vehicle_id) - stored0
        end = proc_memory(agent.pid)
        status = last_status(vehicle)
        stop = quiesce_and_stop(agent, vehicle)
    return {
        "connect_to_first_stored_s": round(connected_s, 1),
        "memory_mib_steady": steady,
        "memory_mib_end": end,
        "rss_mib_over_window": {
            "min": min(rss),
            "max": max(rss),
            "first": rss[0],
            "last": rss[-1],
        },
        "cpu_window_s": round(elapsed, 1),
        "cpu_seconds": round(cpu, 3),
        "cpu_percent_of_one_core": round(100 * cpu / elapsed, 2),
        "cpu_ms_per_sample": round(1000 * cpu / (elapsed / SAMPLE_INTERVAL_S), 2),
        "stored_in_window": stored,
        "stored_readings_s": round(stored / elapsed, 1),
        "max_outbox_depth_seen": depth_max,
        "agent_status": status,
        **stop,
        "check": verify(url, vehicle),
    }


def drain_phase(
    url: str,
    root: Path,
    prefix: str,
    controller: Proc,
    *,
    vehicle_id: str,
    hours: float,
    rate: float | None,
    timeout_s: float | None,
) -> dict[str, Any]:
    """Pre-fill `hours` of backlog, start the agent, time until every pre-filled reading is gone."""
    extra: dict[str, object] = {"status_interval_s": 5.0}  # counters for the report
    if rate is not None:
        extra["backlog_rate_readings_s"] = rate
    effective_rate = rate if rate is not None else SHIPPED_BACKLOG_RATE
    vehicle = make_vehicle(url, root, vehicle_id, prefix, extra)
    filled = prefill(vehicle.outbox_path, hours)
    backlog = int(filled["readings"])
    expected_s = backlog / effective_rate
    limit_s = timeout_s if timeout_s is not None else max(120.0, 3 * expected_s + 60)
    remaining_timeline: list[tuple[float, int]] = []
    with agent_process(vehicle) as agent:
        watch = [agent, controller]
        started = time.monotonic()
        rss_max = 0.0
        next_mark = 0.0
        first_ack_s: float | None = None

        def drained() -> bool:
            nonlocal rss_max, next_mark, first_ack_s
            rss_max = max(rss_max, proc_memory(agent.pid)["VmRSS"])
            now = time.monotonic() - started
            if now >= next_mark:
                left = outbox_row(
                    vehicle.outbox_path, "SELECT count(*) FROM outbox WHERE seq <= ?", [backlog]
                )[0]
                remaining_timeline.append((round(now, 1), int(left)))
                next_mark += max(5.0, limit_s / 40)
            (oldest,) = outbox_row(vehicle.outbox_path, "SELECT min(seq) FROM outbox")
            if first_ack_s is None and (oldest is None or int(oldest) > 1):
                first_ack_s = now
            return oldest is None or int(oldest) > backlog

        try:
            drain_s = wait_until(
                drained,
                timeout_s=limit_s,
                what=f"{backlog} backlog readings to drain at {effective_rate:g} readings/s"
                f" (expected ~{expected_s:.0f} s)",
                watch=watch,
                interval_s=0.25,
            )
        except BenchError as exc:
            raise BenchError(
                f"{exc}\nbacklog left over time (s, readings): {remaining_timeline}"
            ) from exc
        cpu = cpu_seconds(agent.pid)
        memory = proc_memory(agent.pid)
        size_after = outbox_files_bytes(vehicle.outbox_path)
        time.sleep(5.5)  # one more status file with the final counters
        status = last_status(vehicle)
        stop = quiesce_and_stop(agent, vehicle)
    return {
        "backlog_hours": hours,
        "backlog_rate_readings_s": effective_rate,
        "rate_source": "shipped default" if rate is None else "--backlog-rate",
        "prefill": filled,
        "drain_s": round(drain_s, 1),
        "first_backlog_ack_s": None if first_ack_s is None else round(first_ack_s, 1),
        "expected_at_rate_s": round(expected_s, 1),
        "effective_readings_s": round(backlog / drain_s),
        "rate_utilisation": round(expected_s / drain_s, 3),
        "agent_cpu_seconds": round(cpu, 1),
        "agent_cpu_percent_of_one_core": round(100 * cpu / drain_s, 1),
        "memory_mib_at_drained": memory,
        "rss_mib_max_polled": rss_max,
        "outbox_file_mib_after_drain": round(size_after / 2**20, 1),
        "remaining_over_time_s": remaining_timeline,
        "agent_status": status,
        **stop,
        "check": verify(url, vehicle),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cpu-window", type=float, default=60.0, help="CPU window, seconds")
    parser.add_argument(
        "--steady", type=float, default=10.0, help="seconds after connecting before memory"
    )
    parser.add_argument("--backlog-hours", type=float, default=24.0, help="hours of backlog")
    parser.add_argument(
        "--backlog-rate",
        type=float,
        default=50_000.0,
        help="second drain's backlog_rate_readings_s (0: skip that drain)",
    )
    parser.add_argument(
        "--drain-timeout", type=float, help="seconds per drain (default: 3x expected + 60)"
    )
    parser.add_argument("--skip-live", action="store_true", help="only the backlog drains")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.cpu_window <= 0 or args.backlog_hours <= 0 or args.backlog_rate < 0:
        parser.error("--cpu-window and --backlog-hours must be > 0, --backlog-rate >= 0")

    prefix = f"bench/{uuid.uuid4().hex[:8]}"
    root = Path(tempfile.mkdtemp(prefix="coldchain-footprint-"))
    result: dict[str, Any] = {
        "host": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
        },
        "agent": {
            "channels_per_sample": CHANNELS,
            "sample_interval_s": SAMPLE_INTERVAL_S,
            "publish_interval_s": PUBLISH_INTERVAL_S,
            "outbox_synchronous": SHIPPED_SYNCHRONOUS,
            "max_batch_readings": SHIPPED["max_batch_readings"].default,
            "max_inflight_batches": SHIPPED["max_inflight_batches"].default,
            "shipped_backlog_rate_readings_s": SHIPPED_BACKLOG_RATE,
        },
    }
    try:
        with (
            temporary_database(ADMIN_URL, prefix="coldchain_bench") as url,
            controller_process(url, prefix, root / "controller.log") as controller,
        ):
            if not args.skip_live:
                result["live"] = live_phase(
                    url, root, prefix, controller, steady_s=args.steady, window_s=args.cpu_window
                )
            result["backlog_shipped_rate"] = drain_phase(
                url,
                root,
                prefix,
                controller,
                vehicle_id="FPDRAIN",
                hours=args.backlog_hours,
                rate=None,
                timeout_s=args.drain_timeout,
            )
            if args.backlog_rate:
                result["backlog_raised_rate"] = drain_phase(
                    url,
                    root,
                    prefix,
                    controller,
                    vehicle_id="FPFAST",
                    hours=args.backlog_hours,
                    rate=args.backlog_rate,
                    timeout_s=args.drain_timeout,
                )
    except BenchError as exc:
        print(f"bench_footprint: {exc}", file=sys.stderr)
        print(f"bench_footprint: logs kept in {root}", file=sys.stderr)
        args.keep = True
        raise SystemExit(1) from exc
    finally:
        clear_retained(MQTT_URL, prefix)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    checks = [result[k]["check"]["exactly_once"] for k in result if "check" in result[k]]
    result["all_exactly_once"] = all(checks)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if not all(checks):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
