"""The edge agent's one settings object (env prefix ``COLDCHAIN_EDGE_``, or a TOML file)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from coldchain_protocol.config import FileSettings
from coldchain_protocol.topics import check_vehicle_id

_ID = r"^[A-Za-z0-9_-]{1,32}$"


class CompartmentConfig(BaseModel):
    """A compartment the agent monitors: its probes and its temperature band."""

    model_config = {"extra": "forbid"}

    compartment_id: str = Field(pattern=_ID)
    temperature_class: str = "refrigerated"
    low_c: float | None = None  # None: no lower limit (e.g. the 阴凉 cool class, <= 20 °C)
    high_c: float
    probes: list[str] = Field(min_length=2)

    @model_validator(mode="after")
    def _band(self) -> CompartmentConfig:
        if self.low_c is not None and self.low_c >= self.high_c:
            raise ValueError("low_c must be below high_c")
        for probe in self.probes:
            if (
                not probe
                or len(probe) > 32
                or not probe.replace("-", "").replace("_", "").isalnum()
            ):
                raise ValueError(f"probe id {probe!r} must be 1-32 letters, digits, '_' or '-'")
        return self


class AgentSettings(FileSettings):
    """Everything the agent needs; validated at startup with the bad key named."""

    model_config = SettingsConfigDict(
        env_prefix="COLDCHAIN_EDGE_", extra="forbid", env_nested_delimiter="__"
    )

    vehicle_id: str
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    topic_prefix: str = "coldchain"
    mqtt_protocol: Literal["5", "3.1.1"] = "5"
    private_key_file: Path
    outbox_path: Path = Path("/var/lib/coldchain-edge/outbox.db")
    outbox_budget_bytes: int = Field(default=256 * 1024 * 1024, ge=64 * 1024)
    outbox_synchronous: Literal["FULL", "NORMAL", "EXTRA"] = "FULL"
    status_file: Path | None = None
    compartments: list[CompartmentConfig] = Field(min_length=1)
    # GSP: every probe refreshed at least once a minute.
    sample_interval_s: float = Field(default=30.0, gt=0, le=60)
    publish_interval_s: float = Field(default=30.0, gt=0)
    # GSP: a record at least every 2 minutes while out of range.
    excursion_publish_interval_s: float = Field(default=120.0, gt=0, le=120)
    max_batch_readings: int = Field(default=500, ge=1, le=10_000)
    max_inflight_batches: int = Field(default=8, ge=1, le=1000)
    ack_timeout_s: float = Field(default=30.0, gt=0)
    backlog_rate_readings_s: float = Field(default=5000.0, gt=0)
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=60.0, gt=0)
    status_interval_s: float = Field(default=60.0, gt=0)
    # A door opened at a stop lifts the door-side air above 8 C for a minute or two on a summer
    # day; five minutes out of band is no longer a door: sound the alarm.
    alarm_delay_s: float = Field(default=300.0, ge=0)
    alarm_hysteresis_c: float = Field(default=0.3, ge=0)
    alarm_command: list[str] = Field(default_factory=list)
    driver: Literal["simulated"] = "simulated"
    simulation_seed: int = 0

    @field_validator("vehicle_id")
    @classmethod
    def _vehicle_id(cls, value: str) -> str:
        check_vehicle_id(value)
        return value

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url(cls, value: str) -> str:
        if not value.startswith(("mqtt://", "mqtts://")):
            raise ValueError("must be an mqtt:// or mqtts:// URL")
        return value

    @model_validator(mode="after")
    def _unique_compartments(self) -> AgentSettings:
        ids = [c.compartment_id for c in self.compartments]
        if len(ids) != len(set(ids)):
            raise ValueError("compartment ids must be unique")
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s must not exceed reconnect_max_s")
        return self
