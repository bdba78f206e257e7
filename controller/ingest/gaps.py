"""Sequence-gap detection: which readings of a vehicle the controller has not received.

`holes_between` and `find_gaps` are pure; `scan_vehicle_gaps` runs the SQL that feeds them from
the `ingested_ranges` ledger (never from the readings hypertable).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import TupleRow


@dataclass(frozen=True, slots=True)
class Hole:
    """Missing seqs `first..last` and when the reading after them arrived."""

    first: int
    last: int
    next_received_at: datetime


@dataclass(frozen=True, slots=True)
class GapScan:
    """Result for one vehicle: the new contiguous watermark and the gaps old enough to chase."""

    contiguous_to: int
    gaps: tuple[tuple[int, int], ...]


def subtract_ranges(
    first: int, last: int, covered: Sequence[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Return the parts of first..last not inside any covered range (all inclusive)."""
    parts = [(first, last)]
    for c_first, c_last in covered:
        next_parts = []
        for a, b in parts:
            if c_last < a or c_first > b:
                next_parts.append((a, b))
                continue
            if a < c_first:
                next_parts.append((a, c_first - 1))
            if c_last < b:
                next_parts.append((c_last + 1, b))
        parts = next_parts
    return parts


def holes_between(*, contiguous_to: int, stored: Sequence[tuple[int, int, datetime]]) -> list[Hole]:
    """Holes above the watermark between stored ranges ``(first, last, received_at)``."""
    holes: list[Hole] = []
    covered_to = contiguous_to
    for first, last, received_at in sorted(stored, key=lambda r: r[0]):
        if first > covered_to + 1:
            holes.append(Hole(covered_to + 1, first - 1, received_at))
        covered_to = max(covered_to, last)
    return holes


def find_gaps(
    *,
    contiguous_to: int,
    holes: Sequence[Hole],
    dead_lettered: Sequence[tuple[int, int]],
    max_seq: int,
    grace_cutoff: datetime,
) -> GapScan:
    """Advance the watermark past everything received or dead-lettered; list chaseable gaps.

    A hole counts as a gap once the reading after it arrived before `grace_cutoff`: until then
    the missing readings may still be in flight (reordering).
    """
    missing: list[tuple[int, int, datetime]] = []
    for hole in sorted(holes, key=lambda h: h.first):
        for first, last in subtract_ranges(hole.first, hole.last, dead_lettered):
            missing.append((first, last, hole.next_received_at))
    watermark = missing[0][0] - 1 if missing else max(contiguous_to, max_seq)
    gaps = tuple((a, b) for a, b, seen in missing if seen <= grace_cutoff)
    return GapScan(contiguous_to=max(contiguous_to, watermark), gaps=gaps)


def scan_vehicle_gaps(
    conn: psycopg.Connection[TupleRow],
    *,
    vehicle_id: str,
    contiguous_to: int,
    max_seq: int,
    grace_cutoff: datetime,
) -> GapScan:
    """Query the holes above the watermark and the dead-lettered ranges, then `find_gaps`."""
    rows = conn.execute(
        "SELECT first_seq, last_seq, received_at FROM ingested_ranges"
        " WHERE vehicle_id = %s AND last_seq > %s",
        (vehicle_id, contiguous_to),
    ).fetchall()
    holes = holes_between(
        contiguous_to=contiguous_to, stored=[(int(a), int(b), t) for a, b, t in rows]
    )
    dead = conn.execute(
        "SELECT first_seq, last_seq FROM dead_letters WHERE vehicle_id = %s"
        " AND last_seq > %s ORDER BY first_seq",
        (vehicle_id, contiguous_to),
    ).fetchall()
    dead_lettered = [(int(a), int(b)) for a, b in dead]
    return find_gaps(
        contiguous_to=contiguous_to,
        holes=holes,
        dead_lettered=dead_lettered,
        max_seq=max_seq,
        grace_cutoff=grace_cutoff,
    )
