"""The controller's one settings object."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from coldchain_protocol.config import FileSettings


class ControllerSettings(FileSettings):
    """Controller, admin and demo settings (env prefix ``COLDCHAIN_``)."""

    model_config = SettingsConfigDict(env_prefix="COLDCHAIN_", extra="forbid")

    environment: Literal["development", "production"] = "development"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/coldchain"
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    topic_prefix: str = "coldchain"
    share_group: str = Field(default="coldchain-ingest", pattern=r"^[A-Za-z0-9_-]+$")
    client_id: str = ""
    mqtt_protocol: Literal["5", "3.1.1"] = "5"
    # MQTT 5 shared subscription so replicas split the load; off only for 3.1.1 brokers.
    shared_subscription: bool = True
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=0, le=65535)
    # Ingest tuning.
    ingest_group_max_messages: int = Field(default=200, ge=1, le=10_000)
    ingest_group_max_bytes: int = Field(default=1_000_000, ge=1_000)
    future_tolerance_s: float = Field(default=120.0, ge=0)
    gap_grace_s: float = Field(default=30.0, ge=0)
    gap_check_interval_s: float = Field(default=10.0, gt=0)
    # Where `coldchain vehicles add` writes gateway files and broker credentials.
    # Compliance: the rulebook file (empty: the shipped GSP rulebook), the link-loss check and
    # the notification channels alarms go out through.
    rulebook_file: str = ""
    evaluation: bool = True
    link_check_interval_s: float = Field(default=15.0, gt=0)
    prediction_interval_s: float = Field(default=60.0, ge=0)  # data time between two fits
    prediction_clear_after_s: float = Field(default=600.0, ge=0)  # quiet before a warning clears
    notify_interval_s: float = Field(default=5.0, gt=0)
    public_url: str = ""  # where people acknowledge alarms (put in notifications)
    notify_log: bool = True
    webhook_url: str = ""
    webhook_secret: str = ""
    smtp_host: str = ""
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = "coldchain@localhost"
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    sms_gateway_url: str = ""
    sms_gateway_token: str = ""
    credentials_dir: str = "var/credentials"
    broker_password_file: str = "var/mosquitto/passwords"

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("rulebook_file")
    @classmethod
    def _rulebook_loads(cls, value: str) -> str:
        if value:
            from pathlib import Path

            from controller.compliance.errors import RulebookError
            from controller.compliance.rulebook import load_rulebook

            try:
                load_rulebook(Path(value))
            except RulebookError as exc:
                raise ValueError(str(exc)) from exc
        return value

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url(cls, value: str) -> str:
        if not value.startswith(("mqtt://", "mqtts://")):
            raise ValueError("must be an mqtt:// or mqtts:// URL")
        return value

    @model_validator(mode="after")
    def _shared_needs_v5(self) -> ControllerSettings:
        if self.shared_subscription and self.mqtt_protocol != "5":
            raise ValueError("shared_subscription needs mqtt_protocol = '5'")
        return self
