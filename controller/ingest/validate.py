"""Checks on an incoming telemetry message (pure: keys and time are passed in)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from coldchain_protocol import ProtocolError, TelemetryBatch, decode_batch, plausible, verify_signed
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
