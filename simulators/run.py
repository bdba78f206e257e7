"""Run a scenario: a fleet of real agents, the scenario's failures applied on the shared
scaled clock, and a progress display. `coldchain sim` calls `run_scenario`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge_agent.sensors.simulated import SimulatedVehicleDriver
from simulators.fleet import FleetTotals, SimulatedFleet
from simulators.scenario import Scenario, faults_at, link_down, reboots_due
from simulators.world import OrderTotals, World, build_world

_FAULT_STEP_S = 30.0  # simulated seconds between fault updates


@dataclass(frozen=True, slots=True)
class ScenarioReport:
    """What a scenario run did."""

    scenario: str
    simulated_s: float
    real_s: float
    totals: FleetTotals
    orders: OrderTotals
    reboots: int


def follow_routes(fleet: SimulatedFleet, world: World) -> None:
    """Put every simulated vehicle on its planned trips (GPS, speed, door openings)."""
    for index, agent in enumerate(fleet.agents):
        motion = world.plan.motion(agent.settings.vehicle_id, world.city)
        fleet.driver(index).follow(position=motion.position, door_open=motion.door_open)


def apply_faults(
    fleet: SimulatedFleet,
    scenario: Scenario,
    *,
    elapsed_s: float,
    start_s: float,
    applied: set[tuple[int, int]],
) -> int:
    """Set every simulated compartment's faults for this point of the run; return how many are faulty."""
    faulty = 0
    for number, agent in enumerate(fleet.agents, start=1):
        for event, down_s in reboots_due(scenario, vehicle=number, elapsed_s=elapsed_s):
            if (event, number) not in applied:
                applied.add((event, number))
                fleet.reboot(number - 1, down_s=down_s)
        if link_down(scenario, vehicle=number, elapsed_s=elapsed_s):
            agent.cut_link()
        else:
            agent.restore_link()
        driver = agent.driver
        if not isinstance(driver, SimulatedVehicleDriver):
            continue
        for compartment in agent.settings.compartments:
            faults = faults_at(
                scenario,
                vehicle=number,
                compartment=compartment.compartment_id,
                elapsed_s=elapsed_s,
                start_s=start_s,
            )
            if faults != driver.faults(compartment.compartment_id):
                driver.inject(compartment.compartment_id, faults)
            faulty += faults != faults.__class__()
    return faulty


async def run_scenario(
    fleet: SimulatedFleet,
    scenario: Scenario,
    *,
    on_progress: Callable[[float, FleetTotals], None] | None = None,
    drain_timeout_s: float = 60.0,
) -> ScenarioReport:
    """Run the fleet through the scenario, let the outboxes drain (bounded), then stop it."""
    clock = fleet.clock
    start_s = clock.now_s()
    real_start = time.monotonic()
    world = build_world(
        scenario, [agent.settings.vehicle_id for agent in fleet.agents], start_s=start_s
    )
    follow_routes(fleet, world)
    applied: set[tuple[int, int]] = set()
    task = asyncio.create_task(fleet.run(), name="scenario-fleet")
    try:
        while True:
            elapsed = clock.now_s() - start_s
            if elapsed >= scenario.duration_s:
                break
            apply_faults(fleet, scenario, elapsed_s=elapsed, start_s=start_s, applied=applied)
            if on_progress is not None:
                on_progress(elapsed, fleet.totals())
            await clock.sleep(min(_FAULT_STEP_S, scenario.duration_s - elapsed))
            if task.done():
                task.result()  # an agent crashed: surface it
        # End of the day: no more readings; deliver what the outboxes still hold.
        await fleet.drain(timeout_s=drain_timeout_s)
        totals = fleet.totals()
    finally:
        fleet.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return ScenarioReport(
        scenario=scenario.name,
        simulated_s=clock.now_s() - start_s,
        real_s=time.monotonic() - real_start,
        totals=totals,
        orders=world.totals(),
        reboots=fleet.reboots,
    )
