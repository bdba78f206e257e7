"""Scenario files (YAML) that script a simulated day: fleet size, speed, and which failures hit
which vehicle when. Loading is pure and validated; `apply_due` turns due events into driver
faults. Times are simulated seconds from the start of the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from edge_agent.sensors.thermal import Faults, ProbeDrift, ProbeStuck
from simulators.city import DEPOT_SITES
from simulators.orders import PRIORITIES, OrderError, OrderMix, Outbreak, Priority

FailureKind = Literal[
    "compressor_failure",
    "power_loss",
    "door_stuck_open",
    "probe_drift",
    "probe_stuck",
    "link_outage",
    "gateway_reboot",
]
_KINDS: tuple[str, ...] = FailureKind.__args__  # type: ignore[attr-defined]


DEFAULT_REBOOT_S = 120.0  # a gateway reboot without a duration: about two minutes down


class ScenarioError(ValueError):
    """A scenario file is invalid; `key` names where."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"scenario {key}: {message}")
        self.key = key
        self.message = message


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """One scripted failure: from `at_s` for `duration_s` (None: until the end)."""

    at_s: float
    vehicles: tuple[int, ...]  # 1-based vehicle numbers in the fleet
    kind: FailureKind
    duration_s: float | None = None
    compartment: str = "c1"
    probe: str = "p1"
    rate_c_per_h: float = 2.0
    value_c: float | None = None

    def active(self, elapsed_s: float) -> bool:
        """Whether the failure is in force `elapsed_s` simulated seconds into the run."""
        end = None if self.duration_s is None else self.at_s + self.duration_s
        return self.at_s <= elapsed_s and (end is None or elapsed_s < end)


@dataclass(frozen=True, slots=True, kw_only=True)
class CitySpec:
    """Which generated city the day takes place in."""

    hospitals: int = 2800
    depots: int = 5
    seed: int = 7


@dataclass(frozen=True, slots=True, kw_only=True)
class ScriptedOrder:
    """A hand-placed order, e.g. the emergency run a failure is meant to hit."""

    at_s: float
    hospital_id: str
    priority: Priority
    vehicle: int | None = None  # 1-based fleet number that must take it
    green_channel: bool = False
    volume_l: float = 20.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """A scripted simulated day."""

    name: str
    description: str
    vehicles: int
    speed: float
    duration_s: float
    start_local_h: float = 7.0  # local time of day the simulated day starts
    city: CitySpec = field(default_factory=CitySpec)
    orders: OrderMix = field(default_factory=OrderMix)
    scripted_orders: tuple[ScriptedOrder, ...] = ()
    outbreak: Outbreak | None = None  # at_s relative to the start of the day
    failures: tuple[Failure, ...] = field(default_factory=tuple)


def _number(
    raw: dict[str, Any],
    key: str,
    path: str,
    *,
    default: float | None = None,
    positive: bool = False,
) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(f"{path}.{key}", "must be a number")
    if positive and value <= 0:
        raise ScenarioError(f"{path}.{key}", "must be greater than 0")
    if value < 0:
        raise ScenarioError(f"{path}.{key}", "must not be negative")
    return float(value)


def _vehicles(raw: object, path: str, fleet: int) -> tuple[int, ...]:
    """`vehicles`: a number, a list of numbers, 'all', or a fraction like '20%'."""
    if raw == "all":
        return tuple(range(1, fleet + 1))
    if isinstance(raw, str) and raw.endswith("%"):
        try:
            share = float(raw[:-1]) / 100
        except ValueError as exc:
            raise ScenarioError(path, f"bad percentage {raw!r}") from exc
        if not 0 < share <= 1:
            raise ScenarioError(path, "percentage must be in (0, 100]")
        count = max(1, round(fleet * share))
        return tuple(range(1, count + 1))
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= fleet:
            raise ScenarioError(path, f"vehicle {item!r} is not a number from 1 to {fleet}")
        out.append(item)
    return tuple(out)


def parse_scenario(raw: object, *, name: str) -> Scenario:
    """Validate a scenario document; raise ScenarioError naming the offending key."""
    if not isinstance(raw, dict):
        raise ScenarioError("(document)", "must be a mapping")
    allowed = {
        "description",
        "vehicles",
        "speed",
        "duration_s",
        "start_local",
        "city",
        "orders",
        "outbreak",
        "failures",
    }
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ScenarioError(unknown[0], "unknown key")
    vehicles = raw.get("vehicles", 20)
    if isinstance(vehicles, bool) or not isinstance(vehicles, int) or not 1 <= vehicles <= 10_000:
        raise ScenarioError("vehicles", "must be an integer from 1 to 10000")
    failures = []
    raw_failures = raw.get("failures", [])
    if not isinstance(raw_failures, list):
        raise ScenarioError("failures", "must be a list")
    for i, item in enumerate(raw_failures):
        path = f"failures[{i}]"
        if not isinstance(item, dict):
            raise ScenarioError(path, "must be a mapping")
        keys = {
            "at_s",
            "vehicles",
            "kind",
            "duration_s",
            "compartment",
            "probe",
            "rate_c_per_h",
            "value_c",
        }
        extra = sorted(set(item) - keys)
        if extra:
            raise ScenarioError(f"{path}.{extra[0]}", "unknown key")
        kind = item.get("kind")
        if kind not in _KINDS:
            raise ScenarioError(f"{path}.kind", f"must be one of {', '.join(_KINDS)}")
        duration = item.get("duration_s")
        failures.append(
            Failure(
                at_s=_number(item, "at_s", path),
                vehicles=_vehicles(item.get("vehicles", 1), f"{path}.vehicles", vehicles),
                kind=kind,
                duration_s=None
                if duration is None
                else _number(item, "duration_s", path, positive=True),
                compartment=str(item.get("compartment", "c1")),
                probe=str(item.get("probe", "p1")),
                rate_c_per_h=float(item.get("rate_c_per_h", 2.0)),
                value_c=None if item.get("value_c") is None else float(item["value_c"]),
            )
        )
    mix, scripted = _orders(raw.get("orders", {}), vehicles)
    return Scenario(
        name=name,
        description=str(raw.get("description", "")),
        vehicles=vehicles,
        speed=_number(raw, "speed", "(document)", default=60.0, positive=True),
        duration_s=_number(raw, "duration_s", "(document)", default=3600.0, positive=True),
        start_local_h=_start_local(raw.get("start_local", "07:00")),
        city=_city(raw.get("city", {})),
        orders=mix,
        scripted_orders=scripted,
        outbreak=_outbreak(raw.get("outbreak")),
        failures=tuple(failures),
    )


def _mapping(raw: object, path: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ScenarioError(path, "must be a mapping")
    extra = sorted(set(raw) - allowed)
    if extra:
        raise ScenarioError(f"{path}.{extra[0]}", "unknown key")
    return raw


def _start_local(raw: object) -> float:
    """`start_local`: "HH:MM" local time (the city's time zone)."""
    text = str(raw)
    hours, _, minutes = text.partition(":")
    try:
        h, m = int(hours), int(minutes or 0)
    except ValueError:
        raise ScenarioError("start_local", f"must be HH:MM, got {text!r}") from None
    if not (0 <= h < 24 and 0 <= m < 60):
        raise ScenarioError("start_local", f"must be a time of day HH:MM, got {text!r}")
    return h + m / 60


def _integer(raw: dict[str, Any], key: str, path: str, default: int, low: int, high: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ScenarioError(f"{path}.{key}", f"must be an integer from {low} to {high}")
    return value


def _city(raw: object) -> CitySpec:
    city = _mapping(raw, "city", {"hospitals", "depots", "seed"})
    return CitySpec(
        hospitals=_integer(city, "hospitals", "city", 2800, 1, 20_000),
        depots=_integer(city, "depots", "city", 5, 1, len(DEPOT_SITES)),
        seed=_integer(city, "seed", "city", 7, 0, 2**31 - 1),
    )


def _orders(raw: object, fleet: int) -> tuple[OrderMix, tuple[ScriptedOrder, ...]]:
    orders = _mapping(raw, "orders", {"per_day", "priorities", "classes", "scripted"})
    try:
        mix = OrderMix(
            orders_per_day=_number(orders, "per_day", "orders", default=5600.0),
            priority_shares=orders.get("priorities", OrderMix().priority_shares),
            class_shares=orders.get("classes", OrderMix().class_shares),
        )
    except OrderError as exc:
        key = {"orders_per_day": "per_day"}.get(exc.key, exc.key)
        key = key.replace("priority_shares", "priorities").replace("class_shares", "classes")
        raise ScenarioError(f"orders.{key}", exc.message) from exc
    raw_scripted = orders.get("scripted", [])
    if not isinstance(raw_scripted, list):
        raise ScenarioError("orders.scripted", "must be a list")
    scripted = []
    for i, item in enumerate(raw_scripted):
        path = f"orders.scripted[{i}]"
        entry = _mapping(
            item, path, {"at_s", "hospital", "priority", "vehicle", "green_channel", "volume_l"}
        )
        hospital = entry.get("hospital")
        if not isinstance(hospital, str) or not hospital:
            raise ScenarioError(f"{path}.hospital", "must be a hospital id such as H0042")
        priority = entry.get("priority", "emergency")
        if priority not in PRIORITIES:
            raise ScenarioError(f"{path}.priority", f"must be one of {', '.join(PRIORITIES)}")
        vehicle = entry.get("vehicle")
        if vehicle is not None:
            vehicle = _vehicles(vehicle, f"{path}.vehicle", fleet)
            if len(vehicle) != 1:
                raise ScenarioError(f"{path}.vehicle", "must name one vehicle")
        green = entry.get("green_channel", False)
        if not isinstance(green, bool):
            raise ScenarioError(f"{path}.green_channel", "must be true or false")
        scripted.append(
            ScriptedOrder(
                at_s=_number(entry, "at_s", path),
                hospital_id=hospital,
                priority=priority,
                vehicle=None if vehicle is None else vehicle[0],
                green_channel=green,
                volume_l=_number(entry, "volume_l", path, default=20.0, positive=True),
            )
        )
    return mix, tuple(scripted)


def _outbreak(raw: object) -> Outbreak | None:
    if raw is None:
        return None
    keys = {
        "at_s",
        "duration_s",
        "lat",
        "lon",
        "radius_km",
        "demand_multiplier",
        "green_channel_share",
    }
    entry = _mapping(raw, "outbreak", keys)
    for key in ("at_s", "duration_s", "lat", "lon", "radius_km"):
        if key not in entry:
            raise ScenarioError(f"outbreak.{key}", "is required")
    values = {key: entry[key] for key in keys if key in entry}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ScenarioError(f"outbreak.{key}", "must be a number")
    try:
        return Outbreak(**{key: float(value) for key, value in values.items()})
    except OrderError as exc:
        raise ScenarioError(f"outbreak.{exc.key}", exc.message) from exc


def named_scenarios() -> list[str]:
    """Names of the scenarios shipped with the project."""
    folder = resources.files("simulators") / "scenarios"
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def load_scenario(name_or_path: str) -> Scenario:
    """Load a shipped scenario by name, or a YAML file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        text, name = path.read_text(encoding="utf-8"), path.stem
    else:
        entry = resources.files("simulators") / "scenarios" / f"{name_or_path}.yaml"
        if not entry.is_file():
            raise ScenarioError(
                "name", f"no scenario {name_or_path!r}; shipped: {', '.join(named_scenarios())}"
            )
        text, name = entry.read_text(encoding="utf-8"), name_or_path
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError("(document)", f"not valid YAML: {exc}") from exc
    return parse_scenario(raw, name=name)


def faults_at(
    scenario: Scenario, *, vehicle: int, compartment: str, elapsed_s: float, start_s: float
) -> Faults:
    """The faults in force for one compartment of one vehicle at a point of the run."""
    faults = Faults()
    for failure in scenario.failures:
        if (
            vehicle not in failure.vehicles
            or failure.compartment != compartment
            or not failure.active(elapsed_s)
        ):
            continue
        began_s = start_s + failure.at_s
        if failure.kind in ("link_outage", "gateway_reboot"):
            continue  # not compartment faults: see `link_down` and `reboots_due`
        if failure.kind == "compressor_failure":
            faults = replace(faults, compressor_failed=True)
        elif failure.kind == "power_loss":
            faults = replace(faults, power_lost=True)
        elif failure.kind == "door_stuck_open":
            faults = replace(faults, door_stuck_open=True)
        elif failure.kind == "probe_drift":
            drift = ProbeDrift(
                probe_id=failure.probe, rate_c_per_h=failure.rate_c_per_h, start_s=began_s
            )
            faults = replace(faults, probe_drifts=(*faults.probe_drifts, drift))
        else:
            stuck = ProbeStuck(probe_id=failure.probe, since_s=began_s, value_c=failure.value_c)
            faults = replace(faults, probes_stuck=(*faults.probes_stuck, stuck))
    return faults


def link_down(scenario: Scenario, *, vehicle: int, elapsed_s: float) -> bool:
    """Whether a vehicle's network link is cut at this point of the run."""
    return any(
        f.kind == "link_outage" and vehicle in f.vehicles and f.active(elapsed_s)
        for f in scenario.failures
    )


def reboots_due(scenario: Scenario, *, vehicle: int, elapsed_s: float) -> list[tuple[int, float]]:
    """Gateway reboots in force for a vehicle: (failure index, simulated seconds left down)."""
    return [
        (i, f.at_s + (f.duration_s or DEFAULT_REBOOT_S) - elapsed_s)
        for i, f in enumerate(scenario.failures)
        if f.kind == "gateway_reboot"
        and vehicle in f.vehicles
        and f.at_s <= elapsed_s < f.at_s + (f.duration_s or DEFAULT_REBOOT_S)
    ]
