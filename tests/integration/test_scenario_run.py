"""A scripted compressor failure, run by real agents on a fast clock, raises the local
excursion alarm on that vehicle only, and every reading reaches the database."""

from __future__ import annotations

from pathlib import Path

import psycopg

from controller.ingest.service import IngestService
from edge_agent.clock import ScaledClock
from simulators.fleet import FleetSpec, SimulatedFleet
from simulators.run import run_scenario
from simulators.scenario import parse_scenario
from tests.support.pipeline import controller_settings, running, wait_until


async def test_compressor_failure_scenario(
    database_url: str, mqtt_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    scenario = parse_scenario(
        {
            "vehicles": 3,
            "speed": 900,
            "duration_s": 2 * 3600,
            "failures": [{"at_s": 600, "vehicles": 2, "kind": "compressor_failure"}],
        },
        name="compressor-test",
    )
    clock = ScaledClock(speed=scenario.speed)
    fleet = SimulatedFleet(
        spec=FleetSpec(vehicles=scenario.vehicles, id_prefix="SCN"),
        mqtt_url=mqtt_url,
        topic_prefix=topic_prefix,
        workdir=tmp_path,
        clock=clock,
    )
    with psycopg.connect(database_url) as conn:
        fleet.provision(conn)
    service = IngestService(
        settings=controller_settings(
            database_url=database_url, mqtt_url=mqtt_url, topic_prefix=topic_prefix
        ),
        clock=clock,
    )
    async with running(service.run):
        report = await run_scenario(fleet, scenario)
        await wait_until(
            lambda: service.stats.readings_inserted >= report.totals.sampled,
            timeout_s=20,
            what="every reading stored",
        )
    fleet.close()
    raised = {(e.kind, e.subject) for e in fleet.alarms if e.raised}
    vehicles_alarmed = {
        agent.settings.vehicle_id for agent in fleet.agents if agent.monitor.out_of_band()
    }
    assert ("excursion", "c1") in raised
    assert vehicles_alarmed == {"SCN0002"}, "only the vehicle whose compressor failed"
    assert report.simulated_s >= scenario.duration_s
    assert service.stats.readings_inserted == report.totals.sampled
