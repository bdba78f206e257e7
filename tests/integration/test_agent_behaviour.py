"""The edge agent's own behaviour with a real broker and a real ingest service: local alarms while
offline, a full outbox, readings committed before a crash, the status file and the status topic."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from coldchain_protocol import Reading, Status, Topics, decode_status, generate_private_key
from coldchain_protocol.mqtt import BrokerAddress
from edge_agent.agent import EdgeAgent
from edge_agent.alarms import AlarmEvent, CallbackAlarmOutput
from edge_agent.clock import SystemClock
from edge_agent.errors import OutboxFull
from edge_agent.outbox import Outbox
from edge_agent.settings import AgentSettings
from tests.conftest import PrivateBroker
from tests.support.pipeline import (
    CountingDriver,
    agent_settings,
    assert_exactly_once,
    controller_settings,
    register_vehicle,
    run_ingest,
    run_until_stopped,
    running,
    stored_readings,
    wait_until,
)


class CancelSafeClock(SystemClock):
    """The system clock, counting how often the agent waits (the idle-spin test reads it)."""

    __slots__ = ("waits",)

    def __init__(self) -> None:
        self.waits = 0

    async def wait(self, event: asyncio.Event, timeout_s: float) -> bool:
        self.waits += 1
        return await super().wait(event, timeout_s)


def new_vehicle_id(prefix: str) -> str:
    """Unique per test: the agent's MQTT client id derives from it and the broker is shared."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class ExcursionDriver(CountingDriver):
    """Probe p1 reads 12 °C (above the 2..8 °C band) and the refrigeration unit has no power."""

    def sample(self, now_s: float) -> Sequence[tuple[str, float]]:
        if self.limit is not None and self.calls >= self.limit:
            return []
        self.calls += 1
        ts_ms = int(now_s * 1000)
        values = [
            (f"temp:{self.compartment}:p1", 12.0 + (self.calls % 10) / 10),
            (f"temp:{self.compartment}:p2", 5.0),
            ("power", 0.0),
        ]
        self.produced.extend((ts_ms, ch, v) for ch, v in values)
        return values


def agent_with_alarms(
    settings: AgentSettings, database_url: str, driver: CountingDriver
) -> tuple[EdgeAgent, list[AlarmEvent]]:
    """A registered vehicle's agent whose local alarms are collected in a list."""
    key = register_vehicle(database_url, settings.vehicle_id)
    events: list[AlarmEvent] = []
    outbox = Outbox(settings.outbox_path, budget_bytes=settings.outbox_budget_bytes)
    agent = EdgeAgent(
        settings=settings,
        driver=driver,
        clock=CancelSafeClock(),
        key=key,
        outbox=outbox,
        alarm_outputs=[CallbackAlarmOutput(events.append)],
    )
    return agent, events


def alarms(events: list[AlarmEvent], kind: str) -> list[bool]:
    """The raised/cleared sequence of one kind of alarm."""
    return [e.raised for e in events if e.kind == kind]


def history_flags(database_url: str, vehicle_id: str) -> dict[int, bool]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT seq, history FROM readings WHERE vehicle_id = %s", (vehicle_id,)
        ).fetchall()
    return {int(s): bool(h) for s, h in rows}


def read_retained(url: str, topic: str, timeout_s: float = 5.0) -> bytes:
    """Subscribe with a fresh paho client and return the retained message on `topic`."""
    address = BrokerAddress.parse(url)
    got = threading.Event()
    payloads: list[bytes] = []
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"retained-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv5,
    )

    def on_connect(c: mqtt.Client, *_: object) -> None:
        c.subscribe(topic, qos=1)

    def on_message(c: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if message.retain:
            payloads.append(bytes(message.payload))
            got.set()

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect(address.host, address.port)
    client.loop_start()
    try:
        if not got.wait(timeout_s):
            raise AssertionError(f"no retained message on {topic}")
        return payloads[0]
    finally:
        client.disconnect()
        client.loop_stop()


def stored_status(database_url: str, vehicle_id: str) -> tuple[str, str, int] | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT state, boot_id, outbox_depth FROM vehicle_status WHERE vehicle_id = %s",
            (vehicle_id,),
        ).fetchone()
    return None if row is None else (str(row[0]), str(row[1]), int(row[2]))


# -- (a) local alarms while offline ------------------------------------------------------------


async def test_local_alarms_fire_while_offline_and_readings_are_kept(
    database_url: str,
    topic_prefix: str,
    tmp_path: Path,
    private_broker: Callable[..., PrivateBroker],
) -> None:
    broker = private_broker(start=False)  # the vehicle has no link at all
    vid = new_vehicle_id("ALARM")
    settings = agent_settings(
        vehicle_id=vid,
        mqtt_url=broker.url,
        topic_prefix=topic_prefix,
        workdir=tmp_path,
        alarm_delay_s=0.3,
        ack_timeout_s=1.0,
    )
    driver = ExcursionDriver(limit=15)
    agent, events = agent_with_alarms(settings, database_url, driver)
    async with running(lambda: run_until_stopped(agent)):
        await wait_until(
            lambda: alarms(events, "excursion") == [True] and driver.calls >= 15,
            timeout_s=10,
            what="an excursion alarm while offline",
        )
        await wait_until(
            lambda: agent.counters.reconnects >= 1, timeout_s=5, what="connection attempts"
        )
        assert not agent.connected
        assert alarms(events, "power_loss") == [True]
        power = next(e for e in events if e.kind == "power_loss")
        excursion = next(e for e in events if e.kind == "excursion")
        assert excursion.subject == "c1"
        assert excursion.at_s - power.at_s >= 0.3, "the excursion waited for its alarm delay"
        assert agent.monitor.out_of_band()

        # Everything sampled offline is in the outbox, numbered 1..N, nothing acknowledged.
        kept = agent.outbox.fetch_after(0, limit=10_000)
        assert [r.seq for r in kept] == list(range(1, len(driver.produced) + 1))
        assert [(r.ts_ms, r.channel, r.value) for r in kept] == driver.produced
        assert agent.counters.acked_readings == 0

        # When the link comes back, every one of them reaches the database, as history.
        broker.start()
        service = await run_ingest(
            controller_settings(
                database_url=database_url, mqtt_url=broker.url, topic_prefix=topic_prefix
            )
        )
        async with running(service.run):
            await wait_until(
                lambda: agent.outbox.stats().depth == 0, timeout_s=15, what="backlog delivered"
            )
    assert_exactly_once(database_url, vid, driver)
    assert set(history_flags(database_url, vid).values()) == {True}
    assert alarms(events, "excursion") == [True], "still out of band: never cleared"


# -- (b) outbox budget full --------------------------------------------------------------------


def fill_until_full(path: Path, budget_bytes: int) -> list[Reading]:
    """Commit readings (a few minutes old) until the outbox refuses more."""
    box = Outbox(path, budget_bytes=budget_bytes)
    start_ms = int(time.time() * 1000) - 600_000
    stored: list[Reading] = []
    try:
        for i in range(1000):
            stored.extend(
                box.append(
                    [
                        (start_ms + (i * 50 + j) * 10, "temp:c1:p1", 3.0 + j / 10, True)
                        for j in range(50)
                    ]
                )
            )
    except OutboxFull:
        return stored
    finally:
        box.close()
    raise AssertionError("the outbox never filled up")


async def test_full_outbox_refuses_new_readings_keeps_old_ones_and_recovers(
    database_url: str,
    topic_prefix: str,
    tmp_path: Path,
    private_broker: Callable[..., PrivateBroker],
) -> None:
    broker = private_broker(start=False)
    vid = new_vehicle_id("FULL")
    budget = 64 * 1024
    settings = agent_settings(
        vehicle_id=vid,
        mqtt_url=broker.url,
        topic_prefix=topic_prefix,
        workdir=tmp_path,
        outbox_budget_bytes=budget,
        ack_timeout_s=1.0,
    )
    prefilled = fill_until_full(settings.outbox_path, budget)
    driver = CountingDriver(limit=40)
    agent, events = agent_with_alarms(settings, database_url, driver)
    async with running(lambda: run_until_stopped(agent)):
        await wait_until(
            lambda: agent.counters.refused >= 10 and alarms(events, "outbox_full") == [True],
            timeout_s=10,
            what="new readings refused and the outbox_full alarm raised",
        )
        refused_before = agent.counters.refused
        stats = agent.outbox.stats()
        assert (stats.depth, stats.max_seq) == (len(prefilled), len(prefilled))
        assert agent.counters.sampled == 0
        assert agent.outbox.fetch_after(0, limit=100_000) == prefilled, "nothing stored is lost"
        await wait_until(
            lambda: agent.counters.refused > refused_before,
            timeout_s=5,
            what="the refused counter to keep growing",
        )
        assert alarms(events, "outbox_full") == [True], "raised once, not on every sample"

        broker.start()
        service = await run_ingest(
            controller_settings(
                database_url=database_url, mqtt_url=broker.url, topic_prefix=topic_prefix
            )
        )
        async with running(service.run):
            await wait_until(
                lambda: alarms(events, "outbox_full") == [True, False],
                timeout_s=15,
                what="acks free space and the outbox accepts again",
            )
            await wait_until(
                lambda: driver.calls >= 40 and agent.outbox.stats().depth == 0,
                timeout_s=15,
                what="everything accepted is delivered",
            )
    assert agent.counters.sampled > 0
    assert agent.counters.refused + agent.counters.sampled == 2 * driver.calls
    rows = stored_readings(database_url, vid)
    assert [r[0] for r in rows] == list(range(1, len(prefilled) + agent.counters.sampled + 1))
    assert [(r[1], r[2], r[3]) for r in rows[: len(prefilled)]] == [
        (p.ts_ms, p.channel, p.value) for p in prefilled
    ]


# -- (c) readings committed before a crash -----------------------------------------------------


async def test_readings_committed_before_a_crash_are_delivered_as_history(
    database_url: str, mqtt_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    vid = new_vehicle_id("CRASH")
    settings = agent_settings(
        vehicle_id=vid, mqtt_url=mqtt_url, topic_prefix=topic_prefix, workdir=tmp_path
    )
    # The previous run committed these and died before publishing them.
    hour_ago_ms = int(time.time() * 1000) - 3_600_000
    box = Outbox(settings.outbox_path, budget_bytes=settings.outbox_budget_bytes)
    committed = box.append(
        [(hour_ago_ms + i * 30_000, f"temp:c1:p{1 + i % 2}", 4.0 + i / 10, True) for i in range(20)]
    )
    box.close()

    driver = CountingDriver(limit=10)
    agent, _ = agent_with_alarms(settings, database_url, driver)
    service = await run_ingest(
        controller_settings(database_url=database_url, mqtt_url=mqtt_url, topic_prefix=topic_prefix)
    )
    async with running(service.run):
        await wait_until(lambda: service.connected, timeout_s=10, what="ingest connected")
        async with running(lambda: run_until_stopped(agent)):
            await wait_until(
                lambda: driver.calls >= 10 and agent.outbox.stats().depth == 0,
                timeout_s=15,
                what="old and new readings delivered",
            )
    rows = stored_readings(database_url, vid)
    assert [r[0] for r in rows] == list(range(1, 41)), "20 old + 10 samples x 2 probes, once"
    assert rows[:20] == [(r.seq, r.ts_ms, r.channel, r.value) for r in committed], (
        "original device timestamps, not arrival time"
    )
    flags = history_flags(database_url, vid)
    assert all(flags[s] for s in range(1, 21)), "back-filled readings are flagged history"
    assert sorted((t, c, v) for _, t, c, v in rows[20:]) == sorted(driver.produced)


# -- (d) the status file -----------------------------------------------------------------------


def read_status_file(path: Path) -> dict[str, object] | None:
    if not path.exists():
        return None
    status = orjson.loads(path.read_bytes())  # written atomically: never a partial file
    assert isinstance(status, dict)
    return status


async def test_status_file_reports_depth_age_reconnects_and_refusals(
    database_url: str,
    topic_prefix: str,
    tmp_path: Path,
    private_broker: Callable[..., PrivateBroker],
) -> None:
    broker = private_broker(start=False)
    vid = new_vehicle_id("STAT")
    status_file = tmp_path / "status.json"
    settings = agent_settings(
        vehicle_id=vid,
        mqtt_url=broker.url,
        topic_prefix=topic_prefix,
        workdir=tmp_path,
        status_file=status_file,
        status_interval_s=0.1,
        ack_timeout_s=1.0,
    )
    driver = CountingDriver(limit=12)
    agent, _ = agent_with_alarms(settings, database_url, driver)
    seen: list[dict[str, object]] = []

    def status_shows(predicate: Callable[[dict[str, object]], bool]) -> bool:
        status = read_status_file(status_file)
        if status is None:
            return False
        seen.append(status)
        return predicate(status)

    async with running(lambda: run_until_stopped(agent)):
        await wait_until(
            lambda: status_shows(
                lambda s: s["outbox_depth"] == 24 and int(str(s["reconnects"])) >= 1
            ),
            timeout_s=10,
            what="the status file to show the offline backlog",
        )
        offline = seen[-1]
        assert offline["vehicle_id"] == vid
        assert offline["boot_id"] == agent.boot_id
        assert offline["connected"] is False
        assert offline["refused"] == 0
        assert offline["max_seq"] == 24
        age = offline["oldest_unacked_age_s"]
        assert isinstance(age, float) and age > 0
        assert {"outbox_used_bytes", "outbox_budget_bytes", "sampled", "acked_readings"} <= set(
            offline
        )

        broker.start()
        service = await run_ingest(
            controller_settings(
                database_url=database_url, mqtt_url=broker.url, topic_prefix=topic_prefix
            )
        )
        async with running(service.run):
            await wait_until(
                lambda: status_shows(
                    lambda s: (
                        s["connected"] is True
                        and s["outbox_depth"] == 0
                        and s["acked_readings"] == 24
                    )
                ),
                timeout_s=15,
                what="the status file to show the backlog delivered",
            )
    online = seen[-1]
    assert online["oldest_unacked_age_s"] is None
    assert int(str(online["reconnects"])) >= int(str(offline["reconnects"]))
    assert online["refused"] == 0
    assert_exactly_once(database_url, vid, driver)


# -- (e) the retained status topic -------------------------------------------------------------


async def test_retained_status_is_online_while_connected_and_offline_after_stop(
    database_url: str, mqtt_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    vid = new_vehicle_id("RET")
    topic = Topics(topic_prefix).status(vid)
    settings = agent_settings(
        vehicle_id=vid, mqtt_url=mqtt_url, topic_prefix=topic_prefix, workdir=tmp_path
    )
    driver = CountingDriver(limit=5)
    agent, _ = agent_with_alarms(settings, database_url, driver)
    service = await run_ingest(
        controller_settings(database_url=database_url, mqtt_url=mqtt_url, topic_prefix=topic_prefix)
    )
    async with running(service.run):
        await wait_until(lambda: service.connected, timeout_s=10, what="ingest connected")
        agent_task = asyncio.create_task(run_until_stopped(agent))
        try:
            await wait_until(lambda: agent.connected, timeout_s=10, what="agent connected")
            online: Status = decode_status(await asyncio.to_thread(read_retained, mqtt_url, topic))
            assert (online.state, online.boot_id) == ("online", agent.boot_id)
            await wait_until(
                lambda: (
                    (stored_status(database_url, vid) or ("", "", 0))[:2]
                    == ("online", agent.boot_id)
                ),
                timeout_s=10,
                what="the controller to store the online status",
            )
            agent.stop()
            await asyncio.wait_for(agent_task, 10)
        finally:
            agent_task.cancel()
            await asyncio.gather(agent_task, return_exceptions=True)
        assert not agent.connected
        offline = decode_status(await asyncio.to_thread(read_retained, mqtt_url, topic))
        assert (offline.state, offline.boot_id) == ("offline", agent.boot_id)
        await wait_until(
            lambda: (
                (stored_status(database_url, vid) or ("", "", 0))[:2] == ("offline", agent.boot_id)
            ),
            timeout_s=10,
            what="the controller to store the offline status",
        )
    # Clear the retained message so the shared broker does not keep it.
    await asyncio.to_thread(_clear_retained, mqtt_url, topic)


def _clear_retained(url: str, topic: str) -> None:
    address = BrokerAddress.parse(url)
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"clear-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv5,
    )
    client.connect(address.host, address.port)
    client.loop_start()
    try:
        client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


# -- bugs pinned -------------------------------------------------------------------------------


async def test_clock_wait_is_cancellable_as_its_event_fires() -> None:
    event = asyncio.Event()
    task = asyncio.create_task(SystemClock().wait(event, 10))
    await asyncio.sleep(0)  # the wait has started
    event.set()
    assert task.cancel(), "the task is still pending, so the cancellation must be honoured"
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_idle_connected_agent_does_not_spin(
    mqtt_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = agent_settings(
        vehicle_id=new_vehicle_id("IDLE"),
        mqtt_url=mqtt_url,
        topic_prefix=topic_prefix,
        workdir=tmp_path,
        ack_timeout_s=60.0,
    )
    driver = CountingDriver(limit=3)
    clock = CancelSafeClock()
    agent = EdgeAgent(
        settings=settings,
        driver=driver,
        clock=clock,
        key=generate_private_key(),
        outbox=Outbox(settings.outbox_path, budget_bytes=settings.outbox_budget_bytes),
    )
    # No controller: the batches stay in flight (ack timeout 60 s), nothing else is due.
    async with running(lambda: run_until_stopped(agent)):
        await wait_until(
            lambda: driver.calls >= 3 and agent.counters.published_readings == 6,
            timeout_s=10,
            what="every reading published",
        )
        before = clock.waits
        await asyncio.sleep(1.0)
        idle_waits = clock.waits - before
    assert agent.counters.published_readings == 6
    # Nothing to send for a second: waking on each 0.05 s sample tick is about 20 turns.
    assert idle_waits < 60, f"the sender went round {idle_waits} times in one idle second"
