"""Builds a runnable agent from settings: key, outbox, driver, alarm outputs."""

from __future__ import annotations

from pathlib import Path

from coldchain_protocol import load_private_key
from coldchain_protocol.config import ConfigError
from edge_agent.agent import EdgeAgent
from edge_agent.alarms import AlarmOutput, CommandAlarmOutput
from edge_agent.clock import Clock, SystemClock
from edge_agent.outbox import Outbox
from edge_agent.sensors.simulated import CompartmentSpec, SimulatedVehicleDriver
from edge_agent.sensors.thermal import ReeferParams
from edge_agent.settings import AgentSettings


def simulated_driver(settings: AgentSettings) -> SimulatedVehicleDriver:
    """A simulated vehicle whose compartments hold the middle of their configured bands."""
    specs = []
    for c in settings.compartments:
        low = c.high_c - 10.0 if c.low_c is None else c.low_c
        middle = (low + c.high_c) / 2
        specs.append(
            CompartmentSpec(
                compartment_id=c.compartment_id,
                probe_ids=tuple(c.probes),
                params=ReeferParams(setpoint_c=middle),
                initial_air_c=middle,
            )
        )
    return SimulatedVehicleDriver(compartments=specs, seed=settings.simulation_seed)


def read_key_file(path: Path) -> bytes:
    """Read the vehicle's private key; a missing file is a configuration error."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError("private_key_file", f"cannot read {path}: {exc.strerror}") from exc


def build_agent(settings: AgentSettings, *, clock: Clock | None = None) -> EdgeAgent:
    """Create the agent the `coldchain-edge run` command runs."""
    key = load_private_key(read_key_file(settings.private_key_file))
    outbox = Outbox(
        settings.outbox_path,
        budget_bytes=settings.outbox_budget_bytes,
        synchronous=settings.outbox_synchronous,
    )
    outputs: list[AlarmOutput] = []
    if settings.alarm_command:
        outputs.append(CommandAlarmOutput(settings.alarm_command))
    return EdgeAgent(
        settings=settings,
        driver=simulated_driver(settings),
        clock=clock or SystemClock(),
        key=key,
        outbox=outbox,
        alarm_outputs=outputs,
    )
