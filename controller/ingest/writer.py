"""Idempotent writes of reading batches into the hypertable.

Fast path: one binary COPY of a whole group of batches straight into `readings`. The unique
index (vehicle_id, ts, seq) turns a redelivered reading into a unique violation, and only then
does the group go through the slow path: COPY into a temporary staging table and
INSERT ... ON CONFLICT DO NOTHING. A repeated batch therefore changes nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from coldchain_protocol import TelemetryBatch
from coldchain_protocol.messages import seq_ranges

_COLUMNS = (
    "vehicle_id",
    "seq",
    "ts",
    "channel",
    "value",
    "clock_synced",
    "history",
    "boot_id",
    "received_at",
)
# `ts` is written as int8: binary COPY takes a timestamptz as int64 microseconds since
# 2000-01-01 UTC, so the device's milliseconds convert with one integer operation per row.
_TYPES = ["text", "int8", "int8", "text", "float8", "bool", "bool", "text", "timestamptz"]
_PG_EPOCH_MS = 946_684_800_000


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """Per batch: how many readings were new and how many were already stored."""

    batch_id: str
    inserted: int
    duplicates: int


def _copy_rows(
    cur: psycopg.Cursor[TupleRow],
    table: str,
    batches: Sequence[TelemetryBatch],
    received_at: datetime,
) -> None:
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, _COLUMNS))
    )
    with cur.copy(statement) as copy:
        copy.set_types(_TYPES)
        write_row = copy.write_row
        for batch in batches:
            vid, boot, history = batch.vehicle_id, batch.boot_id, batch.history
            for seq, ts_ms, channel, value, synced in batch.readings:
                write_row(
                    (
                        vid,
                        seq,
                        (ts_ms - _PG_EPOCH_MS) * 1000,
                        channel,
                        value,
                        synced,
                        history,
                        boot,
                        received_at,
                    )
                )


def _record_ranges(
    cur: psycopg.Cursor[TupleRow],
    stored: Sequence[tuple[str, Sequence[int]]],
    received_at: datetime,
) -> None:
    """Note which seqs of which vehicle are now stored (the gap checker reads these)."""
    rows = [
        (vehicle_id, first, last, received_at)
        for vehicle_id, seqs in stored
        for first, last in seq_ranges(seqs)
    ]
    if rows:
        cur.executemany(
            "INSERT INTO ingested_ranges (vehicle_id, first_seq, last_seq, received_at)"
            " VALUES (%s, %s, %s, %s)",
            rows,
        )


def _record_sequences(cur: psycopg.Cursor[TupleRow], batches: Sequence[TelemetryBatch]) -> None:
    highest: dict[str, int] = {}
    for batch in batches:
        top = max(r.seq for r in batch.readings)
        highest[batch.vehicle_id] = max(highest.get(batch.vehicle_id, 0), top)
    vehicles = sorted(highest)  # a fixed order avoids deadlocks between replicas
    cur.execute(
        "INSERT INTO vehicle_sequences (vehicle_id, max_seq)"
        " SELECT * FROM unnest(%s::text[], %s::int8[])"
        " ON CONFLICT (vehicle_id) DO UPDATE"
        " SET max_seq = greatest(vehicle_sequences.max_seq, excluded.max_seq), updated_at = now()",
        (vehicles, [highest[v] for v in vehicles]),
    )


def write_batches(
    conn: psycopg.Connection[TupleRow],
    batches: Sequence[TelemetryBatch],
    *,
    received_at: datetime,
) -> list[WriteOutcome]:
    """Store the readings of every batch exactly once and commit; return per-batch outcomes."""
    if not batches:
        return []
    try:
        with conn.transaction(), conn.cursor() as cur:
            _copy_rows(cur, "readings", batches, received_at)
            _record_sequences(cur, batches)
            _record_ranges(
                cur, [(b.vehicle_id, [r.seq for r in b.readings]) for b in batches], received_at
            )
        return [WriteOutcome(b.batch_id, len(b.readings), 0) for b in batches]
    except psycopg.errors.UniqueViolation:
        pass
    return _write_deduplicated(conn, batches, received_at=received_at)


def _write_deduplicated(
    conn: psycopg.Connection[TupleRow],
    batches: Sequence[TelemetryBatch],
    *,
    received_at: datetime,
) -> list[WriteOutcome]:
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS readings_staging"
            " (LIKE readings INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        _copy_rows(cur, "readings_staging", batches, received_at)
        # One row per (vehicle, seq): a group may carry the same batch twice.
        cur.execute(
            "INSERT INTO readings SELECT DISTINCT ON (vehicle_id, ts, seq) * FROM readings_staging"
            " ON CONFLICT (vehicle_id, ts, seq) DO NOTHING RETURNING vehicle_id, seq"
        )
        inserted = {(str(v), int(s)) for v, s in cur.fetchall()}
        _record_sequences(cur, batches)
        by_vehicle: dict[str, list[int]] = {}
        for vehicle_id, seq in inserted:
            by_vehicle.setdefault(vehicle_id, []).append(seq)
        _record_ranges(cur, list(by_vehicle.items()), received_at)
    outcomes = []
    claimed: Counter[tuple[str, int]] = Counter()
    for batch in batches:
        new = 0
        for r in batch.readings:
            key = (batch.vehicle_id, r.seq)
            if key in inserted and claimed[key] == 0:
                claimed[key] += 1
                new += 1
        outcomes.append(WriteOutcome(batch.batch_id, new, len(batch.readings) - new))
    return outcomes


def write_dead_letter(
    conn: psycopg.Connection[TupleRow],
    *,
    topic: str,
    vehicle_id: str | None,
    reason: str,
    payload: bytes,
    seq_range: tuple[int, int] | None,
) -> None:
    """Keep a refused message with its reason and raw payload (committed before returning)."""
    with conn.transaction():
        conn.execute(
            "INSERT INTO dead_letters (topic, vehicle_id, reason, first_seq, last_seq, payload)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (
                topic,
                vehicle_id,
                reason,
                seq_range[0] if seq_range else None,
                seq_range[1] if seq_range else None,
                payload,
            ),
        )
