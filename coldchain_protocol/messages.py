"""Message schemas (version 1) and their JSON encoding.

Every message body is a compact JSON object with ``"v": 1`` and a ``"type"``. Readings travel as
arrays ``[seq, ts_ms, channel, value, clock_synced]`` to keep batches small and fast to parse.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from coldchain_protocol.channels import channel_kind
from coldchain_protocol.errors import ProtocolError
from coldchain_protocol.topics import check_vehicle_id

PROTOCOL_VERSION = 1
MAX_BATCH_READINGS = 10_000
MAX_SEQ = 2**63 - 1  # the database stores seq as a signed 64-bit integer
MAX_TS_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


class Reading(NamedTuple):
    """One measurement: gap-free per-vehicle sequence number, device UTC time in ms.

    A named tuple rather than a dataclass: ingest builds hundreds of thousands per second.
    """

    seq: int
    ts_ms: int
    channel: str
    value: float
    clock_synced: bool = True


@dataclass(frozen=True, slots=True)
class TelemetryBatch:
    """A batch of readings from one vehicle; `history` marks back-filled readings."""

    vehicle_id: str
    boot_id: str
    batch_id: str
    sent_ms: int
    history: bool
    readings: tuple[Reading, ...]


@dataclass(frozen=True, slots=True)
class Ack:
    """Controller's word that these sequence ranges (inclusive) are committed to the database."""

    batch_id: str
    ranges: tuple[tuple[int, int], ...]
    duplicates: int = 0
    # Set when the batch was refused and kept in the controller's dead-letter table instead.
    rejected: str | None = None


@dataclass(frozen=True, slots=True)
class ResendRequest:
    """Controller asks an agent to send these sequence ranges (inclusive) again."""

    ranges: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class Status:
    """Agent status: retained on the status topic; the last will says ``offline``."""

    state: str
    boot_id: str
    ts_ms: int
    outbox_depth: int = 0
    oldest_unacked_ms: int | None = None
    reconnects: int = 0
    refused: int = 0


def _loads(body: bytes, expected_type: str) -> dict[str, Any]:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"body is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ProtocolError("body is not a JSON object")
    version = obj.get("v")
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise ProtocolError(f"unsupported protocol version {version!r}, expected 1")
    if obj.get("type") != expected_type:
        raise ProtocolError(f"message type {obj.get('type')!r}, expected {expected_type!r}")
    return obj


def _field(obj: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = obj.get(name)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ProtocolError(f"field {name!r} is missing or has the wrong type")
    return value


def _ranges(raw: Any) -> tuple[tuple[int, int], ...]:
    if not isinstance(raw, list):
        raise ProtocolError("field 'ranges' must be a list of [first, last] pairs")
    out: list[tuple[int, int]] = []
    for item in raw:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not all(type(x) is int for x in item)
            or item[0] > item[1]
            or item[0] < 1
            or item[1] > MAX_SEQ
        ):
            raise ProtocolError(f"bad sequence range {item!r}")
        out.append((item[0], item[1]))
    return tuple(out)


def encode_batch_body(batch: TelemetryBatch) -> bytes:
    """Encode a telemetry batch body (to be signed)."""
    return orjson.dumps(
        {
            "v": PROTOCOL_VERSION,
            "type": "telemetry",
            "vehicle": batch.vehicle_id,
            "boot": batch.boot_id,
            "batch": batch.batch_id,
            "sent": batch.sent_ms,
            "history": batch.history,
            "readings": [
                [r.seq, r.ts_ms, r.channel, r.value, 1 if r.clock_synced else 0]
                for r in batch.readings
            ],
        }
    )


def decode_batch(body: bytes) -> TelemetryBatch:
    """Decode and check the shape of a telemetry body; raise ProtocolError naming the fault."""
    obj = _loads(body, "telemetry")
    vehicle_id = check_vehicle_id(_field(obj, "vehicle", str))
    boot_id = _field(obj, "boot", str)
    batch_id = _field(obj, "batch", str)
    if not 0 < len(batch_id) <= 64 or not 0 < len(boot_id) <= 64:
        raise ProtocolError("fields 'boot' and 'batch' must be 1-64 characters")
    sent_ms = _field(obj, "sent", int)
    history = obj.get("history")
    if not isinstance(history, bool):
        raise ProtocolError("field 'history' is missing or not a boolean")
    raw = obj.get("readings")
    if not isinstance(raw, list) or not raw:
        raise ProtocolError("field 'readings' must be a non-empty list")
    if len(raw) > MAX_BATCH_READINGS:
        raise ProtocolError(f"batch has {len(raw)} readings, at most {MAX_BATCH_READINGS}")
    readings = []
    seen: set[int] = set()
    for i, item in enumerate(raw):
        if not isinstance(item, list) or len(item) != 5:
            raise ProtocolError(f"reading {i} is not [seq, ts_ms, channel, value, clock_synced]")
        seq, ts_ms, channel, value, synced = item
        if type(seq) is not int or not 1 <= seq <= MAX_SEQ:
            raise ProtocolError(f"reading {i}: seq must be an integer from 1 to 2^63-1")
        if seq in seen:
            raise ProtocolError(f"reading {i}: seq {seq} appears twice in the batch")
        seen.add(seq)
        if type(ts_ms) is not int or not 0 <= ts_ms <= MAX_TS_MS:
            raise ProtocolError(f"reading {i}: ts_ms must be an integer from 0 to {MAX_TS_MS}")
        if type(channel) is not str or channel_kind(channel) is None:
            raise ProtocolError(f"reading {i}: unknown channel {channel!r}")
        if type(value) not in (int, float) or not math.isfinite(value):
            raise ProtocolError(f"reading {i}: value must be a finite number")
        if synced not in (0, 1) or type(synced) is not int:
            raise ProtocolError(f"reading {i}: clock_synced must be 0 or 1")
        readings.append(Reading(seq, ts_ms, channel, float(value), synced == 1))
    return TelemetryBatch(vehicle_id, boot_id, batch_id, sent_ms, history, tuple(readings))


def encode_ack(ack: Ack) -> bytes:
    """Encode an acknowledgement."""
    return orjson.dumps(
        {
            "v": PROTOCOL_VERSION,
            "type": "ack",
            "batch": ack.batch_id,
            "ranges": [list(r) for r in ack.ranges],
            "duplicates": ack.duplicates,
            "rejected": ack.rejected,
        }
    )


def decode_ack(body: bytes) -> Ack:
    """Decode an acknowledgement."""
    obj = _loads(body, "ack")
    duplicates = _count(obj, "duplicates")
    rejected = obj.get("rejected")
    if rejected is not None and not isinstance(rejected, str):
        raise ProtocolError("field 'rejected' must be a string or null")
    return Ack(_field(obj, "batch", str), _ranges(obj.get("ranges")), duplicates, rejected)


def encode_resend(request: ResendRequest) -> bytes:
    """Encode a resend request."""
    return orjson.dumps(
        {"v": PROTOCOL_VERSION, "type": "resend", "ranges": [list(r) for r in request.ranges]}
    )


def decode_resend(body: bytes) -> ResendRequest:
    """Decode a resend request."""
    obj = _loads(body, "resend")
    return ResendRequest(_ranges(obj.get("ranges")))


def encode_status(status: Status) -> bytes:
    """Encode a status message."""
    return orjson.dumps(
        {
            "v": PROTOCOL_VERSION,
            "type": "status",
            "state": status.state,
            "boot": status.boot_id,
            "ts": status.ts_ms,
            "outbox_depth": status.outbox_depth,
            "oldest_unacked_ms": status.oldest_unacked_ms,
            "reconnects": status.reconnects,
            "refused": status.refused,
        }
    )


def decode_status(body: bytes) -> Status:
    """Decode a status message."""
    obj = _loads(body, "status")
    state = _field(obj, "state", str)
    if state not in ("online", "offline"):
        raise ProtocolError(f"status state {state!r}, expected 'online' or 'offline'")
    oldest = obj.get("oldest_unacked_ms")
    if oldest is not None and type(oldest) is not int:
        raise ProtocolError("field 'oldest_unacked_ms' must be an integer or null")
    boot_id = _field(obj, "boot", str)
    if not 0 < len(boot_id) <= 64:
        raise ProtocolError("field 'boot' must be 1-64 characters")
    return Status(
        state=state,
        boot_id=boot_id,
        ts_ms=_field(obj, "ts", int),
        outbox_depth=_count(obj, "outbox_depth"),
        oldest_unacked_ms=oldest,
        reconnects=_count(obj, "reconnects"),
        refused=_count(obj, "refused"),
    )


def _count(obj: dict[str, Any], name: str) -> int:
    value = obj.get(name, 0)
    if type(value) is not int or not 0 <= value <= MAX_SEQ:
        raise ProtocolError(f"field {name!r} must be a non-negative integer")
    return value


def seq_ranges(seqs: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """Collapse sequence numbers into sorted inclusive ranges."""
    out: list[tuple[int, int]] = []
    for s in sorted(set(seqs)):
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return tuple(out)
