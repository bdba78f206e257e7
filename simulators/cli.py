"""`coldchain sim` and `coldchain load`: a simulated fleet of real edge agents."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from controller.errors import ControllerError
from controller.settings import ControllerSettings


def _settings(ctx: typer.Context) -> ControllerSettings:
    from controller.cli import settings_of

    return settings_of(ctx)


def sim(
    ctx: typer.Context,
    scenario: Annotated[
        str, typer.Option(help="A shipped scenario name (see --list) or a scenario YAML file.")
    ] = "quiet-day",
    vehicles: Annotated[
        int | None, typer.Option(min=1, max=10_000, help="Override the scenario's fleet size.")
    ] = None,
    speed: Annotated[
        float | None, typer.Option(min=1.0, help="Override: simulated seconds per real second.")
    ] = None,
    workdir: Annotated[Path, typer.Option(help="Where the agents' outboxes and keys live.")] = Path(
        "var/sim"
    ),
    list_scenarios: Annotated[
        bool, typer.Option("--list", help="List the shipped scenarios and exit.")
    ] = False,
) -> None:
    """Run a simulated fleet (real edge agents) through a scenario against the broker.

    The fleet registers its vehicles in the configured (migrated) database; an in-process
    ingest shares the fleet's scaled clock; everything stops by itself at the scenario's end.
    """
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from controller.runner import ControllerCore
    from controller.storage.db import connect
    from edge_agent.clock import ScaledClock
    from simulators.city import SHANGHAI_UTC_OFFSET_H
    from simulators.fleet import FleetSpec, FleetTotals, SimulatedFleet, newest_reading_s
    from simulators.run import ScenarioReport, run_scenario
    from simulators.scenario import ScenarioError, load_scenario, named_scenarios
    from simulators.world import day_start_s

    console = Console()
    try:
        if list_scenarios:
            for name in named_scenarios():
                console.print(f"[bold]{name}[/]: {load_scenario(name).description}")
            return
        chosen = load_scenario(scenario)
    except ScenarioError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    settings = _settings(ctx)
    fleet_size = vehicles or chosen.vehicles
    # The day starts at the scenario's local time: today's, or the next one after what an
    # earlier run of this fleet stored.
    start_s = day_start_s(
        now_s=time.time(),
        not_before_s=newest_reading_s(settings.database_url, workdir.resolve(), "SIM"),
        local_hour=chosen.start_local_h,
        utc_offset_h=SHANGHAI_UTC_OFFSET_H,
    )
    clock = ScaledClock(speed=speed or chosen.speed, start_s=start_s)
    fleet = SimulatedFleet(
        spec=FleetSpec(vehicles=fleet_size, id_prefix="SIM"),
        mqtt_url=settings.mqtt_url,
        mqtt_protocol=settings.mqtt_protocol,
        topic_prefix=settings.topic_prefix,
        workdir=workdir.resolve(),
        clock=clock,
    )
    try:
        with connect(settings.database_url) as conn:
            fleet.provision(conn)
    except ControllerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[stats]}"),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(chosen.name, total=chosen.duration_s, stats="")

        def on_progress(elapsed_s: float, totals: FleetTotals) -> None:
            progress.update(
                task,
                completed=elapsed_s,
                stats=f"{totals.online}/{totals.vehicles} online, {totals.sampled:,} readings, "
                f"{totals.acked:,} acked, {totals.alarms_active} alarms active",
            )

        async def run_with_ingest() -> ScenarioReport:
            # The fleet runs on a scaled clock, so the controller that checks its timestamps
            # must share it: ingest runs in this process.
            # Ingest, GSP evaluation and escalation; notifications are recorded in the alarms'
            # audit trail but not logged over the progress display.
            core = ControllerCore(
                settings=settings.model_copy(update={"notify_log": False}), clock=clock
            )
            running = asyncio.create_task(core.run(), name="controller")
            try:
                report = await run_scenario(fleet, chosen, on_progress=on_progress)
                await core.evaluation.drained(timeout_s=30.0)
                return report
            finally:
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)

        report = asyncio.run(run_with_ingest())
        progress.update(task, completed=chosen.duration_s)
    fleet.close()
    t, o = report.totals, report.orders
    console.print(
        f"scenario {report.scenario} finished: {report.simulated_s / 3600:.1f} simulated hours in "
        f"{report.real_s:.0f} s; {t.sampled:,} readings taken, {t.acked:,} acknowledged, "
        f"{t.outbox_depth:,} still in outboxes, {t.alarms_raised} local alarms raised, "
        f"{report.reboots} gateway reboots"
    )
    console.print(
        f"orders: {o.orders:,} placed ({o.emergency:,} emergency, {o.green_channel:,} green "
        f"channel), {o.delivered:,} delivered on {o.trips:,} trips ({o.late:,} late), "
        f"{o.unserved:,} not served"
    )
    with connect(settings.database_url) as conn:
        rows = conn.execute(
            "SELECT kind, count(*), count(*) FILTER (WHERE condition_active) FROM alarms"
            " WHERE starts_with(vehicle_id, 'SIM') AND data_ts >= %s GROUP BY kind ORDER BY kind",
            (datetime.fromtimestamp(start_s, UTC),),
        ).fetchall()
    summary = ", ".join(f"{kind} {n} ({active} still active)" for kind, n, active in rows)
    console.print(f"controller alarms: {summary or 'none'}")


def load(
    ctx: typer.Context,
    vehicles: Annotated[int, typer.Option(min=1, max=10_000, help="Fleet size.")] = 2000,
    seconds: Annotated[
        float, typer.Option(min=1.0, help="Real seconds of sampling before the drain.")
    ] = 60.0,
    sample_interval: Annotated[
        float, typer.Option(min=0.01, help="Seconds between two samples of a vehicle.")
    ] = 30.0,
    probes: Annotated[int, typer.Option(min=2, max=64, help="Probes per compartment.")] = 2,
    drain_timeout: Annotated[
        float, typer.Option(min=1.0, help="Longest wait for the outboxes to empty.")
    ] = 300.0,
    ingest: Annotated[
        bool,
        typer.Option(
            help="Run the ingest in this process; with --no-ingest a controller running "
            "elsewhere must acknowledge."
        ),
    ] = True,
    report: Annotated[
        Path | None, typer.Option(help="Write what was sent (per vehicle) to this JSON file.")
    ] = None,
    id_prefix: Annotated[str, typer.Option(help="Vehicle id prefix of the load fleet.")] = "LOAD",
    workdir: Annotated[Path, typer.Option(help="Where the agents' outboxes and keys live.")] = Path(
        "var/load"
    ),
) -> None:
    """Load mode for benchmarks: thousands of vehicles for a bounded time, then a drain.

    The fleet samples in real time, stops by itself and reports what it committed (--report),
    so a benchmark can check what arrived.
    """
    import json
    import resource
    import time

    from rich.console import Console

    from controller.ingest.service import IngestService
    from controller.storage.db import connect
    from edge_agent.clock import ScaledClock
    from simulators.fleet import FleetSpec, SimulatedFleet
    from simulators.load import LoadReport, run_load

    console = Console()
    settings = _settings(ctx)
    # Each agent holds a socket and three SQLite files open.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = vehicles * 5 + 256
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            typer.echo(
                f"error: {vehicles} vehicles need about {needed} open files; the limit is {hard}",
                err=True,
            )
            raise typer.Exit(2)
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    clock = ScaledClock(speed=1.0)
    fleet = SimulatedFleet(
        spec=FleetSpec(
            vehicles=vehicles,
            id_prefix=id_prefix,
            probes_per_compartment=probes,
            sample_interval_s=sample_interval,
            publish_interval_s=max(sample_interval, 1.0),
        ),
        mqtt_url=settings.mqtt_url,
        mqtt_protocol=settings.mqtt_protocol,
        topic_prefix=settings.topic_prefix,
        workdir=workdir.resolve(),
        clock=clock,
    )
    started = time.monotonic()
    try:
        with connect(settings.database_url) as conn:
            fleet.provision(conn)
    except ControllerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    console.print(f"{vehicles} vehicles provisioned in {time.monotonic() - started:.1f} s")

    async def run() -> tuple[LoadReport, int | None]:
        if not ingest:
            return await run_load(fleet, duration_s=seconds, drain_timeout_s=drain_timeout), None
        service = IngestService(settings=settings, clock=clock)
        task = asyncio.create_task(service.run(), name="ingest")
        try:
            result = await run_load(fleet, duration_s=seconds, drain_timeout_s=drain_timeout)
            return result, service.stats.readings_inserted
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    result, inserted = asyncio.run(run())
    fleet.close()
    if report is not None:
        report.write_text(
            json.dumps(
                {
                    "vehicles": result.vehicles,
                    "id_prefix": id_prefix,
                    "sampling_s": result.sampling_s,
                    "drained": result.drained,
                    "drain_s": result.drain_s,
                    "total_committed": result.total_committed,
                    "acked": result.acked,
                    "refused": result.refused,
                    "committed": result.committed,
                },
                indent=1,
            )
        )
    stored = "" if inserted is None else f", {inserted:,} stored by the in-process ingest"
    console.print(
        f"load finished: {result.vehicles} vehicles sampled {result.sampling_s:.0f} s, "
        f"{result.total_committed:,} readings committed, {result.acked:,} acknowledged"
        f"{stored}; drained={'yes' if result.drained else 'NO'} in {result.drain_s:.1f} s"
    )
    if not result.drained:
        raise typer.Exit(1)
