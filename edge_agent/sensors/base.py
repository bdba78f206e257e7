"""The interface every sensor driver implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class SensorError(Exception):
    """A sensor could not be read; `channel` names which."""

    def __init__(self, channel: str, message: str) -> None:
        super().__init__(f"{channel}: {message}")
        self.channel = channel
        self.message = message


class SensorDriver(Protocol):
    """Reads every channel of a vehicle at once.

    `sample` takes the current time (UTC seconds since the epoch, from the agent's clock, which
    may be scaled in simulations) and returns ``(channel, value)`` pairs using the channel names
    of `coldchain_protocol.channels`: ``temp:<compartment>:<probe>`` (°C), ``door:<compartment>``
    (1 open / 0 closed), ``power`` (1 on / 0 lost), ``gps:lat``, ``gps:lon``, ``gps:speed``.
    """

    def sample(self, now_s: float) -> Sequence[tuple[str, float]]:
        """Read every channel; raise SensorError when a channel cannot be read."""
        ...
