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

EARTH_RADIUS_KM = 6371.0088
KM_PER_DEGREE_LAT = math.pi / 180.0 * EARTH_RADIUS_KM
CIRCUITY_FACTOR = 1.35  # road km per great-circle km in a dense city
EMERGENCY_SPEED_FACTOR = 1.25
SHANGHAI_UTC_OFFSET_H = 8.0  # China Standard Time, no daylight saving

Tier = Literal["tertiary", "secondary", "primary"]
Island = Literal["mainland", "chongming"]

# (lat, lon) vertices, clockwise. Rough on purpose: they keep hospitals out of the Yangtze, the
# East China Sea and Hangzhou Bay, not a cadastral boundary.
MAINLAND_POLYGON: tuple[tuple[float, float], ...] = (
    (31.15, 120.86),
    (31.22, 120.95),
    (31.30, 121.10),
    (31.40, 121.12),
    (31.50, 121.20),
    (31.52, 121.30),
    (31.50, 121.38),
    (31.42, 121.48),
    (31.38, 121.53),
    (31.35, 121.62),
    (31.30, 121.72),
    (31.22, 121.82),
    (31.12, 121.90),
    (31.00, 121.97),
    (30.88, 121.98),
    (30.86, 121.90),
    (30.84, 121.70),
    (30.82, 121.55),
    (30.80, 121.45),
    (30.74, 121.37),
    (30.70, 121.30),
    (30.68, 121.20),
    (30.70, 121.05),
    (30.80, 120.95),
    (30.95, 120.90),
    (31.05, 120.86),
)
CHONGMING_POLYGON: tuple[tuple[float, float], ...] = (
    (31.80, 121.15),
    (31.86, 121.30),
    (31.78, 121.55),
    (31.70, 121.75),
    (31.58, 121.95),
    (31.50, 121.92),
    (31.52, 121.75),
    (31.58, 121.55),
    (31.60, 121.38),
    (31.68, 121.25),
    (31.75, 121.15),
)
LAND_POLYGONS: dict[Island, tuple[tuple[float, float], ...]] = {
    "mainland": MAINLAND_POLYGON,
    "chongming": CHONGMING_POLYGON,
}

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


@dataclass(frozen=True, slots=True, kw_only=True)
class Area:
    """A cluster of hospitals: a centre, a spread (1 sigma, km) and a share of all hospitals."""

    lat: float
    lon: float
    sigma_lat_km: float
    sigma_lon_km: float
    weight: float
    island: Island = "mainland"


@dataclass(frozen=True, slots=True, kw_only=True)
class District:
    """One of Shanghai's 16 districts as one or more hospital clusters."""

    name: str
    central: bool
    areas: tuple[Area, ...]


def _disc(lat: float, lon: float, sigma_km: float, weight: float) -> Area:
    return Area(lat=lat, lon=lon, sigma_lat_km=sigma_km, sigma_lon_km=sigma_km, weight=weight)


# Approximate centres; weights are shares of all hospitals (roughly population, denser centre).
DISTRICTS: tuple[District, ...] = (
    District(name="Huangpu", central=True, areas=(_disc(31.222, 121.486, 1.6, 0.045),)),
    District(name="Xuhui", central=True, areas=(_disc(31.175, 121.437, 2.5, 0.055),)),
    District(name="Changning", central=True, areas=(_disc(31.215, 121.405, 2.2, 0.035),)),
    District(name="Jing'an", central=True, areas=(_disc(31.252, 121.455, 2.0, 0.050),)),
    District(name="Putuo", central=True, areas=(_disc(31.250, 121.400, 2.3, 0.045),)),
    District(name="Hongkou", central=True, areas=(_disc(31.270, 121.490, 1.7, 0.035),)),
    District(name="Yangpu", central=True, areas=(_disc(31.285, 121.525, 2.3, 0.045),)),
    District(name="Minhang", central=False, areas=(_disc(31.100, 121.400, 5.5, 0.110),)),
    District(name="Baoshan", central=False, areas=(_disc(31.360, 121.420, 4.5, 0.085),)),
    District(name="Jiading", central=False, areas=(_disc(31.360, 121.250, 5.5, 0.065),)),
    District(
        name="Pudong",
        central=False,
        areas=(
            _disc(31.215, 121.560, 5.0, 0.150),  # Lujiazui, Zhangjiang, Jinqiao
            _disc(31.030, 121.760, 7.0, 0.080),  # Nanhui, Huinan, Lingang
        ),
    ),
    District(name="Jinshan", central=False, areas=(_disc(30.800, 121.240, 6.0, 0.030),)),
    District(name="Songjiang", central=False, areas=(_disc(31.030, 121.230, 6.0, 0.065),)),
    District(name="Qingpu", central=False, areas=(_disc(31.130, 121.120, 7.0, 0.040),)),
    District(name="Fengxian", central=False, areas=(_disc(30.920, 121.500, 7.0, 0.040),)),
    District(
        name="Chongming",
        central=False,
        areas=(
            Area(
                lat=31.650,
                lon=121.500,
                sigma_lat_km=4.0,
                sigma_lon_km=18.0,  # a long thin island
                weight=0.025,
                island="chongming",
            ),
        ),
    ),
)
CENTRAL_DISTRICTS = frozenset(d.name for d in DISTRICTS if d.central)

# Cold-chain logistics parks near the outer ring, in the order `generate_city` takes them.
DEPOT_SITES: tuple[tuple[str, float, float], ...] = (
    ("Waigaoqiao Logistics Park", 31.345, 121.585),
    ("Minhang Xinzhuang Logistics Park", 31.112, 121.372),
    ("Jiading Nanxiang Logistics Park", 31.298, 121.318),
    ("Pudong Airport Logistics Park", 31.170, 121.775),
    ("Songjiang Logistics Park", 31.060, 121.250),
    ("Qingpu Xujing Logistics Park", 31.185, 121.270),
    ("Baoshan Yanghang Logistics Park", 31.385, 121.400),
    ("Fengxian Nanqiao Logistics Park", 30.935, 121.445),
)

# Tier shares per district: tertiary hospitals cluster in the centre; about 10/25/65 overall.
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


def on_land(lat: float, lon: float, *, island: Island | None = None) -> bool:
    """Whether a point is on the rough Shanghai land polygons (one of them, or `island` only)."""
    if island is not None:
        return _in_polygon(lat, lon, LAND_POLYGONS[island])
    return any(_in_polygon(lat, lon, polygon) for polygon in LAND_POLYGONS.values())


def _in_polygon(lat: float, lon: float, polygon: Sequence[tuple[float, float]]) -> bool:
    inside = False
    j = len(polygon) - 1
    for i in range(len(polygon)):
        lat_i, lon_i = polygon[i]
        lat_j, lon_j = polygon[j]
        if (lat_i > lat) != (lat_j > lat):
            lon_cross = lon_i + (lat - lat_i) * (lon_j - lon_i) / (lat_j - lat_i)
            if lon < lon_cross:
                inside = not inside
        j = i
    return inside


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
        if _in_polygon(lat, lon, LAND_POLYGONS[area.island]):
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
