"""Broker addressing and reconnect backoff shared by the agent and the controller."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Host, port and credentials parsed from an mqtt:// URL."""

    host: str
    port: int
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """Parse ``mqtt://[user[:password]@]host[:port]``."""
        parts = urlsplit(url)
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 1883,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


def jittered_backoff(
    *, min_s: float, max_s: float, rng: random.Random | None = None
) -> Iterator[float]:
    """Yield reconnect delays: exponential growth capped at `max_s`, with full jitter.

    Full jitter spreads a fleet's reconnects after a broker restart instead of stampeding.
    """
    source = rng or random.Random()
    ceiling = min_s
    while True:
        yield source.uniform(min_s / 2, ceiling)
        ceiling = min(max_s, ceiling * 2)


def reraise_if_cancelling() -> None:
    """Re-raise a pending cancellation that a client library turned into another error.

    aiomqtt may raise MqttError from ``__aexit__`` while the task is being cancelled; a reconnect
    loop that catches it must not swallow the cancellation and loop forever.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
