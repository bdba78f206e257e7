"""A simple, deterministic stand-in dispatcher that gives simulated vehicles a realistic day.

This is not the platform's dispatch: the real one (OR-Tools, in the controller) comes later. This
one exists only so the simulator's vehicles drive plausible trips. It is pure (no I/O, no clock)
and walks simulated time forward, never assigning an order before it was created:

- emergency and green-channel orders go at once, as a direct emergency trip (depot -> hospital ->
  depot), on the vehicle of the right class that can be at the hospital soonest;
- pinned (scripted) orders go on their pinned vehicle as soon as it is free;
- routine and urgent orders wait at their nearest depot and leave in waves every
  `wave_interval_s`: urgent first, then by due time, packed into trips of at most `max_stops`
  stops and the vehicle's capacity, stops in nearest-neighbour order from the depot; the waves
  leave a small reserve of idle vehicles per depot so that emergencies do not wait for a round.

Vehicles return to their depot after every trip; every trip's times come from `plan_trip`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from simulators.city import City, Depot, Hospital, UnknownPlaceError, haversine_km
from simulators.orders import Order
from simulators.routes import Trip, VehicleMotion, plan_trip


class DayPlanError(ValueError):
    """The fleet or the orders given to `plan_day` are invalid; `key` names what."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


class UnknownVehicleError(KeyError):
    """A vehicle id that is not in the plan's fleet."""

    def __init__(self, vehicle_id: str) -> None:
        super().__init__(vehicle_id)
        self.vehicle_id = vehicle_id

    def __str__(self) -> str:
        return f"unknown vehicle {self.vehicle_id!r}"


@dataclass(frozen=True, slots=True, kw_only=True)
class SimVehicle:
    """A simulated vehicle as the stand-in dispatcher sees it: home depot, class, capacity."""

    vehicle_id: str
    depot_id: str
    temperature_class: str = "refrigerated"
    capacity_l: float = 2000.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """An order put on a trip: which vehicle, which trip, when it reaches the hospital."""

    order_id: str
    vehicle_id: str
    trip_id: str
    arrive_s: float
    late: bool  # arrive_s > the order's due_s


@dataclass(frozen=True, slots=True)
class DayPlan:
    """The stand-in dispatcher's result: every vehicle's trips and what became of every order."""

    trips: Mapping[str, tuple[Trip, ...]]  # vehicle id -> its trips in time order (all vehicles)
    deliveries: Mapping[str, Delivery]  # order id -> delivery
    unserved: Mapping[str, str]  # order id -> why it was not dispatched
    vehicles: Mapping[str, SimVehicle]  # vehicle id -> the vehicle (its home depot)

    def motion(self, vehicle_id: str, city: City) -> VehicleMotion:
        """A `VehicleMotion` at the vehicle's depot holding its planned trips."""
        vehicle = self.vehicles.get(vehicle_id)
        if vehicle is None:
            raise UnknownVehicleError(vehicle_id)
        motion = VehicleMotion(home=city.depot(vehicle.depot_id))
        for trip in self.trips[vehicle_id]:
            motion.add_trip(trip)
        return motion


def assign_depots(
    city: City, vehicle_ids: Sequence[str], *, temperature_class: str = "refrigerated"
) -> list[SimVehicle]:
    """Vehicles of one class spread round-robin over the city's depots (in depot order)."""
    if not city.depots:
        raise DayPlanError("city.depots", "the city has no depot")
    return [
        SimVehicle(
            vehicle_id=vehicle_id,
            depot_id=city.depots[i % len(city.depots)].place_id,
            temperature_class=temperature_class,
        )
        for i, vehicle_id in enumerate(vehicle_ids)
    ]


def plan_day(
    city: City,
    vehicles: Sequence[SimVehicle],
    orders: Sequence[Order],
    *,
    start_s: float,
    duration_s: float,
    seed: int,
    wave_interval_s: float = 3600.0,
    max_stops: int = 8,
    emergency_reserve: int = 1,
) -> DayPlan:
    """Dispatch `orders` over `vehicles`; trips start within [start_s, start_s + duration_s].

    Waves leave `emergency_reserve` idle vehicles per depot and class (never the group's last
    one) for emergencies, which would otherwise wait for a vehicle back from a routine round.
    """
    if duration_s < 0:
        raise DayPlanError("duration_s", "must be >= 0")
    if wave_interval_s <= 0:
        raise DayPlanError("wave_interval_s", "must be > 0")
    if max_stops < 1:
        raise DayPlanError("max_stops", "must be at least 1")
    if emergency_reserve < 0:
        raise DayPlanError("emergency_reserve", "must be >= 0")
    dispatcher = _Dispatcher(
        city,
        vehicles,
        start_s=start_s,
        end_s=start_s + duration_s,
        seed=seed,
        max_stops=max_stops,
        emergency_reserve=emergency_reserve,
    )
    seen: set[str] = set()
    for order in orders:
        if order.order_id in seen:
            raise DayPlanError("orders", f"duplicate order id {order.order_id!r}")
        seen.add(order.order_id)

    arrivals = sorted(orders, key=lambda o: (o.created_s, o.order_id))
    waves_s = [start_s + k * wave_interval_s for k in range(int(duration_s // wave_interval_s) + 1)]
    next_arrival = 0
    for wave_s in waves_s:
        while next_arrival < len(arrivals) and arrivals[next_arrival].created_s <= wave_s:
            dispatcher.arrive(arrivals[next_arrival])
            next_arrival += 1
        dispatcher.wave(at_s=wave_s)
    for order in arrivals[next_arrival:]:
        dispatcher.arrive(order)
    return dispatcher.result()


_NOT_DISPATCHED = "not dispatched before the end of the plan"


class _Dispatcher:
    """Mutable bookkeeping of one `plan_day` run (never leaves this module)."""

    def __init__(
        self,
        city: City,
        vehicles: Sequence[SimVehicle],
        *,
        start_s: float,
        end_s: float,
        seed: int,
        max_stops: int,
        emergency_reserve: int,
    ) -> None:
        self.city = city
        self.start_s = start_s
        self.end_s = end_s
        self.seed = seed
        self.max_stops = max_stops
        self.emergency_reserve = emergency_reserve
        self.hospitals: dict[str, Hospital] = {h.place_id: h for h in city.hospitals}
        self.depots: dict[str, Depot] = {}
        self.vehicles: dict[str, SimVehicle] = {}
        for i, vehicle in enumerate(vehicles):
            if vehicle.vehicle_id in self.vehicles:
                raise DayPlanError(f"vehicles[{i}].vehicle_id", "duplicate vehicle id")
            if not vehicle.capacity_l > 0:
                raise DayPlanError(f"vehicles[{i}].capacity_l", "must be > 0")
            try:
                self.depots[vehicle.depot_id] = city.depot(vehicle.depot_id)
            except UnknownPlaceError as exc:
                raise DayPlanError(f"vehicles[{i}].depot_id", "no such depot") from exc
            self.vehicles[vehicle.vehicle_id] = vehicle
        self.free_at_s: dict[str, float] = {v: start_s for v in self.vehicles}
        self.trips: dict[str, list[Trip]] = {v: [] for v in self.vehicles}
        self.deliveries: dict[str, Delivery] = {}
        self.unserved: dict[str, str] = {}
        self.pending: dict[tuple[str, str], list[Order]] = {}  # (depot id, class) -> orders

    def arrive(self, order: Order) -> None:
        """Take in one order at its creation time."""
        hospital = self.hospitals.get(order.hospital_id)
        if hospital is None:
            self.unserved[order.order_id] = f"unknown hospital {order.hospital_id!r}"
        elif order.created_s > self.end_s:
            self.unserved[order.order_id] = "created after the end of the plan"
        elif order.pinned_vehicle is not None:
            self._send_pinned(order, hospital, order.pinned_vehicle)
        elif not any(
            v.temperature_class == order.temperature_class for v in self.vehicles.values()
        ):
            self.unserved[order.order_id] = (
                f"no vehicle carries temperature class {order.temperature_class!r}"
            )
        elif not self._fitting(order):
            self.unserved[order.order_id] = (
                f"volume {order.volume_l:g} L exceeds the capacity of every "
                f"{order.temperature_class} vehicle"
            )
        elif order.priority == "emergency" or order.green_channel:
            self._send_emergency(order, hospital)
        else:
            depot = self._nearest_depot(order, hospital)
            self.pending.setdefault((depot.place_id, order.temperature_class), []).append(order)

    def wave(self, *, at_s: float) -> None:
        """Send the waiting routine and urgent orders on the depots' idle vehicles."""
        for key in sorted(self.pending):
            depot_id, temperature_class = key
            waiting = sorted(
                self.pending[key],
                key=lambda o: (o.priority != "urgent", o.due_s, o.created_s, o.order_id),
            )
            group = [
                v.vehicle_id
                for v in self.vehicles.values()
                if v.depot_id == depot_id and v.temperature_class == temperature_class
            ]
            # Longest idle first; the last to come back stay as the emergency reserve.
            idle = sorted((self.free_at_s[v], v) for v in group if self.free_at_s[v] <= at_s)
            reserve = min(self.emergency_reserve, len(group) - 1)
            for _, vehicle_id in idle[: max(0, len(idle) - reserve)]:
                if not waiting:
                    break
                taken = self._pack(waiting, capacity_l=self.vehicles[vehicle_id].capacity_l)
                if not taken:
                    continue
                self._book(vehicle_id, taken, load_start_s=at_s, emergency=False)
                taken_ids = {o.order_id for o in taken}
                waiting = [o for o in waiting if o.order_id not in taken_ids]
            self.pending[key] = waiting

    def result(self) -> DayPlan:
        """The plan; whatever still waits is unserved."""
        for waiting in self.pending.values():
            for order in waiting:
                self.unserved[order.order_id] = _NOT_DISPATCHED
        return DayPlan(
            trips=MappingProxyType({v: tuple(trips) for v, trips in self.trips.items()}),
            deliveries=MappingProxyType(dict(self.deliveries)),
            unserved=MappingProxyType(dict(self.unserved)),
            vehicles=MappingProxyType(dict(self.vehicles)),
        )

    def _send_pinned(self, order: Order, hospital: Hospital, vehicle_id: str) -> None:
        vehicle = self.vehicles.get(vehicle_id)
        if vehicle is None:
            self.unserved[order.order_id] = f"pinned vehicle {vehicle_id!r} is not in the fleet"
        elif vehicle.temperature_class != order.temperature_class:
            self.unserved[order.order_id] = (
                f"pinned vehicle {vehicle_id!r} carries {vehicle.temperature_class}, "
                f"not {order.temperature_class}"
            )
        elif order.volume_l > vehicle.capacity_l:
            self.unserved[order.order_id] = (
                f"volume {order.volume_l:g} L exceeds pinned vehicle {vehicle_id!r}'s capacity"
            )
        else:
            load_start_s = self._earliest_start_s(order, vehicle_id)
            if load_start_s > self.end_s:
                self.unserved[order.order_id] = (
                    f"pinned vehicle {vehicle_id!r} is not free before the end of the plan"
                )
            else:
                emergency = order.priority == "emergency" or order.green_channel
                self._book(vehicle_id, [order], load_start_s=load_start_s, emergency=emergency)

    def _send_emergency(self, order: Order, hospital: Hospital) -> None:
        # Per depot only the vehicle free first can be the fastest there.
        first_free: dict[str, tuple[float, str]] = {}
        for vehicle in self.vehicles.values():
            if (
                vehicle.temperature_class != order.temperature_class
                or vehicle.capacity_l < order.volume_l
            ):
                continue
            candidate = (self._earliest_start_s(order, vehicle.vehicle_id), vehicle.vehicle_id)
            if candidate[0] <= self.end_s:
                first_free[vehicle.depot_id] = min(
                    first_free.get(vehicle.depot_id, candidate), candidate
                )
        best: tuple[float, str, Trip] | None = None
        for load_start_s, vehicle_id in sorted(first_free.values()):
            trip = self._plan(vehicle_id, [hospital], load_start_s=load_start_s, emergency=True)
            arrive_s = trip.stops[0].arrive_s
            if best is None or (arrive_s, vehicle_id) < best[:2]:
                best = (arrive_s, vehicle_id, trip)
        if best is None:
            self.unserved[order.order_id] = _NOT_DISPATCHED
            return
        self._commit(best[1], best[2], [order])

    def _earliest_start_s(self, order: Order, vehicle_id: str) -> float:
        return max(order.created_s, self.start_s, self.free_at_s[vehicle_id])

    def _fitting(self, order: Order) -> bool:
        return any(
            v.temperature_class == order.temperature_class and v.capacity_l >= order.volume_l
            for v in self.vehicles.values()
        )

    def _nearest_depot(self, order: Order, hospital: Hospital) -> Depot:
        """The nearest depot with a vehicle that can carry the order."""
        depot_ids = {
            v.depot_id
            for v in self.vehicles.values()
            if v.temperature_class == order.temperature_class and v.capacity_l >= order.volume_l
        }
        return min(
            (self.depots[d] for d in depot_ids),
            key=lambda d: (haversine_km(hospital.lat, hospital.lon, d.lat, d.lon), d.place_id),
        )

    def _pack(self, waiting: Sequence[Order], *, capacity_l: float) -> list[Order]:
        """Orders for one trip, in queue order, within `max_stops` hospitals and `capacity_l`."""
        taken: list[Order] = []
        hospitals: set[str] = set()
        load_l = 0.0
        for order in waiting:
            if load_l + order.volume_l > capacity_l:
                continue
            if order.hospital_id not in hospitals:
                if len(hospitals) >= self.max_stops:
                    continue
                hospitals.add(order.hospital_id)
            taken.append(order)
            load_l += order.volume_l
        return taken

    def _book(
        self, vehicle_id: str, orders: Sequence[Order], *, load_start_s: float, emergency: bool
    ) -> None:
        depot = self.depots[self.vehicles[vehicle_id].depot_id]
        hospital_ids = sorted({o.hospital_id for o in orders})
        stops = _nearest_neighbour(depot, [self.hospitals[h] for h in hospital_ids])
        trip = self._plan(vehicle_id, stops, load_start_s=load_start_s, emergency=emergency)
        self._commit(vehicle_id, trip, orders)

    def _plan(
        self, vehicle_id: str, stops: Sequence[Hospital], *, load_start_s: float, emergency: bool
    ) -> Trip:
        depot = self.depots[self.vehicles[vehicle_id].depot_id]
        trip_id = f"{vehicle_id}-T{len(self.trips[vehicle_id]) + 1:03d}"
        return plan_trip(
            trip_id=trip_id,
            start=depot,
            stops=stops,
            end=depot,
            load_start_s=load_start_s,
            utc_offset_h=self.city.utc_offset_h,
            seed=self.seed,  # plan_trip draws each trip's door openings from seed and trip id
            emergency=emergency,
        )

    def _commit(self, vehicle_id: str, trip: Trip, orders: Sequence[Order]) -> None:
        self.trips[vehicle_id].append(trip)
        self.free_at_s[vehicle_id] = trip.end_s
        for order in orders:
            arrive_s = trip.visit_of(order.hospital_id).arrive_s
            self.deliveries[order.order_id] = Delivery(
                order_id=order.order_id,
                vehicle_id=vehicle_id,
                trip_id=trip.trip_id,
                arrive_s=arrive_s,
                late=arrive_s > order.due_s,
            )


def _nearest_neighbour(depot: Depot, hospitals: Sequence[Hospital]) -> list[Hospital]:
    """Hospitals in nearest-neighbour order starting from the depot."""
    left = list(hospitals)
    route: list[Hospital] = []
    here_lat, here_lon = depot.lat, depot.lon
    while left:
        nearest = min(left, key=lambda h: haversine_km(here_lat, here_lon, h.lat, h.lon))
        left.remove(nearest)
        route.append(nearest)
        here_lat, here_lon = nearest.lat, nearest.lon
    return route
