"""Input data of the compliance core: temperature samples and compartment/probe metadata."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import NamedTuple


class Sample(NamedTuple):
    """One probe reading: UTC epoch seconds, the probe's id and the value in °C.

    Any ``(ts_s, probe_id, value_c)`` tuple is accepted where a `Sample` is expected.
    """

    ts_s: float
    probe_id: str
    value_c: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeMeta:
    """A registered probe: its declared accuracy (±°C) and calibration due date."""

    probe_id: str
    accuracy_c: float
    calibration_due: date


@dataclass(frozen=True, slots=True, kw_only=True)
class CompartmentMeta:
    """A registered compartment: its volume and probes (the temperature class is passed apart)."""

    compartment_id: str
    volume_m3: float
    probes: tuple[ProbeMeta, ...]


def split_by_compartment(
    readings: Iterable[tuple[float, str, float]],
) -> dict[str, list[Sample]]:
    """Group wire readings ``(ts_s, "temp:<compartment>:<probe>", value_c)`` per compartment.

    Readings on other channels (``door:…``, ``power``, ``gps:…``) and malformed temperature
    channel names are skipped: they carry no compartment temperature.
    """
    grouped: dict[str, list[Sample]] = {}
    for ts_s, channel, value_c in readings:
        head, _, rest = channel.partition(":")
        compartment, sep, probe = rest.partition(":")
        if head != "temp" or not sep or not compartment or not probe or ":" in probe:
            continue
        grouped.setdefault(compartment, []).append(Sample(ts_s, probe, value_c))
    return grouped
