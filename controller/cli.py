"""`coldchain`: controller, administration, simulator and demo commands."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer

from coldchain_protocol.config import ConfigError, load_settings
from controller.errors import ControllerError
from controller.settings import ControllerSettings

app = typer.Typer(
    help="Cold-chain platform: controller, vehicle registry, database, simulator and demo.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
controller_app = typer.Typer(help="Run the controller (ingest + API).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(controller_app, name="controller")


def _register_vehicles() -> None:
    from controller.vehicles.cli import app as vehicles_app

    app.add_typer(vehicles_app, name="vehicles", help="Register and list vehicles.")


_register_vehicles()


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Controller TOML file. Environment variables COLDCHAIN_<KEY> (e.g. "
            "COLDCHAIN_DATABASE_URL, COLDCHAIN_MQTT_URL) override its values.",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
) -> None:
    """Load and validate the settings once; a bad key stops here with its name."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if ctx.resilient_parsing:
        return
    try:
        ctx.obj = load_settings(ControllerSettings, config_file=config)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def settings_of(ctx: typer.Context) -> ControllerSettings:
    """The settings the root callback loaded."""
    obj = ctx.obj
    if not isinstance(obj, ControllerSettings):
        obj = load_settings(ControllerSettings)
    return obj


@db_app.command("migrate")
def db_migrate(ctx: typer.Context) -> None:
    """Apply pending versioned migrations (TimescaleDB hypertable when available)."""
    from controller.storage.db import migrate

    try:
        done = migrate(settings_of(ctx).database_url)
    except ControllerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo("applied: " + (", ".join(done) if done else "nothing (up to date)"))


@controller_app.command("run")
def controller_run(
    ctx: typer.Context,
    api: Annotated[bool, typer.Option(help="Serve the HTTP API in this process.")] = True,
    migrate_first: Annotated[
        bool, typer.Option("--migrate/--no-migrate", help="Apply pending migrations first.")
    ] = False,
) -> None:
    """Run ingest (MQTT shared subscription -> TimescaleDB) and the API until SIGINT/SIGTERM."""
    from controller.runner import run_controller
    from controller.storage.db import migrate
    from edge_agent.clock import SystemClock

    settings = settings_of(ctx)
    try:
        if migrate_first:
            migrate(settings.database_url)
        asyncio.run(run_controller(settings, clock=SystemClock(), api=api))
    except ControllerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        typer.echo("stopped")


def main() -> None:
    """Console entry point."""
    app()


@app.command()
def demo(
    ctx: typer.Context,
    vehicles: Annotated[int, typer.Option(min=1, max=5000, help="Simulated vehicles.")] = 30,
    speed: Annotated[
        float, typer.Option(min=1.0, help="Simulated seconds per real second.")
    ] = 30.0,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many real seconds (default: Ctrl-C).")
    ] = None,
    workdir: Annotated[
        Path, typer.Option(help="Where agent outboxes, keys and embedded services live.")
    ] = Path("var/demo"),
) -> None:
    """Run the controller and a simulated fleet with a live summary (the main job)."""
    from rich.console import Console

    from simulators.demo import DemoOptions, print_summary, run_demo

    console = Console()
    options = DemoOptions(vehicles=vehicles, speed=speed, duration_s=duration, workdir=workdir)
    try:
        summary = asyncio.run(run_demo(settings_of(ctx), options, console))
    except KeyboardInterrupt:
        console.print("stopped")
        return
    except ControllerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    print_summary(summary, console)


def _register_simulators() -> None:
    from simulators.cli import load, sim

    app.command()(sim)
    app.command()(load)


_register_simulators()
