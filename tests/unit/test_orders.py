"""The order stream: Poisson counts, diurnal shape, priority mix, outbreaks, validation."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pytest

from simulators.city import City, generate_city
from simulators.orders import (
    DIURNAL_PROFILE,
    PRIORITIES,
    Order,
    OrderError,
    OrderMix,
    OrderMixError,
    Outbreak,
    OutbreakError,
    diurnal_factor,
    generate_orders,
    scripted_order,
)

DAY_S = 86_400.0
HOUR_S = 3_600.0
UTC_MIDNIGHT_S = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.fixture(scope="module")
def city() -> City:
    return generate_city(seed=7)


@pytest.fixture(scope="module")
def midnight_s(city: City) -> float:
    """The city's local midnight, as UTC epoch seconds."""
    return UTC_MIDNIGHT_S - city.utc_offset_h * HOUR_S


@pytest.fixture(scope="module")
def day(city: City, midnight_s: float) -> tuple[Order, ...]:
    return generate_orders(city, mix=OrderMix(), start_s=midnight_s, duration_s=DAY_S, seed=11)


def local_hour(city: City, t_s: float) -> int:
    return int(((t_s + city.utc_offset_h * HOUR_S) % DAY_S) // HOUR_S)


def test_a_day_has_orders_per_day_within_poisson_tolerance(day: tuple[Order, ...]) -> None:
    expected = OrderMix().orders_per_day
    assert abs(len(day) - expected) < 4 * math.sqrt(expected)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_smaller_rates_scale_the_count(city: City, midnight_s: float, seed: int) -> None:
    orders = generate_orders(
        city, mix=OrderMix(orders_per_day=800.0), start_s=midnight_s, duration_s=DAY_S, seed=seed
    )
    assert abs(len(orders) - 800) < 4 * math.sqrt(800)


def test_orders_are_sorted_well_formed_and_sequential(
    city: City, midnight_s: float, day: tuple[Order, ...]
) -> None:
    mix = OrderMix()
    ids = {h.place_id for h in city.hospitals}
    assert [o.order_id for o in day] == [f"O{i:06d}" for i in range(1, len(day) + 1)]
    assert [o.created_s for o in day] == sorted(o.created_s for o in day)
    for order in day:
        assert midnight_s <= order.created_s < midnight_s + DAY_S
        assert order.hospital_id in ids
        assert order.due_s == order.created_s + mix.deadline_s[order.priority]
        assert mix.volume_l_range[0] <= order.volume_l <= mix.volume_l_range[1]
        assert order.temperature_class == "refrigerated"
        assert not order.green_channel and order.pinned_vehicle is None


def test_most_orders_come_in_working_hours(city: City, day: tuple[Order, ...]) -> None:
    per_hour = Counter(local_hour(city, o.created_s) for o in day)
    day_rate = sum(per_hour[h] for h in range(8, 18)) / 10
    night_rate = sum(per_hour[h] for h in range(0, 6)) / 6
    assert day_rate > 6 * night_rate
    assert sum(per_hour[h] for h in range(8, 18)) > 0.7 * len(day)
    assert night_rate > 0  # few at night, not none


def test_diurnal_profile_averages_one_over_a_day(midnight_s: float) -> None:
    assert sum(DIURNAL_PROFILE) / 24 == pytest.approx(1.0)
    factors = [diurnal_factor(midnight_s + m * 60.0, utc_offset_h=8.0) for m in range(0, 1440)]
    assert sum(factors) / len(factors) == pytest.approx(1.0)


def test_priority_shares_are_near_their_targets(day: tuple[Order, ...]) -> None:
    counts: Counter[str] = Counter(o.priority for o in day)
    n = len(day)
    for priority, target in OrderMix().priority_shares.items():
        sd = math.sqrt(target * (1 - target) / n)
        assert abs(counts[priority] / n - target) < 4 * sd, priority


def test_class_shares_and_volume_range_are_followed(city: City, midnight_s: float) -> None:
    mix = OrderMix(
        orders_per_day=2000.0,
        class_shares={"refrigerated": 0.7, "frozen": 0.3},
        volume_l_range=(10.0, 20.0),
    )
    orders = generate_orders(city, mix=mix, start_s=midnight_s, duration_s=DAY_S, seed=5)
    frozen = sum(o.temperature_class == "frozen" for o in orders) / len(orders)
    assert abs(frozen - 0.3) < 0.05
    assert {o.temperature_class for o in orders} == {"refrigerated", "frozen"}
    assert all(10.0 <= o.volume_l <= 20.0 for o in orders)


def test_same_seed_same_stream_other_seed_other_stream(city: City, midnight_s: float) -> None:
    mix = OrderMix(orders_per_day=1000.0)

    def stream(seed: int) -> tuple[Order, ...]:
        return generate_orders(city, mix=mix, start_s=midnight_s, duration_s=DAY_S, seed=seed)

    assert stream(3) == stream(3)
    assert stream(3) != stream(4)


def test_empty_window_and_zero_rate_give_no_orders(city: City, midnight_s: float) -> None:
    assert generate_orders(city, mix=OrderMix(), start_s=midnight_s, duration_s=0, seed=1) == ()
    quiet = OrderMix(orders_per_day=0.0)
    assert generate_orders(city, mix=quiet, start_s=midnight_s, duration_s=DAY_S, seed=1) == ()


def outbreak_near_densest(city: City) -> Outbreak:
    """An outbreak centred on a hospital, radius covering a modest share of the city."""
    centre = city.hospitals[len(city.hospitals) // 2]
    return Outbreak(
        at_s=9 * HOUR_S, duration_s=6 * HOUR_S, lat=centre.lat, lon=centre.lon, radius_km=6.0
    )


def test_outbreak_raises_demand_inside_its_radius(city: City, midnight_s: float) -> None:
    outbreak = outbreak_near_densest(city)
    inside = {h.place_id for h in city.hospitals_within(outbreak.lat, outbreak.lon, 6.0)}
    assert 0 < len(inside) < len(city.hospitals) // 2
    weight = {h.place_id: h.demand_weight for h in city.hospitals}
    weight_in = sum(weight[h] for h in inside)
    weight_out = sum(weight.values()) - weight_in
    orders = generate_orders(
        city,
        mix=OrderMix(),
        start_s=midnight_s,
        duration_s=DAY_S,
        seed=8,
        outbreak=outbreak,
    )
    window = (midnight_s + outbreak.at_s, midnight_s + outbreak.at_s + outbreak.duration_s)
    during = [o for o in orders if window[0] <= o.created_s < window[1]]
    per_weight_in = sum(o.hospital_id in inside for o in during) / weight_in
    per_weight_out = sum(o.hospital_id not in inside for o in during) / weight_out
    assert 3.5 < per_weight_in / per_weight_out < 7.0  # demand_multiplier 5

    before = [o for o in orders if o.created_s < window[0]]
    ratio_before = (sum(o.hospital_id in inside for o in before) / weight_in) / (
        sum(o.hospital_id not in inside for o in before) / weight_out
    )
    assert 0.6 < ratio_before < 1.6  # no outbreak yet: demand follows the weights


def test_green_channel_orders_only_inside_radius_and_window(city: City, midnight_s: float) -> None:
    outbreak = outbreak_near_densest(city)
    orders = generate_orders(
        city,
        mix=OrderMix(),
        start_s=midnight_s,
        duration_s=DAY_S,
        seed=9,
        outbreak=outbreak,
    )
    window = (midnight_s + outbreak.at_s, midnight_s + outbreak.at_s + outbreak.duration_s)
    inside = {
        h.place_id for h in city.hospitals_within(outbreak.lat, outbreak.lon, outbreak.radius_km)
    }
    green = [o for o in orders if o.green_channel]
    inside_during = [
        o for o in orders if window[0] <= o.created_s < window[1] and o.hospital_id in inside
    ]
    assert green
    for order in green:
        assert window[0] <= order.created_s < window[1]
        assert order.hospital_id in inside
        assert order.priority == "emergency"
        assert order.due_s == order.created_s + OrderMix().deadline_s["emergency"]
    assert abs(len(green) / len(inside_during) - outbreak.green_channel_share) < 0.1


def test_outbreak_offset_moves_the_window(city: City, midnight_s: float) -> None:
    outbreak = Outbreak(
        at_s=2 * HOUR_S,
        duration_s=2 * HOUR_S,
        lat=city.hospitals[0].lat,
        lon=city.hospitals[0].lon,
        radius_km=8.0,
        green_channel_share=1.0,
    )
    orders = generate_orders(
        city,
        mix=OrderMix(),
        start_s=midnight_s,
        duration_s=DAY_S,
        seed=4,
        outbreak=outbreak,
        outbreak_offset_s=8 * HOUR_S,
    )
    green_times = [o.created_s for o in orders if o.green_channel]
    assert green_times
    assert all(midnight_s + 10 * HOUR_S <= t < midnight_s + 12 * HOUR_S for t in green_times)


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"orders_per_day": -1.0}, "orders_per_day"),
        ({"priority_shares": {"routine": 0.9, "urgent": 0.2, "emergency": 0.0}}, "priority_shares"),
        (
            {"priority_shares": {"routine": 1.1, "urgent": -0.1, "emergency": 0.0}},
            "priority_shares.urgent",
        ),
        ({"priority_shares": {"routine": 0.9, "urgent": 0.1}}, "priority_shares.emergency"),
        (
            {"priority_shares": {"routine": 0.9, "urgent": 0.1, "emergency": 0.0, "vip": 0.0}},
            "priority_shares.vip",
        ),
        ({"class_shares": {}}, "class_shares"),
        ({"class_shares": {"refrigerated": 0.5, "frozen": 0.4}}, "class_shares"),
        ({"class_shares": {"refrigerated": 1.2, "frozen": -0.2}}, "class_shares.frozen"),
        (
            {"deadline_s": {"routine": 86400.0, "urgent": 0.0, "emergency": 1.0}},
            "deadline_s.urgent",
        ),
        ({"deadline_s": {"routine": 86400.0, "urgent": 60.0}}, "deadline_s.emergency"),
        ({"volume_l_range": (0.0, 10.0)}, "volume_l_range"),
        ({"volume_l_range": (20.0, 10.0)}, "volume_l_range"),
    ],
)
def test_invalid_mix_names_the_key(changes: dict[str, Any], key: str) -> None:
    with pytest.raises(OrderMixError) as caught:
        OrderMix(**changes)
    assert caught.value.key == key
    assert isinstance(caught.value, ValueError)


def test_mix_shares_within_tolerance_are_accepted() -> None:
    mix = OrderMix(priority_shares={"routine": 0.85, "urgent": 0.12, "emergency": 0.0300000001})
    assert set(mix.priority_shares) == set(PRIORITIES)


def test_mix_mappings_are_frozen_copies() -> None:
    shares = {"refrigerated": 1.0}
    mix = OrderMix(class_shares=shares)
    shares["frozen"] = 0.5
    assert dict(mix.class_shares) == {"refrigerated": 1.0}
    with pytest.raises(TypeError):
        mix.class_shares["frozen"] = 1.0  # type: ignore[index]


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"duration_s": 0.0}, "duration_s"),
        ({"radius_km": -1.0}, "radius_km"),
        ({"lat": 91.0}, "lat"),
        ({"green_channel_share": 1.5}, "green_channel_share"),
        ({"demand_multiplier": -2.0}, "demand_multiplier"),
    ],
)
def test_invalid_outbreak_names_the_key(changes: dict[str, Any], key: str) -> None:
    fields: dict[str, Any] = {
        "at_s": 0.0,
        "duration_s": 3600.0,
        "lat": 31.2,
        "lon": 121.5,
        "radius_km": 5.0,
    }
    with pytest.raises(OutbreakError) as caught:
        Outbreak(**(fields | changes))
    assert caught.value.key == key


def test_scripted_order_is_due_by_its_priority_deadline() -> None:
    mix = OrderMix()
    order = scripted_order(
        order_id="S1",
        hospital_id="H0001",
        created_s=1000.0,
        priority="urgent",
        mix=mix,
        pinned_vehicle="V01",
    )
    assert order.due_s == 1000.0 + 4 * HOUR_S
    assert order.pinned_vehicle == "V01"
    assert order.temperature_class == "refrigerated" and order.volume_l == 20.0
    assert not order.green_channel


def test_scripted_order_rejects_a_bad_priority_or_volume() -> None:
    with pytest.raises(OrderError) as caught:
        scripted_order(
            order_id="S1",
            hospital_id="H0001",
            created_s=0.0,
            priority="whenever",  # type: ignore[arg-type]
            mix=OrderMix(),
        )
    assert caught.value.key == "priority"
    with pytest.raises(OrderError) as caught:
        scripted_order(
            order_id="S1",
            hospital_id="H0001",
            created_s=0.0,
            priority="routine",
            mix=OrderMix(),
            volume_l=0.0,
        )
    assert caught.value.key == "volume_l"
