"""The ingest service: MQTT (shared subscription) -> checks -> COPY -> commit -> acknowledge.

The receiving task only queues messages; a writer task hands groups of them to a worker thread
that validates and writes them on its own connection, then publishes the acknowledgements. A
reading is acknowledged only after the transaction holding it has committed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import aiomqtt
import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from psycopg.rows import TupleRow

from coldchain_protocol import (
    Ack,
    ResendRequest,
    SignatureError,
    Status,
    TelemetryBatch,
    Topics,
    encode_ack,
    encode_resend,
    load_public_key,
)
from coldchain_protocol.messages import seq_ranges
from coldchain_protocol.mqtt import (
    BrokerAddress,
    client_session_options,
    jittered_backoff,
    reraise_cancellation,
)
from controller.ingest.gaps import scan_vehicle_gaps
from controller.ingest.validate import Triage, triage
from controller.ingest.writer import write_batches, write_dead_letter
from controller.settings import ControllerSettings
from controller.storage.db import connect
from edge_agent.clock import Clock

log = logging.getLogger(__name__)

Outbound = tuple[str, bytes]
T = TypeVar("T")


@dataclass(slots=True)
class IngestStats:
    """Counters since start; the demo and /metrics read them."""

    messages: int = 0
    batches: int = 0
    readings_inserted: int = 0
    readings_duplicate: int = 0
    dead_letters: int = 0
    groups: int = 0
    dedup_fallbacks: int = 0
    acks_sent: int = 0
    resend_requests: int = 0
    database_retries: int = 0


@dataclass(slots=True)
class _KeyCache:
    """Vehicles' public keys; an unknown vehicle reloads them, at most once a second."""

    keys: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    loaded_at: float = 0.0

    def get(self, conn: psycopg.Connection[TupleRow], vehicle_id: str) -> Ed25519PublicKey | None:
        key = self.keys.get(vehicle_id)
        if key is None and time.monotonic() - self.loaded_at > 1.0:
            rows = conn.execute("SELECT vehicle_id, public_key_pem FROM vehicles").fetchall()
            conn.commit()
            fresh = {}
            for vid, pem in rows:
                try:
                    fresh[str(vid)] = load_public_key(str(pem))
                except SignatureError as exc:
                    log.error("vehicle %s has an unusable public key: %s", vid, exc.reason)
            self.keys = fresh
            self.loaded_at = time.monotonic()
            key = self.keys.get(vehicle_id)
        return key


class IngestService:
    """Consumes telemetry and status for every vehicle; one instance per controller process."""

    def __init__(self, *, settings: ControllerSettings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.topics = Topics(settings.topic_prefix)
        self.broker = BrokerAddress.parse(settings.mqtt_url)
        self.stats = IngestStats()
        self.connected = False
        self._queue: asyncio.Queue[aiomqtt.Message] = asyncio.Queue()
        self._conn: psycopg.Connection[TupleRow] | None = None
        self._key_conn: psycopg.Connection[TupleRow] | None = None
        self._keys = _KeyCache()
        # Called with every group of batches once it is committed (e.g. the GSP evaluation).
        self.observers: list[Callable[[Sequence[TelemetryBatch]], None]] = []
        self._client: aiomqtt.Client | None = None
        self.client_id = settings.client_id or (
            f"controller-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        )

    async def run(self) -> None:
        """Run until cancelled: keep the broker session up, write, chase gaps."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._link(), name="ingest-link")
            tg.create_task(self._writing(), name="ingest-writer")
            tg.create_task(self._gap_checking(), name="ingest-gaps")

    # -- broker ----------------------------------------------------------------------------

    async def _link(self) -> None:
        delays = jittered_backoff(min_s=0.2, max_s=5.0)
        while True:
            try:
                async with aiomqtt.Client(
                    self.broker.host,
                    self.broker.port,
                    username=self.broker.username,
                    password=self.broker.password,
                    identifier=self.client_id,
                    **client_session_options(self.settings.mqtt_protocol),
                    keepalive=30,
                    timeout=30,
                    max_inflight_messages=1000,
                ) as client:
                    group = self.settings.share_group
                    for topic_filter in (self.topics.all_telemetry(), self.topics.all_status()):
                        shared = self.settings.shared_subscription
                        await client.subscribe(
                            self.topics.shared(group, topic_filter) if shared else topic_filter, 1
                        )
                    client.pending_calls_threshold = 100_000
                    self._client = client
                    self.connected = True
                    delays = jittered_backoff(min_s=0.2, max_s=5.0)
                    log.info("ingest subscribed as %s", self.client_id)
                    async for message in client.messages:
                        self._queue.put_nowait(message)
            except aiomqtt.MqttError as exc:
                reraise_cancellation([exc])
                log.warning("ingest broker link lost: %s", exc)
            finally:
                self.connected = False
                self._client = None
            await asyncio.sleep(next(delays))

    async def _publish(self, outbound: list[Outbound]) -> None:
        client = self._client
        if client is None:
            return  # the agents will resend; nothing is acknowledged that is not committed
        # Concurrently and with a short timeout: a dying broker link must not stall writing.
        results = await asyncio.gather(
            *(client.publish(topic, payload, qos=1, timeout=5.0) for topic, payload in outbound),
            return_exceptions=True,
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            log.warning(
                "could not publish %d of %d acks/requests: %s", len(failed), len(results), failed[0]
            )

    # -- writing ---------------------------------------------------------------------------

    async def _writing(self) -> None:
        # Two stages so that checking one group overlaps with committing the previous one.
        checked: asyncio.Queue[tuple[Triage, datetime]] = asyncio.Queue(maxsize=2)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._checking(checked), name="ingest-checking")
            tg.create_task(self._committing(checked), name="ingest-committing")

    async def _checking(self, checked: asyncio.Queue[tuple[Triage, datetime]]) -> None:
        limit = self.settings.ingest_group_max_messages
        max_bytes = self.settings.ingest_group_max_bytes
        while True:
            # One transaction per group: large enough to amortise the commit, small enough that
            # acknowledgements flow continuously instead of in bursts.
            group = [await self._queue.get()]
            size = _payload_size(group[0])
            while len(group) < limit and size < max_bytes and not self._queue.empty():
                group.append(self._queue.get_nowait())
                size += _payload_size(group[-1])
            now_ms = int(self.clock.now_s() * 1000)
            messages = [
                (str(m.topic), m.payload if isinstance(m.payload, bytes) else b"") for m in group
            ]
            self.stats.messages += len(messages)
            result = await self._retrying(self._triage, messages, now_ms)
            await checked.put((result, datetime.fromtimestamp(now_ms / 1000, UTC)))

    async def _committing(self, checked: asyncio.Queue[tuple[Triage, datetime]]) -> None:
        while True:
            result, received_at = await checked.get()
            outbound, fresh = await self._retrying(self._commit, result, received_at)
            if fresh:  # committed: evaluation can start while the acks go out
                for observer in self.observers:
                    observer(fresh)
            self.stats.acks_sent += len(outbound)
            await self._publish(outbound)

    async def _retrying(self, work: Callable[..., T], *args: object) -> T:
        """Run blocking database work in a thread, retrying while the database is down."""
        delays = jittered_backoff(min_s=0.2, max_s=5.0)
        while True:
            try:
                return await asyncio.to_thread(work, *args)
            except psycopg.OperationalError as exc:
                self.stats.database_retries += 1
                log.error("database unavailable, retrying: %s", str(exc).strip())
                await asyncio.sleep(next(delays))

    def _triage(self, messages: list[tuple[str, bytes]], now_ms: int) -> Triage:
        if self._key_conn is None or self._key_conn.closed:
            self._key_conn = connect(self.settings.database_url, autocommit=True)
        conn = self._key_conn
        try:
            return triage(
                messages,
                topics=self.topics,
                key_for=lambda vid: self._keys.get(conn, vid),
                now_ms=now_ms,
                future_tolerance_ms=int(self.settings.future_tolerance_s * 1000),
            )
        except psycopg.OperationalError:
            conn.close()
            raise

    def _commit(
        self, result: Triage, received_at: datetime
    ) -> tuple[list[Outbound], list[TelemetryBatch]]:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.settings.database_url)
        conn = self._conn
        try:
            return self._commit_on(conn, result, received_at)
        except psycopg.OperationalError:
            conn.close()
            raise

    def _commit_on(
        self, conn: psycopg.Connection[TupleRow], result: Triage, received_at: datetime
    ) -> tuple[list[Outbound], list[TelemetryBatch]]:
        """Store a checked group; returns the acks to send and the batches that brought new
        readings (a redelivery of stored readings brings none)."""
        outbound: list[Outbound] = []
        fresh: list[TelemetryBatch] = []
        for letter in result.dead_letters:
            self.stats.dead_letters += 1
            log.warning("dead letter on %s: %s", letter.topic, letter.reason)
            write_dead_letter(
                conn,
                topic=letter.topic,
                vehicle_id=letter.vehicle_id,
                reason=letter.reason,
                payload=letter.payload,
                seq_range=letter.seq_range,
            )
        outbound.extend(result.rejection_acks)
        for vehicle_id, status in result.statuses:
            self._store_status(conn, vehicle_id, status)
        if result.accepted:
            outcomes = write_batches(conn, result.accepted, received_at=received_at)
            self.stats.groups += 1
            self.stats.batches += len(result.accepted)
            for batch, outcome in zip(result.accepted, outcomes, strict=True):
                self.stats.readings_inserted += outcome.inserted
                if outcome.inserted:
                    fresh.append(batch)
                self.stats.readings_duplicate += outcome.duplicates
                if outcome.duplicates:
                    self.stats.dedup_fallbacks += 1
                ack = Ack(
                    batch.batch_id, seq_ranges([r.seq for r in batch.readings]), outcome.duplicates
                )
                outbound.append((self.topics.ack(batch.vehicle_id), encode_ack(ack)))
        return outbound, fresh

    def _store_status(
        self, conn: psycopg.Connection[TupleRow], vehicle_id: str, status: Status
    ) -> None:
        with conn.transaction():
            conn.execute(
                "INSERT INTO vehicle_status (vehicle_id, state, boot_id, reported_at,"
                " outbox_depth, oldest_unacked_at, reconnects, refused)"
                " VALUES (%s, %s, %s, to_timestamp(%s / 1000.0), %s,"
                " to_timestamp(%s / 1000.0), %s, %s)"
                " ON CONFLICT (vehicle_id) DO UPDATE SET state = excluded.state,"
                " boot_id = excluded.boot_id, reported_at = excluded.reported_at,"
                " outbox_depth = excluded.outbox_depth,"
                " oldest_unacked_at = excluded.oldest_unacked_at,"
                " reconnects = excluded.reconnects, refused = excluded.refused, updated_at = now()",
                (
                    vehicle_id,
                    status.state,
                    status.boot_id,
                    status.ts_ms,
                    status.outbox_depth,
                    status.oldest_unacked_ms,
                    status.reconnects,
                    status.refused,
                ),
            )

    # -- gaps ------------------------------------------------------------------------------

    async def _gap_checking(self) -> None:
        while True:
            await self.clock.sleep(self.settings.gap_check_interval_s)
            now_s = self.clock.now_s()
            outbound = await self._retrying(self.check_gaps, now_s)
            self.stats.resend_requests += len(outbound)
            await self._publish(outbound)

    def check_gaps(self, now_s: float) -> list[Outbound]:
        """Advance each vehicle's contiguous watermark; ask agents to resend old gaps."""
        outbound: list[Outbound] = []
        grace = timedelta(seconds=self.settings.gap_grace_s)
        now = datetime.fromtimestamp(now_s, UTC)
        with connect(self.settings.database_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT vehicle_id, contiguous_to, contiguous_advanced_at, max_seq"
                " FROM vehicle_sequences WHERE max_seq > contiguous_to"
            ).fetchall()
            for vehicle_id, contiguous_to, advanced_at, max_seq in rows:
                scan = scan_vehicle_gaps(
                    conn,
                    vehicle_id=vehicle_id,
                    contiguous_to=contiguous_to,
                    max_seq=max_seq,
                    grace_cutoff=now - grace,
                )
                with conn.transaction():
                    if scan.contiguous_to > contiguous_to:
                        advanced_at = now
                        conn.execute(
                            "UPDATE vehicle_sequences SET contiguous_advanced_at = %s,"
                            " contiguous_to = greatest(contiguous_to, %s) WHERE vehicle_id = %s",
                            (now, scan.contiguous_to, vehicle_id),
                        )
                    # Ledger rows wholly below the watermark are no longer needed.
                    conn.execute(
                        "DELETE FROM ingested_ranges WHERE vehicle_id = %s AND last_seq <= %s",
                        (vehicle_id, scan.contiguous_to),
                    )
                    conn.execute(
                        "UPDATE sequence_gaps SET closed_at = %s WHERE vehicle_id = %s"
                        " AND closed_at IS NULL AND NOT (first_seq = ANY(%s))",
                        (now, vehicle_id, [g[0] for g in scan.gaps]),
                    )
                    due = []
                    # A backlog drains oldest first, moving the watermark up: while it moves,
                    # the holes above it are still on their way and are not chased.
                    draining = now - advanced_at < grace
                    for first, last in () if draining else scan.gaps:
                        row = conn.execute(
                            "INSERT INTO sequence_gaps (vehicle_id, first_seq, last_seq,"
                            " detected_at, resend_requests, last_requested_at)"
                            " VALUES (%s, %s, %s, %s, 1, %s)"
                            " ON CONFLICT (vehicle_id, first_seq) DO UPDATE"
                            " SET last_seq = excluded.last_seq, closed_at = NULL,"
                            " resend_requests = sequence_gaps.resend_requests + 1,"
                            " last_requested_at = excluded.last_requested_at"
                            " WHERE sequence_gaps.last_requested_at < %s"
                            " RETURNING first_seq",
                            (vehicle_id, first, last, now, now, now - grace),
                        ).fetchone()
                        if row is not None:
                            due.append((first, last))
                if due:
                    request = encode_resend(ResendRequest(tuple(due)))
                    outbound.append((self.topics.resend(vehicle_id), request))
        return outbound


def _payload_size(message: aiomqtt.Message) -> int:
    payload = message.payload
    return len(payload) if isinstance(payload, bytes | bytearray) else 0
