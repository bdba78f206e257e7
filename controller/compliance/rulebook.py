"""The GSP rulebook: one versioned, validated file holding every number of the compliance core.

`load_rulebook()` reads the shipped `rulebook.yaml` (or another file) and `rulebook_from_dict()`
validates an already parsed mapping; both raise `RulebookError(key, message)` where `key` is the
dotted path of the first invalid value (``classes.frozen.low_c``, ``contacts.default``, or the
empty string for the document as a whole). Loading is the only I/O in the compliance core.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from controller.compliance.errors import RulebookError, UnknownTemperatureClassError
from controller.compliance.rulebook_sections import (
    ALARM_KINDS,
    CLASS_NAME_PATTERN,
    SECTION_CONFIG,
    AccuracyBand,
    AlarmKind,
    AlarmRules,
    ClassEntry,
    Contact,
    ContactChannels,
    EscalationLevel,
    ExcursionDefaults,
    LinkRules,
    LoadingRules,
    MktRules,
    PredictionRules,
    ProbeHealthRules,
    ProbeRules,
    RecordingRules,
    TemperatureClass,
    Text,
)

__all__ = [
    "ALARM_KINDS",
    "SHIPPED_RULEBOOK",
    "AccuracyBand",
    "AlarmKind",
    "AlarmRules",
    "ClassEntry",
    "Contact",
    "ContactChannels",
    "EscalationLevel",
    "ExcursionDefaults",
    "LinkRules",
    "LoadingRules",
    "MktRules",
    "PredictionRules",
    "ProbeHealthRules",
    "ProbeRules",
    "RecordingRules",
    "Rulebook",
    "TemperatureClass",
    "load_rulebook",
    "rulebook_from_dict",
]

SHIPPED_RULEBOOK = Path(__file__).with_name("rulebook.yaml")


@dataclass(frozen=True, slots=True, kw_only=True)
class Rulebook:
    """Every number of the compliance core; build it with `load_rulebook`/`rulebook_from_dict`."""

    __pydantic_config__ = SECTION_CONFIG
    version: Text
    source: str = ""
    excursion_defaults: ExcursionDefaults
    classes: Mapping[str, ClassEntry]
    recording: RecordingRules
    probes: ProbeRules
    probe_health: ProbeHealthRules
    mkt: MktRules
    loading: LoadingRules
    link: LinkRules
    prediction: PredictionRules
    alarms: AlarmRules
    contacts: Mapping[str, tuple[Contact, ...]]

    def temperature_class(self, name: str) -> TemperatureClass:
        """The class called `name` (or one of its aliases), with its timing resolved."""
        entry_name = name if name in self.classes else self._alias_target(name)
        entry = self.classes[entry_name]
        defaults = self.excursion_defaults
        return TemperatureClass(
            name=entry_name,
            label_zh=entry.label_zh,
            low_c=entry.low_c,
            high_c=entry.high_c,
            alarm_delay_s=(
                defaults.alarm_delay_s if entry.alarm_delay_s is None else entry.alarm_delay_s
            ),
            hysteresis_c=(
                defaults.hysteresis_c if entry.hysteresis_c is None else entry.hysteresis_c
            ),
        )

    def _alias_target(self, name: str) -> str:
        for entry_name, entry in self.classes.items():
            if name in entry.aliases:
                return entry_name
        raise UnknownTemperatureClassError(name, tuple(self.classes))

    def required_probes(self, volume_m3: float) -> int:
        """Probes a compartment needs: the base count plus one per extra volume step or part."""
        rules = self.probes
        beyond_m3 = max(0.0, volume_m3 - rules.base_volume_m3)
        return rules.base_count + math.ceil(beyond_m3 / rules.extra_volume_step_m3)

    def accuracy_required_c(self, value_c: float) -> float:
        """Accuracy (±°C) required of a probe measuring `value_c`; the nearest band outside all."""
        bands = self.probes.accuracy_bands
        inside = [b.accuracy_c for b in bands if b.low_c <= value_c <= b.high_c]
        if inside:
            return min(inside)
        nearest = min(bands, key=lambda b: min(abs(value_c - b.low_c), abs(value_c - b.high_c)))
        return nearest.accuracy_c

    def contacts_for(
        self, *, site: str, alarm: AlarmKind, level: int | None = None
    ) -> tuple[Contact, ...]:
        """Contacts of a site (vehicle id; `default` when it has no list) for an alarm kind.

        With `level`, only the contacts whose role is notified at that escalation level.
        """
        contacts = self.contacts.get(site, self.contacts["default"])
        roles: tuple[str, ...] | None = None
        if level is not None:
            roles = self.alarms.levels[level - 1].roles
        return tuple(
            c for c in contacts if alarm in c.alarms and (roles is None or c.role in roles)
        )


_ADAPTER: TypeAdapter[Rulebook] = TypeAdapter(Rulebook)


def load_rulebook(path: Path | None = None) -> Rulebook:
    """Read and validate a rulebook file (None: the shipped `rulebook.yaml`)."""
    source = SHIPPED_RULEBOOK if path is None else path
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulebookError("", f"cannot read {source}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulebookError("", f"bad YAML in {source}: {exc}") from exc
    return rulebook_from_dict(data)


def rulebook_from_dict(data: Any) -> Rulebook:
    """Validate a parsed rulebook document (a mapping, as `yaml.safe_load` returns it)."""
    if not isinstance(data, Mapping):
        raise RulebookError("", f"a rulebook is a mapping, got {type(data).__name__}")
    try:
        rulebook = _ADAPTER.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        message = first["msg"]
        if first["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
            message = "unknown key"
        elif first["type"] == "missing":
            message = "missing key"
        more = exc.error_count() - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise RulebookError(key, f"{message}{suffix}") from exc
    _check_semantics(rulebook)
    return rulebook


def _check_semantics(rulebook: Rulebook) -> None:
    _check_classes(rulebook)
    _check_probes(rulebook)
    _check_alarms(rulebook)
    health = rulebook.probe_health
    if health.impossible_low_c >= health.impossible_high_c:
        raise RulebookError(
            "probe_health.impossible_low_c", "must be below probe_health.impossible_high_c"
        )
    prediction = rulebook.prediction
    if prediction.min_span_s > prediction.window_s:
        raise RulebookError("prediction.min_span_s", "must not exceed prediction.window_s")
    if prediction.min_lead_s >= prediction.warn_before_exit_s:
        raise RulebookError("prediction.min_lead_s", "must be below prediction.warn_before_exit_s")


def _check_classes(rulebook: Rulebook) -> None:
    if not rulebook.classes:
        raise RulebookError("classes", "at least one temperature class is required")
    seen: dict[str, str] = {}
    for name, entry in rulebook.classes.items():
        key = f"classes.{name}"
        if not CLASS_NAME_PATTERN.match(name):
            raise RulebookError(key, "class names are lower_snake_case, up to 32 characters")
        if entry.low_c is None and entry.high_c is None:
            raise RulebookError(key, "a class needs low_c, high_c or both")
        if entry.low_c is not None and entry.high_c is not None:
            if entry.low_c >= entry.high_c:
                raise RulebookError(f"{key}.low_c", f"must be below high_c ({entry.high_c:g})")
            hysteresis_c = entry.hysteresis_c
            if hysteresis_c is None:
                hysteresis_c = rulebook.excursion_defaults.hysteresis_c
            if 2.0 * hysteresis_c >= entry.high_c - entry.low_c:
                raise RulebookError(
                    f"{key}.hysteresis_c", "must be less than half the band's width"
                )
        for alias in entry.aliases:
            if alias in rulebook.classes or alias in seen:
                raise RulebookError(f"{key}.aliases", f"{alias!r} already names another class")
            seen[alias] = name


def _check_probes(rulebook: Rulebook) -> None:
    bands = rulebook.probes.accuracy_bands
    if not bands:
        raise RulebookError("probes.accuracy_bands", "at least one accuracy band is required")
    for i, band in enumerate(bands):
        if band.low_c >= band.high_c:
            raise RulebookError(f"probes.accuracy_bands.{i}.low_c", "must be below high_c")


def _check_alarms(rulebook: Rulebook) -> None:
    levels = rulebook.alarms.levels
    if not levels:
        raise RulebookError("alarms.levels", "at least one escalation level is required")
    for i, level in enumerate(levels[:-1]):
        if level.escalate_after_s is None:
            raise RulebookError(
                f"alarms.levels.{i}.escalate_after_s", "required on every level but the last"
            )
    if "default" not in rulebook.contacts:
        raise RulebookError("contacts.default", "missing key")
    first_roles = set(levels[0].roles)
    known_roles = {c.role for contacts in rulebook.contacts.values() for c in contacts}
    need = rulebook.alarms.min_contacts
    for site, contacts in rulebook.contacts.items():
        for j, contact in enumerate(contacts):
            if not (contact.channels.sms or contact.channels.voice or contact.channels.email):
                raise RulebookError(f"contacts.{site}.{j}.channels", "set at least one channel")
        for alarm in ALARM_KINDS:
            reached = {
                c.name
                for c in contacts
                if alarm in c.alarms and c.role in first_roles and c.channels.sms
            }
            if len(reached) < need:
                raise RulebookError(
                    f"contacts.{site}",
                    f"{alarm} alarms reach {len(reached)} people by SMS at escalation level 1; "
                    f"at least {need} are required",
                )
    for i, level in enumerate(levels):
        for role in level.roles:
            if role not in known_roles:
                raise RulebookError(f"alarms.levels.{i}.roles", f"no contact has role {role!r}")
