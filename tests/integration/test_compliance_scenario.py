"""The controller's GSP evaluation on a scripted day run by real agents through the broker:
a van that drops off the network and one that loses power raise their own alarms, and every
van's excursions equal a batch evaluation of everything it stored (live or back-filled)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg

from controller.compliance.excursions import detect_excursions
from controller.compliance.models import Sample
from controller.compliance.rulebook import load_rulebook
from controller.runner import ControllerCore
from edge_agent.clock import ScaledClock
from simulators.fleet import FleetSpec, SimulatedFleet
from simulators.run import run_scenario
from simulators.scenario import parse_scenario
from tests.support.pipeline import controller_settings, wait_until


async def test_link_and_power_loss_raise_their_alarms_and_backfill_is_judged_like_live(
    database_url: str, mqtt_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    scenario = parse_scenario(
        {
            "vehicles": 3,
            "speed": 900,
            "duration_s": 3 * 3600,
            "failures": [
                {"at_s": 900, "vehicles": 1, "kind": "link_outage", "duration_s": 2700},
                {"at_s": 1200, "vehicles": 3, "kind": "power_loss", "duration_s": 1800},
            ],
        },
        name="compliance",
    )
    clock = ScaledClock(speed=scenario.speed)
    fleet = SimulatedFleet(
        spec=FleetSpec(vehicles=3, id_prefix="CMP"),
        mqtt_url=mqtt_url,
        topic_prefix=topic_prefix,
        workdir=tmp_path,
        clock=clock,
    )
    with psycopg.connect(database_url) as conn:
        fleet.provision(conn)
    settings = controller_settings(
        database_url=database_url, mqtt_url=mqtt_url, topic_prefix=topic_prefix
    ).model_copy(update={"link_check_interval_s": 15.0, "notify_log": False})
    core = ControllerCore(settings=settings, clock=clock, channels=[])
    running = asyncio.create_task(core.run())
    try:
        report = await run_scenario(fleet, scenario)
        await wait_until(
            lambda: core.ingest.stats.readings_inserted >= report.totals.sampled,
            timeout_s=20,
            what="every reading stored",
        )
        assert await core.evaluation.drained(timeout_s=30)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        fleet.close()

    with psycopg.connect(database_url) as conn:
        alarms = {
            (kind, vehicle): active
            for kind, vehicle, active in conn.execute(
                "SELECT kind, vehicle_id, condition_active FROM alarms"
                " WHERE kind IN ('link_loss', 'power_loss')"
            )
        }
        stored = conn.execute(
            "SELECT vehicle_id, extract(epoch FROM ts)::float8, channel, value FROM readings"
            " WHERE channel LIKE 'temp:%' ORDER BY vehicle_id, ts"
        ).fetchall()
        decided = conn.execute(
            "SELECT vehicle_id, extract(epoch FROM start_ts)::float8,"
            " extract(epoch FROM end_ts)::float8 FROM excursions ORDER BY vehicle_id, start_ts"
        ).fetchall()
    assert alarms == {
        ("link_loss", "CMP0001"): False,  # raised while silent, cleared when data came back
        ("power_loss", "CMP0003"): False,
    }
    assert core.evaluation.stats.reevaluations >= 1, "the outage's readings came back late"
    rules = load_rulebook()
    band = rules.temperature_class("refrigerated")
    for vehicle_id in ("CMP0001", "CMP0002", "CMP0003"):
        samples = [
            Sample(ts, channel.rsplit(":", 1)[1], value)
            for vid, ts, channel, value in stored
            if vid == vehicle_id
        ]
        truth = [
            (round(e.start_s, 3), None if e.end_s is None else round(e.end_s, 3))
            for e in detect_excursions(samples, band=band, rules=rules)
        ]
        found = [
            (round(start, 3), None if end is None else round(end, 3))
            for vid, start, end in decided
            if vid == vehicle_id
        ]
        assert found == truth, vehicle_id
