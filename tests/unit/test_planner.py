"""SendPlanner over a real outbox: live first, retries, a rate-limited history backlog."""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coldchain_protocol import Reading
from edge_agent.outbox import Outbox
from edge_agent.planner import PlannedBatch, SendPlanner

BASE_MS = 1_700_000_000_000
_ids = itertools.count(1)


def fill(outbox: Outbox, n: int) -> list[Reading]:
    return outbox.append(
        [(BASE_MS + i * 1000, "temp:c1:p1", 4.0 + (i % 50) / 10, True) for i in range(n)]
    )


def seqs(batch: PlannedBatch | None) -> list[int]:
    assert batch is not None, "expected a batch"
    return [r.seq for r in batch.readings]


def planner(**overrides: float) -> SendPlanner:
    values: dict[str, float] = {
        "max_batch": 100,
        "max_inflight": 100,
        "ack_timeout_s": 5.0,
        "backlog_rate_per_s": 1e9,
    }
    values.update(overrides)
    return SendPlanner(
        max_batch=int(values["max_batch"]),
        max_inflight=int(values["max_inflight"]),
        ack_timeout_s=values["ack_timeout_s"],
        backlog_rate_per_s=values["backlog_rate_per_s"],
    )


def send(
    p: SendPlanner, outbox: Outbox, *, now_s: float, live_due: bool = True
) -> PlannedBatch | None:
    """Plan one batch and register it as published, like the agent does."""
    batch = p.next_batch(outbox, now_s=now_s, live_due=live_due)
    if batch is not None:
        p.register(f"b{next(_ids)}", batch.readings, now_s)
    return batch


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.db", budget_bytes=1 << 28, synchronous="NORMAL")
    yield box
    box.close()


def test_before_any_connection_everything_is_live(outbox: Outbox) -> None:
    p = planner(max_batch=4)
    fill(outbox, 6)
    first = send(p, outbox, now_s=0)
    assert first is not None and not first.history and seqs(first) == [1, 2, 3, 4]
    assert seqs(send(p, outbox, now_s=0)) == [5, 6]
    assert send(p, outbox, now_s=0) is None


def test_live_readings_go_before_the_backlog(outbox: Outbox) -> None:
    p = planner()
    fill(outbox, 5)  # stored while offline
    p.on_connected(outbox.max_seq())
    fill(outbox, 3)  # sampled after the link came up
    live = send(p, outbox, now_s=0)
    assert live is not None and not live.history and seqs(live) == [6, 7, 8]
    backlog = send(p, outbox, now_s=0)
    assert backlog is not None and backlog.history and seqs(backlog) == [1, 2, 3, 4, 5]
    assert send(p, outbox, now_s=0) is None
    assert not p.backlog_pending()

    # New live readings still go first while a backlog is pending.
    fill(outbox, 2)
    p.on_connected(outbox.max_seq())  # reconnect: 1..10 unacknowledged -> all history
    fill(outbox, 1)
    assert seqs(send(p, outbox, now_s=1)) == [11]


def test_live_not_due_sends_only_the_backlog(outbox: Outbox) -> None:
    p = planner()
    fill(outbox, 3)
    p.on_connected(outbox.max_seq())
    fill(outbox, 2)
    batch = send(p, outbox, now_s=0, live_due=False)
    assert batch is not None and batch.history and seqs(batch) == [1, 2, 3]
    assert send(p, outbox, now_s=0, live_due=False) is None, "live readings wait until due"
    live = send(p, outbox, now_s=0, live_due=True)
    assert live is not None and not live.history and seqs(live) == [4, 5]


def test_after_connect_everything_stored_is_history_oldest_first(outbox: Outbox) -> None:
    p = planner(max_batch=10)
    fill(outbox, 25)
    p.on_connected(outbox.max_seq())
    assert p.backlog_pending()
    sent = []
    clock = itertools.count(1)
    while (batch := send(p, outbox, now_s=next(clock))) is not None:
        assert batch.history
        sent.append(seqs(batch))
    assert sent == [list(range(1, 11)), list(range(11, 21)), list(range(21, 26))]
    assert not p.backlog_pending()


def test_reconnect_turns_unacknowledged_live_batches_into_history(outbox: Outbox) -> None:
    p = planner()
    fill(outbox, 4)
    p.on_connected(0)
    live = send(p, outbox, now_s=0)
    assert live is not None and not live.history and seqs(live) == [1, 2, 3, 4]
    p.on_connected(outbox.max_seq())  # the link dropped before the ack arrived
    assert p.inflight == {} and p.retry == []
    again = send(p, outbox, now_s=1)
    assert again is not None and again.history and seqs(again) == [1, 2, 3, 4]


def test_reconnect_resends_unacknowledged_history(outbox: Outbox) -> None:
    p = planner()
    fill(outbox, 6)
    p.on_connected(outbox.max_seq())
    history = send(p, outbox, now_s=0)
    assert history is not None and history.history and seqs(history) == list(range(1, 7))
    outbox.acknowledge([(1, 2)])  # only part of it was acknowledged before the link dropped
    p.on_connected(outbox.max_seq())
    again = send(p, outbox, now_s=1)
    assert again is not None and again.history and seqs(again) == [3, 4, 5, 6]


def test_backlog_rate_limit_is_honoured(outbox: Outbox) -> None:
    p = planner(max_batch=100, backlog_rate_per_s=10)
    fill(outbox, 1000)
    p.on_connected(outbox.max_seq())
    assert len(seqs(send(p, outbox, now_s=0))) == 100, "a full bucket: one max_batch at once"
    assert send(p, outbox, now_s=0) is None, "then nothing more at the same instant"
    # Backlog leaves in batches of at most one second's worth (10 here), not token by token.
    assert p.seconds_until_tokens() == pytest.approx(1.0)
    assert send(p, outbox, now_s=0.5) is None, "half a batch of tokens is not enough"
    assert len(seqs(send(p, outbox, now_s=1.5))) == 15

    # Polled every 0.1 s of simulated time for 10 s: about 10 readings per second, in order.
    total = 115
    sent_seqs: list[int] = list(range(1, 116))
    for step in range(1, 101):
        batch = send(p, outbox, now_s=1.5 + step / 10)
        if batch is not None:
            assert batch.history
            total += len(batch.readings)
            sent_seqs.extend(seqs(batch))
    assert 115 + 100 - 10 <= total <= 115 + 100
    assert sent_seqs == list(range(1, total + 1)), "oldest first, nothing skipped or repeated"

    # An idle period refills the bucket only up to one max_batch.
    assert len(seqs(send(p, outbox, now_s=1000))) == 100
    assert send(p, outbox, now_s=1000) is None


def test_live_readings_are_not_rate_limited(outbox: Outbox) -> None:
    p = planner(max_batch=50, backlog_rate_per_s=1)
    fill(outbox, 50)
    p.on_connected(outbox.max_seq())
    assert len(seqs(send(p, outbox, now_s=0))) == 50  # the bucket is now empty
    for i in range(5):
        fill(outbox, 50)
        live = send(p, outbox, now_s=0.01 * i)
        assert live is not None and not live.history and len(live.readings) == 50


def test_inflight_limit(outbox: Outbox) -> None:
    p = planner(max_batch=2, max_inflight=2)
    fill(outbox, 10)
    first = p.next_batch(outbox, now_s=0, live_due=True)
    assert first is not None
    p.register("a", first.readings, 0)
    second = p.next_batch(outbox, now_s=0, live_due=True)
    assert second is not None
    p.register("b", second.readings, 0)
    assert p.next_batch(outbox, now_s=0, live_due=True) is None, "two batches in flight"
    p.on_ack("a")
    third = p.next_batch(outbox, now_s=0, live_due=True)
    assert third is not None and seqs(third) == [5, 6]
    p.on_ack("unknown")  # a late or foreign ack changes nothing
    assert set(p.inflight) == {"b"}


def test_expired_batches_are_resent_as_history(outbox: Outbox) -> None:
    p = planner(ack_timeout_s=5)
    fill(outbox, 3)
    live = p.next_batch(outbox, now_s=10, live_due=True)
    assert live is not None and not live.history
    p.register("x", live.readings, 10)
    assert p.next_deadline_s() == 15
    assert p.expire(14.9) == 0 and "x" in p.inflight
    assert p.expire(15.0) == 1 and p.inflight == {}
    assert p.backlog_pending()
    again = send(p, outbox, now_s=15)
    assert again is not None and again.history and seqs(again) == [1, 2, 3]
    assert send(p, outbox, now_s=15) is None


def test_resend_requests_are_served_from_the_outbox(outbox: Outbox) -> None:
    p = planner()
    fill(outbox, 10)
    assert seqs(send(p, outbox, now_s=0)) == list(range(1, 11))
    p.on_resend(((3, 4), (8, 8)))
    first = send(p, outbox, now_s=1)
    assert first is not None and first.history and seqs(first) == [3, 4]
    assert seqs(send(p, outbox, now_s=1)) == [8]
    assert send(p, outbox, now_s=1) is None


def test_retry_ranges_split_by_the_batch_size(outbox: Outbox) -> None:
    p = planner(max_batch=3)
    fill(outbox, 10)
    p.on_resend(((2, 9),))
    p.live_cursor = 10  # everything was sent live already
    batches = [seqs(send(p, outbox, now_s=t)) for t in (0, 1, 2)]
    assert batches == [[2, 3, 4], [5, 6, 7], [8, 9]]
    assert send(p, outbox, now_s=3) is None


def test_acknowledged_readings_in_a_retry_range_are_skipped(outbox: Outbox) -> None:
    p = planner()
    fill(outbox, 10)
    first = p.next_batch(outbox, now_s=0, live_due=True)
    assert first is not None
    p.register("x", first.readings, 0)
    assert p.expire(100) == 1
    outbox.acknowledge([(2, 4), (9, 9)])  # a late ack, or another batch's ack
    again = send(p, outbox, now_s=100)
    assert again is not None and seqs(again) == [1, 5, 6, 7, 8, 10]

    p.on_resend(((2, 4),))  # all of it acknowledged meanwhile
    assert send(p, outbox, now_s=200) is None
    assert not p.backlog_pending()


# -- property: random interleavings ------------------------------------------------------------

# (operation, argument): the argument's meaning depends on the operation (see below).
_OPS = st.tuples(
    st.sampled_from(
        ["append"] * 3 + ["send"] * 4 + ["ack"] * 2 + ["tick"] * 2 + ["reconnect"] * 2 + ["resend"]
    ),
    st.integers(0, 1000),
)
_TICKS = (0.0, 0.05, 0.3, 1.0, 7.0)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    ops=st.lists(_OPS, min_size=15, max_size=80),
    max_batch=st.integers(1, 7),
    max_inflight=st.integers(1, 3),
    ack_timeout_s=st.sampled_from([0.5, 2.0, 5.0]),
    backlog_rate=st.sampled_from([1.0, 4.0, 50.0]),
)
def test_every_reading_is_eventually_sent_and_only_stored_ones(
    ops: list[tuple[str, int]],
    max_batch: int,
    max_inflight: int,
    ack_timeout_s: float,
    backlog_rate: float,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        outbox = Outbox(Path(tmp) / "o.db", budget_bytes=1 << 28, synchronous="NORMAL")
        try:
            _run_interleaving(outbox, ops, max_batch, max_inflight, ack_timeout_s, backlog_rate)
        finally:
            outbox.close()


def _run_interleaving(
    outbox: Outbox,
    ops: list[tuple[str, int]],
    max_batch: int,
    max_inflight: int,
    ack_timeout_s: float,
    backlog_rate: float,
) -> None:
    p = SendPlanner(
        max_batch=max_batch,
        max_inflight=max_inflight,
        ack_timeout_s=ack_timeout_s,
        backlog_rate_per_s=backlog_rate,
    )
    appended: dict[int, Reading] = {}
    sent: set[int] = set()
    published: list[tuple[str, tuple[int, ...]]] = []  # every batch ever published
    live_floor = 0  # max_seq at the last (re)connection
    now = 0.0
    ids = itertools.count(1)

    def plan(live_due: bool) -> PlannedBatch | None:
        p.expire(now)
        batch = p.next_batch(outbox, now_s=now, live_due=live_due)
        if batch is None:
            return None
        batch_seqs = [r.seq for r in batch.readings]
        assert batch_seqs, "a planned batch is never empty"
        assert len(batch_seqs) <= max_batch
        assert batch_seqs == sorted(set(batch_seqs)), "ascending, no repeats inside a batch"
        stored = {r.seq: r for r in outbox.fetch_after(0, limit=10**6)}
        for r in batch.readings:
            assert stored.get(r.seq) == r, f"seq {r.seq} sent but not (or not so) in the outbox"
            assert appended[r.seq] == r
        if not batch.history:
            assert min(batch_seqs) > live_floor, "readings stored before the connection are history"
        bid = f"b{next(ids)}"
        p.register(bid, batch.readings, now)
        published.append((bid, tuple(batch_seqs)))
        sent.update(batch_seqs)
        return batch

    def deliver_ack(bid: str, batch_seqs: tuple[int, ...]) -> None:
        # What the agent does with an ack: delete the ranges, then tell the planner.
        outbox.acknowledge([(s, s) for s in batch_seqs])
        p.on_ack(bid)

    for op, arg in ops:
        if op == "append":
            for r in fill(outbox, 1 + arg % 6):
                appended[r.seq] = r
        elif op == "send":
            plan(live_due=arg % 2 == 0)
        elif op == "ack" and published:
            # Any published batch may be acknowledged, also one that already expired (late ack).
            deliver_ack(*published[arg % len(published)])
        elif op == "tick":
            now += _TICKS[arg % len(_TICKS)]
        elif op == "reconnect":
            live_floor = outbox.max_seq()
            p.on_connected(live_floor)
        elif op == "resend":
            first = 1 + arg % 60
            p.on_resend(((first, first + arg % 5),))

    # Then a healthy link: time passes, everything due is sent and promptly acknowledged.
    for _ in range(2000):
        if outbox.stats().depth == 0 and not p.backlog_pending() and not p.inflight:
            break
        now += 10.0
        while (batch := plan(True)) is not None:
            deliver_ack(*published[-1])
            assert batch.readings
    else:
        pytest.fail(
            f"not drained: depth={outbox.stats().depth} retry={p.retry} "
            f"inflight={list(p.inflight)} history_cursor={p.history_cursor} "
            f"live_floor={p.live_floor} live_cursor={p.live_cursor}"
        )
    assert set(appended) <= sent, f"never sent: {sorted(set(appended) - sent)}"
    assert sent <= set(appended)
    assert outbox.stats().depth == 0
