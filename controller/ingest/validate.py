"""Checks on an incoming telemetry message (pure: keys and time are passed in)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from coldchain_protocol import (
    Ack,
    ProtocolError,
    Status,
    TelemetryBatch,
    Topics,
    decode_batch,
    decode_status,
    encode_ack,
    plausible,
    verify_signed,
)
from coldchain_protocol.messages import seq_ranges
from coldchain_protocol.signing import split_signed


@dataclass(frozen=True, slots=True)
class Rejection(Exception):
    """A message refused by ingest; it goes to the dead-letter table with `reason`.

    `acknowledge` says whether the agent should be told (the signature verified, so the vehicle
    really sent it and must stop resending it); `batch` is set when the body could be decoded.
    """

    reason: str
    acknowledge: bool = False
    batch: TelemetryBatch | None = None

    def __str__(self) -> str:
        return self.reason


def check_telemetry(
    *,
    topic_vehicle_id: str,
    payload: bytes,
    key_for: Callable[[str], Ed25519PublicKey | None],
    now_ms: int,
    future_tolerance_ms: int,
) -> TelemetryBatch:
    """Verify signature, schema, plausible ranges and timestamps; raise Rejection otherwise."""
    key = key_for(topic_vehicle_id)
    if key is None:
        raise Rejection(f"vehicle {topic_vehicle_id!r} is not registered")
    try:
        body = verify_signed(payload, key)
    except ProtocolError as exc:
        raise Rejection(f"signature: {exc.reason}") from exc
    try:
        batch = decode_batch(body)
    except ProtocolError as exc:
        raise Rejection(f"schema: {exc.reason}", acknowledge=True) from exc
    if batch.vehicle_id != topic_vehicle_id:
        raise Rejection(
            f"batch names vehicle {batch.vehicle_id!r} but came on {topic_vehicle_id!r}'s topic"
        )
    limit_ms = now_ms + future_tolerance_ms
    for reading in batch.readings:
        if not plausible(reading.channel, reading.value):
            raise Rejection(
                f"seq {reading.seq}: {reading.channel} = {reading.value} is not physically plausible",
                acknowledge=True,
                batch=batch,
            )
        if reading.ts_ms > limit_ms:
            raise Rejection(
                f"seq {reading.seq}: timestamp {reading.ts_ms} is {reading.ts_ms - now_ms} ms in "
                f"the future (tolerance {future_tolerance_ms} ms)",
                acknowledge=True,
                batch=batch,
            )
    return batch


def batch_id_of(payload: bytes) -> str | None:
    """Best-effort batch id of a signed payload (to acknowledge a rejected batch)."""
    try:
        body, _ = split_signed(payload)
        obj = orjson.loads(body)
    except (ProtocolError, orjson.JSONDecodeError):
        return None
    batch = obj.get("batch") if isinstance(obj, dict) else None
    return batch if isinstance(batch, str) else None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A refused message, kept with its reason and raw payload."""

    topic: str
    vehicle_id: str | None
    reason: str
    payload: bytes
    seq_range: tuple[int, int] | None


@dataclass(slots=True)
class Triage:
    """A group of messages sorted into what to store, refuse, acknowledge and record."""

    accepted: list[TelemetryBatch] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    rejection_acks: list[tuple[str, bytes]] = field(default_factory=list)
    statuses: list[tuple[str, Status]] = field(default_factory=list)


def triage(
    messages: Sequence[tuple[str, bytes]],
    *,
    topics: Topics,
    key_for: Callable[[str], Ed25519PublicKey | None],
    now_ms: int,
    future_tolerance_ms: int,
) -> Triage:
    """Check every (topic, payload) of a group; no I/O beyond the key lookup it is given."""
    out = Triage()
    for topic, payload in messages:
        try:
            vehicle_id, kind = topics.parse(topic)
        except ProtocolError as exc:
            out.dead_letters.append(DeadLetter(topic, None, exc.reason, payload, None))
            continue
        if kind == "status":
            if not payload:
                continue  # a cleared retained status
            try:
                out.statuses.append((vehicle_id, decode_status(payload)))
            except ProtocolError as exc:
                out.dead_letters.append(
                    DeadLetter(topic, vehicle_id, f"status: {exc.reason}", payload, None)
                )
            continue
        if kind != "telemetry":
            reason = f"unexpected topic kind {kind!r}"
            out.dead_letters.append(DeadLetter(topic, vehicle_id, reason, payload, None))
            continue
        try:
            batch = check_telemetry(
                topic_vehicle_id=vehicle_id,
                payload=payload,
                key_for=key_for,
                now_ms=now_ms,
                future_tolerance_ms=future_tolerance_ms,
            )
        except Rejection as rejection:
            seqs = [r.seq for r in rejection.batch.readings] if rejection.batch else []
            span = (min(seqs), max(seqs)) if seqs else None
            out.dead_letters.append(DeadLetter(topic, vehicle_id, rejection.reason, payload, span))
            batch_id = batch_id_of(payload) if rejection.acknowledge else None
            if batch_id is not None:
                ack = Ack(batch_id, seq_ranges(seqs), 0, rejection.reason)
                out.rejection_acks.append((topics.ack(vehicle_id), encode_ack(ack)))
            continue
        out.accepted.append(batch)
    return out
