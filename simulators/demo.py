"""`coldchain demo`: the controller and a simulated fleet, with a live terminal summary.

Local services are used when they answer; otherwise an embedded broker (amqtt) and an embedded
PostgreSQL are started, and the demo says so. Agents and controller share one scaled clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from controller.embedded import ResolvedServices, resolve_services
from controller.ingest.service import IngestService
from controller.runner import run_controller
from controller.settings import ControllerSettings
from controller.storage.db import connect, is_hypertable, migrate
from edge_agent.clock import ScaledClock
from simulators.fleet import FleetSpec, FleetTotals, SimulatedFleet, newest_reading_s
from simulators.run import apply_faults, follow_routes
from simulators.scenario import parse_scenario
from simulators.world import World, build_world


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoOptions:
    """What the demo runs."""

    vehicles: int = 30
    speed: float = 30.0
    duration_s: float | None = None
    workdir: Path = Path("var/demo")
    compressor_failure_after_s: float = 5 * 60.0  # simulated seconds


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """What the demo achieved, printed at the end (and checked by its test)."""

    rows_stored: int
    readings_acked: int
    vehicles_online: int
    alarms_raised: int
    dead_letters: int


def ensure_database(url: str) -> None:
    """Create the configured database when the server answers but lacks it."""
    parts = psycopg.conninfo.conninfo_to_dict(url)
    name = str(parts.get("dbname") or "coldchain")
    try:
        with psycopg.connect(url, connect_timeout=5):
            return
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise
    admin = psycopg.conninfo.make_conninfo(url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _free_api_port(host: str, wanted: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind((host, wanted))
            return wanted
        except OSError:
            sock.bind((host, 0))
            return int(sock.getsockname()[1])


class _Dashboard:
    """Builds the live summary from the fleet's and the ingest service's counters."""

    def __init__(
        self,
        *,
        fleet: SimulatedFleet,
        service: IngestService,
        clock: ScaledClock,
        services: ResolvedServices,
        api_url: str,
        storage: str,
        rows_before: int,
    ) -> None:
        self.fleet, self.service, self.clock = fleet, service, clock
        self.services, self.api_url, self.storage = services, api_url, storage
        self.rows_before = rows_before
        self.world: World | None = None
        self.controller_alarms: list[tuple[int, str, str, str, str]] = []
        self.rates: deque[tuple[float, int]] = deque(maxlen=6)

    def refresh_alarms(self) -> None:
        """Read the controller's latest alarms (called off the event loop)."""
        with psycopg.connect(self.services.database_url) as conn:
            self.controller_alarms = [
                (int(a), str(k), str(v), str(s), str(d))
                for a, k, v, s, d in conn.execute(
                    "SELECT alarm_id, kind, vehicle_id || coalesce('/' || nullif(compartment_id,"
                    " ''), ''), state, detail FROM alarms ORDER BY alarm_id DESC LIMIT 20"
                )
            ]

    def rate(self) -> float:
        now, inserted = time.monotonic(), self.service.stats.readings_inserted
        self.rates.append((now, inserted))
        (t0, n0), (t1, n1) = self.rates[0], self.rates[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def render(self) -> Panel:
        totals = self.fleet.totals()
        stats = self.service.stats
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan")
        table.add_column()
        sim_time = datetime.fromtimestamp(self.clock.now_s(), UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row("simulated time", f"{sim_time} UTC  (x{self.clock.speed:g})")
        table.add_row("vehicles online", f"{totals.online} / {totals.vehicles}")
        table.add_row("readings/s stored", f"{self.rate():,.0f}")
        table.add_row(
            "rows stored", f"{self.rows_before + stats.readings_inserted:,}  ({self.storage})"
        )
        table.add_row("duplicates ignored", f"{stats.readings_duplicate:,}")
        table.add_row("dead letters", f"{stats.dead_letters:,}")
        table.add_row("agent outboxes", f"{totals.outbox_depth:,} readings waiting for an ack")
        table.add_row(
            "local alarms", f"{totals.alarms_raised} raised, {totals.alarms_active} active"
        )
        for event in self.fleet.alarms[-3:]:
            when = datetime.fromtimestamp(event.at_s, UTC).strftime("%H:%M")
            state = "RAISED" if event.raised else "cleared"
            table.add_row("", f"[red]{when} {event.kind} {event.subject} {state}: {event.detail}")
        unresolved = sum(1 for a in self.controller_alarms if a[3] != "resolved")
        table.add_row(
            "controller alarms (GSP)",
            f"{len(self.controller_alarms)} recent, {unresolved} not resolved "
            f"(acknowledge: POST {self.api_url}/api/v1/alarms/<id>/acknowledge)",
        )
        for alarm_id, kind, vehicle, state, detail in self.controller_alarms[:4]:
            table.add_row("", f"[yellow]#{alarm_id} {kind} {vehicle} {state}: {detail[:70]}")
        if self.world is not None:
            now_s = self.clock.now_s()
            plan = self.world.plan
            placed = sum(1 for o in self.world.orders if o.created_s <= now_s)
            delivered = sum(1 for d in plan.deliveries.values() if d.arrive_s <= now_s)
            driving = sum(
                any(t.depart_s <= now_s < t.end_s for t in trips) for trips in plan.trips.values()
            )
            table.add_row(
                "orders",
                f"{placed:,} placed, {delivered:,} delivered; {driving} vans on the road",
            )
        table.add_row("API", f"{self.api_url}/docs  ·  {self.api_url}/api/v1/vehicles")
        notes = "\n".join(self.services.notes)
        return Panel(Group(table, f"[dim]{notes}"), title="cold-chain demo", expand=False)


async def run_demo(
    settings: ControllerSettings, options: DemoOptions, console: Console
) -> DemoSummary:
    """Run the demo until Ctrl-C or `duration_s`; return the final counters."""
    workdir = options.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    async with resolve_services(
        database_url=settings.database_url,
        mqtt_url=settings.mqtt_url,
        data_dir=workdir / "embedded",
    ) as services:
        for note in services.notes:
            console.print(f"[yellow]{note}")
        await asyncio.to_thread(ensure_database, services.database_url)
        await asyncio.to_thread(migrate, services.database_url)
        api_port = _free_api_port(settings.api_host, settings.api_port)
        run_settings = settings.model_copy(
            update={
                "database_url": services.database_url,
                "mqtt_url": services.mqtt_url,
                "mqtt_protocol": services.mqtt_protocol,
                "shared_subscription": services.shared_subscription,
                "api_port": api_port,
            }
        )
        # Simulated time runs ahead of the wall clock: continue after the newest reading an
        # earlier run left behind, so nothing arrives "from the future".
        start_s = max(
            time.time(),
            await asyncio.to_thread(
                newest_reading_s, services.database_url, workdir / "fleet", "DEMO"
            ),
        )
        clock = ScaledClock(speed=options.speed, start_s=start_s)
        fleet = SimulatedFleet(
            spec=FleetSpec(vehicles=options.vehicles, id_prefix="DEMO"),
            mqtt_url=services.mqtt_url,
            mqtt_protocol=services.mqtt_protocol,
            topic_prefix=settings.topic_prefix,
            workdir=workdir / "fleet",
            clock=clock,
        )
        with connect(services.database_url) as conn:
            fleet.provision(conn)
            storage = "TimescaleDB hypertable" if is_hypertable(conn, "readings") else "plain table"
            row = conn.execute("SELECT count(*) FROM readings").fetchone()
            rows_before = int(row[0]) if row else 0
        service = IngestService(settings=run_settings, clock=clock)
        api_url = f"http://{settings.api_host}:{api_port}"
        dashboard = _Dashboard(
            fleet=fleet,
            service=service,
            clock=clock,
            services=services,
            api_url=api_url,
            storage=storage,
            rows_before=rows_before,
        )

        # A compressor fails on the first van: scripted like any scenario, so its local
        # excursion alarm shows up in the summary.
        script = parse_scenario(
            {
                "vehicles": options.vehicles,
                "duration_s": _DEMO_PLAN_S,
                "orders": {"per_day": 20 * options.vehicles},
                "failures": [
                    {
                        "at_s": options.compressor_failure_after_s,
                        "vehicles": 1,
                        "kind": "compressor_failure",
                    }
                ],
            },
            name="demo",
        )

        # The vans drive their rounds through the city (orders planned for a day ahead).
        world = build_world(
            script, [agent.settings.vehicle_id for agent in fleet.agents], start_s=clock.now_s()
        )
        follow_routes(fleet, world)
        dashboard.world = world

        async def scenario() -> None:
            start_s = clock.now_s()
            applied: set[tuple[int, int]] = set()
            while True:
                apply_faults(
                    fleet,
                    script,
                    elapsed_s=clock.now_s() - start_s,
                    start_s=start_s,
                    applied=applied,
                )
                await clock.sleep(30.0)

        final: list[FleetTotals] = []

        async def display() -> None:
            with Live(dashboard.render(), console=console, refresh_per_second=2) as live:
                started = time.monotonic()
                while options.duration_s is None or time.monotonic() - started < options.duration_s:
                    await asyncio.sleep(1.0)
                    with contextlib.suppress(psycopg.Error):
                        await asyncio.to_thread(dashboard.refresh_alarms)
                    live.update(dashboard.render())
            final.append(fleet.totals())
            raise _DemoOver

        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(
                    run_controller(run_settings, clock=clock, service=service), name="controller"
                )
                tg.create_task(fleet.run(), name="fleet")
                tg.create_task(scenario(), name="scenario")
                tg.create_task(display(), name="display")
        except* _DemoOver:
            pass
        finally:
            totals = final[0] if final else fleet.totals()
            fleet.close()
        return DemoSummary(
            rows_stored=rows_before + service.stats.readings_inserted,
            readings_acked=totals.acked,
            vehicles_online=totals.online,
            alarms_raised=totals.alarms_raised,
            dead_letters=service.stats.dead_letters,
        )


_DEMO_PLAN_S = 86_400.0  # the demo plans a day of orders; after that the vans stay parked


class _DemoOver(Exception):
    """The demo's duration has elapsed."""


def print_summary(summary: DemoSummary, console: Console) -> None:
    """One line a person (or a test) can read at the end."""
    console.print(
        f"demo finished: {summary.rows_stored:,} rows stored, {summary.readings_acked:,} "
        f"readings acknowledged, {summary.vehicles_online} vehicles online, "
        f"{summary.alarms_raised} local alarms, {summary.dead_letters} dead letters"
    )
