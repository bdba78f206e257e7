"""What to send next: live readings first, then retries, then the backlog at a bounded rate.

Pure bookkeeping over the outbox's sequence numbers; the agent does the I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from coldchain_protocol.messages import Reading, seq_ranges
from edge_agent.outbox import Outbox


@dataclass(slots=True)
class InflightBatch:
    """A batch published and not yet acknowledged by the controller."""

    ranges: tuple[tuple[int, int], ...]
    deadline_s: float
    size: int


@dataclass(frozen=True, slots=True)
class PlannedBatch:
    """Readings to publish now, and whether they are history (back-fill)."""

    readings: list[Reading]
    history: bool


@dataclass(slots=True)
class SendPlanner:
    """Tracks the live cursor, the backlog cursor, retries and batches in flight."""

    max_batch: int
    max_inflight: int
    ack_timeout_s: float
    backlog_rate_per_s: float
    live_floor: int = 0
    live_cursor: int = 0
    history_cursor: int = 0
    retry: list[tuple[int, int]] = field(default_factory=list)
    inflight: dict[str, InflightBatch] = field(default_factory=dict)
    _tokens: float = 0.0
    _tokens_at_s: float | None = None

    def on_connected(self, max_seq: int) -> None:
        """A new session: whatever is stored and unacknowledged now is backlog (history)."""
        self.inflight.clear()
        self.retry.clear()
        self.live_floor = max_seq
        self.live_cursor = max_seq
        self.history_cursor = 0

    def on_ack(self, batch_id: str) -> None:
        """The controller committed a batch."""
        self.inflight.pop(batch_id, None)

    def on_resend(self, ranges: tuple[tuple[int, int], ...]) -> None:
        """The controller is missing these ranges."""
        self.retry.extend(ranges)

    def expire(self, now_s: float) -> int:
        """Move batches unacknowledged past their deadline back to the retry list."""
        expired = [bid for bid, b in self.inflight.items() if b.deadline_s <= now_s]
        for bid in expired:
            self.retry.extend(self.inflight.pop(bid).ranges)
        return len(expired)

    def register(self, batch_id: str, readings: list[Reading], now_s: float) -> None:
        """Record a published batch."""
        self.inflight[batch_id] = InflightBatch(
            seq_ranges([r.seq for r in readings]), now_s + self.ack_timeout_s, len(readings)
        )

    def next_deadline_s(self) -> float | None:
        """The earliest ack deadline of the batches in flight."""
        return min((b.deadline_s for b in self.inflight.values()), default=None)

    def backlog_pending(self) -> bool:
        """Whether backlog or retries remain to be sent."""
        return bool(self.retry) or self.history_cursor < self.live_floor

    def _take_tokens(self, now_s: float, wanted: int) -> int:
        if self._tokens_at_s is None:
            self._tokens_at_s = now_s
            self._tokens = float(self.max_batch)
        self._tokens = min(
            float(self.max_batch),
            self._tokens + (now_s - self._tokens_at_s) * self.backlog_rate_per_s,
        )
        self._tokens_at_s = now_s
        if self._tokens < min(self._batch_tokens(), wanted):
            return 0  # wait for a full batch's worth (wanted is small for a short remainder)
        granted = min(wanted, int(self._tokens))
        self._tokens -= granted
        return granted

    def _batch_tokens(self) -> float:
        # Backlog goes out in full batches (at most one second's worth): a wake-up per token
        # would send many tiny batches, each paying a signature, a publish and a delete.
        return float(max(1, min(self.max_batch, int(self.backlog_rate_per_s))))

    def seconds_until_tokens(self) -> float:
        """How long until a batch of backlog readings may be sent."""
        return max(0.0, (self._batch_tokens() - self._tokens) / self.backlog_rate_per_s)

    def next_batch(self, outbox: Outbox, *, now_s: float, live_due: bool) -> PlannedBatch | None:
        """Choose the next batch to publish, or None when nothing may go now."""
        if len(self.inflight) >= self.max_inflight:
            return None
        if live_due:
            live = outbox.fetch_after(self.live_cursor, limit=self.max_batch)
            if live:
                self.live_cursor = live[-1].seq
                return PlannedBatch(live, history=False)
        if not self.backlog_pending():
            return None
        # Retries are few and small; the history drain is as long as the backlog is.
        wanted = self.max_batch
        if not self.retry:
            wanted = min(wanted, max(1, self.live_floor - self.history_cursor))
        else:
            wanted = min(wanted, sum(last - first + 1 for first, last in self.retry))
        budget = self._take_tokens(now_s, wanted)
        if budget <= 0:
            return None
        while self.retry:
            first, last = self.retry[0]
            found = outbox.fetch_after(first - 1, up_to=last, limit=budget)
            if not found:
                self.retry.pop(0)  # already acknowledged: nothing left to resend
                continue
            if found[-1].seq >= last:
                self.retry.pop(0)
            else:
                self.retry[0] = (found[-1].seq + 1, last)
            self._tokens += budget - len(found)
            return PlannedBatch(found, history=True)
        found = outbox.fetch_after(self.history_cursor, up_to=self.live_floor, limit=budget)
        self._tokens += budget - len(found)
        if not found:
            self.history_cursor = self.live_floor
            return None
        self.history_cursor = found[-1].seq
        return PlannedBatch(found, history=True)
