"""Shanghai's geography for the simulator: rough land outlines, the 16 districts with where
their hospitals cluster, and the depot sites. Data and a point-in-polygon test; nothing else."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

EARTH_RADIUS_KM = 6371.0088
KM_PER_DEGREE_LAT = math.pi / 180.0 * EARTH_RADIUS_KM

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
