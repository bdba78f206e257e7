"""Where a simulated vehicle is and when its doors open while it drives its trips.

A trip loads at its start (door opening intermittently), drives leg by leg to its stops (doors
closed), dwells at each (a few door openings) and drives back. Each leg follows a road-like
polyline inside the leg's bounding box whose length is at most the leg's road km, so the speed
reported (road km / leg duration) bounds how far the vehicle moves between two samples.
Everything is precomputed when a trip is built; `position` and `door_open` are bisections.
Pure and deterministic: no I/O, no clock reads.
"""

from __future__ import annotations

import math
import random
import zlib
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from simulators.city import (
    KM_PER_DEGREE_LAT,
    Place,
    UnknownPlaceError,
    haversine_km,
    road_km,
    travel_s,
)

# Loading at the depot's cold dock: openings of 30-90 s (a pallet or a few totes at a time)
# separated by closed spells of 2-5 min while the next load is picked; the door is shut this
# long before departure. Longer, more frequent openings push a summer van's air above 8 C on
# every round, which real fleets avoid with exactly these habits.
_LOAD_OPEN_S = (30.0, 90.0)
_LOAD_CLOSED_S = (120.0, 300.0)
_LOAD_SHUT_BEFORE_DEPART_S = 30.0
_MIN_OPENING_S = 20.0
# At a stop: 1-2 openings of 20-90 s within the dwell (take the order's totes out).
_STOP_OPENINGS = (1, 2)
_STOP_OPEN_S = (20.0, 90.0)


_Floats = tuple[float, ...]


class NotOnTripError(UnknownPlaceError):
    """A trip does not stop at this place."""

    def __init__(self, place_id: str, *, trip_id: str) -> None:
        super().__init__(place_id, kind="stop")
        self.trip_id = trip_id

    def __str__(self) -> str:
        return f"trip {self.trip_id} does not stop at {self.place_id!r}"


@dataclass(frozen=True, slots=True)
class Visit:
    """One stop on a trip as planned: arrival and departure (UTC epoch s)."""

    place: Place
    arrive_s: float
    depart_s: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.arrive_s) and math.isfinite(self.depart_s)):
            raise ValueError(f"visit to {self.place.place_id}: times must be finite")
        if self.depart_s < self.arrive_s:
            raise ValueError(
                f"visit to {self.place.place_id}: depart_s {self.depart_s} "
                f"is before arrive_s {self.arrive_s}"
            )


@dataclass(frozen=True, slots=True)
class _Stay:
    start_s: float
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class _Leg:
    start_s: float
    duration_s: float
    lats: tuple[float, ...]
    lons: tuple[float, ...]
    cum_km: tuple[float, ...]  # distance along the polyline at each vertex
    speed_kmh: float

    def position(self, t_s: float) -> tuple[float, float, float]:
        along_km = (t_s - self.start_s) / self.duration_s * self.cum_km[-1]
        i = min(bisect_right(self.cum_km, along_km) - 1, len(self.cum_km) - 2)
        span_km = self.cum_km[i + 1] - self.cum_km[i]
        frac = 0.0 if span_km <= 0.0 else min(1.0, (along_km - self.cum_km[i]) / span_km)
        lat = self.lats[i] + (self.lats[i + 1] - self.lats[i]) * frac
        lon = self.lons[i] + (self.lons[i + 1] - self.lons[i]) * frac
        return (lat, lon, self.speed_kmh)


def _leg_path(a: Place, b: Place) -> tuple[_Floats, _Floats, _Floats]:
    """Vertices (lats, lons) and cumulative km of a road-like path from `a` to `b`.

    A Z of two axis-parallel streets joined by a cross street, as in a grid city; when that is
    longer than the road distance (diagonal legs) the cross street runs at a slant so that the
    path is no longer than the road distance. The variant (which axis first, where the cross
    street is) depends only on the two places, so a leg is always driven the same way.
    """
    digest = zlib.crc32(f"{a.place_id}>{b.place_id}".encode())
    x_first = digest & 1 == 0
    split = 0.25 + 0.5 * ((digest >> 1) % 1000) / 999.0
    target_km = road_km(a, b)

    def vertices(slant: float) -> tuple[_Floats, _Floats, _Floats]:
        first = split * (1.0 - slant)
        second = first + slant
        dlat, dlon = b.lat - a.lat, b.lon - a.lon
        if x_first:
            lats = (a.lat, a.lat, b.lat, b.lat)
            lons = (a.lon, a.lon + first * dlon, a.lon + second * dlon, b.lon)
        else:
            lats = (a.lat, a.lat + first * dlat, a.lat + second * dlat, b.lat)
            lons = (a.lon, a.lon, b.lon, b.lon)
        cum = [0.0]
        for k in range(3):
            cum.append(cum[-1] + haversine_km(lats[k], lons[k], lats[k + 1], lons[k + 1]))
        return lats, lons, tuple(cum)

    path = vertices(0.0)
    if path[2][-1] <= target_km:
        return path
    # Flat-earth first guess of the slant w, from (1 - w) u + sqrt((w u)^2 + v^2) = target with
    # u the axis driven in two parts; then bisection on the true length (the straight line,
    # w = 1, is always short enough since road km exceed great-circle km).
    km_per_deg_lon = KM_PER_DEGREE_LAT * math.cos(math.radians((a.lat + b.lat) / 2.0))
    dx = abs(b.lon - a.lon) * km_per_deg_lon
    dy = abs(b.lat - a.lat) * KM_PER_DEGREE_LAT
    u, v = (dx, dy) if x_first else (dy, dx)
    c = target_km - u
    guess = 1.0 if c <= 0.0 or u <= 0.0 else min(1.0, max(0.0, (v * v - c * c) / (2.0 * c * u)))
    path = vertices(guess)
    if path[2][-1] <= target_km:
        return path
    low, high = guess, 1.0
    for _ in range(40):
        mid = (low + high) / 2.0
        if vertices(mid)[2][-1] <= target_km:
            high = mid
        else:
            low = mid
    return vertices(high)


@dataclass(frozen=True, slots=True)
class Trip:
    """A planned round: load at `start`, visit `stops` in order, return to `end`.

    `door_open_intervals_s` are half-open ``[open_s, close_s)`` spells, sorted, each inside the
    loading or a dwell; a trip built by `plan_trip` has them drawn from its seed.
    """

    trip_id: str
    start: Place
    stops: tuple[Visit, ...]
    end: Place
    load_start_s: float
    depart_s: float
    end_s: float
    emergency: bool
    door_open_intervals_s: tuple[tuple[float, float], ...] = ()
    _phase_starts_s: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _phases: tuple[_Stay | _Leg, ...] = field(init=False, repr=False, compare=False)
    _door_opens_s: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.trip_id or self.trip_id != self.trip_id.strip():
            raise ValueError(
                f"trip_id must be non-empty without surrounding spaces: {self.trip_id!r}"
            )
        times = [self.load_start_s, self.depart_s]
        for visit in self.stops:
            times += [visit.arrive_s, visit.depart_s]
        times.append(self.end_s)
        if not all(math.isfinite(t) for t in times):
            raise ValueError(f"trip {self.trip_id}: times must be finite")
        if any(later < earlier for earlier, later in pairwise(times)):
            raise ValueError(
                f"trip {self.trip_id}: times must not decrease from load_start_s through each "
                f"visit to end_s, got {times}"
            )
        phases: list[_Stay | _Leg] = [_Stay(self.load_start_s, self.start.lat, self.start.lon)]
        here, leave_s = self.start, self.depart_s
        for visit in self.stops:
            phases.append(self._leg(here, visit.place, leave_s, visit.arrive_s))
            phases.append(_Stay(visit.arrive_s, visit.place.lat, visit.place.lon))
            here, leave_s = visit.place, visit.depart_s
        phases.append(self._leg(here, self.end, leave_s, self.end_s))
        object.__setattr__(self, "_phases", tuple(phases))
        object.__setattr__(self, "_phase_starts_s", tuple(p.start_s for p in phases))
        self._check_doors()
        opens = tuple(open_s for open_s, _ in self.door_open_intervals_s)
        object.__setattr__(self, "_door_opens_s", opens)

    def _leg(self, a: Place, b: Place, start_s: float, end_s: float) -> _Leg:
        duration_s = end_s - start_s
        distance_km = road_km(a, b)
        if distance_km > 0.0 and duration_s <= 0.0:
            raise ValueError(
                f"trip {self.trip_id}: no time to drive {distance_km:.2f} km "
                f"from {a.place_id} to {b.place_id}"
            )
        speed = distance_km / (duration_s / 3600.0) if distance_km > 0.0 else 0.0
        lats, lons, cum_km = _leg_path(a, b)
        return _Leg(start_s, max(duration_s, 1e-9), lats, lons, cum_km, speed)

    def _check_doors(self) -> None:
        previous_close_s = -math.inf
        for open_s, close_s in self.door_open_intervals_s:
            if not (previous_close_s <= open_s < close_s):
                raise ValueError(
                    f"trip {self.trip_id}: door intervals must be non-empty, sorted and apart, "
                    f"got [{open_s}, {close_s})"
                )
            if not (self.load_start_s <= open_s and close_s <= self.end_s):
                raise ValueError(f"trip {self.trip_id}: door open outside the trip at {open_s}")
            i = bisect_right(self._phase_starts_s, open_s) - 1
            phase_end_s = self._phase_starts_s[i + 1] if i + 1 < len(self._phases) else self.end_s
            if isinstance(self._phases[i], _Leg) or close_s > phase_end_s:
                raise ValueError(f"trip {self.trip_id}: door open while driving at {open_s}")
            previous_close_s = close_s

    def position(self, t_s: float) -> tuple[float, float, float] | None:
        """``(lat, lon, speed_kmh)`` at `t_s` from loading to arrival back, else None."""
        if not self.load_start_s <= t_s <= self.end_s:
            return None
        if t_s == self.end_s:
            return (self.end.lat, self.end.lon, 0.0)
        phase = self._phases[bisect_right(self._phase_starts_s, t_s) - 1]
        if isinstance(phase, _Stay):
            return (phase.lat, phase.lon, 0.0)
        return phase.position(t_s)

    def door_open(self, t_s: float) -> bool:
        """Whether the cargo door is open at `t_s`."""
        i = bisect_right(self._door_opens_s, t_s) - 1
        return i >= 0 and t_s < self.door_open_intervals_s[i][1]

    def visit_of(self, place_id: str) -> Visit:
        """The (first) visit of this trip to a place (NotOnTripError, a KeyError, if none)."""
        for visit in self.stops:
            if visit.place.place_id == place_id:
                return visit
        raise NotOnTripError(place_id, trip_id=self.trip_id)


def _loading_openings(
    rng: random.Random, *, load_start_s: float, depart_s: float
) -> list[tuple[float, float]]:
    shut_s = depart_s - _LOAD_SHUT_BEFORE_DEPART_S
    openings: list[tuple[float, float]] = []
    t_s = load_start_s + rng.uniform(0.0, _LOAD_CLOSED_S[0])
    while t_s < shut_s:
        close_s = min(t_s + rng.uniform(*_LOAD_OPEN_S), shut_s)
        if close_s - t_s >= _MIN_OPENING_S:
            openings.append((t_s, close_s))
        t_s = close_s + rng.uniform(*_LOAD_CLOSED_S)
    return openings


def _stop_openings(rng: random.Random, visit: Visit) -> list[tuple[float, float]]:
    dwell_s = visit.depart_s - visit.arrive_s
    count = rng.randint(*_STOP_OPENINGS)
    slot_s = dwell_s / count
    openings: list[tuple[float, float]] = []
    for k in range(count):
        # Each opening sits in its own slot of the dwell, clear of arrival and departure.
        duration_s = min(rng.uniform(*_STOP_OPEN_S), 0.8 * slot_s)
        slack_s = slot_s - duration_s
        open_s = visit.arrive_s + k * slot_s + rng.uniform(0.1 * slack_s, 0.9 * slack_s)
        if duration_s >= 1.0:
            openings.append((open_s, open_s + duration_s))
    return openings


def plan_trip(
    *,
    trip_id: str,
    start: Place,
    stops: Sequence[Place],
    end: Place,
    load_start_s: float,
    utc_offset_h: float,
    seed: int,
    emergency: bool = False,
    loading_s: float = 900.0,
    dwell_s: float = 600.0,
) -> Trip:
    """Time a trip with congested travel times and draw its door openings from the seed."""
    for name, value in (("loading_s", loading_s), ("dwell_s", dwell_s)):
        if not (math.isfinite(value) and value >= 0.0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    if not math.isfinite(load_start_s):
        raise ValueError(f"load_start_s must be finite, got {load_start_s}")
    t_s = load_start_s + loading_s
    depart_s = t_s
    here = start
    visits: list[Visit] = []
    for place in stops:
        t_s += travel_s(here, place, depart_s=t_s, utc_offset_h=utc_offset_h, emergency=emergency)
        visits.append(Visit(place, t_s, t_s + dwell_s))
        t_s += dwell_s
        here = place
    end_s = t_s + travel_s(here, end, depart_s=t_s, utc_offset_h=utc_offset_h, emergency=emergency)
    doors = _loading_openings(
        random.Random(f"{seed}:{trip_id}:load"), load_start_s=load_start_s, depart_s=depart_s
    )
    for index, visit in enumerate(visits):
        doors += _stop_openings(random.Random(f"{seed}:{trip_id}:{index}"), visit)
    return Trip(
        trip_id=trip_id,
        start=start,
        stops=tuple(visits),
        end=end,
        load_start_s=load_start_s,
        depart_s=depart_s,
        end_s=end_s,
        emergency=emergency,
        door_open_intervals_s=tuple(doors),
    )


class VehicleMotion:
    """The trips of one vehicle in time order; parked where the last finished trip ended."""

    def __init__(self, *, home: Place) -> None:
        self._home = home
        self._trips: list[Trip] = []
        self._starts_s: list[float] = []

    @property
    def home(self) -> Place:
        """Where the vehicle is parked before its first trip."""
        return self._home

    @property
    def trips(self) -> tuple[Trip, ...]:
        """The trips added so far, in time order."""
        return tuple(self._trips)

    def add_trip(self, trip: Trip) -> None:
        """Append a trip that starts loading no earlier than the previous trip ended."""
        if self._trips and trip.load_start_s < self._trips[-1].end_s:
            last = self._trips[-1]
            raise ValueError(
                f"trip {trip.trip_id} starts loading at {trip.load_start_s}, before trip "
                f"{last.trip_id} ends at {last.end_s}"
            )
        self._trips.append(trip)
        self._starts_s.append(trip.load_start_s)

    def free_at_s(self) -> float:
        """When the last trip ends (-inf before any)."""
        return self._trips[-1].end_s if self._trips else -math.inf

    def _trip_at(self, t_s: float) -> tuple[int, Trip | None]:
        i = bisect_right(self._starts_s, t_s) - 1
        if i >= 0 and t_s <= self._trips[i].end_s:
            return i, self._trips[i]
        return i, None

    def position(self, t_s: float) -> tuple[float, float, float]:
        """``(lat, lon, speed_kmh)`` at `t_s`: on a trip, or parked (speed 0)."""
        i, trip = self._trip_at(t_s)
        if trip is not None:
            on_trip = trip.position(t_s)
            if on_trip is not None:
                return on_trip
        parked = self._trips[i].end if i >= 0 else self._home
        return (parked.lat, parked.lon, 0.0)

    def door_open(self, compartment_id: str, t_s: float) -> bool:
        """Whether a compartment's door is open at `t_s` (all compartments share the trip's)."""
        _, trip = self._trip_at(t_s)
        return trip is not None and trip.door_open(t_s)
