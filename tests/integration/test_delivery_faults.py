"""Delivery under faults: broker outage, duplicated/reordered batches, malformed payloads,
broker queue overflow. After each, every reading is stored exactly once with its timestamp."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from coldchain_protocol import (
    Reading,
    TelemetryBatch,
    Topics,
    decode_ack,
    decode_resend,
    encode_batch_body,
    sign_body,
)
from coldchain_protocol.mqtt import BrokerAddress
from tests.conftest import PrivateBroker
from tests.support.pipeline import (
    CountingDriver,
    agent_settings,
    assert_exactly_once,
    controller_settings,
    make_agent,
    register_vehicle,
    run_ingest,
    run_until_stopped,
    running,
    stored_readings,
    wait_until,
)


class Peer:
    """A bare paho client playing a hand-written agent: publishes raw payloads, records replies."""

    def __init__(self, url: str, topics: Topics, vehicle_id: str) -> None:
        address = BrokerAddress.parse(url)
        self.received: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"peer-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.on_message = self._on_message
        self.client.connect(address.host, address.port)
        self.client.loop_start()
        for topic in (topics.ack(vehicle_id), topics.resend(vehicle_id)):
            self.client.subscribe(topic, qos=1)[0]
        self.topics = topics
        self.vehicle_id = vehicle_id

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.received.append((message.topic, message.payload))

    def publish(self, payload: bytes, topic: str | None = None) -> None:
        info = self.client.publish(topic or self.topics.telemetry(self.vehicle_id), payload, qos=1)
        info.wait_for_publish(5)

    def acks(self) -> list[str]:
        with self._lock:
            return [
                decode_ack(p).batch_id
                for t, p in self.received
                if t == self.topics.ack(self.vehicle_id)
            ]

    def ack_rejections(self) -> list[str | None]:
        with self._lock:
            return [
                decode_ack(p).rejected
                for t, p in self.received
                if t == self.topics.ack(self.vehicle_id)
            ]

    def resends(self) -> list[tuple[tuple[int, int], ...]]:
        with self._lock:
            return [
                decode_resend(p).ranges
                for t, p in self.received
                if t == self.topics.resend(self.vehicle_id)
            ]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def signed_batch(
    key: Ed25519PrivateKey,
    vehicle_id: str,
    seqs: range | list[int],
    *,
    base_ms: int,
    batch_id: str | None = None,
    value: float = 5.0,
) -> tuple[str, bytes]:
    readings = tuple(Reading(s, base_ms + s * 1000, "temp:c1:p1", value) for s in seqs)
    batch = TelemetryBatch(
        vehicle_id, "boot-1", batch_id or uuid.uuid4().hex, base_ms, False, readings
    )
    return batch.batch_id, sign_body(encode_batch_body(batch), key)


def now_ms() -> int:
    import time

    return int(time.time() * 1000)


async def test_broker_outage_loses_nothing(
    database_url: str,
    topic_prefix: str,
    tmp_path: Path,
    private_broker: Callable[..., PrivateBroker],
) -> None:
    broker = private_broker()
    drivers, agents = [], []
    for vid in ("OUT1", "OUT2"):
        key = register_vehicle(database_url, vid)
        settings = agent_settings(
            vehicle_id=vid, mqtt_url=broker.url, topic_prefix=topic_prefix, workdir=tmp_path
        )
        driver = CountingDriver(limit=60)
        drivers.append(driver)
        agents.append(make_agent(settings, key, driver))
    service = await run_ingest(
        controller_settings(
            database_url=database_url, mqtt_url=broker.url, topic_prefix=topic_prefix
        )
    )
    async with running(service.run, *[lambda a=a: run_until_stopped(a) for a in agents]):
        await wait_until(
            lambda: all(d.calls >= 10 for d in drivers), timeout_s=10, what="first samples"
        )
        broker.stop()
        outage_start = [d.calls for d in drivers]
        await wait_until(
            lambda: all(not a.connected for a in agents),
            timeout_s=10,
            what="agents notice the outage",
        )
        await asyncio.sleep(1.0)  # keep sampling while the broker is down
        assert all(a.outbox.stats().depth > 0 for a in agents)
        broker.start()
        await wait_until(
            lambda: (
                all(d.calls >= 60 for d in drivers)
                and all(a.outbox.stats().depth == 0 for a in agents)
            ),
            timeout_s=40,
            what="backlog drained after the outage",
        )
    assert all(d.calls > s for d, s in zip(drivers, outage_start, strict=True))
    for vid, driver in zip(("OUT1", "OUT2"), drivers, strict=True):
        assert_exactly_once(database_url, vid, driver)
    with psycopg.connect(database_url) as conn:
        history = conn.execute("SELECT count(*) FROM readings WHERE history").fetchone()
    assert history is not None and history[0] > 0, "back-filled readings are marked as history"
    assert all(a.counters.reconnects >= 1 for a in agents)


async def test_duplicated_and_reordered_batches_are_stored_once(
    database_url: str,
    mqtt_url: str,
    topic_prefix: str,
) -> None:
    key = register_vehicle(database_url, "DUP1")
    topics = Topics(topic_prefix)
    service = await run_ingest(
        controller_settings(
            database_url=database_url, mqtt_url=mqtt_url, topic_prefix=topic_prefix, gap_grace_s=0.5
        )
    )
    peer = Peer(mqtt_url, topics, "DUP1")
    base = now_ms() - 60_000
    try:
        async with running(service.run):
            await wait_until(lambda: service.connected, timeout_s=10, what="ingest connected")
            b3 = signed_batch(key, "DUP1", range(21, 31), base_ms=base)
            b1 = signed_batch(key, "DUP1", range(1, 11), base_ms=base)
            b2 = signed_batch(key, "DUP1", range(11, 21), base_ms=base)
            overlap = signed_batch(key, "DUP1", range(5, 16), base_ms=base)
            for _, payload in (b3, b1, b3, b1, overlap, b2, b2):
                peer.publish(payload)
            await wait_until(
                lambda: len(peer.acks()) == 7,
                timeout_s=15,
                what="an ack for every delivery, duplicates included",
            )
            assert set(peer.acks()) == {b1[0], b2[0], b3[0], overlap[0]}
            rows = stored_readings(database_url, "DUP1")
            assert [r[0] for r in rows] == list(range(1, 31))
            assert [r[1] for r in rows] == [base + s * 1000 for s in range(1, 31)]
            assert service.stats.readings_duplicate == 10 + 10 + 11 + 10

            # A hole (31..35 never sent) is chased with a resend request once it is old enough.
            peer.publish(signed_batch(key, "DUP1", range(36, 41), base_ms=base)[1])
            await wait_until(
                lambda: any(r == ((31, 35),) for r in peer.resends()),
                timeout_s=15,
                what="a resend request for 31..35",
            )
            peer.publish(signed_batch(key, "DUP1", range(31, 36), base_ms=base)[1])
            await wait_until(
                lambda: (
                    _open_gaps(database_url, "DUP1") == 0
                    and _contiguous_to(database_url, "DUP1") == 40
                ),
                timeout_s=15,
                what="the gap closed",
            )
    finally:
        peer.close()


def _open_gaps(database_url: str, vehicle_id: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM sequence_gaps WHERE vehicle_id = %s AND closed_at IS NULL",
            (vehicle_id,),
        ).fetchone()
    return int(row[0]) if row else -1


def _contiguous_to(database_url: str, vehicle_id: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT contiguous_to FROM vehicle_sequences WHERE vehicle_id = %s", (vehicle_id,)
        ).fetchone()
    return int(row[0]) if row else -1


async def test_malformed_payloads_go_to_dead_letters_without_stopping_ingest(
    database_url: str,
    mqtt_url: str,
    topic_prefix: str,
) -> None:
    key = register_vehicle(database_url, "BAD1")
    stranger = Ed25519PrivateKey.generate()
    topics = Topics(topic_prefix)
    service = await run_ingest(
        controller_settings(database_url=database_url, mqtt_url=mqtt_url, topic_prefix=topic_prefix)
    )
    peer = Peer(mqtt_url, topics, "BAD1")
    base = now_ms() - 60_000
    good1 = signed_batch(key, "BAD1", range(1, 6), base_ms=base)
    good2 = signed_batch(key, "BAD1", range(6, 11), base_ms=base)
    implausible = signed_batch(key, "BAD1", range(11, 13), base_ms=base, value=500.0)
    future = signed_batch(key, "BAD1", range(13, 15), base_ms=now_ms() + 3_600_000)
    bad = [
        (b"\x00\xffnot json at all", "signature"),
        (signed_batch(stranger, "BAD1", range(1, 3), base_ms=base)[1], "does not verify"),
        (good1[1][:-10] + b"AAAAAAAAAA", "signature"),
        (sign_body(b'{"v":1,"type":"telemetry"}', key), "schema"),
        (sign_body(b'{"v":2,"type":"telemetry"}', key), "unsupported protocol version"),
        (implausible[1], "not physically plausible"),
        (future[1], "in the future"),
    ]
    try:
        async with running(service.run):
            await wait_until(lambda: service.connected, timeout_s=10, what="ingest connected")
            peer.publish(good1[1])
            for payload, _ in bad:
                peer.publish(payload)
            peer.publish(b"anything", topic=f"{topic_prefix}/v1/NOT_REGISTERED/telemetry")
            peer.publish(good2[1])
            await wait_until(
                lambda: (
                    len(stored_readings(database_url, "BAD1")) == 10
                    and service.stats.dead_letters == len(bad) + 1
                ),
                timeout_s=15,
                what="good batches stored and bad ones dead-lettered",
            )
            await wait_until(
                lambda: sum(r is not None for r in peer.ack_rejections()) >= 2,
                timeout_s=10,
                what="rejections acknowledged to the agent",
            )
    finally:
        peer.close()
    with psycopg.connect(database_url) as conn:
        letters = conn.execute("SELECT reason, payload FROM dead_letters ORDER BY id").fetchall()
    reasons = [str(r) for r, _ in letters]
    for (payload, expected), (reason, stored) in zip(bad, letters[: len(bad)], strict=False):
        assert expected in reason, (expected, reason)
        assert bytes(stored) == payload, "the raw payload is kept byte for byte"
    assert any("not registered" in r for r in reasons)
    assert [r[0] for r in stored_readings(database_url, "BAD1")] == list(range(1, 11))


async def test_broker_queue_overflow_is_recovered_by_acknowledgements(
    database_url: str,
    topic_prefix: str,
    tmp_path: Path,
    private_broker: Callable[..., PrivateBroker],
) -> None:
    """Mosquitto drops QoS 1 messages for a client whose queue is full; agents resend them."""
    broker = private_broker("max_queued_messages 3\nmax_inflight_messages 1\n")
    drivers, agents = [], []
    for i in range(6):
        vid = f"Q{i}"
        key = register_vehicle(database_url, vid)
        settings = agent_settings(
            vehicle_id=vid,
            mqtt_url=broker.url,
            topic_prefix=topic_prefix,
            workdir=tmp_path,
            max_batch_readings=4,
            max_inflight_batches=8,
            ack_timeout_s=1.5,
        )
        driver = CountingDriver(limit=40)
        drivers.append(driver)
        agents.append(make_agent(settings, key, driver))
    # The backlog builds up before the controller connects, then arrives as a burst.
    async with running(*[lambda a=a: run_until_stopped(a) for a in agents]):
        await wait_until(
            lambda: all(d.calls >= 40 for d in drivers), timeout_s=20, what="all samples taken"
        )
        service = await run_ingest(
            controller_settings(
                database_url=database_url,
                mqtt_url=broker.url,
                topic_prefix=topic_prefix,
                ingest_group_max_messages=2,
            )
        )
        async with running(service.run):
            await wait_until(
                lambda: all(a.outbox.stats().depth == 0 for a in agents),
                timeout_s=90,
                what="every reading acknowledged",
            )
    assert sum(a.counters.expired_batches for a in agents) > 0, "the broker did drop messages"
    for i, driver in enumerate(drivers):
        assert_exactly_once(database_url, f"Q{i}", driver)
