"""The durable outbox: every reading is committed to SQLite before anything is sent.

Sequence numbers are gap-free per vehicle and persisted in the same transaction as the readings,
so a crash never reuses or skips one. A reading is deleted only when the controller acknowledges
that it is committed to the database.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from coldchain_protocol.messages import Reading
from edge_agent.errors import OutboxCorrupt, OutboxFull

SyncMode = Literal["FULL", "NORMAL", "EXTRA"]
_VACUUM_FREE_PAGES = 2048  # give back freed pages once this many (8 MiB at 4 KiB) pile up

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    channel TEXT NOT NULL,
    value REAL NOT NULL,
    synced INTEGER NOT NULL
);
-- Which boot of the gateway took each reading: a row per boot, from its first seq on.
CREATE TABLE IF NOT EXISTS boots (first_seq INTEGER PRIMARY KEY, boot_id TEXT NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('next_seq', 1);
"""


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """What the outbox holds now."""

    depth: int
    oldest_ts_ms: int | None
    max_seq: int
    used_bytes: int
    budget_bytes: int


class Outbox:
    """SQLite (WAL, synchronous=FULL) store of unacknowledged readings; thread-safe."""

    def __init__(
        self, path: Path | str, *, budget_bytes: int, synchronous: SyncMode = "FULL"
    ) -> None:
        self.path = str(path)
        self.budget_bytes = budget_bytes
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            # Incremental auto-vacuum and a WAL size limit, so the file shrinks after a backlog
            # drains (auto_vacuum only takes effect when set before the first table).
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA journal_size_limit=16777216")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.executescript(_SCHEMA)
            self._page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            raise OutboxCorrupt(self.path, str(exc)) from exc

    def close(self) -> None:
        """Close the database (everything is already durable)."""
        with self._lock:
            self._db.close()

    def used_bytes(self) -> int:
        """Bytes the outbox's live pages occupy (freed pages are reused, so not counted)."""
        with self._lock:
            return self._used_bytes_locked()

    def _used_bytes_locked(self) -> int:
        pages = int(self._db.execute("PRAGMA page_count").fetchone()[0])
        free = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
        return (pages - free) * self._page_size

    def append(self, samples: Sequence[tuple[int, str, float, bool]]) -> list[Reading]:
        """Commit samples ``(ts_ms, channel, value, clock_synced)`` and return them numbered.

        Raises OutboxFull, storing nothing, when the disk budget is used up.
        """
        if not samples:
            return []
        with self._lock:
            used = self._used_bytes_locked()
            if used >= self.budget_bytes:
                raise OutboxFull(used, self.budget_bytes)
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                first = int(
                    cur.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()[0]
                )
                readings = [
                    Reading(first + i, ts_ms, channel, value, synced)
                    for i, (ts_ms, channel, value, synced) in enumerate(samples)
                ]
                cur.executemany(
                    "INSERT INTO outbox (seq, ts_ms, channel, value, synced) VALUES (?,?,?,?,?)",
                    [(r.seq, r.ts_ms, r.channel, r.value, int(r.clock_synced)) for r in readings],
                )
                cur.execute(
                    "UPDATE meta SET value=? WHERE key='next_seq'", (first + len(readings),)
                )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            return readings

    def begin_boot(self, boot_id: str) -> None:
        """Record that readings from the next seq on are taken by boot `boot_id`."""
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                next_seq = int(
                    cur.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()[0]
                )
                cur.execute(
                    "INSERT OR REPLACE INTO boots (first_seq, boot_id) VALUES (?, ?)",
                    (next_seq, boot_id),
                )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    def split_by_boot(
        self, readings: Sequence[Reading], *, default_boot: str
    ) -> list[tuple[str, list[Reading]]]:
        """Cut readings (oldest first) into runs taken by one boot each."""
        if not readings:
            return []
        with self._lock:
            rows = self._db.execute(
                "SELECT first_seq, boot_id FROM boots WHERE first_seq <= ? ORDER BY first_seq",
                (readings[-1].seq,),
            ).fetchall()
        starts = [(int(first), str(boot)) for first, boot in rows]
        out: list[tuple[str, list[Reading]]] = []
        index = 0
        for reading in readings:
            while index + 1 < len(starts) and starts[index + 1][0] <= reading.seq:
                index += 1
            boot = starts[index][1] if starts and starts[index][0] <= reading.seq else default_boot
            if out and out[-1][0] == boot:
                out[-1][1].append(reading)
            else:
                out.append((boot, [reading]))
        return out

    def fetch_after(self, after_seq: int, *, up_to: int | None = None, limit: int) -> list[Reading]:
        """Return stored readings with seq > after_seq (and <= up_to), oldest first."""
        high = up_to if up_to is not None else 2**62
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, ts_ms, channel, value, synced FROM outbox"
                " WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                (after_seq, high, limit),
            ).fetchall()
        return [Reading(s, t, c, v, bool(y)) for s, t, c, v, y in rows]

    def fetch_ranges(self, ranges: Iterable[tuple[int, int]], *, limit: int) -> list[Reading]:
        """Return stored readings inside the inclusive ranges, oldest first."""
        out: list[Reading] = []
        for first, last in _merged(ranges):
            if len(out) >= limit:
                break
            out.extend(self.fetch_after(first - 1, up_to=last, limit=limit - len(out)))
        return out

    def acknowledge(self, ranges: Iterable[tuple[int, int]]) -> int:
        """Delete readings the controller has committed; return how many were deleted."""
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                deleted = 0
                for first, last in ranges:
                    cur.execute("DELETE FROM outbox WHERE seq BETWEEN ? AND ?", (first, last))
                    deleted += cur.rowcount
                cur.execute("COMMIT")
                free = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
                if free > _VACUUM_FREE_PAGES:
                    self._db.execute(f"PRAGMA incremental_vacuum({free})")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            return deleted

    def stats(self) -> OutboxStats:
        """Depth, oldest unacknowledged reading, highest sequence number and disk use."""
        with self._lock:
            depth, oldest = self._db.execute("SELECT count(*), min(ts_ms) FROM outbox").fetchone()
            next_seq = int(
                self._db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()[0]
            )
            used = self._used_bytes_locked()
        return OutboxStats(int(depth), oldest, next_seq - 1, used, self.budget_bytes)

    def max_seq(self) -> int:
        """The highest sequence number ever assigned (0 before the first reading)."""
        with self._lock:
            return (
                int(self._db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()[0])
                - 1
            )


def _merged(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort inclusive ranges and merge overlapping or adjacent ones."""
    out: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out
