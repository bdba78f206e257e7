"""The sections of the GSP rulebook: validated, immutable data (see `rulebook.py`).

Each dataclass carries pydantic's validation config, so `rulebook.py` validates a whole parsed
document into these types in one pass; semantic checks across fields live there too.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, Strict

AlarmKind = Literal["excursion", "power_loss", "link_loss"]
ALARM_KINDS: tuple[AlarmKind, ...] = ("excursion", "power_loss", "link_loss")

SECTION_CONFIG = ConfigDict(extra="forbid")
CLASS_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")

Celsius = Annotated[float, Strict(), Field(allow_inf_nan=False)]
PositiveC = Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False)]
NonNegativeC = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]
Seconds = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]
PositiveSeconds = Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False)]
Count = Annotated[int, Strict(), Field(ge=1)]
Text = Annotated[str, Strict(), Field(min_length=1)]


@dataclass(frozen=True, slots=True, kw_only=True)
class TemperatureClass:
    """A temperature band (label claim) with its excursion timing; None means no limit."""

    name: str
    label_zh: str
    low_c: float | None
    high_c: float | None
    alarm_delay_s: float
    hysteresis_c: float

    def side_outside(self, value_c: float) -> Literal["high", "low"] | None:
        """Which limit `value_c` is beyond ("high"/"low"), or None inside (limits are inside)."""
        if self.high_c is not None and value_c > self.high_c:
            return "high"
        if self.low_c is not None and value_c < self.low_c:
            return "low"
        return None

    def inside_by_margin(self, value_c: float) -> bool:
        """Whether `value_c` is back inside every limit by at least the hysteresis margin."""
        if self.high_c is not None and value_c > self.high_c - self.hysteresis_c:
            return False
        return not (self.low_c is not None and value_c < self.low_c + self.hysteresis_c)

    def deviation_c(self, value_c: float) -> float:
        """How far `value_c` lies beyond the band (0 inside)."""
        above = value_c - self.high_c if self.high_c is not None else -math.inf
        below = self.low_c - value_c if self.low_c is not None else -math.inf
        return max(0.0, above, below)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClassEntry:
    """A temperature class as written in the rulebook (timing falls back to the defaults)."""

    __pydantic_config__ = SECTION_CONFIG
    label_zh: Text
    low_c: Celsius | None
    high_c: Celsius | None
    alarm_delay_s: Seconds | None = None
    hysteresis_c: NonNegativeC | None = None
    aliases: tuple[Text, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ExcursionDefaults:
    """Alarm delay and hysteresis of classes that do not set their own."""

    __pydantic_config__ = SECTION_CONFIG
    alarm_delay_s: Seconds
    hysteresis_c: NonNegativeC


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingRules:
    """The longest allowed time between two records, in band and out of band."""

    __pydantic_config__ = SECTION_CONFIG
    max_gap_s: PositiveSeconds
    out_of_range_max_gap_s: PositiveSeconds


@dataclass(frozen=True, slots=True, kw_only=True)
class AccuracyBand:
    """Probes measuring within [low_c, high_c] must be accurate to ±accuracy_c."""

    __pydantic_config__ = SECTION_CONFIG
    low_c: Celsius
    high_c: Celsius
    accuracy_c: PositiveC


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeRules:
    """Probe count per compartment volume and the required accuracy per measuring range."""

    __pydantic_config__ = SECTION_CONFIG
    base_count: Count
    base_volume_m3: NonNegativeC
    extra_volume_step_m3: PositiveC
    accuracy_bands: tuple[AccuracyBand, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeHealthRules:
    """Thresholds of the probe health findings (stuck, disagreement, impossible, jump)."""

    __pydantic_config__ = SECTION_CONFIG
    stuck_tolerance_c: NonNegativeC
    stuck_min_s: PositiveSeconds
    others_moving_c: NonNegativeC
    disagreement_min_s: Seconds
    impossible_low_c: Celsius
    impossible_high_c: Celsius
    jump_c: PositiveC
    jump_within_s: PositiveSeconds


@dataclass(frozen=True, slots=True, kw_only=True)
class MktRules:
    """Mean kinetic temperature constant (activation energy over the gas constant)."""

    __pydantic_config__ = SECTION_CONFIG
    delta_h_over_r_k: PositiveC


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadingRules:
    """Pre-cooling: how long a compartment must have been in band before loading."""

    __pydantic_config__ = SECTION_CONFIG
    precool_settle_s: Seconds


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkRules:
    """How long without data before a link-loss alarm."""

    __pydantic_config__ = SECTION_CONFIG
    loss_after_s: PositiveSeconds


@dataclass(frozen=True, slots=True, kw_only=True)
class PredictionRules:
    """The thermal-model predictor: fit window, minimum data, horizon and warning threshold."""

    __pydantic_config__ = SECTION_CONFIG
    window_s: PositiveSeconds
    min_span_s: PositiveSeconds
    min_samples: Annotated[int, Strict(), Field(ge=3)]
    horizon_s: PositiveSeconds
    warn_before_exit_s: PositiveSeconds
    min_lead_s: Seconds
    min_fit_quality: Annotated[float, Strict(), Field(ge=0, le=1)]
    confirm_s: Seconds


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactChannels:
    """Where a contact is reached; at least one channel is set."""

    __pydantic_config__ = SECTION_CONFIG
    sms: Annotated[str, Strict(), Field(pattern=r"^\+[1-9][0-9]{6,14}$")] | None = None
    voice: Annotated[str, Strict(), Field(pattern=r"^\+[1-9][0-9]{6,14}$")] | None = None
    email: Annotated[str, Strict(), Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Contact:
    """A person alarms are sent to, with the alarm kinds they receive (default: all)."""

    __pydantic_config__ = SECTION_CONFIG
    name: Text
    role: Text
    channels: ContactChannels
    alarms: tuple[AlarmKind, ...] = ALARM_KINDS


@dataclass(frozen=True, slots=True, kw_only=True)
class EscalationLevel:
    """The roles notified at one level and how long before the next level (None: the last)."""

    __pydantic_config__ = SECTION_CONFIG
    roles: tuple[Text, ...]
    escalate_after_s: PositiveSeconds | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmRules:
    """Who must be reached and how alarms repeat and escalate until acknowledged."""

    __pydantic_config__ = SECTION_CONFIG
    min_contacts: Count
    repeat_every_s: PositiveSeconds
    levels: tuple[EscalationLevel, ...]

    def level_at(self, elapsed_s: float) -> int:
        """The escalation level (1-based) an unacknowledged alarm has reached after `elapsed_s`."""
        level, threshold_s = 1, 0.0
        for entry in self.levels[:-1]:
            threshold_s += entry.escalate_after_s or math.inf
            if elapsed_s < threshold_s:
                break
            level += 1
        return level
