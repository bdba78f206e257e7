"""Trips and vehicle motion: where a vehicle is, how fast it goes and when its doors open."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.city import Place, generate_city, haversine_km, road_km
from simulators.routes import NotOnTripError, Trip, VehicleMotion, Visit, plan_trip

CITY = generate_city()
DEPOT = CITY.depot("D2")
# 2025-07-01 00:00 in Shanghai (UTC+8), as UTC epoch seconds.
MIDNIGHT_LOCAL_S = 1_751_299_200.0
NINE_AM_S = MIDNIGHT_LOCAL_S + 9 * 3600
EPS_DEG = 1e-9


def make_trip(
    *,
    trip_id: str = "T1",
    stops: tuple[str, ...] = ("H0010", "H0400", "H1200"),
    load_start_s: float = NINE_AM_S,
    seed: int = 1,
    emergency: bool = False,
) -> Trip:
    return plan_trip(
        trip_id=trip_id,
        start=DEPOT,
        stops=[CITY.hospital(h) for h in stops],
        end=DEPOT,
        load_start_s=load_start_s,
        utc_offset_h=CITY.utc_offset_h,
        seed=seed,
        emergency=emergency,
    )


TRIP = make_trip()


def legs(trip: Trip) -> Iterator[tuple[Place, Place, float, float]]:
    """Each leg as (from, to, leave_s, arrive_s), from the trip's public fields."""
    here, leave_s = trip.start, trip.depart_s
    for visit in trip.stops:
        yield here, visit.place, leave_s, visit.arrive_s
        here, leave_s = visit.place, visit.depart_s
    yield here, trip.end, leave_s, trip.end_s


def samples(start_s: float, end_s: float, step_s: float = 10.0) -> Iterator[float]:
    t_s = start_s
    while t_s < end_s:
        yield t_s
        t_s += step_s


def at(place: Place) -> tuple[float, float, float]:
    return (place.lat, place.lon, 0.0)


def test_the_timeline_follows_loading_travel_and_dwell() -> None:
    assert TRIP.depart_s == NINE_AM_S + 900.0
    times = [TRIP.depart_s]
    for visit in TRIP.stops:
        assert visit.depart_s - visit.arrive_s == 600.0
        times += [visit.arrive_s, visit.depart_s]
    times.append(TRIP.end_s)
    assert all(later > earlier for earlier, later in pairwise(times))
    assert [v.place.place_id for v in TRIP.stops] == ["H0010", "H0400", "H1200"]


def test_positions_start_and_end_at_the_right_places() -> None:
    assert TRIP.position(TRIP.load_start_s - 1) is None
    assert TRIP.position(TRIP.end_s + 1) is None
    assert TRIP.position(TRIP.load_start_s) == at(DEPOT)
    assert TRIP.position(TRIP.depart_s - 1) == at(DEPOT)
    assert TRIP.position(TRIP.end_s) == at(DEPOT)
    for visit in TRIP.stops:
        assert TRIP.position(visit.arrive_s) == at(visit.place)
        assert TRIP.position(visit.depart_s - 1e-3) == at(visit.place)
    for a, b, leave_s, arrive_s in legs(TRIP):
        lat, lon, _ = TRIP.position(leave_s + 1e-3) or (0.0, 0.0, 0.0)
        assert haversine_km(lat, lon, a.lat, a.lon) < 0.05
        lat, lon, _ = TRIP.position(arrive_s - 1e-3) or (0.0, 0.0, 0.0)
        assert haversine_km(lat, lon, b.lat, b.lon) < 0.05


def test_driving_stays_inside_the_leg_box_at_the_leg_speed_and_turns_a_corner() -> None:
    for a, b, leave_s, arrive_s in legs(TRIP):
        expected_kmh = road_km(a, b) / ((arrive_s - leave_s) / 3600)
        assert 15.0 <= expected_kmh <= 60.0
        off_line = 0.0
        for t_s in samples(leave_s, arrive_s):
            lat, lon, kmh = TRIP.position(t_s) or (0.0, 0.0, -1.0)
            assert min(a.lat, b.lat) - EPS_DEG <= lat <= max(a.lat, b.lat) + EPS_DEG
            assert min(a.lon, b.lon) - EPS_DEG <= lon <= max(a.lon, b.lon) + EPS_DEG
            assert kmh == pytest.approx(expected_kmh)
            assert not TRIP.door_open(t_s)
            # Cross product: how far off the straight line from a to b (in degrees).
            cross = (b.lat - a.lat) * (lon - a.lon) - (b.lon - a.lon) * (lat - a.lat)
            off_line = max(off_line, abs(cross))
        assert off_line > 1e-6, "a leg should not be a straight line"


def test_speed_is_zero_while_loading_and_dwelling() -> None:
    for t_s in samples(TRIP.load_start_s, TRIP.depart_s):
        assert TRIP.position(t_s) == at(DEPOT)
    for visit in TRIP.stops:
        for t_s in samples(visit.arrive_s, visit.depart_s):
            assert TRIP.position(t_s) == at(visit.place)


def test_the_door_opens_about_a_fifth_of_the_loading_in_short_spells() -> None:
    fractions = []
    for seed in range(20):
        trip = make_trip(seed=seed)
        loading = [(o, c) for o, c in trip.door_open_intervals_s if c <= trip.depart_s]
        assert loading
        assert all(20.0 <= c - o <= 90.0 for o, c in loading)
        open_s = sum(c - o for o, c in loading)
        fractions.append(open_s / (trip.depart_s - trip.load_start_s))
        assert not trip.door_open(trip.depart_s - 1.0)
        assert trip.door_open(loading[0][0]) and not trip.door_open(loading[0][1])
    assert all(0.05 <= f <= 0.45 for f in fractions)
    assert 0.12 <= sum(fractions) / len(fractions) <= 0.35


def test_each_stop_has_one_or_two_door_openings_within_the_dwell() -> None:
    for seed in range(10):
        trip = make_trip(seed=seed)
        for visit in trip.stops:
            spells = [
                (o, c)
                for o, c in trip.door_open_intervals_s
                if visit.arrive_s <= o and c <= visit.depart_s
            ]
            assert 1 <= len(spells) <= 2
            assert all(20.0 <= c - o <= 90.0 for o, c in spells)
            assert not trip.door_open(visit.arrive_s) and not trip.door_open(visit.depart_s)


def test_door_openings_are_deterministic_per_seed_and_trip() -> None:
    assert make_trip(seed=5) == make_trip(seed=5)
    assert make_trip(seed=5).door_open_intervals_s != make_trip(seed=6).door_open_intervals_s
    other = make_trip(seed=5, trip_id="T2").door_open_intervals_s
    assert other != make_trip(seed=5).door_open_intervals_s


def test_an_emergency_run_is_faster() -> None:
    emergency = make_trip(emergency=True)
    assert emergency.emergency
    assert emergency.end_s - emergency.depart_s < TRIP.end_s - TRIP.depart_s


def test_visit_of_finds_a_stop_and_names_a_missing_one() -> None:
    assert TRIP.visit_of("H0400") is TRIP.stops[1]
    with pytest.raises(NotOnTripError, match="H0001") as caught:
        TRIP.visit_of("H0001")
    assert isinstance(caught.value, KeyError) and caught.value.trip_id == "T1"


def test_a_trip_without_stops_drives_straight_back() -> None:
    trip = plan_trip(
        trip_id="T0",
        start=DEPOT,
        stops=[],
        end=CITY.depot("D1"),
        load_start_s=NINE_AM_S,
        utc_offset_h=8.0,
        seed=1,
    )
    assert trip.stops == ()
    assert trip.position(trip.end_s) == at(CITY.depot("D1"))


def test_a_trip_rejects_inconsistent_times_and_doors() -> None:
    with pytest.raises(ValueError, match="must not decrease"):
        replace(TRIP, end_s=TRIP.stops[-1].depart_s - 1)
    leg_mid_s = (TRIP.depart_s + TRIP.stops[0].arrive_s) / 2
    with pytest.raises(ValueError, match="driving"):
        replace(TRIP, door_open_intervals_s=((leg_mid_s, leg_mid_s + 30),))
    with pytest.raises(ValueError, match="sorted"):
        replace(TRIP, door_open_intervals_s=((TRIP.load_start_s + 60, TRIP.load_start_s + 30),))
    with pytest.raises(ValueError, match="before arrive_s"):
        Visit(DEPOT, 10.0, 5.0)
    with pytest.raises(ValueError, match="dwell_s"):
        plan_trip(
            trip_id="T",
            start=DEPOT,
            stops=[],
            end=DEPOT,
            load_start_s=0.0,
            utc_offset_h=8.0,
            seed=1,
            dwell_s=-1.0,
        )


def test_a_vehicle_parks_at_home_then_where_its_last_trip_ended() -> None:
    home = CITY.depot("D1")
    motion = VehicleMotion(home=home)
    assert motion.free_at_s() == float("-inf") and not motion.trips
    assert motion.position(NINE_AM_S) == at(home)
    motion.add_trip(TRIP)  # starts and ends at D2
    assert motion.position(TRIP.load_start_s - 1) == at(home)
    assert motion.position(TRIP.stops[0].arrive_s) == at(TRIP.stops[0].place)
    assert motion.position(TRIP.end_s + 3600) == at(DEPOT)
    assert motion.free_at_s() == TRIP.end_s and motion.trips == (TRIP,)
    opening_s = TRIP.door_open_intervals_s[0][0]
    assert motion.door_open("c1", opening_s) and motion.door_open("c2", opening_s)
    assert not motion.door_open("c1", TRIP.end_s + 60)

    second = make_trip(trip_id="T2", stops=("H2000",), load_start_s=TRIP.end_s + 1800)
    later = plan_trip(
        trip_id="T3",
        start=DEPOT,
        stops=[CITY.hospital("H0005")],
        end=home,
        load_start_s=second.end_s,
        utc_offset_h=8.0,
        seed=1,
    )
    motion.add_trip(second)
    motion.add_trip(later)  # touching the previous trip is fine
    assert motion.position(later.end_s + 1) == at(home)
    assert motion.position(second.end_s - 1e-3) != at(home)
    assert [t.trip_id for t in motion.trips] == ["T1", "T2", "T3"]


def test_a_vehicle_rejects_overlapping_or_earlier_trips() -> None:
    motion = VehicleMotion(home=DEPOT)
    motion.add_trip(TRIP)
    with pytest.raises(ValueError, match="before trip T1 ends"):
        motion.add_trip(make_trip(trip_id="T2", load_start_s=TRIP.end_s - 60))
    with pytest.raises(ValueError, match="T2"):
        motion.add_trip(make_trip(trip_id="T2", load_start_s=TRIP.load_start_s - 86_400))
    assert motion.trips == (TRIP,)


@settings(max_examples=30, deadline=None)
@given(
    stops=st.lists(st.integers(min_value=1, max_value=2800), max_size=4),
    depot=st.sampled_from(["D1", "D2", "D3", "D4", "D5"]),
    start_h=st.floats(min_value=0.0, max_value=24.0),
    seed=st.integers(min_value=0, max_value=2**31),
    emergency=st.booleans(),
)
def test_position_is_continuous_at_the_reported_speeds(
    stops: list[int], depot: str, start_h: float, seed: int, emergency: bool
) -> None:
    trip = plan_trip(
        trip_id=f"P{seed}",
        start=CITY.depot(depot),
        stops=[CITY.hospital(f"H{i:04d}") for i in stops],
        end=CITY.depot(depot),
        load_start_s=MIDNIGHT_LOCAL_S + start_h * 3600,
        utc_offset_h=8.0,
        seed=seed,
        emergency=emergency,
    )
    leg_kmh = [
        road_km(a, b) / ((arrive_s - leave_s) / 3600)
        for a, b, leave_s, arrive_s in legs(trip)
        if arrive_s > leave_s
    ]
    assert all(15.0 <= kmh <= 60.0 for kmh in leg_kmh)
    top_kmh = max(leg_kmh, default=0.0)
    dt_s = 10.0
    previous = trip.position(trip.load_start_s)
    assert previous is not None
    for t_s in [*samples(trip.load_start_s + dt_s, trip.end_s, dt_s), trip.end_s]:
        now = trip.position(t_s)
        assert now is not None
        assert now[2] == 0.0 or any(now[2] == pytest.approx(kmh) for kmh in leg_kmh)
        jump_km = haversine_km(previous[0], previous[1], now[0], now[1])
        assert jump_km <= top_kmh * dt_s / 3600 * 1.001 + 1e-3
        previous = now
