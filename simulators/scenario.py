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

FailureKind = Literal[
    "compressor_failure",
    "power_loss",
    "door_stuck_open",
    "probe_drift",
    "probe_stuck",
    "link_outage",
]
_KINDS: tuple[str, ...] = FailureKind.__args__  # type: ignore[attr-defined]


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
class Scenario:
    """A scripted simulated day."""

    name: str
    description: str
    vehicles: int
    speed: float
    duration_s: float
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
    allowed = {"description", "vehicles", "speed", "duration_s", "failures"}
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
    return Scenario(
        name=name,
        description=str(raw.get("description", "")),
        vehicles=vehicles,
        speed=_number(raw, "speed", "(document)", default=60.0, positive=True),
        duration_s=_number(raw, "duration_s", "(document)", default=3600.0, positive=True),
        failures=tuple(failures),
    )


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
        if failure.kind == "link_outage":
            continue  # not a compartment fault: see `link_down`
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
