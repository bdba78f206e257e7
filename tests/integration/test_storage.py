"""Storage against the real PostgreSQL/TimescaleDB: migrations, append-only readings,
idempotent batch writes (COPY fast path and deduplicating fallback), dead letters, gap scans."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from coldchain_protocol import Reading, TelemetryBatch
from controller.ingest.gaps import scan_vehicle_gaps
from controller.ingest.writer import WriteOutcome, write_batches, write_dead_letter
from controller.storage.db import available_migrations, is_hypertable, migrate, temporary_database

BASE_MS = 1_772_366_400_000  # 2026-03-01T12:00:00Z
RECEIVED = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def shared_db(admin_database_url: str) -> Iterator[str]:
    """One migrated database for the module (creating one per test is slow); the tests keep
    apart by vehicle id, topic and day, so their order does not matter."""
    with temporary_database(admin_database_url, prefix="coldchain_test") as url:
        yield url


def batch(
    vehicle_id: str,
    seqs: range | list[int],
    *,
    history: bool = False,
    boot_id: str = "boot-1",
    base_ms: int = BASE_MS,
) -> TelemetryBatch:
    """A batch whose reading `s` always has the same timestamp and value, whichever batch."""
    readings = tuple(
        Reading(s, base_ms + s * 1000, "temp:c1:p1", 4.0 + s / 100, s % 2 == 0) for s in seqs
    )
    return TelemetryBatch(vehicle_id, boot_id, uuid.uuid4().hex, base_ms, history, readings)


def table(database_url: str, vehicle_id: str) -> list[tuple[object, ...]]:
    """Every column of a vehicle's readings, by seq."""
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT seq, ts, channel, value, clock_synced, history, boot_id, received_at"
            " FROM readings WHERE vehicle_id = %s ORDER BY seq, ts",
            (vehicle_id,),
        ).fetchall()


def outcomes(result: list[WriteOutcome]) -> list[tuple[int, int]]:
    return [(o.inserted, o.duplicates) for o in result]


def test_migrate_again_is_a_noop_and_readings_is_a_hypertable(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        write_batches(conn, [batch("MIG1", range(1, 4))], received_at=RECEIVED)
    before = table(database_url, "MIG1")

    assert migrate(database_url) == []
    assert migrate(database_url) == []

    with psycopg.connect(database_url) as conn:
        versions = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    assert [v for (v,) in versions] == [m.version for m in available_migrations()]
    assert table(database_url, "MIG1") == before, "re-running migrations keeps the data"
    with psycopg.connect(database_url) as conn:
        assert is_hypertable(conn, "readings")
        assert not is_hypertable(conn, "dead_letters")


APPEND_ONLY_VIOLATIONS = (
    "UPDATE readings SET value = value + 1 WHERE vehicle_id = 'RO1'",
    "UPDATE readings SET ts = ts - interval '1 hour' WHERE vehicle_id = 'RO1' AND seq = 2",
    "DELETE FROM readings WHERE vehicle_id = 'RO1' AND seq = 1",
    "DELETE FROM readings WHERE vehicle_id = 'RO1'",
    "TRUNCATE readings",
)


def test_readings_are_append_only(shared_db: str) -> None:
    with psycopg.connect(shared_db) as conn:
        write_batches(conn, [batch("RO1", range(1, 4))], received_at=RECEIVED)
    before = table(shared_db, "RO1")
    assert len(before) == 3
    with psycopg.connect(shared_db, autocommit=True) as conn:
        for statement in APPEND_ONLY_VIOLATIONS:
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
                conn.execute(statement)
            assert "append-only" in str(info.value), statement
    assert table(shared_db, "RO1") == before
    # Appending still works.
    with psycopg.connect(shared_db) as conn:
        write_batches(conn, [batch("RO1", [4])], received_at=RECEIVED)
    assert len(table(shared_db, "RO1")) == 4


def test_writing_the_same_batches_twice_changes_nothing(shared_db: str) -> None:
    b1, b2 = batch("W1", range(1, 6)), batch("W1", range(6, 11), history=True)
    with psycopg.connect(shared_db) as conn:
        first = write_batches(conn, [b1, b2], received_at=RECEIVED)
        assert first == [WriteOutcome(b1.batch_id, 5, 0), WriteOutcome(b2.batch_id, 5, 0)]
    stored = table(shared_db, "W1")
    assert [r[0] for r in stored] == list(range(1, 11))
    assert stored[0][1] == datetime.fromtimestamp((BASE_MS + 1000) / 1000, UTC)
    assert [r[5] for r in stored] == [False] * 5 + [True] * 5, "history flag per batch"

    with psycopg.connect(shared_db) as conn:
        again = write_batches(conn, [b1, b2], received_at=RECEIVED + timedelta(minutes=5))
        assert again == [WriteOutcome(b1.batch_id, 0, 5), WriteOutcome(b2.batch_id, 0, 5)]
        # And again one at a time, on the same connection (the staging table exists by now).
        assert outcomes(write_batches(conn, [b2], received_at=RECEIVED)) == [(0, 5)]
        assert outcomes(write_batches(conn, [b1], received_at=RECEIVED)) == [(0, 5)]
    assert table(shared_db, "W1") == stored, "not even received_at changed"
    assert _max_seq(shared_db, "W1") == 10


def test_a_group_mixing_new_and_stored_batches_stores_the_new_ones_once(
    shared_db: str,
) -> None:
    stored_batch = batch("W2", range(1, 6))
    with psycopg.connect(shared_db) as conn:
        assert outcomes(write_batches(conn, [stored_batch], received_at=RECEIVED)) == [(5, 0)]

    new = batch("W2", range(6, 11))
    overlap = batch("W2", range(9, 13))  # 9, 10 also in `new` (same group), 11, 12 new
    redelivered = batch("W2", [3, 4, 13])  # 3, 4 stored before, 13 new
    other_vehicle = batch("W3", range(1, 4))
    group = [new, stored_batch, new, overlap, redelivered, other_vehicle]
    with psycopg.connect(shared_db) as conn:
        result = write_batches(conn, group, received_at=RECEIVED)
    assert [o.batch_id for o in result] == [b.batch_id for b in group]
    assert outcomes(result) == [(5, 0), (0, 5), (0, 5), (2, 2), (1, 2), (3, 0)]
    assert sum(o.inserted for o in result) == 11

    rows = table(shared_db, "W2")
    assert [r[0] for r in rows] == list(range(1, 14)), "every seq exactly once"
    assert [r[1] for r in rows] == [
        datetime.fromtimestamp((BASE_MS + s * 1000) / 1000, UTC) for s in range(1, 14)
    ]
    assert [r[0] for r in table(shared_db, "W3")] == [1, 2, 3]
    assert (_max_seq(shared_db, "W2"), _max_seq(shared_db, "W3")) == (13, 3)


def test_the_same_batch_twice_in_one_new_group(shared_db: str) -> None:
    b = batch("W4", range(1, 5))
    with psycopg.connect(shared_db) as conn:
        result = write_batches(conn, [b, b], received_at=RECEIVED)
    assert outcomes(result) == [(4, 0), (0, 4)]
    assert [r[0] for r in table(shared_db, "W4")] == [1, 2, 3, 4]
    with psycopg.connect(shared_db) as conn:
        assert write_batches(conn, [], received_at=RECEIVED) == []
    assert [r[0] for r in table(shared_db, "W4")] == [1, 2, 3, 4]


def test_dead_letters_keep_the_payload_byte_for_byte(shared_db: str) -> None:
    payload = bytes(range(256)) * 3 + b"\x00\x00tail\xff"
    with psycopg.connect(shared_db) as conn:
        write_dead_letter(
            conn,
            topic="cctest/v1/DL1/telemetry",
            vehicle_id="DL1",
            reason="signature: does not verify",
            payload=payload,
            seq_range=(7, 12),
        )
        write_dead_letter(
            conn,
            topic="cctest/v1/bad topic",
            vehicle_id=None,
            reason="topic is not ours",
            payload=b"",
            seq_range=None,
        )
    with psycopg.connect(shared_db) as conn:
        rows = conn.execute(
            "SELECT topic, vehicle_id, reason, first_seq, last_seq, payload, received_at"
            " FROM dead_letters WHERE topic LIKE 'cctest/%%' ORDER BY id"
        ).fetchall()
    assert len(rows) == 2
    topic, vid, reason, first, last, stored, received_at = rows[0]
    assert (topic, vid, reason, first, last) == (
        "cctest/v1/DL1/telemetry",
        "DL1",
        "signature: does not verify",
        7,
        12,
    )
    assert bytes(stored) == payload
    assert received_at is not None
    assert rows[1][:5] == ("cctest/v1/bad topic", None, "topic is not ours", None, None)
    assert bytes(rows[1][5]) == b""


def test_scan_vehicle_gaps_on_stored_readings(shared_db: str) -> None:
    with psycopg.connect(shared_db) as conn:
        write_batches(
            conn,
            [batch("G1", range(1, 6)), batch("G1", range(9, 11)), batch("G1", [14, 15])],
            received_at=RECEIVED,
        )
        write_dead_letter(
            conn,
            topic="gaps/G1",
            vehicle_id="G1",
            reason="implausible",
            payload=b"x",
            seq_range=(6, 6),
        )
        write_dead_letter(
            conn, topic="gaps/OTHER", vehicle_id="OTHER", reason="x", payload=b"x", seq_range=(7, 8)
        )
    with psycopg.connect(shared_db, autocommit=True) as conn:
        late = scan_vehicle_gaps(
            conn,
            vehicle_id="G1",
            contiguous_to=0,
            max_seq=15,
            grace_cutoff=RECEIVED + timedelta(seconds=1),
        )
        assert late.contiguous_to == 6, "6 was dead-lettered: refused, not missing"
        assert late.gaps == ((7, 8), (11, 13)), "OTHER's dead letters don't cover G1's seqs"

        early = scan_vehicle_gaps(
            conn,
            vehicle_id="G1",
            contiguous_to=0,
            max_seq=15,
            grace_cutoff=RECEIVED - timedelta(seconds=1),
        )
        assert (early.contiguous_to, early.gaps) == (6, ()), "still inside the grace period"

        above = scan_vehicle_gaps(
            conn,
            vehicle_id="G1",
            contiguous_to=10,
            max_seq=15,
            grace_cutoff=RECEIVED + timedelta(seconds=1),
        )
        assert (above.contiguous_to, above.gaps) == (10, ((11, 13),))


def _max_seq(database_url: str, vehicle_id: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT max_seq FROM vehicle_sequences WHERE vehicle_id = %s", (vehicle_id,)
        ).fetchone()
    return int(row[0]) if row else -1
