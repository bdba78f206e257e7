"""`coldchain-edge`: the vehicle gateway agent."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from coldchain_protocol import ProtocolError
from coldchain_protocol.config import ConfigError, load_settings
from edge_agent.errors import EdgeError
from edge_agent.settings import AgentSettings

app = typer.Typer(
    help="Cold-chain edge agent: samples probes into a durable outbox and publishes them over MQTT.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Agent TOML file (as written by `coldchain vehicles add`). Environment variables "
        "COLDCHAIN_EDGE_<KEY> override its values.",
        exists=False,
    ),
]
LogLevel = Annotated[str, typer.Option(help="Log level: DEBUG, INFO, WARNING or ERROR.")]


def _settings(config: Path | None) -> AgentSettings:
    try:
        return load_settings(AgentSettings, config_file=config)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def run(config: ConfigOption = None, log_level: LogLevel = "INFO") -> None:
    """Run the agent until interrupted (SIGINT/SIGTERM); every reading survives a crash."""
    from edge_agent.agent import run_until_stopped
    from edge_agent.runtime import build_agent

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = _settings(config)
    try:
        agent = build_agent(settings)
    except (ConfigError, ProtocolError, EdgeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, agent.stop)
        await run_until_stopped(agent)

    asyncio.run(main())


@app.command()
def status(config: ConfigOption = None) -> None:
    """Print the running agent's last status (outbox depth, oldest unacknowledged age, ...)."""
    settings = _settings(config)
    if settings.status_file is None or not settings.status_file.exists():
        typer.echo("error: no status file (set status_file in the agent config)", err=True)
        raise typer.Exit(2)
    sys.stdout.write(
        orjson.dumps(
            orjson.loads(settings.status_file.read_bytes()), option=orjson.OPT_INDENT_2
        ).decode()
        + "\n"
    )


@app.command("check-config")
def check_config(config: ConfigOption = None) -> None:
    """Validate the configuration and exit (0 when valid, 2 with the offending key otherwise)."""
    settings = _settings(config)
    typer.echo(f"ok: vehicle {settings.vehicle_id}, {len(settings.compartments)} compartment(s)")


def main() -> None:
    """Console entry point."""
    app()
