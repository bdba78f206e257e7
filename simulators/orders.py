"""The order stream of a simulated city's hospitals (pure: no I/O, no clock, seeded).

Arrivals are a non-homogeneous Poisson process sampled by thinning: a city-wide rate shaped by a
diurnal profile in the city's local time, each arrival going to a hospital drawn by its demand
weight. A regional `Outbreak` multiplies demand near a centre for a while and turns a share of
those orders into green-channel emergencies. Times are simulated UTC epoch seconds.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from simulators.city import City, Hospital

Priority = Literal["routine", "urgent", "emergency"]
PRIORITIES: tuple[Priority, ...] = ("routine", "urgent", "emergency")

_DAY_S = 86_400.0
_HOUR_S = 3_600.0
_SHARE_TOLERANCE = 1e-6

# Relative order intake per local hour (0..23): hospital pharmacies order in working hours, with a
# small night tail (emergencies do not wait for the morning). Normalised below to a mean of 1.
_HOURLY_INTAKE = (
    0.15, 0.10, 0.10, 0.10, 0.10, 0.15, 0.30, 0.70,
    1.60, 2.00, 2.00, 1.90, 1.60, 1.80, 1.90, 1.80,
    1.60, 1.30, 0.80, 0.50, 0.35, 0.25, 0.20, 0.15,
)  # fmt: skip
DIURNAL_PROFILE: tuple[float, ...] = tuple(w * 24 / sum(_HOURLY_INTAKE) for w in _HOURLY_INTAKE)


class OrderError(ValueError):
    """An order-stream input is invalid; `key` names which."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


class OrderMixError(OrderError):
    """An `OrderMix` is invalid; `key` names the offending field (and entry)."""


class OutbreakError(OrderError):
    """An `Outbreak` is invalid; `key` names the offending field."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Order:
    """One hospital order for medicines of one temperature class."""

    order_id: str  # "O000001", ...
    hospital_id: str
    created_s: float
    priority: Priority
    temperature_class: str  # e.g. "refrigerated" (2-8 C), "frozen", "cold", "cool", "room"
    volume_l: float
    due_s: float  # created_s + the priority's deadline
    green_channel: bool = False  # outbreak/disaster orders that jump every queue
    pinned_vehicle: str | None = None  # scripted orders can name the vehicle that must take them


def _default_priority_shares() -> Mapping[str, float]:
    return {"routine": 0.85, "urgent": 0.12, "emergency": 0.03}


def _default_class_shares() -> Mapping[str, float]:
    return {"refrigerated": 1.0}


def _default_deadlines_s() -> Mapping[str, float]:
    return {"routine": 24 * _HOUR_S, "urgent": 4 * _HOUR_S, "emergency": 2 * _HOUR_S}


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderMix:
    """What the city orders: how much, how urgent, which temperature classes, how large."""

    orders_per_day: float = 5600.0  # whole city, ~2 per hospital per day
    priority_shares: Mapping[str, float] = field(default_factory=_default_priority_shares)
    class_shares: Mapping[str, float] = field(default_factory=_default_class_shares)
    deadline_s: Mapping[str, float] = field(default_factory=_default_deadlines_s)
    volume_l_range: tuple[float, float] = (5.0, 120.0)

    def __post_init__(self) -> None:
        if not _finite(self.orders_per_day) or self.orders_per_day < 0:
            raise OrderMixError("orders_per_day", "must be a finite number >= 0")
        _check_priority_keys("priority_shares", self.priority_shares)
        _check_shares("priority_shares", self.priority_shares)
        if not self.class_shares:
            raise OrderMixError("class_shares", "must name at least one temperature class")
        for name in self.class_shares:
            if not isinstance(name, str) or not name:
                raise OrderMixError(f"class_shares.{name}", "must be a non-empty class name")
        _check_shares("class_shares", self.class_shares)
        _check_priority_keys("deadline_s", self.deadline_s)
        for priority, deadline in self.deadline_s.items():
            if not _finite(deadline) or deadline <= 0:
                raise OrderMixError(f"deadline_s.{priority}", "must be a number > 0")
        low_l, high_l = self.volume_l_range
        if not (_finite(low_l) and _finite(high_l)) or not 0 < low_l <= high_l:
            raise OrderMixError("volume_l_range", "must be (low, high) with 0 < low <= high")
        # Freeze the mappings so a mix cannot change under an order stream.
        for name in ("priority_shares", "class_shares", "deadline_s"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))


@dataclass(frozen=True, slots=True, kw_only=True)
class Outbreak:
    """A regional outbreak: more orders near a centre, a share of them green-channel emergencies."""

    at_s: float  # from the stream's outbreak origin (see `generate_orders`)
    duration_s: float
    lat: float
    lon: float
    radius_km: float
    demand_multiplier: float = 5.0
    green_channel_share: float = 0.5

    def __post_init__(self) -> None:
        if not _finite(self.at_s):
            raise OutbreakError("at_s", "must be a finite number")
        if not _finite(self.duration_s) or self.duration_s <= 0:
            raise OutbreakError("duration_s", "must be a number > 0")
        if not _finite(self.lat) or not -90 <= self.lat <= 90:
            raise OutbreakError("lat", "must be within -90..90")
        if not _finite(self.lon) or not -180 <= self.lon <= 180:
            raise OutbreakError("lon", "must be within -180..180")
        if not _finite(self.radius_km) or self.radius_km <= 0:
            raise OutbreakError("radius_km", "must be a number > 0")
        if not _finite(self.demand_multiplier) or self.demand_multiplier < 0:
            raise OutbreakError("demand_multiplier", "must be a number >= 0")
        if not _finite(self.green_channel_share) or not 0 <= self.green_channel_share <= 1:
            raise OutbreakError("green_channel_share", "must be within 0..1")

    def active(self, elapsed_s: float) -> bool:
        """Whether the outbreak is in force `elapsed_s` seconds after its origin."""
        return self.at_s <= elapsed_s < self.at_s + self.duration_s


def diurnal_factor(t_s: float, *, utc_offset_h: float) -> float:
    """Relative order intake at UTC time `t_s` in a city at `utc_offset_h` (mean over a day: 1)."""
    local_s = (t_s + utc_offset_h * _HOUR_S) % _DAY_S
    return DIURNAL_PROFILE[min(23, int(local_s // _HOUR_S))]


def generate_orders(
    city: City,
    *,
    mix: OrderMix,
    start_s: float,
    duration_s: float,
    seed: int,
    outbreak: Outbreak | None = None,
    outbreak_offset_s: float = 0.0,
) -> tuple[Order, ...]:
    """The city's orders created in [start_s, start_s + duration_s), sorted, ids sequential.

    The outbreak's clock starts at `start_s + outbreak_offset_s`: it is in force from
    `start_s + outbreak_offset_s + outbreak.at_s` for `outbreak.duration_s`.
    """
    if not _finite(start_s):
        raise OrderError("start_s", "must be a finite number")
    if not _finite(duration_s) or duration_s < 0:
        raise OrderError("duration_s", "must be a finite number >= 0")
    if not _finite(outbreak_offset_s):
        raise OrderError("outbreak_offset_s", "must be a finite number")
    if not city.hospitals or mix.orders_per_day == 0 or duration_s == 0:
        return ()

    rng = random.Random(seed)
    base_picker = _WeightedPicker([h.demand_weight for h in city.hospitals])
    if base_picker.total <= 0:
        raise OrderError("city.hospitals", "demand weights must not all be zero")
    inside: frozenset[str] = frozenset()
    outbreak_picker = base_picker
    boost = 1.0
    if outbreak is not None:
        inside = frozenset(
            h.place_id
            for h in city.hospitals_within(outbreak.lat, outbreak.lon, outbreak.radius_km)
        )
        weights = [
            h.demand_weight * (outbreak.demand_multiplier if h.place_id in inside else 1.0)
            for h in city.hospitals
        ]
        if sum(weights) > 0:
            outbreak_picker = _WeightedPicker(weights)
            boost = outbreak_picker.total / base_picker.total

    base_rate_per_s = mix.orders_per_day / _DAY_S
    max_rate_per_s = base_rate_per_s * max(DIURNAL_PROFILE) * max(boost, 1.0)
    priority_picker = _WeightedPicker([mix.priority_shares[p] for p in PRIORITIES])
    classes = sorted(mix.class_shares)
    class_picker = _WeightedPicker([mix.class_shares[c] for c in classes])
    low_l, high_l = mix.volume_l_range
    outbreak_origin_s = start_s + outbreak_offset_s
    end_s = start_s + duration_s

    orders: list[Order] = []
    ids = itertools.count(1)
    t_s = start_s
    while True:
        t_s += rng.expovariate(max_rate_per_s)
        if t_s >= end_s:
            break
        in_outbreak = outbreak is not None and outbreak.active(t_s - outbreak_origin_s)
        rate_per_s = base_rate_per_s * diurnal_factor(t_s, utc_offset_h=city.utc_offset_h)
        if in_outbreak:
            rate_per_s *= boost
        if rng.random() * max_rate_per_s >= rate_per_s:
            continue  # thinned out
        picker = outbreak_picker if in_outbreak else base_picker
        hospital: Hospital = city.hospitals[picker.pick(rng)]
        priority: Priority = PRIORITIES[priority_picker.pick(rng)]
        green = False
        if (
            outbreak is not None
            and in_outbreak
            and hospital.place_id in inside
            and rng.random() < outbreak.green_channel_share
        ):
            priority, green = "emergency", True
        orders.append(
            Order(
                order_id=f"O{next(ids):06d}",
                hospital_id=hospital.place_id,
                created_s=t_s,
                priority=priority,
                temperature_class=classes[class_picker.pick(rng)],
                volume_l=max(low_l, min(high_l, round(rng.uniform(low_l, high_l), 1))),
                due_s=t_s + mix.deadline_s[priority],
                green_channel=green,
            )
        )
    return tuple(orders)


def scripted_order(
    *,
    order_id: str,
    hospital_id: str,
    created_s: float,
    priority: Priority,
    mix: OrderMix,
    temperature_class: str = "refrigerated",
    volume_l: float = 20.0,
    pinned_vehicle: str | None = None,
    green_channel: bool = False,
) -> Order:
    """One hand-written order (for scenarios), due by the mix's deadline for its priority."""
    if priority not in PRIORITIES:
        raise OrderError("priority", f"must be one of {', '.join(PRIORITIES)}")
    if not _finite(created_s):
        raise OrderError("created_s", "must be a finite number")
    if not _finite(volume_l) or volume_l <= 0:
        raise OrderError("volume_l", "must be a number > 0")
    if not temperature_class:
        raise OrderError("temperature_class", "must be a non-empty class name")
    return Order(
        order_id=order_id,
        hospital_id=hospital_id,
        created_s=created_s,
        priority=priority,
        temperature_class=temperature_class,
        volume_l=volume_l,
        due_s=created_s + mix.deadline_s[priority],
        green_channel=green_channel,
        pinned_vehicle=pinned_vehicle,
    )


class _WeightedPicker:
    """Draws an index with probability proportional to its weight."""

    __slots__ = ("_cumulative", "total")

    def __init__(self, weights: Sequence[float]) -> None:
        self._cumulative = list(itertools.accumulate(max(0.0, w) for w in weights))
        self.total = self._cumulative[-1] if self._cumulative else 0.0

    def pick(self, rng: random.Random) -> int:
        index = bisect.bisect_right(self._cumulative, rng.random() * self.total)
        return min(index, len(self._cumulative) - 1)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_priority_keys(key: str, values: Mapping[str, float]) -> None:
    for name in values:
        if name not in PRIORITIES:
            raise OrderMixError(f"{key}.{name}", f"unknown priority (use {', '.join(PRIORITIES)})")
    for priority in PRIORITIES:
        if priority not in values:
            raise OrderMixError(f"{key}.{priority}", "missing")


def _check_shares(key: str, shares: Mapping[str, float]) -> None:
    for name, share in shares.items():
        if not _finite(share) or share < 0:
            raise OrderMixError(f"{key}.{name}", "must be a number >= 0")
    total = math.fsum(shares.values())
    if abs(total - 1.0) > _SHARE_TOLERANCE:
        raise OrderMixError(key, f"shares must sum to 1 (they sum to {total:g})")
