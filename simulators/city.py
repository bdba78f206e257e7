"""A synthetic Shanghai: ~2,800 hospitals over the 16 districts, a few depots, and road travel times.

Hospitals are sampled under a seed around approximate district centres with district-sized
spreads (dense centre, sparse outskirts) and kept only when they fall on land: a rough mainland
polygon without the Yangtze estuary and the sea, and Chongming island. Travel is the great-circle
distance times an urban circuity factor, driven at a time-of-day congested speed. Everything here
is pure and deterministic: no I/O, no clock reads.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from simulators.geography import (
    CENTRAL_DISTRICTS,
    CHONGMING_POLYGON,
    DEPOT_SITES,
    DISTRICTS,
    EARTH_RADIUS_KM,
    KM_PER_DEGREE_LAT,
    LAND_POLYGONS,
    MAINLAND_POLYGON,
    Area,
    District,
    Island,
    on_land,
)

CIRCUITY_FACTOR = 1.35  # road km per great-circle km in a dense city
EMERGENCY_SPEED_FACTOR = 1.25
SHANGHAI_UTC_OFFSET_H = 8.0  # China Standard Time, no daylight saving

Tier = Literal["tertiary", "secondary", "primary"]

__all__ = [
    "CENTRAL_DISTRICTS",
    "CHONGMING_POLYGON",
    "DEPOT_SITES",
    "DISTRICTS",
    "EARTH_RADIUS_KM",
    "KM_PER_DEGREE_LAT",
    "LAND_POLYGONS",
    "MAINLAND_POLYGON",
    "Area",
    "City",
    "Depot",
    "District",
    "Hospital",
    "Island",
    "Place",
    "UnknownPlaceError",
    "generate_city",
    "haversine_km",
    "on_land",
    "road_km",
    "speed_kmh",
    "travel_s",
]
# Local hour -> typical urban van speed; linear in between. Peaks 07-09 and 17-19.
_SPEED_PROFILE: tuple[tuple[float, float], ...] = (
    (0.0, 45.0),
    (5.0, 45.0),
    (6.5, 30.0),
    (7.0, 22.0),
    (9.0, 22.0),
    (9.5, 32.0),
    (16.5, 32.0),
    (17.0, 22.0),
    (19.0, 22.0),
    (20.0, 32.0),
    (22.0, 40.0),
    (23.0, 45.0),
    (24.0, 45.0),
)
_PROFILE_HOURS = tuple(hour for hour, _ in _SPEED_PROFILE)
_PROFILE_KMH = tuple(kmh for _, kmh in _SPEED_PROFILE)

_GRID_CELL_DEG = 0.02  # ~2 km buckets for radius queries
_MAX_SIGMAS = 2.5  # hospitals further out than this from their area centre are redrawn


class UnknownPlaceError(KeyError):
    """No place of the city (or the trip) has this id."""

    def __init__(self, place_id: str, *, kind: str = "place") -> None:
        super().__init__(f"no {kind} {place_id!r}")
        self.place_id = place_id
        self.kind = kind

    def __str__(self) -> str:
        return f"no {self.kind} {self.place_id!r}"


@dataclass(frozen=True, slots=True)
class Place:
    """Anything a vehicle can drive to."""

    place_id: str
    name: str
    lat: float
    lon: float

    def __post_init__(self) -> None:
        if not self.place_id or self.place_id != self.place_id.strip():
            raise ValueError(
                f"place_id must be non-empty without surrounding spaces: {self.place_id!r}"
            )
        if not (math.isfinite(self.lat) and -90.0 <= self.lat <= 90.0):
            raise ValueError(f"place {self.place_id}: lat must be in [-90, 90], got {self.lat}")
        if not (math.isfinite(self.lon) and -180.0 <= self.lon <= 180.0):
            raise ValueError(f"place {self.place_id}: lon must be in [-180, 180], got {self.lon}")


@dataclass(frozen=True, slots=True)
class Hospital(Place):
    """A hospital or community health centre that orders medicines."""

    district: str
    tier: Tier
    demand_weight: float  # relative order demand: tertiary > secondary > primary

    def __post_init__(self) -> None:
        Place.__post_init__(self)
        if self.tier not in ("tertiary", "secondary", "primary"):
            raise ValueError(f"hospital {self.place_id}: unknown tier {self.tier!r}")
        if not (math.isfinite(self.demand_weight) and self.demand_weight > 0.0):
            raise ValueError(
                f"hospital {self.place_id}: demand_weight must be > 0, got {self.demand_weight}"
            )


@dataclass(frozen=True, slots=True)
class Depot(Place):
    """A cold-chain distribution centre where vehicles load and park."""


_TIER_SHARES: dict[bool, tuple[float, float]] = {True: (0.20, 0.30), False: (0.055, 0.228)}
_DEMAND_RANGES: dict[Tier, tuple[float, float]] = {
    "tertiary": (4.0, 8.0),
    "secondary": (1.5, 3.0),
    "primary": (0.5, 1.2),
}
_TIER_NAMES: dict[Tier, str] = {
    "tertiary": "General Hospital",
    "secondary": "District Hospital",
    "primary": "Community Health Centre",
}


def _grid_key(lat: float, lon: float) -> tuple[int, int]:
    return (math.floor(lat / _GRID_CELL_DEG), math.floor(lon / _GRID_CELL_DEG))


@dataclass(frozen=True, slots=True)
class City:
    """A city's hospitals and depots, with lookups by id and by position."""

    name: str
    utc_offset_h: float
    hospitals: tuple[Hospital, ...]
    depots: tuple[Depot, ...]
    _hospitals_by_id: dict[str, Hospital] = field(init=False, repr=False, compare=False)
    _depots_by_id: dict[str, Depot] = field(init=False, repr=False, compare=False)
    _grid: dict[tuple[int, int], tuple[Hospital, ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not -14.0 <= self.utc_offset_h <= 14.0:
            raise ValueError(f"utc_offset_h must be in [-14, 14], got {self.utc_offset_h}")
        if not self.depots:
            raise ValueError("a city needs at least one depot")
        ids = [h.place_id for h in self.hospitals] + [d.place_id for d in self.depots]
        if len(set(ids)) != len(ids):
            raise ValueError("place ids must be unique across hospitals and depots")
        grid: dict[tuple[int, int], list[Hospital]] = {}
        for hospital in self.hospitals:
            grid.setdefault(_grid_key(hospital.lat, hospital.lon), []).append(hospital)
        object.__setattr__(self, "_hospitals_by_id", {h.place_id: h for h in self.hospitals})
        object.__setattr__(self, "_depots_by_id", {d.place_id: d for d in self.depots})
        object.__setattr__(self, "_grid", {key: tuple(cell) for key, cell in grid.items()})

    def hospital(self, hospital_id: str) -> Hospital:
        """The hospital with this id (UnknownPlaceError if none)."""
        try:
            return self._hospitals_by_id[hospital_id]
        except KeyError:
            raise UnknownPlaceError(hospital_id, kind="hospital") from None

    def depot(self, depot_id: str) -> Depot:
        """The depot with this id (UnknownPlaceError if none)."""
        try:
            return self._depots_by_id[depot_id]
        except KeyError:
            raise UnknownPlaceError(depot_id, kind="depot") from None

    def nearest_depot(self, lat: float, lon: float) -> Depot:
        """The depot closest to a point as the crow flies (ties: the first listed)."""
        return min(self.depots, key=lambda d: haversine_km(lat, lon, d.lat, d.lon))

    def hospitals_within(self, lat: float, lon: float, radius_km: float) -> tuple[Hospital, ...]:
        """Hospitals within `radius_km` great-circle km of a point, nearest first (ties by id)."""
        if not (radius_km >= 0.0):
            raise ValueError(f"radius_km must be >= 0, got {radius_km}")
        radius_rad = min(radius_km / EARTH_RADIUS_KM, math.pi / 2)
        cos_lat = math.cos(math.radians(lat))
        ratio = math.sin(radius_rad) / cos_lat if cos_lat > 1e-12 else 2.0
        # The exact widest latitude and longitude of a spherical cap; a spare cell covers rounding.
        dlat_deg = math.degrees(radius_rad)
        dlon_deg = math.degrees(math.asin(ratio)) if ratio < 1.0 else 180.0
        lat_lo, lon_lo = _grid_key(lat - dlat_deg, lon - dlon_deg)
        lat_hi, lon_hi = _grid_key(lat + dlat_deg, lon + dlon_deg)
        cells: Sequence[tuple[Hospital, ...]]
        if ratio >= 1.0 or (lat_hi - lat_lo + 3) * (lon_hi - lon_lo + 3) > len(self._grid):
            cells = list(self._grid.values())
        else:
            cells = [
                self._grid[(i, j)]
                for i in range(lat_lo - 1, lat_hi + 2)
                for j in range(lon_lo - 1, lon_hi + 2)
                if (i, j) in self._grid
            ]
        found: list[tuple[float, str, Hospital]] = []
        for cell in cells:
            for hospital in cell:
                distance_km = haversine_km(lat, lon, hospital.lat, hospital.lon)
                if distance_km <= radius_km:
                    found.append((distance_km, hospital.place_id, hospital))
        found.sort(key=lambda item: (item[0], item[1]))
        return tuple(hospital for _, _, hospital in found)


def haversine_km(a_lat: float, a_lon: float, b_lat: float, b_lon: float) -> float:
    """Great-circle distance between two points in km."""
    phi_a = math.radians(a_lat)
    phi_b = math.radians(b_lat)
    half_dphi = (phi_b - phi_a) / 2.0
    half_dlambda = math.radians(b_lon - a_lon) / 2.0
    h = math.sin(half_dphi) ** 2 + math.cos(phi_a) * math.cos(phi_b) * math.sin(half_dlambda) ** 2
    return 2.0 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, h)))


def road_km(a: Place, b: Place) -> float:
    """Driving distance between two places: great-circle km times the urban circuity factor."""
    return haversine_km(a.lat, a.lon, b.lat, b.lon) * CIRCUITY_FACTOR


def speed_kmh(local_hour: float, *, emergency: bool = False) -> float:
    """Typical driving speed at a local hour of day (congested in the peaks, fast at night)."""
    if not math.isfinite(local_hour):
        raise ValueError(f"local_hour must be finite, got {local_hour}")
    hour = local_hour % 24.0
    i = min(bisect_right(_PROFILE_HOURS, hour) - 1, len(_PROFILE_HOURS) - 2)
    h0, h1 = _PROFILE_HOURS[i], _PROFILE_HOURS[i + 1]
    v0, v1 = _PROFILE_KMH[i], _PROFILE_KMH[i + 1]
    kmh = v0 + (v1 - v0) * (hour - h0) / (h1 - h0)
    return kmh * EMERGENCY_SPEED_FACTOR if emergency else kmh


def travel_s(
    a: Place, b: Place, *, depart_s: float, utc_offset_h: float, emergency: bool = False
) -> float:
    """Seconds to drive from `a` to `b` leaving at `depart_s` (UTC epoch s), speed varying en route."""
    if not math.isfinite(depart_s):
        raise ValueError(f"depart_s must be finite, got {depart_s}")
    remaining_km = road_km(a, b)
    if remaining_km == 0.0:
        return 0.0
    factor = EMERGENCY_SPEED_FACTOR if emergency else 1.0
    local_h = depart_s / 3600.0 + utc_offset_h
    hour = local_h % 24.0
    i = min(bisect_right(_PROFILE_HOURS, hour) - 1, len(_PROFILE_HOURS) - 2)
    elapsed_h = 0.0
    # Integrate the piecewise-linear speed profile until the distance is covered; a later
    # departure never arrives earlier because everyone on the road shares the same speed.
    while True:
        h_end = _PROFILE_HOURS[i + 1]
        span_h = h_end - hour
        v_start = speed_kmh(hour) * factor
        v_end = _PROFILE_KMH[i + 1] * factor
        segment_km = (v_start + v_end) / 2.0 * span_h
        if remaining_km <= segment_km:
            accel = (v_end - v_start) / span_h
            # Solves v_start t + accel t^2 / 2 = remaining in a form stable for accel ~ 0.
            root = math.sqrt(max(0.0, v_start * v_start + 2.0 * accel * remaining_km))
            elapsed_h += 2.0 * remaining_km / (v_start + root)
            return elapsed_h * 3600.0
        remaining_km -= segment_km
        elapsed_h += span_h
        i += 1
        if i == len(_PROFILE_HOURS) - 1:
            i = 0
        hour = _PROFILE_HOURS[i]


def _largest_remainder(weights: Sequence[float], total: int) -> list[int]:
    scale = total / sum(weights)
    exact = [w * scale for w in weights]
    counts = [math.floor(x) for x in exact]
    order = sorted(range(len(exact)), key=lambda k: (counts[k] - exact[k], k))
    for k in order[: total - sum(counts)]:
        counts[k] += 1
    return counts


def _sample_point(rng: random.Random, area: Area) -> tuple[float, float]:
    km_per_deg_lon = KM_PER_DEGREE_LAT * math.cos(math.radians(area.lat))
    for _ in range(100_000):
        u, v = rng.gauss(0.0, 1.0), rng.gauss(0.0, 1.0)
        if u * u + v * v > _MAX_SIGMAS * _MAX_SIGMAS:
            continue
        lat = round(area.lat + u * area.sigma_lat_km / KM_PER_DEGREE_LAT, 6)
        lon = round(area.lon + v * area.sigma_lon_km / km_per_deg_lon, 6)
        if on_land(lat, lon, island=area.island):
            return lat, lon
    # Only reachable if an area's centre were put in the sea.
    raise RuntimeError(f"no land near area centre ({area.lat}, {area.lon})")


def generate_city(*, seed: int = 7, hospitals: int = 2800, depots: int = 5) -> City:
    """A synthetic Shanghai with `hospitals` hospitals and the first `depots` depot sites."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    if isinstance(hospitals, bool) or not isinstance(hospitals, int) or hospitals < 1:
        raise ValueError(f"hospitals must be an int >= 1, got {hospitals!r}")
    if isinstance(depots, bool) or not isinstance(depots, int):
        raise ValueError(f"depots must be an int, got {depots!r}")
    if not 1 <= depots <= len(DEPOT_SITES):
        raise ValueError(f"depots must be between 1 and {len(DEPOT_SITES)}, got {depots}")
    rng = random.Random(seed)
    areas = [(district, area) for district in DISTRICTS for area in district.areas]
    area_counts = _largest_remainder([area.weight for _, area in areas], hospitals)
    district_points: dict[str, list[tuple[float, float]]] = {d.name: [] for d in DISTRICTS}
    for (district, area), count in zip(areas, area_counts, strict=True):
        district_points[district.name].extend(_sample_point(rng, area) for _ in range(count))

    width = max(4, len(str(hospitals)))
    numbers: dict[tuple[str, Tier], int] = {}
    result: list[Hospital] = []
    for district in DISTRICTS:
        points = district_points[district.name]
        tertiary_share, secondary_share = _TIER_SHARES[district.central]
        n_tertiary = round(tertiary_share * len(points))
        n_secondary = round(secondary_share * len(points))
        tier_counts: dict[Tier, int] = {
            "tertiary": n_tertiary,
            "secondary": n_secondary,
            "primary": len(points) - n_tertiary - n_secondary,
        }
        tiers = [tier for tier, n in tier_counts.items() for _ in range(n)]
        rng.shuffle(tiers)
        for (lat, lon), tier in zip(points, tiers, strict=True):
            number = numbers.get((district.name, tier), 0) + 1
            numbers[(district.name, tier)] = number
            low, high = _DEMAND_RANGES[tier]
            result.append(
                Hospital(
                    place_id=f"H{len(result) + 1:0{width}d}",
                    name=f"{district.name} {_TIER_NAMES[tier]} {number}",
                    lat=lat,
                    lon=lon,
                    district=district.name,
                    tier=tier,
                    demand_weight=round(rng.uniform(low, high), 3),
                )
            )
    depot_places = tuple(
        Depot(place_id=f"D{k + 1}", name=name, lat=lat, lon=lon)
        for k, (name, lat, lon) in enumerate(DEPOT_SITES[:depots])
    )
    return City(
        name="Shanghai",
        utc_offset_h=SHANGHAI_UTC_OFFSET_H,
        hospitals=tuple(result),
        depots=depot_places,
    )
