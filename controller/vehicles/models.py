"""Vehicle registry data: immutable specs, and the parser of vehicle files (TOML tables).

A vehicle file looks like::

    vehicle_id = "TRUCK-01"
    display_name = "Refrigerated truck 1"

    [[compartments]]
    compartment_id = "front"
    temperature_class = "refrigerated"   # refrigerated | frozen | cold | cool | room
    volume_m3 = 18.5

    [[compartments.probes]]
    probe_id = "p1"
    position = "front, top"
    accuracy_c = 0.3
    calibration_due = 2026-06-30

Every parse error is a `RegistrationError` whose `field` is the path of the offending key, e.g.
``compartments[0].probes[1].accuracy_c``.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from coldchain_protocol.errors import ProtocolError
from coldchain_protocol.topics import check_vehicle_id
from controller.errors import RegistrationError
from controller.vehicles.rules import TEMPERATURE_CLASSES

# Compartment and probe ids become parts of channel names (`temp:<compartment>:<probe>`).
PART_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
MAX_DISPLAY_NAME = 200


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """A temperature probe: its position in the compartment, accuracy and calibration due date."""

    probe_id: str
    position: str
    accuracy_c: float
    calibration_due: date


@dataclass(frozen=True, slots=True)
class CompartmentSpec:
    """An independently cooled compartment of a vehicle."""

    compartment_id: str
    temperature_class: str
    volume_m3: float
    probes: tuple[ProbeSpec, ...]


@dataclass(frozen=True, slots=True)
class VehicleSpec:
    """A vehicle as registered: its id (also its MQTT user name) and compartments."""

    vehicle_id: str
    display_name: str
    compartments: tuple[CompartmentSpec, ...]


@dataclass(frozen=True, slots=True)
class VehicleRecord:
    """A registered vehicle as stored: the spec, its public key and when it was registered."""

    spec: VehicleSpec
    public_key_pem: str
    registered_at: datetime


_VEHICLE_KEYS = ("vehicle_id", "display_name", "compartments")
_COMPARTMENT_KEYS = ("compartment_id", "temperature_class", "volume_m3", "probes")
_PROBE_KEYS = ("probe_id", "position", "accuracy_c", "calibration_due")


def _check_keys(table: Mapping[str, Any], allowed: tuple[str, ...], path: str) -> None:
    for key in table:
        if key not in allowed:
            raise RegistrationError(
                f"{path}{key}", f"unknown key (expected one of: {', '.join(allowed)})"
            )
    for key in allowed:
        if key not in table:
            raise RegistrationError(f"{path}{key}", "missing")


def _text(value: object, field: str, *, max_len: int = MAX_DISPLAY_NAME) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RegistrationError(field, "must be a non-empty string")
    text = value.strip()
    if len(text) > max_len:
        raise RegistrationError(field, f"must be at most {max_len} characters")
    return text


def _part_id(value: object, field: str) -> str:
    if not isinstance(value, str) or not PART_ID_PATTERN.match(value):
        raise RegistrationError(
            field, f"{value!r} is not a valid id: use 1-32 letters, digits, '_' or '-'"
        )
    return value


def _positive(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RegistrationError(field, "must be a number")
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise RegistrationError(field, "must be a finite number greater than 0")
    return number


def _date(value: object, field: str) -> date:
    if isinstance(value, datetime):
        raise RegistrationError(field, "must be a date (YYYY-MM-DD), not a date-time")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise RegistrationError(field, f"{value!r} is not a date (YYYY-MM-DD)")


def _table(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise RegistrationError(field, "must be a table")
    return value


def _list(value: object, field: str) -> list[object]:
    if not isinstance(value, list):
        raise RegistrationError(field, "must be a list (an array of tables)")
    return value


def _parse_probe(raw: object, path: str) -> ProbeSpec:
    table = _table(raw, path)
    _check_keys(table, _PROBE_KEYS, f"{path}.")
    return ProbeSpec(
        probe_id=_part_id(table["probe_id"], f"{path}.probe_id"),
        position=_text(table["position"], f"{path}.position"),
        accuracy_c=_positive(table["accuracy_c"], f"{path}.accuracy_c"),
        calibration_due=_date(table["calibration_due"], f"{path}.calibration_due"),
    )


def _parse_compartment(raw: object, path: str) -> CompartmentSpec:
    table = _table(raw, path)
    _check_keys(table, _COMPARTMENT_KEYS, f"{path}.")
    compartment_id = _part_id(table["compartment_id"], f"{path}.compartment_id")
    tclass = table["temperature_class"]
    if not isinstance(tclass, str) or tclass not in TEMPERATURE_CLASSES:
        raise RegistrationError(
            f"{path}.temperature_class",
            f"unknown temperature class {tclass!r} (known: {', '.join(TEMPERATURE_CLASSES)})",
        )
    volume_m3 = _positive(table["volume_m3"], f"{path}.volume_m3")
    probes: list[ProbeSpec] = []
    for i, raw_probe in enumerate(_list(table["probes"], f"{path}.probes")):
        probe = _parse_probe(raw_probe, f"{path}.probes[{i}]")
        if any(p.probe_id == probe.probe_id for p in probes):
            raise RegistrationError(
                f"{path}.probes[{i}].probe_id", f"duplicate probe id {probe.probe_id!r}"
            )
        probes.append(probe)
    return CompartmentSpec(
        compartment_id=compartment_id,
        temperature_class=tclass,
        volume_m3=volume_m3,
        probes=tuple(probes),
    )


def parse_vehicle(data: Mapping[str, Any]) -> VehicleSpec:
    """Build a VehicleSpec from a vehicle table; raise RegistrationError naming the bad key."""
    _check_keys(data, _VEHICLE_KEYS, "")
    raw_id = data["vehicle_id"]
    if not isinstance(raw_id, str):
        raise RegistrationError("vehicle_id", "must be a string")
    try:
        vehicle_id = check_vehicle_id(raw_id)
    except ProtocolError as exc:
        raise RegistrationError("vehicle_id", exc.reason) from exc
    raw_compartments = _list(data["compartments"], "compartments")
    if not raw_compartments:
        raise RegistrationError("compartments", "a vehicle needs at least one compartment")
    compartments: list[CompartmentSpec] = []
    for i, raw in enumerate(raw_compartments):
        compartment = _parse_compartment(raw, f"compartments[{i}]")
        if any(c.compartment_id == compartment.compartment_id for c in compartments):
            raise RegistrationError(
                f"compartments[{i}].compartment_id",
                f"duplicate compartment id {compartment.compartment_id!r}",
            )
        compartments.append(compartment)
    return VehicleSpec(
        vehicle_id=vehicle_id,
        display_name=_text(data["display_name"], "display_name"),
        compartments=tuple(compartments),
    )


def parse_vehicle_toml(text: str) -> VehicleSpec:
    """Parse the text of a vehicle TOML file; raise RegistrationError naming the bad key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RegistrationError("file", f"not valid TOML: {exc}") from exc
    return parse_vehicle(data)
