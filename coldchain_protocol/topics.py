"""MQTT topic layout: ``<prefix>/v1/<vehicle_id>/<kind>``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from coldchain_protocol.errors import ProtocolError

TOPIC_VERSION = "v1"
VEHICLE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_vehicle_id(vehicle_id: str) -> str:
    """Return the id when it is a valid vehicle id (it is also the MQTT user name), else raise."""
    if not VEHICLE_ID_PATTERN.fullmatch(vehicle_id):
        raise ProtocolError(
            f"invalid vehicle id {vehicle_id!r}: use 1-64 letters, digits, '_', '.', '-'"
        )
    return vehicle_id


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic names under one prefix; tests give each run its own prefix."""

    prefix: str = "coldchain"

    def _base(self, vehicle_id: str) -> str:
        return f"{self.prefix}/{TOPIC_VERSION}/{vehicle_id}"

    def telemetry(self, vehicle_id: str) -> str:
        """Agent -> controller: signed reading batches, QoS 1."""
        return f"{self._base(vehicle_id)}/telemetry"

    def status(self, vehicle_id: str) -> str:
        """Agent -> controller: retained online/offline status (also the last will)."""
        return f"{self._base(vehicle_id)}/status"

    def ack(self, vehicle_id: str) -> str:
        """Controller -> agent: readings committed to the database, QoS 1."""
        return f"{self._base(vehicle_id)}/ack"

    def resend(self, vehicle_id: str) -> str:
        """Controller -> agent: sequence ranges the controller is missing, QoS 1."""
        return f"{self._base(vehicle_id)}/resend"

    def all_telemetry(self) -> str:
        """Filter matching every vehicle's telemetry."""
        return f"{self.prefix}/{TOPIC_VERSION}/+/telemetry"

    def all_status(self) -> str:
        """Filter matching every vehicle's status."""
        return f"{self.prefix}/{TOPIC_VERSION}/+/status"

    def shared(self, group: str, topic_filter: str) -> str:
        """MQTT v5 shared subscription so controller replicas split the load."""
        return f"$share/{group}/{topic_filter}"

    def parse(self, topic: str) -> tuple[str, str]:
        """Split a topic into (vehicle_id, kind); raise ProtocolError when it is not ours."""
        parts = topic.split("/")
        prefix_parts = self.prefix.split("/")
        n = len(prefix_parts)
        if len(parts) != n + 3 or parts[:n] != prefix_parts or parts[n] != TOPIC_VERSION:
            raise ProtocolError(f"topic {topic!r} is not under {self.prefix}/{TOPIC_VERSION}/")
        return check_vehicle_id(parts[n + 1]), parts[n + 2]
