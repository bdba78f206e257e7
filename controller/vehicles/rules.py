"""GSP rules a vehicle must satisfy before it is registered (pure: no I/O, no clock).

The numbers come from the GSP 2016 appendices on cold-chain transport and automatic temperature
monitoring; several were found only in secondary copies, so every one of them is data here
(`TEMPERATURE_CLASSES`, `ProbeRules`) and never a constant inside the logic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from controller.vehicles.models import CompartmentSpec, VehicleSpec

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class TemperatureClass:
    """A storage/transport temperature class (a label claim); None means no limit on that side."""

    name: str
    label_zh: str
    low_c: float | None
    high_c: float | None


TEMPERATURE_CLASSES: dict[str, TemperatureClass] = {
    tc.name: tc
    for tc in (
        TemperatureClass("refrigerated", "冷藏", 2.0, 8.0),
        TemperatureClass("frozen", "冷冻", -25.0, -10.0),
        TemperatureClass("cold", "冷处", 2.0, 10.0),
        TemperatureClass("cool", "阴凉", None, 20.0),
        TemperatureClass("room", "常温", 10.0, 30.0),
    )
}


@dataclass(frozen=True, slots=True)
class AccuracyBand:
    """Probes measuring within [low_c, high_c] must be accurate to ±max_error_c."""

    low_c: float
    high_c: float
    max_error_c: float


@dataclass(frozen=True, slots=True)
class ProbeRules:
    """The GSP probe rules as parameters (defaults: GSP 2016 appendix, marked "check")."""

    base_probes: int = 2
    base_volume_m3: float = 20.0
    extra_volume_m3: float = 20.0
    accuracy_bands: tuple[AccuracyBand, ...] = field(
        default=(AccuracyBand(0.0, 40.0, 0.5), AccuracyBand(-25.0, 0.0, 1.0))
    )

    def __post_init__(self) -> None:
        if self.base_probes < 1:
            raise ValueError("base_probes must be at least 1")
        if not self.base_volume_m3 >= 0 or not self.extra_volume_m3 > 0:
            raise ValueError("base_volume_m3 must be >= 0 and extra_volume_m3 > 0")


@dataclass(frozen=True, slots=True)
class Finding:
    """One result of a rule check; `error` blocks registration, `warning` is reported."""

    severity: Severity
    field: str
    message: str


def required_probes(volume_m3: float, *, rules: ProbeRules) -> int:
    """Probes a compartment needs: the base count plus one per extra volume step or part of it."""
    beyond = max(0.0, volume_m3 - rules.base_volume_m3)
    return rules.base_probes + math.ceil(beyond / rules.extra_volume_m3)


def required_accuracy_c(temperature_class: TemperatureClass, *, rules: ProbeRules) -> float | None:
    """The strictest accuracy of the bands the class's range overlaps, or None when none does."""
    low = -math.inf if temperature_class.low_c is None else temperature_class.low_c
    high = math.inf if temperature_class.high_c is None else temperature_class.high_c
    # Strict overlap: a class that only touches a band's edge (e.g. at 0 °C) is not inside it.
    limits = [b.max_error_c for b in rules.accuracy_bands if low < b.high_c and high > b.low_c]
    return min(limits) if limits else None


def _compartment_findings(
    compartment: CompartmentSpec, *, rules: ProbeRules, today: date
) -> list[Finding]:
    base = f"compartments.{compartment.compartment_id}"
    findings: list[Finding] = []
    tclass = TEMPERATURE_CLASSES.get(compartment.temperature_class)
    if tclass is None:
        known = ", ".join(TEMPERATURE_CLASSES)
        findings.append(
            Finding(
                "error",
                f"{base}.temperature_class",
                f"unknown temperature class {compartment.temperature_class!r} (known: {known})",
            )
        )
    needed = required_probes(compartment.volume_m3, rules=rules)
    have = len(compartment.probes)
    if have < needed:
        findings.append(
            Finding(
                "error",
                f"{base}.probes",
                f"{have} probe(s) for {compartment.volume_m3:g} m3; GSP requires at least {needed}",
            )
        )
    accuracy = None if tclass is None else required_accuracy_c(tclass, rules=rules)
    for probe in compartment.probes:
        probe_field = f"{base}.probes.{probe.probe_id}"
        if accuracy is not None and probe.accuracy_c > accuracy:
            findings.append(
                Finding(
                    "error",
                    f"{probe_field}.accuracy_c",
                    f"accuracy ±{probe.accuracy_c:g} °C is coarser than the ±{accuracy:g} °C "
                    f"required for class {compartment.temperature_class!r}",
                )
            )
        if probe.calibration_due < today:
            findings.append(
                Finding(
                    "warning",
                    f"{probe_field}.calibration_due",
                    f"calibration overdue since {probe.calibration_due.isoformat()}",
                )
            )
    return findings


def check_vehicle(spec: VehicleSpec, *, rules: ProbeRules, today: date) -> list[Finding]:
    """Check a vehicle against the GSP probe rules; errors block registration, warnings do not."""
    findings: list[Finding] = []
    if not spec.compartments:
        findings.append(
            Finding("error", "compartments", "a vehicle needs at least one compartment")
        )
    for compartment in spec.compartments:
        findings.extend(_compartment_findings(compartment, rules=rules, today=today))
    return findings


def blocking(findings: list[Finding]) -> list[Finding]:
    """The findings that block registration."""
    return [f for f in findings if f.severity == "error"]
