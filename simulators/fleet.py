"""A simulated fleet: many real edge agents in one process, against the real broker.

Every vehicle runs the real `EdgeAgent` (outbox, planner, signing, MQTT link) with the simulated
reefer driver; only the sensors are simulated. Agents and the controller can share one scaled
clock so a day runs in minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import zlib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import psycopg

from coldchain_protocol import (
    generate_private_key,
    load_private_key,
    private_key_pem,
    public_key_pem,
)
from coldchain_protocol.config import load_settings
from controller.errors import RegistrationError
from controller.vehicles.models import CompartmentSpec, ProbeSpec, VehicleSpec
from controller.vehicles.repository import insert_vehicle
from edge_agent.agent import EdgeAgent, run_until_stopped
from edge_agent.alarms import AlarmEvent, CallbackAlarmOutput
from edge_agent.clock import Clock
from edge_agent.outbox import Outbox
from edge_agent.runtime import simulated_driver
from edge_agent.settings import AgentSettings


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetSpec:
    """Shape of a simulated fleet."""

    vehicles: int
    id_prefix: str = "SIM"
    probes_per_compartment: int = 2
    compartments: int = 1
    volume_m3: float = 12.0
    sample_interval_s: float = 30.0
    publish_interval_s: float = 30.0
    max_batch_readings: int = 500
    ack_timeout_s: float = 30.0
    max_inflight_batches: int = 8
    backlog_rate_readings_s: float = 5000.0
    outbox_synchronous: Literal["FULL", "NORMAL", "EXTRA"] = "FULL"
    seed: int = 1

    def vehicle_ids(self) -> list[str]:
        """Ids of the fleet's vehicles, e.g. SIM0001."""
        width = max(4, len(str(self.vehicles)))
        return [f"{self.id_prefix}{i + 1:0{width}d}" for i in range(self.vehicles)]

    def vehicle_spec(self, vehicle_id: str) -> VehicleSpec:
        """The registry record of one simulated vehicle."""
        due = date(2099, 1, 1)
        compartments = tuple(
            CompartmentSpec(
                compartment_id=f"c{c + 1}",
                temperature_class="refrigerated",
                volume_m3=self.volume_m3,
                probes=tuple(
                    ProbeSpec(f"p{p + 1}", f"position-{p + 1}", 0.5, due)
                    for p in range(self.probes_per_compartment)
                ),
            )
            for c in range(self.compartments)
        )
        return VehicleSpec(vehicle_id, f"Simulated reefer {vehicle_id}", compartments)


@dataclass(slots=True)
class FleetTotals:
    """What the fleet has done so far, summed over its agents."""

    vehicles: int = 0
    online: int = 0
    sampled: int = 0
    refused: int = 0
    acked: int = 0
    outbox_depth: int = 0
    reconnects: int = 0
    alarms_raised: int = 0
    alarms_active: int = 0


@dataclass(slots=True)
class SimulatedFleet:
    """Provisions the fleet's vehicles and runs one real agent per vehicle."""

    spec: FleetSpec
    mqtt_url: str
    topic_prefix: str
    workdir: Path
    clock: Clock
    mqtt_protocol: Literal["5", "3.1.1"] = "5"
    agents: list[EdgeAgent] = field(default_factory=list)
    alarms: list[AlarmEvent] = field(default_factory=list)
    _active: set[tuple[str, str, str]] = field(default_factory=set)

    def provision(self, conn: psycopg.Connection[Any]) -> None:
        """Register every vehicle (reusing keys kept in the workdir) and build its agent."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        existing = {
            str(vid): str(pem)
            for vid, pem in conn.execute("SELECT vehicle_id, public_key_pem FROM vehicles")
        }
        conn.commit()
        for vid in self.spec.vehicle_ids():
            key_file = self.workdir / f"{vid}.key"
            if key_file.exists() and existing.get(vid) == public_key_pem(
                load_private_key(key_file.read_bytes())
            ):
                key = load_private_key(key_file.read_bytes())
            else:
                if vid in existing:
                    raise RegistrationError(
                        "vehicle_id", f"{vid} is registered with a key this fleet does not hold"
                    )
                key = generate_private_key()
                key_file.write_bytes(private_key_pem(key))
                key_file.chmod(0o600)
                insert_vehicle(
                    conn, self.spec.vehicle_spec(vid), public_key_pem=public_key_pem(key)
                )
                conn.commit()
            settings = self._agent_settings(vid, key_file)
            outbox = Outbox(
                settings.outbox_path,
                budget_bytes=settings.outbox_budget_bytes,
                synchronous=settings.outbox_synchronous,
            )
            self.agents.append(
                EdgeAgent(
                    settings=settings,
                    driver=simulated_driver(settings),
                    clock=self.clock,
                    key=key,
                    outbox=outbox,
                    alarm_outputs=[CallbackAlarmOutput(self._on_alarm)],
                )
            )

    def _agent_settings(self, vehicle_id: str, key_file: Path) -> AgentSettings:
        s = self.spec
        return load_settings(
            AgentSettings,
            vehicle_id=vehicle_id,
            mqtt_url=self.mqtt_url,
            mqtt_protocol=self.mqtt_protocol,
            topic_prefix=self.topic_prefix,
            private_key_file=key_file,
            outbox_path=self.workdir / f"{vehicle_id}.outbox.db",
            outbox_synchronous=s.outbox_synchronous,
            compartments=[
                {
                    "compartment_id": c.compartment_id,
                    "low_c": 2.0,
                    "high_c": 8.0,
                    "probes": [p.probe_id for p in c.probes],
                }
                for c in s.vehicle_spec(vehicle_id).compartments
            ],
            sample_interval_s=s.sample_interval_s,
            publish_interval_s=s.publish_interval_s,
            max_batch_readings=s.max_batch_readings,
            ack_timeout_s=s.ack_timeout_s,
            max_inflight_batches=s.max_inflight_batches,
            backlog_rate_readings_s=s.backlog_rate_readings_s,
            simulation_seed=s.seed * 100_003 + zlib.crc32(vehicle_id.encode()) % 100_003,
            status_interval_s=max(60.0, s.sample_interval_s),
        )

    def _on_alarm(self, event: AlarmEvent) -> None:
        self.alarms.append(event)
        key = (event.kind, event.subject, "")
        if event.raised:
            self._active.add(key)
        else:
            self._active.discard(key)

    async def run(self) -> None:
        """Run every agent until cancelled."""
        async with asyncio.TaskGroup() as tg:
            for agent in self.agents:
                tg.create_task(run_until_stopped(agent), name=f"agent-{agent.settings.vehicle_id}")

    async def drain(self, *, timeout_s: float) -> bool:
        """Stop sampling everywhere and wait (bounded) until every outbox is empty."""
        for agent in self.agents:
            agent.stop_sampling()
        deadline = time.monotonic() + timeout_s
        while self.totals().outbox_depth > 0:
            if time.monotonic() > deadline:
                return False
            # Outboxes empty on acks from another process's point of view: poll, bounded.
            await asyncio.sleep(0.1)
        return True

    def stop(self) -> None:
        """Ask every agent to stop."""
        for agent in self.agents:
            agent.stop()

    def totals(self) -> FleetTotals:
        """Counters summed over the fleet (outbox depth is read from each outbox)."""
        t = FleetTotals(vehicles=len(self.agents))
        for agent in self.agents:
            c = agent.counters
            t.online += agent.connected
            t.sampled += c.sampled
            t.refused += c.refused
            t.acked += c.acked_readings
            t.reconnects += c.reconnects
            t.outbox_depth += agent.outbox.stats().depth
        t.alarms_raised = sum(1 for a in self.alarms if a.raised)
        t.alarms_active = len(self._active)
        return t

    def close(self) -> None:
        """Close every outbox."""
        for agent in self.agents:
            with contextlib.suppress(Exception):
                agent.outbox.close()
