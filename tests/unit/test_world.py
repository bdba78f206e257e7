"""The world of a scenario's day: city, orders and routes built from the scenario, pure."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from simulators.city import haversine_km
from simulators.scenario import ScenarioError, load_scenario, parse_scenario
from simulators.world import build_world, day_start_s

# 2026-12-04 00:00 UTC = 08:00 in Shanghai.
MIDNIGHT_UTC = datetime(2026, 12, 4, tzinfo=UTC).timestamp()


def local_hour(t_s: float) -> float:
    return ((t_s / 3600.0) + 8.0) % 24


def test_day_starts_at_the_latest_local_start_time_before_now() -> None:
    now = MIDNIGHT_UTC + 3 * 3600  # 11:00 local
    start = day_start_s(now_s=now, not_before_s=0.0, local_hour=7.0, utc_offset_h=8.0)
    assert local_hour(start) == pytest.approx(7.0)
    assert now - 86_400 < start <= now


def test_day_starts_after_what_an_earlier_run_stored() -> None:
    now = MIDNIGHT_UTC + 3 * 3600
    stored_until = now + 5 * 3600  # an earlier fast run left readings "ahead" of the wall clock
    start = day_start_s(now_s=now, not_before_s=stored_until, local_hour=7.0, utc_offset_h=8.0)
    assert local_hour(start) == pytest.approx(7.0)
    assert stored_until <= start < stored_until + 86_400


def test_compressor_failure_hits_vehicle_one_on_its_emergency_run() -> None:
    scenario = load_scenario("compressor-failure")
    ids = [f"SIM{i:04d}" for i in range(1, scenario.vehicles + 1)]
    start = day_start_s(
        now_s=MIDNIGHT_UTC, not_before_s=0.0, local_hour=scenario.start_local_h, utc_offset_h=8.0
    )
    world = build_world(scenario, ids, start_s=start)
    delivery = world.plan.deliveries["S00001"]
    assert delivery.vehicle_id == "SIM0001" and not delivery.late
    trip = next(t for t in world.plan.trips["SIM0001"] if t.trip_id == delivery.trip_id)
    assert trip.emergency and [v.place.place_id for v in trip.stops] == ["H0150"]
    failure = scenario.failures[0]
    failed_at = start + failure.at_s
    assert trip.depart_s <= failed_at < trip.visit_of("H0150").arrive_s, "fails on the road"
    motion = world.plan.motion("SIM0001", world.city)
    assert motion.position(failed_at)[2] > 10, "driving when the compressor fails"


def test_outbreak_scenario_brings_green_channel_orders_near_its_centre_only() -> None:
    scenario = load_scenario("regional-outbreak")
    outbreak = scenario.outbreak
    assert outbreak is not None
    ids = [f"SIM{i:04d}" for i in range(1, scenario.vehicles + 1)]
    start = day_start_s(now_s=MIDNIGHT_UTC, not_before_s=0.0, local_hour=7.0, utc_offset_h=8.0)
    world = build_world(scenario, ids, start_s=start)
    green = [o for o in world.orders if o.green_channel]
    assert len(green) > 50
    for order in green:
        hospital = world.city.hospital(order.hospital_id)
        assert haversine_km(hospital.lat, hospital.lon, outbreak.lat, outbreak.lon) <= (
            outbreak.radius_km
        )
        assert (
            start + outbreak.at_s <= order.created_s < start + outbreak.at_s + outbreak.duration_s
        )
        assert order.priority == "emergency"
    delivered = [
        world.plan.deliveries[o.order_id] for o in green if o.order_id in world.plan.deliveries
    ]
    assert len(delivered) >= 0.9 * len(green)
    on_time = sum(1 for d in delivered if not d.late)
    assert on_time >= 0.8 * len(delivered), "green-channel orders mostly arrive within 2 hours"
    totals = world.totals()
    assert totals.orders == len(world.orders) and totals.green_channel == len(green)
    assert totals.delivered + totals.unserved == totals.orders


def test_every_vehicle_drives_real_routes_at_city_speeds() -> None:
    scenario = load_scenario("quiet-day")
    ids = [f"SIM{i:04d}" for i in range(1, scenario.vehicles + 1)]
    start = day_start_s(now_s=MIDNIGHT_UTC, not_before_s=0.0, local_hour=7.0, utc_offset_h=8.0)
    world = build_world(scenario, ids, start_s=start)
    moving = 0
    for vehicle_id in ids:
        motion = world.plan.motion(vehicle_id, world.city)
        speeds = [motion.position(start + t)[2] for t in range(0, int(scenario.duration_s), 60)]
        assert max(speeds) <= 80.0
        moving += any(s > 5 for s in speeds)
    assert moving >= 0.8 * len(ids), "most of the fleet is out on deliveries"
    assert world.totals().delivered > 0


def test_a_scripted_order_for_an_unknown_hospital_is_named() -> None:
    scenario = parse_scenario(
        {
            "vehicles": 2,
            "city": {"hospitals": 100},
            "orders": {"scripted": [{"at_s": 60, "hospital": "H0500"}]},
        },
        name="t",
    )
    with pytest.raises(ScenarioError) as caught:
        build_world(scenario, ["A", "B"], start_s=MIDNIGHT_UTC)
    assert caught.value.key == "orders.scripted[0].hospital"
