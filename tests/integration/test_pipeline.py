"""End to end: real agents -> real Mosquitto -> real ingest -> PostgreSQL/TimescaleDB."""

from __future__ import annotations

from pathlib import Path

from tests.support.pipeline import (
    CountingDriver,
    agent_settings,
    assert_exactly_once,
    controller_settings,
    make_agent,
    register_vehicle,
    run_ingest,
    run_until_stopped,
    running,
    wait_until,
)


async def test_readings_reach_database_exactly_once(
    database_url: str, mqtt_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    vehicles = ["V1", "V2", "V3"]
    agents, drivers = [], []
    for vid in vehicles:
        key = register_vehicle(database_url, vid)
        settings = agent_settings(
            vehicle_id=vid, mqtt_url=mqtt_url, topic_prefix=topic_prefix, workdir=tmp_path
        )
        driver = CountingDriver(limit=40)
        drivers.append(driver)
        agents.append(make_agent(settings, key, driver))
    service = await run_ingest(
        controller_settings(database_url=database_url, mqtt_url=mqtt_url, topic_prefix=topic_prefix)
    )
    async with running(service.run, *[lambda a=a: run_until_stopped(a) for a in agents]):
        await wait_until(
            lambda: (
                all(d.calls >= 40 for d in drivers)
                and all(a.outbox.stats().depth == 0 for a in agents)
            ),
            timeout_s=30,
            what="every reading acknowledged",
        )
    for vid, driver in zip(vehicles, drivers, strict=True):
        assert_exactly_once(database_url, vid, driver)
    assert service.stats.readings_inserted == 3 * 80
