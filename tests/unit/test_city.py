"""The synthetic Shanghai: hospitals on land and where people live, lookups, speeds, travel times."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.city import (
    CENTRAL_DISTRICTS,
    CIRCUITY_FACTOR,
    DISTRICTS,
    City,
    Depot,
    Hospital,
    Place,
    UnknownPlaceError,
    generate_city,
    haversine_km,
    on_land,
    road_km,
    speed_kmh,
    travel_s,
)

CITY = generate_city()
PEOPLES_SQUARE = (31.2304, 121.4737)
# 2025-07-01 00:00 in Shanghai (UTC+8), as UTC epoch seconds.
MIDNIGHT_LOCAL_S = 1_751_299_200.0

lats = st.floats(min_value=30.6, max_value=31.9)
lons = st.floats(min_value=120.8, max_value=122.1)


def place_at(lat: float, lon: float, place_id: str = "P") -> Place:
    return Place(place_id=place_id, name=place_id, lat=lat, lon=lon)


def test_default_city_has_the_requested_places_with_unique_ids() -> None:
    assert CITY.name == "Shanghai" and CITY.utc_offset_h == 8.0
    assert [h.place_id for h in CITY.hospitals] == [f"H{i:04d}" for i in range(1, 2801)]
    assert [d.place_id for d in CITY.depots] == ["D1", "D2", "D3", "D4", "D5"]
    assert all(isinstance(h, Place) for h in CITY.hospitals)
    assert all(isinstance(d, Place) for d in CITY.depots)
    assert {h.district for h in CITY.hospitals} == {d.name for d in DISTRICTS}
    assert len(DISTRICTS) == 16


def test_every_hospital_and_depot_is_on_land_inside_shanghai() -> None:
    for place in (*CITY.hospitals, *CITY.depots):
        assert on_land(place.lat, place.lon), place
        assert 30.68 <= place.lat <= 31.86 and 120.86 <= place.lon <= 121.98, place
    chongming = [h for h in CITY.hospitals if h.district == "Chongming"]
    assert chongming and all(on_land(h.lat, h.lon, island="chongming") for h in chongming)
    assert all(h.lat > 31.45 for h in chongming)


def test_land_polygons_know_the_sea_and_the_river() -> None:
    assert on_land(*PEOPLES_SQUARE)
    assert on_land(31.62, 121.50)  # Chongming
    assert not on_land(31.0, 122.2)  # East China Sea
    assert not on_land(30.60, 121.50)  # Hangzhou Bay
    assert not on_land(31.52, 121.55)  # Yangtze mouth between Baoshan and Chongming


def test_the_same_seed_gives_the_same_city_and_another_seed_another() -> None:
    assert generate_city(seed=7) == CITY
    other = generate_city(seed=8)
    assert [h.place_id for h in other.hospitals] == [h.place_id for h in CITY.hospitals]
    moved = sum(
        (a.lat, a.lon) != (b.lat, b.lon)
        for a, b in zip(CITY.hospitals, other.hospitals, strict=True)
    )
    assert moved > 2700
    assert other.depots == CITY.depots


def test_tier_mix_is_near_the_targets_and_tertiary_care_is_central() -> None:
    tiers = Counter(h.tier for h in CITY.hospitals)
    n = len(CITY.hospitals)
    assert tiers["tertiary"] / n == pytest.approx(0.10, abs=0.02)
    assert tiers["secondary"] / n == pytest.approx(0.25, abs=0.03)
    assert tiers["primary"] / n == pytest.approx(0.65, abs=0.03)
    central = [h for h in CITY.hospitals if h.district in CENTRAL_DISTRICTS]
    outer = [h for h in CITY.hospitals if h.district not in CENTRAL_DISTRICTS]
    central_share = sum(h.tier == "tertiary" for h in central) / len(central)
    outer_share = sum(h.tier == "tertiary" for h in outer) / len(outer)
    assert central_share > 2.5 * outer_share


def test_demand_weights_rank_tiers_and_names_say_what_a_hospital_is() -> None:
    weights = {
        tier: [h.demand_weight for h in CITY.hospitals if h.tier == tier]
        for tier in ("tertiary", "secondary", "primary")
    }
    assert min(weights["tertiary"]) > max(weights["secondary"])
    assert min(weights["secondary"]) > max(weights["primary"])
    assert min(weights["primary"]) > 0.0
    first = CITY.hospital("H0001")
    assert first.name.startswith(first.district + " ")
    primary = next(h for h in CITY.hospitals if h.tier == "primary" and h.district == "Xuhui")
    assert primary.name.startswith("Xuhui Community Health Centre ")
    assert len({h.name for h in CITY.hospitals}) == len(CITY.hospitals)


def test_the_centre_is_denser_than_the_outskirts() -> None:
    centre = len(CITY.hospitals_within(*PEOPLES_SQUARE, 4.0))
    for outskirt in ((31.03, 121.23), (31.13, 121.12), (30.80, 121.24), (31.65, 121.50)):
        assert centre > 4 * len(CITY.hospitals_within(*outskirt, 4.0)), outskirt
    by_district = Counter(h.district for h in CITY.hospitals)
    # Huangpu (20 km2) holds more hospitals than Chongming (1,200 km2).
    assert by_district["Huangpu"] > by_district["Chongming"]


def test_lookups_by_id_and_unknown_ids() -> None:
    assert CITY.hospital("H0042").place_id == "H0042"
    assert isinstance(CITY.hospital("H0042"), Hospital)
    assert CITY.depot("D3").name == "Jiading Nanxiang Logistics Park"
    assert isinstance(CITY.depot("D3"), Depot)
    with pytest.raises(UnknownPlaceError, match="H9999") as caught:
        CITY.hospital("H9999")
    assert isinstance(caught.value, KeyError) and caught.value.place_id == "H9999"
    with pytest.raises(KeyError, match="D1"):
        CITY.hospital("D1")
    with pytest.raises(UnknownPlaceError, match="D9"):
        CITY.depot("D9")


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"hospitals": 0}, "hospitals"),
        ({"depots": 0}, "depots"),
        ({"depots": 99}, "depots"),
        ({"seed": "7"}, "seed"),
        ({"hospitals": 2.5}, "hospitals"),
    ],
)
def test_generate_city_names_the_bad_argument(kwargs: dict[str, object], param: str) -> None:
    with pytest.raises(ValueError, match=param):
        generate_city(**kwargs)  # type: ignore[arg-type]


def test_a_small_city_and_its_depots() -> None:
    small = generate_city(seed=3, hospitals=50, depots=2)
    assert len(small.hospitals) == 50 and [d.place_id for d in small.depots] == ["D1", "D2"]
    assert all(on_land(h.lat, h.lon) for h in small.hospitals)


def test_a_city_rejects_duplicate_ids_and_no_depots() -> None:
    depot = Depot(place_id="D1", name="d", lat=31.2, lon=121.4)
    with pytest.raises(ValueError, match="unique"):
        City(name="x", utc_offset_h=8.0, hospitals=(), depots=(depot, depot))
    with pytest.raises(ValueError, match="depot"):
        City(name="x", utc_offset_h=8.0, hospitals=CITY.hospitals[:3], depots=())


def test_nearest_depot_of_every_hospital_matches_brute_force() -> None:
    for h in CITY.hospitals:
        best = min(haversine_km(h.lat, h.lon, d.lat, d.lon) for d in CITY.depots)
        found = CITY.nearest_depot(h.lat, h.lon)
        assert haversine_km(h.lat, h.lon, found.lat, found.lon) == best


@settings(max_examples=60, deadline=None)
@given(lat=lats, lon=lons, radius_km=st.floats(min_value=0.0, max_value=25.0))
def test_hospitals_within_matches_brute_force(lat: float, lon: float, radius_km: float) -> None:
    found = CITY.hospitals_within(lat, lon, radius_km)
    expected = {
        h.place_id for h in CITY.hospitals if haversine_km(lat, lon, h.lat, h.lon) <= radius_km
    }
    assert {h.place_id for h in found} == expected
    distances = [haversine_km(lat, lon, h.lat, h.lon) for h in found]
    assert distances == sorted(distances)


def test_hospitals_within_edge_radii() -> None:
    h = CITY.hospital("H0100")
    assert h in CITY.hospitals_within(h.lat, h.lon, 0.0)
    assert len(CITY.hospitals_within(*PEOPLES_SQUARE, 20_000.0)) == len(CITY.hospitals)
    with pytest.raises(ValueError, match="radius_km"):
        CITY.hospitals_within(*PEOPLES_SQUARE, -1.0)


def test_haversine_and_road_distances() -> None:
    assert haversine_km(31.0, 121.0, 32.0, 121.0) == pytest.approx(111.195, abs=0.01)
    assert haversine_km(31.2, 121.4, 31.2, 121.4) == 0.0
    a, b = CITY.hospital("H0001"), CITY.hospital("H2800")
    assert haversine_km(a.lat, a.lon, b.lat, b.lon) == pytest.approx(
        haversine_km(b.lat, b.lon, a.lat, a.lon)
    )
    assert road_km(a, b) == pytest.approx(
        CIRCUITY_FACTOR * haversine_km(a.lat, a.lon, b.lat, b.lon)
    )


def test_speeds_by_hour() -> None:
    for quarter in range(96):
        kmh = speed_kmh(quarter / 4)
        assert 22.0 <= kmh <= 45.0
        assert speed_kmh(quarter / 4, emergency=True) == pytest.approx(1.25 * kmh)
    for peak in (7.0, 8.0, 8.9, 17.0, 18.0, 18.9):
        assert speed_kmh(peak) == pytest.approx(22.0)
    for day in (10.0, 12.0, 15.0):
        assert speed_kmh(day) == pytest.approx(32.0)
    for night in (0.0, 2.0, 4.5, 23.5):
        assert speed_kmh(night) == pytest.approx(45.0)
    assert speed_kmh(26.0) == speed_kmh(2.0) and speed_kmh(-1.0) == speed_kmh(23.0)
    with pytest.raises(ValueError, match="local_hour"):
        speed_kmh(math.nan)


def crosstown_10_km() -> tuple[Place, Place]:
    a = place_at(31.23, 121.40, "A")
    b = place_at(31.23, 121.40 + 10.0 / haversine_km(31.23, 121.40, 31.23, 121.41) * 0.01, "B")
    assert haversine_km(a.lat, a.lon, b.lat, b.lon) == pytest.approx(10.0, rel=1e-3)
    return a, b


def test_a_crosstown_trip_in_the_evening_peak_takes_half_an_hour_or_more() -> None:
    a, b = crosstown_10_km()
    peak_min = travel_s(a, b, depart_s=MIDNIGHT_LOCAL_S + 18 * 3600, utc_offset_h=8.0) / 60
    assert 30.0 <= peak_min <= 50.0
    night_min = travel_s(a, b, depart_s=MIDNIGHT_LOCAL_S + 2 * 3600, utc_offset_h=8.0) / 60
    assert night_min < 0.6 * peak_min
    emergency_min = (
        travel_s(a, b, depart_s=MIDNIGHT_LOCAL_S + 18 * 3600, utc_offset_h=8.0, emergency=True) / 60
    )
    assert emergency_min == pytest.approx(peak_min / 1.25)
    assert travel_s(a, a, depart_s=MIDNIGHT_LOCAL_S, utc_offset_h=8.0) == 0.0


@settings(max_examples=40, deadline=None)
@given(
    depart_h=st.floats(min_value=0.0, max_value=48.0),
    later_s=st.floats(min_value=0.0, max_value=7200.0),
    a_lat=lats,
    a_lon=lons,
    b_lat=lats,
    b_lon=lons,
)
def test_travel_covers_the_distance_at_the_hourly_speeds_and_never_overtakes(
    depart_h: float, later_s: float, a_lat: float, a_lon: float, b_lat: float, b_lon: float
) -> None:
    a, b = place_at(a_lat, a_lon, "A"), place_at(b_lat, b_lon, "B")
    depart_s = MIDNIGHT_LOCAL_S + depart_h * 3600
    duration_s = travel_s(a, b, depart_s=depart_s, utc_offset_h=8.0)
    # Integrating the speed over the trip gives back the road distance (midpoint rule, 200 steps).
    step_s = duration_s / 200
    local_h = depart_h % 24
    covered_km = sum(
        speed_kmh(local_h + (k + 0.5) * step_s / 3600) * step_s / 3600 for k in range(200)
    )
    assert covered_km == pytest.approx(road_km(a, b), rel=2e-3, abs=1e-9)
    later = travel_s(a, b, depart_s=depart_s + later_s, utc_offset_h=8.0)
    assert depart_s + later_s + later >= depart_s + duration_s - 1e-6
