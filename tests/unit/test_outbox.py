"""The durable SQLite outbox: gap-free sequence numbers, acknowledgement, budget and durability."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from coldchain_protocol import Reading
from edge_agent.errors import OutboxCorrupt, OutboxFull
from edge_agent.outbox import Outbox

ROOT = Path(__file__).resolve().parents[2]
BASE_MS = 1_700_000_000_000
BUDGET = 256 * 1024 * 1024


def samples(
    n: int, *, start_ms: int = BASE_MS, channel: str = "temp:c1:p1", synced: bool = True
) -> list[tuple[int, str, float, bool]]:
    """`n` samples one second apart whose values encode their position."""
    return [(start_ms + i * 1000, channel, 4.0 + i / 100, synced) for i in range(n)]


def seqs(readings: list[Reading]) -> list[int]:
    return [r.seq for r in readings]


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.db", budget_bytes=BUDGET)
    yield box
    box.close()


def test_append_numbers_readings_and_keeps_their_fields(outbox: Outbox) -> None:
    assert outbox.append([]) == []
    first = outbox.append(samples(3))
    second = outbox.append([(BASE_MS + 9_000, "door:c1", 1.0, False)])
    assert seqs(first) == [1, 2, 3]
    assert second == [Reading(4, BASE_MS + 9_000, "door:c1", 1.0, False)]
    stored = outbox.fetch_after(0, limit=100)
    assert stored == [*first, *second]
    assert [(r.ts_ms, r.channel, r.value, r.clock_synced) for r in stored[:3]] == samples(3)


def test_seqs_continue_gap_free_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    box = Outbox(path, budget_bytes=BUDGET)
    assert seqs(box.append(samples(3))) == [1, 2, 3]
    assert seqs(box.append(samples(2))) == [4, 5]
    box.close()

    box = Outbox(path, budget_bytes=BUDGET)
    assert box.max_seq() == 5
    assert seqs(box.append(samples(2))) == [6, 7]
    assert seqs(box.fetch_after(0, limit=100)) == [1, 2, 3, 4, 5, 6, 7]
    # Even when everything was acknowledged (the table is empty) a sequence number is never
    # reused: the controller would take a reused seq for a duplicate and drop the reading.
    assert box.acknowledge([(1, 7)]) == 7
    box.close()

    box = Outbox(path, budget_bytes=BUDGET)
    assert box.stats().depth == 0
    assert seqs(box.append(samples(1))) == [8]
    box.close()


def test_acknowledge_deletes_only_the_given_ranges(outbox: Outbox) -> None:
    outbox.append(samples(10))
    assert outbox.acknowledge([(2, 3), (7, 7)]) == 3
    assert seqs(outbox.fetch_after(0, limit=100)) == [1, 4, 5, 6, 8, 9, 10]
    # Acknowledging again, or ranges never assigned, deletes nothing.
    assert outbox.acknowledge([(2, 3), (7, 7)]) == 0
    assert outbox.acknowledge([(11, 50)]) == 0
    assert outbox.acknowledge([]) == 0
    # A range partly acknowledged already deletes only what is left of it.
    assert outbox.acknowledge([(1, 4)]) == 2
    assert seqs(outbox.fetch_after(0, limit=100)) == [5, 6, 8, 9, 10]
    assert outbox.max_seq() == 10, "acknowledging never lowers the highest seq"


def test_fetch_after_order_bounds_and_limit(outbox: Outbox) -> None:
    outbox.append(samples(10))
    outbox.acknowledge([(5, 5)])
    assert seqs(outbox.fetch_after(0, limit=3)) == [1, 2, 3]
    assert seqs(outbox.fetch_after(3, limit=3)) == [4, 6, 7], "skips acknowledged seq 5"
    assert seqs(outbox.fetch_after(3, up_to=6, limit=100)) == [4, 6]
    assert seqs(outbox.fetch_after(3, up_to=3, limit=100)) == []
    assert seqs(outbox.fetch_after(10, limit=100)) == []
    assert outbox.fetch_after(0, limit=0) == []


def test_fetch_ranges_respects_ranges_and_limit(outbox: Outbox) -> None:
    outbox.append(samples(20))
    outbox.acknowledge([(3, 3)])
    assert seqs(outbox.fetch_ranges([(2, 4), (10, 12)], limit=100)) == [2, 4, 10, 11, 12]
    assert seqs(outbox.fetch_ranges([(2, 4), (10, 12)], limit=3)) == [2, 4, 10]
    assert seqs(outbox.fetch_ranges([(2, 4), (10, 12)], limit=1)) == [2]
    assert seqs(outbox.fetch_ranges([(3, 3), (30, 40)], limit=10)) == []
    assert outbox.fetch_ranges([], limit=10) == []


def test_fetch_ranges_is_oldest_first_without_repeats(outbox: Outbox) -> None:
    outbox.append(samples(10))
    assert seqs(outbox.fetch_ranges([(6, 8), (2, 3)], limit=100)) == [2, 3, 6, 7, 8]
    assert seqs(outbox.fetch_ranges([(2, 5), (4, 6)], limit=100)) == [2, 3, 4, 5, 6]


def test_outbox_full_stores_nothing_and_keeps_every_old_reading(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "small.db", budget_bytes=64 * 1024)
    accepted: list[Reading] = []
    with pytest.raises(OutboxFull) as info:
        for i in range(10_000):
            accepted.extend(box.append(samples(50, start_ms=BASE_MS + i * 50_000)))
    assert accepted, "the budget admits some readings before it is full"
    assert info.value.budget_bytes == 64 * 1024
    assert info.value.used_bytes >= 64 * 1024
    assert seqs(accepted) == list(range(1, len(accepted) + 1))

    before = box.stats()
    for _ in range(3):
        with pytest.raises(OutboxFull):
            box.append(samples(5))
    after = box.stats()
    assert (after.depth, after.max_seq) == (before.depth, before.max_seq) == (len(accepted),) * 2
    assert box.fetch_after(0, limit=100_000) == accepted, "old readings are all kept, unchanged"

    # Acknowledging frees space; the next append is accepted and no seq was spent on refusals.
    box.acknowledge([(1, len(accepted) - 10)])
    assert box.used_bytes() < 64 * 1024
    assert seqs(box.append(samples(2))) == [len(accepted) + 1, len(accepted) + 2]
    box.close()


def test_stats_depth_oldest_and_max_seq(outbox: Outbox) -> None:
    empty = outbox.stats()
    assert (empty.depth, empty.oldest_ts_ms, empty.max_seq) == (0, None, 0)
    assert empty.budget_bytes == BUDGET and empty.used_bytes > 0

    outbox.append([(BASE_MS + 5_000, "temp:c1:p1", 5.0, True)])
    outbox.append([(BASE_MS + 1_000, "temp:c1:p2", 5.0, True)])  # the clock stepped back
    outbox.append([(BASE_MS + 9_000, "temp:c1:p1", 5.0, True)])
    stats = outbox.stats()
    assert (stats.depth, stats.oldest_ts_ms, stats.max_seq) == (3, BASE_MS + 1_000, 3)

    outbox.acknowledge([(2, 2)])
    stats = outbox.stats()
    assert (stats.depth, stats.oldest_ts_ms, stats.max_seq) == (2, BASE_MS + 5_000, 3)

    outbox.acknowledge([(1, 3)])
    stats = outbox.stats()
    assert (stats.depth, stats.oldest_ts_ms, stats.max_seq) == (0, None, 3)


_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from edge_agent.outbox import Outbox
    box = Outbox(sys.argv[1], budget_bytes=1 << 28)
    ts = int(sys.argv[2])
    [reading] = box.append([(ts, "temp:c1:p1", 6.25, True)])
    sys.stdout.write(f"{reading.seq}\\n")
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)  # right after append returned: no close, no cleanup
    """
)


def _append_then_sigkill(path: Path, ts_ms: int) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(ts_ms)],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    return int(proc.stdout.strip())


def test_reading_survives_sigkill_right_after_append(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    box = Outbox(path, budget_bytes=BUDGET)
    box.append(samples(2))
    box.close()

    seq = _append_then_sigkill(path, BASE_MS + 77_000)
    assert seq == 3
    again = _append_then_sigkill(path, BASE_MS + 78_000)
    assert again == 4, "the seq counter committed with the reading survives the crash too"

    box = Outbox(path, budget_bytes=BUDGET)
    stored = box.fetch_after(0, limit=100)
    assert seqs(stored) == [1, 2, 3, 4]
    assert stored[2] == Reading(3, BASE_MS + 77_000, "temp:c1:p1", 6.25, True)
    assert stored[3] == Reading(4, BASE_MS + 78_000, "temp:c1:p1", 6.25, True)
    assert seqs(box.append(samples(1))) == [5]
    box.close()


def test_garbage_file_is_reported_as_corrupt_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a database" * 200)
    with pytest.raises(OutboxCorrupt) as info:
        Outbox(path, budget_bytes=BUDGET)
    assert info.value.path == str(path)


def test_readings_keep_the_boot_that_took_them(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "boots.db", budget_bytes=10 * 1024 * 1024)
    outbox.begin_boot("boot-a")
    first = outbox.append([(1000 + i, "temp:c1:p1", 5.0, True) for i in range(3)])
    outbox.begin_boot("boot-b")
    second = outbox.append([(2000 + i, "temp:c1:p1", 5.0, True) for i in range(2)])
    runs = outbox.split_by_boot(first + second, default_boot="now")
    assert [(boot, [r.seq for r in rs]) for boot, rs in runs] == [
        ("boot-a", [1, 2, 3]),
        ("boot-b", [4, 5]),
    ]
    outbox.close()
    reopened = Outbox(tmp_path / "boots.db", budget_bytes=10 * 1024 * 1024)
    assert reopened.split_by_boot(second, default_boot="now") == [("boot-b", second)]
