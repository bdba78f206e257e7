"""A scripted compressor failure, run by real agents on a fast clock, raises the local
excursion alarm on that vehicle only, and every reading reaches the database."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psycopg

from controller.ingest.service import IngestService
from edge_agent.clock import ScaledClock
from simulators.fleet import FleetSpec, SimulatedFleet
from simulators.run import ScenarioReport, run_scenario
from simulators.scenario import parse_scenario
from tests.support.pipeline import controller_settings, run_coldchain, running, wait_until


@dataclass
class Run:
    """A finished scenario run: the fleet (outboxes closed), its report and the ingest."""

    fleet: SimulatedFleet
    report: ScenarioReport
    service: IngestService
    committed: dict[str, int]


async def run_with_ingest(
    document: dict[str, object],
    *,
    id_prefix: str,
    database_url: str,
    mqtt_url: str,
    topic_prefix: str,
    workdir: Path,
) -> Run:
    """Run a scenario document with real agents and an in-process ingest on one scaled clock."""
    scenario = parse_scenario(document, name=id_prefix.lower())
    clock = ScaledClock(speed=scenario.speed)
    fleet = SimulatedFleet(
        spec=FleetSpec(vehicles=scenario.vehicles, id_prefix=id_prefix),
        mqtt_url=mqtt_url,
        topic_prefix=topic_prefix,
        workdir=workdir,
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
    committed = {a.settings.vehicle_id: a.outbox.max_seq() for a in fleet.agents}
    fleet.close()
    return Run(fleet, report, service, committed)


async def test_compressor_failure_scenario(
    database_url: str, mqtt_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    run = await run_with_ingest(
        {
            "vehicles": 3,
            "speed": 900,
            "duration_s": 2 * 3600,
            "failures": [{"at_s": 600, "vehicles": 2, "kind": "compressor_failure"}],
        },
        id_prefix="SCN",
        database_url=database_url,
        mqtt_url=mqtt_url,
        topic_prefix=topic_prefix,
        workdir=tmp_path,
    )
    fleet, report, service = run.fleet, run.report, run.service
    raised = {(e.kind, e.subject) for e in fleet.alarms if e.raised}
    vehicles_alarmed = {
        agent.settings.vehicle_id for agent in fleet.agents if agent.monitor.out_of_band()
    }
    assert ("excursion", "c1") in raised
    assert vehicles_alarmed == {"SCN0002"}, "only the vehicle whose compressor failed"
    assert report.simulated_s >= 2 * 3600
    assert service.stats.readings_inserted == report.totals.sampled


def test_sim_command_runs_a_scenario_file(
    database_url: str, mqtt_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    import re

    scenario = tmp_path / "short.yaml"
    scenario.write_text(
        "description: short\nvehicles: 2\nspeed: 2000\nduration_s: 7200\n"
        "failures:\n  - {at_s: 300, vehicles: 1, kind: power_loss, duration_s: 3600}\n"
    )
    result = run_coldchain(
        "sim",
        "--scenario",
        str(scenario),
        "--workdir",
        str(tmp_path / "fleet"),
        database_url=database_url,
        mqtt_url=mqtt_url,
        topic_prefix=topic_prefix,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout.replace("\n", " ")
    match = re.search(r"([\d,]+) readings taken, ([\d,]+) acknowledged", out)
    assert match, out[-1000:]
    taken = int(match.group(1).replace(",", ""))
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM readings WHERE channel = 'power' AND value = 0")
        power_off = row.fetchone()
        total = conn.execute("SELECT count(*) FROM readings").fetchone()
        moving = conn.execute(
            "SELECT max(value), count(DISTINCT value) FROM readings WHERE channel = 'gps:speed'"
        ).fetchone()
        places = conn.execute(
            "SELECT count(DISTINCT round(value::numeric, 4)) FROM readings WHERE channel = 'gps:lat'"
        ).fetchone()
        doors = conn.execute(
            "SELECT count(*) FILTER (WHERE value = 1) FROM readings WHERE channel = 'door:c1'"
        ).fetchone()
        local_hours = conn.execute(
            "SELECT min(extract(hour FROM ts AT TIME ZONE 'Asia/Shanghai')) FROM readings"
        ).fetchone()
    assert total is not None and total[0] == taken > 0
    assert power_off is not None and power_off[0] > 0, "the scripted power loss was recorded"
    # The vans drive their planned rounds through the city: GPS moves at city speeds and the
    # doors open at the depot and at stops; the day starts at 07:00 local time.
    assert moving is not None and 10 < moving[0] <= 80 and moving[1] > 3
    assert places is not None and places[0] > 20
    assert doors is not None and doors[0] > 0
    assert local_hours is not None and int(local_hours[0]) == 7
    assert re.search(r"orders: [\d,]+ placed", out), out[-1000:]


async def test_link_outage_scenario_loses_nothing(
    database_url: str, mqtt_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    run = await run_with_ingest(
        {
            "vehicles": 2,
            "speed": 900,
            "duration_s": 2 * 3600,
            "failures": [{"at_s": 900, "vehicles": 1, "kind": "link_outage", "duration_s": 2700}],
        },
        id_prefix="NET",
        database_url=database_url,
        mqtt_url=mqtt_url,
        topic_prefix=topic_prefix,
        workdir=tmp_path,
    )
    fleet, report, committed = run.fleet, run.report, run.committed
    cut, healthy = fleet.agents
    assert cut.counters.reconnects >= 1 and healthy.counters.reconnects == 0
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT vehicle_id, count(*), count(DISTINCT seq), max(seq), count(*) FILTER"
            " (WHERE history) FROM readings GROUP BY vehicle_id ORDER BY vehicle_id"
        ).fetchall()
    by_vehicle = {r[0]: r[1:] for r in rows}
    for agent in fleet.agents:
        count, distinct, max_seq, _ = by_vehicle[agent.settings.vehicle_id]
        assert count == distinct == max_seq == committed[agent.settings.vehicle_id], "once"
    assert by_vehicle["NET0001"][3] > 0, "readings held during the outage arrive as history"
    assert report.totals.outbox_depth == 0


async def test_gateway_reboot_scenario_keeps_every_reading_and_starts_a_new_boot(
    database_url: str, mqtt_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    run = await run_with_ingest(
        {
            "vehicles": 2,
            "speed": 900,
            "duration_s": 2 * 3600,
            "failures": [
                {"at_s": 1800, "vehicles": 1, "kind": "gateway_reboot", "duration_s": 900}
            ],
        },
        id_prefix="RBT",
        database_url=database_url,
        mqtt_url=mqtt_url,
        topic_prefix=topic_prefix,
        workdir=tmp_path,
    )
    assert run.fleet.reboots == 1
    with psycopg.connect(database_url) as conn:
        boots = dict(
            conn.execute(
                "SELECT vehicle_id, count(DISTINCT boot_id) FROM readings GROUP BY vehicle_id"
            ).fetchall()
        )
        rows = conn.execute(
            "SELECT vehicle_id, count(*), count(DISTINCT seq), max(seq) FROM readings"
            " GROUP BY vehicle_id"
        ).fetchall()
        # The longest silence between two stored sample times of the rebooted vehicle.
        silence = conn.execute(
            "SELECT max(d) FROM (SELECT extract(epoch FROM ts - lag(ts) OVER (ORDER BY ts)) AS d"
            " FROM (SELECT DISTINCT ts FROM readings WHERE vehicle_id = 'RBT0001') t) g"
        ).fetchone()
    assert boots == {"RBT0001": 2, "RBT0002": 1}
    for vehicle_id, count, distinct, max_seq in rows:
        assert count == distinct == max_seq == run.committed[vehicle_id], "gap-free, once"
    # Down for 900 simulated seconds: no readings are invented for that time.
    assert silence is not None and 850 <= float(silence[0]) <= 1000
