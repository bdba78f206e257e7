"""A simulated fleet: many real edge agents in one process, against the real broker.

Every vehicle runs the real `EdgeAgent` (outbox, planner, signing, MQTT link) with the simulated
reefer driver; only the sensors are simulated. Agents and the controller can share one scaled
clock so a day runs in minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
import zlib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

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
from edge_agent.sensors.simulated import SimulatedVehicleDriver
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
    reboots: int = 0
    _active: set[tuple[str, str, str]] = field(default_factory=set)
    # Agent index -> simulated time its gateway is back up after a reboot.
    _rebooting: dict[int, float] = field(default_factory=dict)
    _stopping: bool = False

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
            self.agents.append(self._agent(settings, simulated_driver(settings), key))

    def _agent(
        self, settings: AgentSettings, driver: SimulatedVehicleDriver, key: Ed25519PrivateKey
    ) -> EdgeAgent:
        outbox = Outbox(
            settings.outbox_path,
            budget_bytes=settings.outbox_budget_bytes,
            synchronous=settings.outbox_synchronous,
        )
        return EdgeAgent(
            settings=settings,
            driver=driver,
            clock=self.clock,
            key=key,
            outbox=outbox,
            alarm_outputs=[CallbackAlarmOutput(self._on_alarm)],
        )

    def driver(self, index: int) -> SimulatedVehicleDriver:
        """The simulated vehicle (sensors and physics) behind agent `index`."""
        driver = self.agents[index].driver
        assert isinstance(driver, SimulatedVehicleDriver)
        return driver

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
        """Run every agent until cancelled or stopped (rebooted gateways come back)."""
        async with asyncio.TaskGroup() as tg:
            for index, agent in enumerate(self.agents):
                tg.create_task(self._run_vehicle(index), name=f"agent-{agent.settings.vehicle_id}")

    async def _run_vehicle(self, index: int) -> None:
        while True:
            await run_until_stopped(self.agents[index])
            back_s = self._rebooting.get(index)
            if back_s is None or self._stopping:
                return
            # The gateway is down: the vehicle (physics, sensors) goes on, nothing is sampled
            # or sent. It boots again as a new agent process on the same outbox and key.
            old = self.agents[index]
            await asyncio.to_thread(old.outbox.close)
            new = self._agent(old.settings, self.driver(index), old.key)
            new.counters = old.counters
            self.agents[index] = new
            await self.clock.sleep(back_s - self.clock.now_s())
            del self._rebooting[index]
            self.reboots += 1
            if self._stopping:
                return

    def reboot(self, index: int, *, down_s: float) -> bool:
        """Reboot agent `index`'s gateway: stop it now, boot it again `down_s` simulated s later."""
        if index in self._rebooting or self._stopping:
            return False
        self._rebooting[index] = self.clock.now_s() + down_s
        self.agents[index].stop()
        return True

    def rebooting(self, index: int) -> bool:
        """Whether agent `index`'s gateway is down for a reboot."""
        return index in self._rebooting

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
        self._stopping = True
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


def newest_reading_s(database_url: str, fleet_dir: Path, id_prefix: str) -> float:
    """Just after the newest reading an earlier run of this fleet left (database or outboxes),
    or 0: a new run starts its simulated time after it, so no vehicle's time runs backwards."""
    newest_ms = 0
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT (extract(epoch FROM max(ts)) * 1000)::int8 FROM readings"
            " WHERE starts_with(vehicle_id, %s)",
            (id_prefix,),
        ).fetchone()
        if row and row[0] is not None:
            newest_ms = int(row[0])
    for path in fleet_dir.glob("*.outbox.db"):
        with contextlib.closing(sqlite3.connect(path)) as db:
            found = db.execute("SELECT max(ts_ms) FROM outbox").fetchone()
        if found and found[0] is not None:
            newest_ms = max(newest_ms, int(found[0]))
    return newest_ms / 1000 + 1 if newest_ms else 0.0
