"""GSP vehicle rules (probe count, accuracy, calibration) and the vehicle file parser."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from controller.errors import RegistrationError
from controller.vehicles.models import (
    CompartmentSpec,
    ProbeSpec,
    VehicleSpec,
    parse_vehicle,
    parse_vehicle_toml,
)
from controller.vehicles.rules import (
    TEMPERATURE_CLASSES,
    AccuracyBand,
    ProbeRules,
    check_vehicle,
    required_accuracy_c,
    required_probes,
)

TODAY = date(2026, 3, 1)
RULES = ProbeRules()

VEHICLE_TOML = """
vehicle_id = "TRUCK-01"
display_name = "Refrigerated truck 1"

[[compartments]]
compartment_id = "front"
temperature_class = "refrigerated"
volume_m3 = 18.5

[[compartments.probes]]
probe_id = "p1"
position = "front, top"
accuracy_c = 0.3
calibration_due = 2026-06-30

[[compartments.probes]]
probe_id = "p2"
position = "rear, bottom"
accuracy_c = 0.5
calibration_due = "2026-07-31"

[[compartments]]
compartment_id = "freezer"
temperature_class = "frozen"
volume_m3 = 8
probes = [
  { probe_id = "f1", position = "left", accuracy_c = 1.0, calibration_due = 2026-06-30 },
  { probe_id = "f2", position = "right", accuracy_c = 0.8, calibration_due = 2026-06-30 },
]
"""


def probe(probe_id: str, *, accuracy_c: float = 0.3, due: date = date(2027, 1, 1)) -> ProbeSpec:
    return ProbeSpec(probe_id, "somewhere", accuracy_c, due)


def vehicle(*compartments: CompartmentSpec) -> VehicleSpec:
    return VehicleSpec("TRUCK-01", "Truck", compartments)


def compartment(
    volume_m3: float, n_probes: int, *, tclass: str = "refrigerated", accuracy_c: float = 0.3
) -> CompartmentSpec:
    probes = tuple(probe(f"p{i}", accuracy_c=accuracy_c) for i in range(n_probes))
    return CompartmentSpec("main", tclass, volume_m3, probes)


def valid_table() -> dict[str, Any]:
    return {
        "vehicle_id": "TRUCK-01",
        "display_name": "Truck",
        "compartments": [
            {
                "compartment_id": "main",
                "temperature_class": "refrigerated",
                "volume_m3": 10,
                "probes": [
                    {
                        "probe_id": "p1",
                        "position": "top",
                        "accuracy_c": 0.3,
                        "calibration_due": date(2027, 1, 1),
                    }
                ],
            }
        ],
    }


# --- probe count -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("volume_m3", "expected"),
    [(0.5, 2), (19.99, 2), (20, 2), (20.01, 3), (39.99, 3), (40, 3), (40.01, 4), (41, 4), (60, 4)],
)
def test_required_probes_base_plus_one_per_started_20_m3(volume_m3: float, expected: int) -> None:
    assert required_probes(volume_m3, rules=RULES) == expected


def test_required_probes_numbers_are_parameters() -> None:
    rules = ProbeRules(base_probes=3, base_volume_m3=10, extra_volume_m3=5)
    assert required_probes(10, rules=rules) == 3
    assert required_probes(10.1, rules=rules) == 4
    assert required_probes(21, rules=rules) == 6


@pytest.mark.parametrize("bad", [{"base_probes": 0}, {"extra_volume_m3": 0}])
def test_probe_rules_reject_nonsense(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ProbeRules(**bad)


@pytest.mark.parametrize(
    ("volume_m3", "n_probes", "blocked"),
    [(20, 2, False), (20.01, 2, True), (20.01, 3, False), (40, 3, False), (41, 3, True)],
)
def test_too_few_probes_blocks(volume_m3: float, n_probes: int, blocked: bool) -> None:
    findings = check_vehicle(vehicle(compartment(volume_m3, n_probes)), rules=RULES, today=TODAY)
    errors = [f for f in findings if f.severity == "error"]
    if blocked:
        assert [f.field for f in errors] == ["compartments.main.probes"]
        assert "requires at least" in errors[0].message
    else:
        assert errors == []


def test_vehicle_without_compartments_is_an_error() -> None:
    findings = check_vehicle(vehicle(), rules=RULES, today=TODAY)
    assert [(f.severity, f.field) for f in findings] == [("error", "compartments")]


# --- accuracy ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tclass", "expected"),
    [("refrigerated", 0.5), ("cold", 0.5), ("cool", 0.5), ("room", 0.5), ("frozen", 1.0)],
)
def test_required_accuracy_per_class(tclass: str, expected: float) -> None:
    assert required_accuracy_c(TEMPERATURE_CLASSES[tclass], rules=RULES) == expected


def test_required_accuracy_none_outside_every_band() -> None:
    rules = ProbeRules(accuracy_bands=(AccuracyBand(50.0, 60.0, 0.1),))
    assert required_accuracy_c(TEMPERATURE_CLASSES["refrigerated"], rules=rules) is None


@pytest.mark.parametrize(
    ("tclass", "accuracy_c", "ok"),
    [
        ("refrigerated", 0.5, True),
        ("refrigerated", 0.51, False),
        ("room", 0.6, False),
        ("frozen", 1.0, True),
        ("frozen", 0.8, True),
        ("frozen", 1.2, False),
    ],
)
def test_probe_accuracy(tclass: str, accuracy_c: float, ok: bool) -> None:
    spec = vehicle(compartment(10, 2, tclass=tclass, accuracy_c=accuracy_c))
    findings = check_vehicle(spec, rules=RULES, today=TODAY)
    if ok:
        assert findings == []
    else:
        assert {f.field for f in findings} == {
            "compartments.main.probes.p0.accuracy_c",
            "compartments.main.probes.p1.accuracy_c",
        }
        assert all(f.severity == "error" for f in findings)


def test_unknown_class_in_a_hand_built_spec_is_an_error() -> None:
    findings = check_vehicle(vehicle(compartment(10, 2, tclass="tepid")), rules=RULES, today=TODAY)
    assert [(f.severity, f.field) for f in findings] == [
        ("error", "compartments.main.temperature_class")
    ]


# --- calibration -------------------------------------------------------------------------


def test_overdue_calibration_is_a_warning_not_an_error() -> None:
    probes = (
        probe("late", due=date(2026, 2, 28)),
        probe("today", due=TODAY),
        probe("fine", due=date(2026, 12, 31)),
    )
    spec = vehicle(CompartmentSpec("main", "refrigerated", 10, probes))
    findings = check_vehicle(spec, rules=RULES, today=TODAY)
    assert [(f.severity, f.field) for f in findings] == [
        ("warning", "compartments.main.probes.late.calibration_due")
    ]
    assert "2026-02-28" in findings[0].message


# --- parser ------------------------------------------------------------------------------


def test_parse_vehicle_toml() -> None:
    spec = parse_vehicle_toml(VEHICLE_TOML)
    assert spec.vehicle_id == "TRUCK-01"
    assert [c.compartment_id for c in spec.compartments] == ["front", "freezer"]
    front, freezer = spec.compartments
    assert front.volume_m3 == 18.5
    assert front.probes[1] == ProbeSpec("p2", "rear, bottom", 0.5, date(2026, 7, 31))
    assert freezer.temperature_class == "frozen"
    assert freezer.volume_m3 == 8.0
    assert check_vehicle(spec, rules=RULES, today=TODAY) == []


def test_parse_strips_display_name() -> None:
    table = valid_table()
    table["display_name"] = "  Truck  "
    assert parse_vehicle(table).display_name == "Truck"


def _set(table: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    target: Any = table
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value


_DELETE = object()
_C0 = ("compartments", 0)
_P0 = ("compartments", 0, "probes", 0)


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("vehicle_id",), _DELETE, "vehicle_id"),
        (("vehicle_id",), "bad id!", "vehicle_id"),
        (("vehicle_id",), 7, "vehicle_id"),
        (("display_name",), " ", "display_name"),
        (("colour",), "red", "colour"),
        (("compartments",), [], "compartments"),
        (("compartments",), {"a": 1}, "compartments"),
        ((*_C0, "compartment_id"), "a:b", "compartments[0].compartment_id"),
        ((*_C0, "compartment_id"), "x" * 33, "compartments[0].compartment_id"),
        ((*_C0, "temperature_class"), "lukewarm", "compartments[0].temperature_class"),
        ((*_C0, "volume_m3"), -1, "compartments[0].volume_m3"),
        ((*_C0, "volume_m3"), True, "compartments[0].volume_m3"),
        ((*_C0, "volume_m3"), "12", "compartments[0].volume_m3"),
        ((*_C0, "volume_m3"), float("nan"), "compartments[0].volume_m3"),
        ((*_C0, "probes"), _DELETE, "compartments[0].probes"),
        ((*_C0, "doors"), 2, "compartments[0].doors"),
        ((*_P0, "probe_id"), "p 1", "compartments[0].probes[0].probe_id"),
        ((*_P0, "position"), "", "compartments[0].probes[0].position"),
        ((*_P0, "accuracy_c"), 0, "compartments[0].probes[0].accuracy_c"),
        ((*_P0, "accuracy_c"), _DELETE, "compartments[0].probes[0].accuracy_c"),
        ((*_P0, "calibration_due"), "soon", "compartments[0].probes[0].calibration_due"),
        ((*_P0, "calibration_due"), 20270101, "compartments[0].probes[0].calibration_due"),
    ],
)
def test_parse_errors_name_the_key(path: tuple[Any, ...], value: Any, field: str) -> None:
    table = valid_table()
    _set(table, path, value)
    with pytest.raises(RegistrationError) as caught:
        parse_vehicle(table)
    assert caught.value.field == field
    assert caught.value.message


def test_parse_rejects_date_time_for_calibration_due() -> None:
    text = VEHICLE_TOML.replace(
        "calibration_due = 2026-06-30\n", "calibration_due = 2026-06-30T10:00:00\n", 1
    )
    with pytest.raises(RegistrationError) as caught:
        parse_vehicle_toml(text)
    assert caught.value.field == "compartments[0].probes[0].calibration_due"


def test_parse_rejects_duplicate_ids() -> None:
    table = valid_table()
    table["compartments"][0]["probes"].append(dict(table["compartments"][0]["probes"][0]))
    with pytest.raises(RegistrationError) as caught:
        parse_vehicle(table)
    assert caught.value.field == "compartments[0].probes[1].probe_id"

    table = valid_table()
    table["compartments"].append(dict(table["compartments"][0]))
    with pytest.raises(RegistrationError) as caught:
        parse_vehicle(table)
    assert caught.value.field == "compartments[1].compartment_id"


def test_parse_invalid_toml_names_the_file() -> None:
    with pytest.raises(RegistrationError) as caught:
        parse_vehicle_toml("vehicle_id = ")
    assert caught.value.field == "file"
