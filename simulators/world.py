"""The world a scenario's day takes place in: the city, its order stream and the vehicles' routes.

Built once at the start of a run from the scenario (pure, deterministic from its seeds); the
fleet's simulated vehicles then follow their planned trips, so GPS, speed and door openings come
from real routes through the city.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from simulators.city import City, generate_city
from simulators.dayplan import DayPlan, assign_depots, plan_day
from simulators.orders import Order, generate_orders, scripted_order
from simulators.scenario import Scenario, ScenarioError

_DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class OrderTotals:
    """What became of the day's orders."""

    orders: int
    delivered: int
    late: int
    unserved: int
    emergency: int
    green_channel: int
    trips: int


@dataclass(frozen=True, slots=True)
class World:
    """A scenario's city, orders and plan, from `start_s` (simulated UTC seconds)."""

    city: City
    orders: tuple[Order, ...]
    plan: DayPlan
    start_s: float

    def totals(self) -> OrderTotals:
        """Counts of the day's orders by outcome."""
        return OrderTotals(
            orders=len(self.orders),
            delivered=len(self.plan.deliveries),
            late=sum(1 for d in self.plan.deliveries.values() if d.late),
            unserved=len(self.plan.unserved),
            emergency=sum(1 for o in self.orders if o.priority == "emergency"),
            green_channel=sum(1 for o in self.orders if o.green_channel),
            trips=sum(len(trips) for trips in self.plan.trips.values()),
        )


def day_start_s(
    *, now_s: float, not_before_s: float, local_hour: float, utc_offset_h: float
) -> float:
    """When a simulated day starting at `local_hour` begins: the latest such time at or before
    `now_s`, or the first one after `not_before_s` if that is later (e.g. after the newest
    reading an earlier run stored, so a vehicle's time never runs backwards)."""
    offset_s = (local_hour - utc_offset_h) * 3600.0
    latest = math.floor((now_s - offset_s) / _DAY_S) * _DAY_S + offset_s
    if latest >= not_before_s:
        return latest
    return math.ceil((not_before_s - offset_s) / _DAY_S) * _DAY_S + offset_s


def build_world(scenario: Scenario, vehicle_ids: Sequence[str], *, start_s: float) -> World:
    """Generate the city and the day's orders and plan every vehicle's trips."""
    spec = scenario.city
    city = generate_city(seed=spec.seed, hospitals=spec.hospitals, depots=spec.depots)
    streamed = generate_orders(
        city,
        mix=scenario.orders,
        start_s=start_s,
        duration_s=scenario.duration_s,
        seed=spec.seed * 7919 + 1,
        outbreak=scenario.outbreak,
    )
    scripted = []
    for i, entry in enumerate(scenario.scripted_orders):
        try:
            city.hospital(entry.hospital_id)
        except KeyError:
            raise ScenarioError(
                f"orders.scripted[{i}].hospital",
                f"no hospital {entry.hospital_id!r} in this city "
                f"(H0001..H{len(city.hospitals):04d})",
            ) from None
        scripted.append(
            scripted_order(
                order_id=f"S{i + 1:05d}",
                hospital_id=entry.hospital_id,
                created_s=start_s + entry.at_s,
                priority=entry.priority,
                mix=scenario.orders,
                volume_l=entry.volume_l,
                green_channel=entry.green_channel,
                pinned_vehicle=None if entry.vehicle is None else vehicle_ids[entry.vehicle - 1],
            )
        )
    orders = tuple(sorted((*streamed, *scripted), key=lambda o: (o.created_s, o.order_id)))
    plan = plan_day(
        city,
        assign_depots(city, vehicle_ids),
        orders,
        start_s=start_s,
        duration_s=scenario.duration_s,
        seed=spec.seed,
    )
    return World(city=city, orders=orders, plan=plan, start_s=start_s)
