"""Alarm latency with a 2,000-vehicle fleet: from the moment an out-of-range reading is
published to the moment its excursion alarm is visible through the API.

A separate `coldchain controller run` process (ingest, GSP evaluation, escalation, API) serves a
fleet of real edge agents sampling every 30 s in real time. At random moments a probe of a
random van jumps to 15 °C. In a separate watcher process (away from the fleet's busy one), an
observer subscribed to the telemetry records when the broker delivers the first batch carrying
that reading (the publish moment) and a poller asks the API for excursion alarms every 20 ms
and records when each appears. The bench rulebook sets the alarm
delay to 0 so the first out-of-range reading is the one that raises the alarm (with a delay,
the latency counts from the reading that completes it). Reports p50/p99/max.

    python bench/bench_alerts.py [--vehicles 2000] [--events 60] [--seconds 120]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import resource
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psycopg
import yaml

from coldchain_protocol import Topics
from coldchain_protocol.messages import decode_batch
from coldchain_protocol.mqtt import clear_retained
from coldchain_protocol.signing import split_signed
from controller.compliance.rulebook import SHIPPED_RULEBOOK
from controller.storage.db import temporary_database
from edge_agent.clock import ScaledClock
from edge_agent.sensors.thermal import Faults, ProbeStuck
from simulators.fleet import FleetSpec, SimulatedFleet

ADMIN_URL = os.environ.get(
    "COLDCHAIN_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
MQTT_URL = os.environ.get("COLDCHAIN_BENCH_MQTT_URL", "mqtt://127.0.0.1:1883")
HOT_C = 15.0


def bench_rulebook(folder: Path) -> Path:
    """The shipped rulebook with no alarm delay (one out-of-range reading raises the alarm)."""
    data = yaml.safe_load(SHIPPED_RULEBOOK.read_text(encoding="utf-8"))
    data["version"] = f"{data['version']}-bench-nodelay"
    data["excursion_defaults"]["alarm_delay_s"] = 0
    path = folder / "rulebook.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class Observer:
    """Subscribed to every van's telemetry from its own network thread (clear of the fleet's
    busy event loop): notes the wall-clock time the broker delivers the first batch carrying a
    hot reading of each target van, i.e. the moment that reading was published."""

    def __init__(self, topics: Topics, targets: dict[str, float]) -> None:
        self.published: dict[str, float] = {}
        self.received = 0
        self.connects = 0
        self._targets = targets
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            protocol=mqtt.MQTTv5,
            client_id=f"obs-{uuid.uuid4().hex[:8]}",
        )
        self._topic = topics.prefix + "/v1/+/telemetry"
        self._client.on_message = self._on_message
        self._client.on_connect = self._on_connect
        self._client.connect("127.0.0.1", 1883, keepalive=600)
        self._client.loop_start()

    def _on_connect(self, client: mqtt.Client, *_: object) -> None:
        # (Re)subscribe on every connection: a reconnect starts a clean session.
        self.connects += 1
        client.subscribe(self._topic, qos=0)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        now = time.time()
        self.received += 1
        vehicle_id = message.topic.split("/")[-2]
        if vehicle_id not in self._targets or vehicle_id in self.published:
            return
        body, _ = split_signed(bytes(message.payload))
        batch = decode_batch(body)
        if any(r.channel.startswith("temp:") and r.value >= HOT_C - 0.5 for r in batch.readings):
            self.published[vehicle_id] = now

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self._client.loop_stop()
        self._client.disconnect()


def poll(
    base: str,
    seen: dict[str, float],
    stop: threading.Event,
    targets: dict[str, float],
    injected: threading.Event,
    all_seen: threading.Event,
) -> None:
    """In its own thread (clear of the fleet's busy event loop): ask the API for excursion
    alarms every 20 ms and note the wall-clock time each vehicle's first appears."""
    with httpx.Client(base_url=base, timeout=10) as http:
        while not stop.is_set():
            answer = http.get("/api/v1/alarms", params={"kind": "excursion", "limit": 5000})
            now = time.time()
            for alarm in answer.json():
                seen.setdefault(alarm["vehicle_id"], now)
            if injected.is_set() and set(targets) <= set(seen):
                all_seen.set()
            time.sleep(0.02)


def watch(
    prefix: str, base: str, victims: list[str], timeout_s: float, out: multiprocessing.Queue[Any]
) -> None:
    """The watcher process: observer and poller, away from the fleet's busy process, so
    neither the publish moment nor the moment the API shows the alarm is noted late."""
    targets = dict.fromkeys(victims, 0.0)
    observer = Observer(Topics(prefix), targets)
    seen: dict[str, float] = {}
    stop, injected, all_seen = threading.Event(), threading.Event(), threading.Event()
    injected.set()
    poller = threading.Thread(target=poll, args=(base, seen, stop, targets, injected, all_seen))
    poller.start()
    all_seen.wait(timeout_s)
    stop.set()
    poller.join(10)
    observer.close()
    out.put(
        {
            "published": observer.published,
            "seen": seen,
            "observed": {"received": observer.received, "connects": observer.connects},
        }
    )


async def run(args: argparse.Namespace, url: str, workdir: Path) -> dict[str, object]:
    """Provision the fleet, start the controller, inject the events, measure."""
    prefix = f"bench-alerts-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = dict(
        os.environ,
        COLDCHAIN_DATABASE_URL=url,
        COLDCHAIN_MQTT_URL=MQTT_URL,
        COLDCHAIN_TOPIC_PREFIX=prefix,
        COLDCHAIN_API_PORT=str(port),
        COLDCHAIN_RULEBOOK_FILE=str(bench_rulebook(workdir)),
        COLDCHAIN_NOTIFY_LOG="false",
    )
    clock = ScaledClock(speed=1.0)
    targets: dict[str, float] = {}
    fleet = SimulatedFleet(
        spec=FleetSpec(vehicles=args.vehicles, id_prefix="ALRT", sample_interval_s=30.0),
        mqtt_url=MQTT_URL,
        topic_prefix=prefix,
        workdir=workdir / "fleet",
        clock=clock,
    )
    started = time.monotonic()
    with psycopg.connect(url) as conn:
        fleet.provision(conn)
    print(f"{args.vehicles} vehicles provisioned in {time.monotonic() - started:.0f} s", flush=True)
    controller = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "coldchain"),
        "--log-level",
        "WARNING",
        "controller",
        "run",
        env=env,
    )
    published: dict[str, float] = {}
    observed: dict[str, int] = {}
    controller_stats: dict[str, object] = {}
    seen: dict[str, float] = {}
    base = f"http://127.0.0.1:{port}"
    victims = random.Random(7).sample(range(args.vehicles), args.events)
    victim_ids = [fleet.agents[i].settings.vehicle_id for i in victims]
    results: multiprocessing.Queue[Any] = multiprocessing.get_context("spawn").Queue()
    watcher = multiprocessing.get_context("spawn").Process(
        target=watch,
        args=(prefix, base, victim_ids, args.warmup + args.seconds + 90, results),
        name="watcher",
    )
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5) as http:
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/health")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        fleet_task = asyncio.create_task(fleet.run(), name="fleet")
        watcher.start()
        await asyncio.sleep(args.warmup)  # every agent connected, the first samples stored
        for index, vehicle_id in zip(victims, victim_ids, strict=True):
            targets[vehicle_id] = time.time()
            stuck = ProbeStuck(probe_id="p1", since_s=clock.now_s(), value_c=HOT_C)
            fleet.driver(index).inject("c1", Faults(probes_stuck=(stuck,)))
            await asyncio.sleep(args.seconds / args.events)
        watched = await asyncio.to_thread(results.get, True, 150)
        await asyncio.to_thread(watcher.join, 10)
        published, seen, observed = watched["published"], watched["seen"], watched["observed"]
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            controller_stats = (await http.get("/api/v1/ingest/stats")).json()["process"]
        fleet.stop()
        fleet_task.cancel()
        await asyncio.gather(fleet_task, return_exceptions=True)
    finally:
        if watcher.is_alive():
            watcher.terminate()
        controller.terminate()
        await asyncio.wait_for(controller.wait(), 30)
        fleet.close()
        await asyncio.to_thread(clear_retained, MQTT_URL, prefix)
    latencies = [seen[v] - published[v] for v in targets if v in seen and v in published]
    # Where the time goes: published -> received by the ingest -> alarm opened (committed by
    # the evaluation) -> seen through the API.
    stages: dict[str, list[float]] = {"to_ingest": [], "to_alarm": [], "to_api": []}
    with psycopg.connect(url) as conn:
        for vehicle_id in targets:
            row = conn.execute(
                "SELECT extract(epoch FROM min(r.received_at))::float8,"
                " extract(epoch FROM a.opened_at)::float8 FROM alarms a JOIN readings r"
                " ON r.vehicle_id = a.vehicle_id AND r.ts = a.data_ts"
                " WHERE a.vehicle_id = %s AND a.kind = 'excursion' GROUP BY a.opened_at",
                (vehicle_id,),
            ).fetchone()
            if row is None or vehicle_id not in published or vehicle_id not in seen:
                continue
            received, opened = row
            stages["to_ingest"].append(received - published[vehicle_id])
            stages["to_alarm"].append(opened - received)
            stages["to_api"].append(seen[vehicle_id] - opened)
    with psycopg.connect(url) as conn:
        stored = conn.execute("SELECT count(*) FROM readings").fetchone()
        others = conn.execute(
            "SELECT count(*) FROM alarms WHERE kind = 'excursion' AND NOT (vehicle_id = ANY(%s))",
            (list(targets),),
        ).fetchone()
    result: dict[str, object] = {
        "vehicles": args.vehicles,
        "events": len(targets),
        "measured": len(latencies),
        "not_seen_through_api": sorted(set(targets) - set(seen)),
        "hot_batch_not_observed": sorted(set(targets) - set(published)),
        "readings_stored": stored[0] if stored else 0,
        "observer": observed,
        "controller": {
            k: controller_stats.get(k)
            for k in ("messages", "groups", "readings_inserted", "evaluation", "evaluation_pending")
        },
        "excursion_alarms_on_other_vans": others[0] if others else 0,
    }
    result["stages_p50_ms"] = {
        k: round(statistics.median(v) * 1000) for k, v in stages.items() if v
    }
    result["stages_p99_ms"] = {k: round(percentile(v, 0.99) * 1000) for k, v in stages.items() if v}
    if latencies:
        result.update(
            p50_ms=round(statistics.median(latencies) * 1000),
            p99_ms=round(percentile(latencies, 0.99) * 1000),
            max_ms=round(max(latencies) * 1000),
            min_ms=round(min(latencies) * 1000),
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=2000)
    parser.add_argument("--events", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=120.0, help="spread the events over")
    parser.add_argument("--warmup", type=float, default=45.0)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(
        resource.RLIMIT_NOFILE, (min(hard, max(soft, args.vehicles * 5 + 256)), hard)
    )
    with (
        temporary_database(ADMIN_URL, prefix="coldchain_bench") as url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        result = asyncio.run(run(args, url, Path(tmp)))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
