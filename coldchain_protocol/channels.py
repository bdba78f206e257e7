"""Channel names and the physically plausible range of each kind of measurement.

A channel names one measured quantity on a vehicle:

- ``temp:<compartment>:<probe>``: probe temperature in degrees Celsius
- ``door:<compartment>``: 1 when the compartment door is open, 0 when closed
- ``power``: 1 when the refrigeration unit has power, 0 on a power loss
- ``gps:lat`` / ``gps:lon``: WGS-84 degrees; ``gps:speed``: km/h
"""

from __future__ import annotations

import functools
import re
from enum import StrEnum

# Compartment and probe ids inside channel names (the registry enforces the same rule).
COMPONENT_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


class ChannelKind(StrEnum):
    """What a channel measures."""

    TEMPERATURE = "temp"
    DOOR = "door"
    POWER = "power"
    GPS = "gps"


_RANGES: dict[str, tuple[float, float]] = {
    "temp": (-90.0, 90.0),
    "door": (0.0, 1.0),
    "power": (0.0, 1.0),
    "gps:lat": (-90.0, 90.0),
    "gps:lon": (-180.0, 180.0),
    "gps:speed": (0.0, 250.0),
}


def temperature_channel(compartment: str, probe: str) -> str:
    """Return the channel name of a temperature probe."""
    return f"temp:{compartment}:{probe}"


def door_channel(compartment: str) -> str:
    """Return the channel name of a compartment door."""
    return f"door:{compartment}"


@functools.lru_cache(maxsize=8192)
def channel_kind(channel: str) -> ChannelKind | None:
    """Return the kind of a well-formed channel name, or None when the name is not one."""
    head, sep, rest = channel.partition(":")
    if head == "temp":
        compartment, sep2, probe = rest.partition(":")
        ok = sep2 and COMPONENT_ID.fullmatch(compartment) and COMPONENT_ID.fullmatch(probe)
        return ChannelKind.TEMPERATURE if ok else None
    if head == "door":
        return ChannelKind.DOOR if COMPONENT_ID.fullmatch(rest) else None
    if head == "power":
        return ChannelKind.POWER if not sep else None
    if head == "gps":
        return ChannelKind.GPS if rest in ("lat", "lon", "speed") else None
    return None


@functools.lru_cache(maxsize=8192)
def _bounds(channel: str) -> tuple[float, float, bool] | None:
    key = channel if channel.startswith("gps:") else channel.partition(":")[0]
    bounds = _RANGES.get(key)
    if bounds is None:
        return None
    return bounds[0], bounds[1], key in ("door", "power")


def plausible(channel: str, value: float) -> bool:
    """Whether a value is physically possible for the channel (binary channels must be 0 or 1)."""
    bounds = _bounds(channel)
    if bounds is None:
        return False
    low, high, binary = bounds
    if binary:
        return value in (0.0, 1.0)
    return low <= value <= high
