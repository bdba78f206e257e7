"""The edge agent: samples sensors into the durable outbox, publishes signed batches over MQTT,
deletes readings only on the controller's acknowledgement, and alarms locally even offline."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import aiomqtt
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coldchain_protocol import (
    ProtocolError,
    Status,
    TelemetryBatch,
    Topics,
    decode_ack,
    decode_resend,
    encode_batch_body,
    encode_status,
    sign_body,
)
from coldchain_protocol.mqtt import (
    BrokerAddress,
    client_session_options,
    jittered_backoff,
    reraise_cancellation,
)
from edge_agent.alarms import AlarmEvent, AlarmOutput, Band, LocalAlarmMonitor, LogAlarmOutput
from edge_agent.clock import Clock
from edge_agent.errors import OutboxFull
from edge_agent.outbox import Outbox
from edge_agent.planner import SendPlanner
from edge_agent.sensors.base import SensorDriver
from edge_agent.settings import AgentSettings

log = logging.getLogger(__name__)


@dataclass(slots=True)
class AgentCounters:
    """What the agent has done since it started (reported in its status)."""

    sampled: int = 0
    refused: int = 0
    published_batches: int = 0
    published_readings: int = 0
    acked_readings: int = 0
    reconnects: int = 0
    resend_requests: int = 0
    expired_batches: int = 0
    rejected_batches: int = 0


class EdgeAgent:
    """One vehicle's gateway agent. `run()` runs until cancelled or `stop()`."""

    def __init__(
        self,
        *,
        settings: AgentSettings,
        driver: SensorDriver,
        clock: Clock,
        key: Ed25519PrivateKey,
        outbox: Outbox,
        alarm_outputs: Sequence[AlarmOutput] = (),
        boot_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.driver = driver
        self.clock = clock
        self.key = key
        self.outbox = outbox
        self.boot_id = boot_id or uuid.uuid4().hex
        self.topics = Topics(settings.topic_prefix)
        self.broker = BrokerAddress.parse(settings.mqtt_url)
        self.alarm_outputs: list[AlarmOutput] = [LogAlarmOutput(), *alarm_outputs]
        self.monitor = LocalAlarmMonitor(
            bands={
                c.compartment_id: Band(-math.inf if c.low_c is None else c.low_c, c.high_c)
                for c in settings.compartments
            },
            alarm_delay_s=settings.alarm_delay_s,
            hysteresis_c=settings.alarm_hysteresis_c,
        )
        self.planner = SendPlanner(
            max_batch=settings.max_batch_readings,
            max_inflight=settings.max_inflight_batches,
            ack_timeout_s=settings.ack_timeout_s,
            backlog_rate_per_s=settings.backlog_rate_readings_s,
        )
        self.counters = AgentCounters()
        self.connected = False
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._sampling_stopped = asyncio.Event()
        self._last_live_s = 0.0
        self._outbox_full = False
        # Simulated network outages: a cut link drops the session and blocks reconnecting.
        self._link_allowed = asyncio.Event()
        self._link_allowed.set()
        self._link_cut = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Sample, publish and report until stopped."""
        await asyncio.to_thread(self.outbox.begin_boot, self.boot_id)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._sampling(), name=f"{self.settings.vehicle_id}-sampling")
            tg.create_task(self._link(), name=f"{self.settings.vehicle_id}-link")
            tg.create_task(self._reporting(), name=f"{self.settings.vehicle_id}-status")
            await self._stop.wait()
            raise _Stopped

    def stop(self) -> None:
        """Ask `run()` to return after the current step."""
        self._stop.set()

    def cut_link(self) -> None:
        """Simulate a network outage: drop the broker session and stay offline until restored."""
        self._link_allowed.clear()
        self._link_cut.set()

    def restore_link(self) -> None:
        """End a simulated network outage; the agent reconnects with its usual backoff."""
        self._link_cut.clear()
        self._link_allowed.set()

    async def _watching_link(self) -> None:
        await self._link_cut.wait()
        raise LinkCut("network outage (simulated)")

    # -- sampling --------------------------------------------------------------------------

    def stop_sampling(self) -> None:
        """Stop taking readings but keep publishing until the outbox drains (end of a run)."""
        self._sampling_stopped.set()

    async def _sampling(self) -> None:
        next_s = self.clock.now_s()
        while not self._sampling_stopped.is_set():
            await self.sample_once()
            next_s += self.settings.sample_interval_s
            await self.clock.sleep(next_s - self.clock.now_s())

    async def sample_once(self) -> None:
        """Read every channel, commit to the outbox, evaluate local alarms."""
        now_s = self.clock.now_s()
        values = self.driver.sample(now_s)
        ts_ms = int(now_s * 1000)
        synced = self.clock.synced()
        samples = [(ts_ms, channel, float(value), synced) for channel, value in values]
        try:
            await asyncio.to_thread(self.outbox.append, samples)
            self.counters.sampled += len(samples)
            if self._outbox_full:
                self._outbox_full = False
                await self._emit(
                    AlarmEvent("outbox_full", "outbox", False, now_s, "accepting again")
                )
        except OutboxFull as exc:
            self.counters.refused += len(samples)
            if not self._outbox_full:
                self._outbox_full = True
                await self._emit(AlarmEvent("outbox_full", "outbox", True, now_s, str(exc)))
        for event in self.monitor.update(now_s, values):
            await self._emit(event)
        self._wake.set()

    async def _emit(self, event: AlarmEvent) -> None:
        for output in self.alarm_outputs:
            await output.emit(event)

    # -- MQTT link -------------------------------------------------------------------------

    def _client(self) -> aiomqtt.Client:
        offline = encode_status(Status("offline", self.boot_id, int(self.clock.now_s() * 1000)))
        return aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            username=self.broker.username,
            password=self.broker.password,
            identifier=f"edge-{self.settings.vehicle_id}",
            will=aiomqtt.Will(self.topics.status(self.settings.vehicle_id), offline, 1, True),
            **client_session_options(self.settings.mqtt_protocol),
            keepalive=30,
            timeout=10,
            max_inflight_messages=max(20, self.settings.max_inflight_batches * 2),
        )

    async def _link(self) -> None:
        s = self.settings
        delays = jittered_backoff(min_s=s.reconnect_min_s, max_s=s.reconnect_max_s)
        first = True
        while True:
            await self._link_allowed.wait()
            if not first:
                self.counters.reconnects += 1
            first = False
            try:
                async with self._client() as client:
                    self.connected = True
                    delays = jittered_backoff(min_s=s.reconnect_min_s, max_s=s.reconnect_max_s)
                    await self._session(client)
            except* aiomqtt.MqttError as group:
                reraise_cancellation(group.exceptions)
                log.warning(
                    "%s: broker link lost: %s", self.settings.vehicle_id, group.exceptions[0]
                )
            finally:
                self.connected = False
            await asyncio.sleep(next(delays))

    async def _session(self, client: aiomqtt.Client) -> None:
        vid = self.settings.vehicle_id
        await client.subscribe(self.topics.ack(vid), qos=1)
        await client.subscribe(self.topics.resend(vid), qos=1)
        await self._publish_status(client)
        self.planner.on_connected(await asyncio.to_thread(self.outbox.max_seq))
        self._wake.set()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._receiving(client), name=f"{vid}-receiving")
                tg.create_task(self._sending(client), name=f"{vid}-sending")
                tg.create_task(self._watching_link(), name=f"{vid}-link-watch")
        except asyncio.CancelledError:
            # A clean stop: say so, since the broker sends the last will only on a lost link.
            offline = Status("offline", self.boot_id, int(self.clock.now_s() * 1000))
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                await asyncio.wait_for(
                    client.publish(
                        self.topics.status(vid), encode_status(offline), qos=1, retain=True
                    ),
                    2.0,
                )
            raise

    async def _receiving(self, client: aiomqtt.Client) -> None:
        vid = self.settings.vehicle_id
        ack_topic, resend_topic = self.topics.ack(vid), self.topics.resend(vid)
        async for message in client.messages:
            _raise_if_cancelled()
            payload = message.payload
            if not isinstance(payload, bytes | bytearray):
                continue
            topic = str(message.topic)
            try:
                if topic == ack_topic:
                    ack = decode_ack(bytes(payload))
                    if ack.rejected is not None:
                        # The controller kept the signed batch in its dead-letter table.
                        self.counters.rejected_batches += 1
                        log.error(
                            "%s: controller rejected batch %s: %s", vid, ack.batch_id, ack.rejected
                        )
                    deleted = await asyncio.to_thread(self.outbox.acknowledge, ack.ranges)
                    self.counters.acked_readings += deleted
                    self.planner.on_ack(ack.batch_id)
                elif topic == resend_topic:
                    request = decode_resend(bytes(payload))
                    self.counters.resend_requests += 1
                    self.planner.on_resend(request.ranges)
            except ProtocolError as exc:
                log.error("%s: ignoring malformed message on %s: %s", vid, topic, exc.reason)
                continue
            self._wake.set()

    def _live_due(self, now_s: float) -> bool:
        interval = self.settings.publish_interval_s
        if self.monitor.out_of_band():
            interval = min(interval, self.settings.excursion_publish_interval_s)
        return now_s - self._last_live_s >= interval

    async def _sending(self, client: aiomqtt.Client) -> None:
        vid = self.settings.vehicle_id
        while True:
            _raise_if_cancelled()
            self._wake.clear()
            now_s = self.clock.now_s()
            self.counters.expired_batches += self.planner.expire(now_s)
            live_due = self._live_due(now_s)
            planned = await asyncio.to_thread(
                self.planner.next_batch, self.outbox, now_s=now_s, live_due=live_due
            )
            if planned is None:
                await self.clock.wait(self._wake, self._idle_timeout_s(now_s))
                continue
            if not planned.history:
                self._last_live_s = now_s
            # A batch carries one boot id: readings taken before a reboot keep theirs.
            runs = await asyncio.to_thread(
                self.outbox.split_by_boot, planned.readings, default_boot=self.boot_id
            )
            for boot_id, readings in runs:
                batch = TelemetryBatch(
                    vehicle_id=vid,
                    boot_id=boot_id,
                    batch_id=uuid.uuid4().hex,
                    sent_ms=int(now_s * 1000),
                    history=planned.history,
                    readings=tuple(readings),
                )
                payload = sign_body(encode_batch_body(batch), self.key)
                self.planner.register(batch.batch_id, readings, now_s)
                await client.publish(self.topics.telemetry(vid), payload, qos=1)
                self.counters.published_batches += 1
                self.counters.published_readings += len(readings)

    def _idle_timeout_s(self, now_s: float) -> float:
        # Nothing could be sent: sleep until the next reason to look again (a new sample, an
        # ack or a resend request sets the wake event earlier).
        waits = [self.settings.sample_interval_s]
        live_in = self.settings.publish_interval_s - (now_s - self._last_live_s)
        if live_in > 0:
            waits.append(live_in)
        deadline = self.planner.next_deadline_s()
        if deadline is not None:
            waits.append(deadline - now_s)
        if (
            self.planner.backlog_pending()
            and len(self.planner.inflight) < self.planner.max_inflight
        ):
            waits.append(self.planner.seconds_until_tokens())
        return max(0.001, min(waits))

    # -- status ----------------------------------------------------------------------------

    def status(self) -> dict[str, object]:
        """Outbox depth, oldest unacknowledged age, reconnects, refusals and counters."""
        stats = self.outbox.stats()
        now_s = self.clock.now_s()
        return {
            "vehicle_id": self.settings.vehicle_id,
            "boot_id": self.boot_id,
            "connected": self.connected,
            "at": now_s,
            "outbox_depth": stats.depth,
            "outbox_used_bytes": stats.used_bytes,
            "outbox_budget_bytes": stats.budget_bytes,
            "oldest_unacked_age_s": None
            if stats.oldest_ts_ms is None
            else round(now_s - stats.oldest_ts_ms / 1000, 3),
            "max_seq": stats.max_seq,
            "inflight_batches": len(self.planner.inflight),
            "out_of_band": self.monitor.out_of_band(),
            **asdict(self.counters),
        }

    async def _publish_status(self, client: aiomqtt.Client) -> None:
        stats = await asyncio.to_thread(self.outbox.stats)
        status = Status(
            state="online",
            boot_id=self.boot_id,
            ts_ms=int(self.clock.now_s() * 1000),
            outbox_depth=stats.depth,
            oldest_unacked_ms=stats.oldest_ts_ms,
            reconnects=self.counters.reconnects,
            refused=self.counters.refused,
        )
        await client.publish(
            self.topics.status(self.settings.vehicle_id), encode_status(status), qos=1, retain=True
        )

    async def _reporting(self) -> None:
        while True:
            await self.clock.sleep(self.settings.status_interval_s)
            status = await asyncio.to_thread(self.status)
            if self.settings.status_file is not None:
                await asyncio.to_thread(
                    _write_atomic, self.settings.status_file, orjson.dumps(status)
                )
            log.info(
                "%s: connected=%s outbox_depth=%s oldest_unacked_age_s=%s reconnects=%s refused=%s",
                self.settings.vehicle_id,
                status["connected"],
                status["outbox_depth"],
                status["oldest_unacked_age_s"],
                status["reconnects"],
                status["refused"],
            )


def _raise_if_cancelled() -> None:
    """Honour a cancellation that asyncio.wait_for swallowed (CPython gh-86296, Python 3.11).

    Only for leaf tasks: a task that ran a failed TaskGroup keeps `cancelling()` raised on 3.11.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class LinkCut(aiomqtt.MqttError):
    """The link was cut on purpose (a simulated outage): handled like a lost broker link."""


class _Stopped(Exception):
    """Raised inside the agent's task group to end it on `stop()`."""


async def run_until_stopped(agent: EdgeAgent) -> None:
    """Run an agent and return normally when it is stopped."""
    try:
        await agent.run()
    except* _Stopped:
        pass


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + f".{time.monotonic_ns()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
