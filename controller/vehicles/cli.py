"""`coldchain vehicles ...`: register vehicles and list the registry."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any, NoReturn

import psycopg
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from coldchain_protocol.config import ConfigError, load_settings
from controller.errors import ControllerError, RegistrationError
from controller.settings import ControllerSettings
from controller.storage.db import connect
from controller.vehicles.models import VehicleSpec, parse_vehicle, parse_vehicle_toml
from controller.vehicles.rules import ProbeRules
from controller.vehicles.service import list_vehicles, register_vehicle

app = typer.Typer(
    help="Register vehicles (GSP probe checks, key pair, broker credentials) and list them.",
    no_args_is_help=True,
)

_out = Console()
_err = Console(stderr=True)
EXIT_USAGE = 2


def _fail(message: str) -> NoReturn:
    # User input ends up in messages and table cells: escape it so rich never reads it as markup.
    _err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(EXIT_USAGE)


def _settings(ctx: typer.Context) -> ControllerSettings:
    if isinstance(ctx.obj, ControllerSettings):
        return ctx.obj
    try:
        return load_settings(ControllerSettings)
    except ConfigError as exc:
        _fail(str(exc))


def _parse_compartment_option(text: str) -> dict[str, Any]:
    parts = text.split(":")
    if len(parts) != 3:
        raise RegistrationError("--compartment", f"{text!r} is not ID:CLASS:VOLUME_M3")
    cid, tclass, volume = parts
    try:
        volume_m3 = float(volume)
    except ValueError as exc:
        raise RegistrationError("--compartment", f"{text!r}: volume is not a number") from exc
    return {
        "compartment_id": cid,
        "temperature_class": tclass,
        "volume_m3": volume_m3,
        "probes": [],
    }


def _parse_probe_option(text: str) -> tuple[str, dict[str, Any]]:
    head = text.split(":", 2)
    tail = head[2].rsplit(":", 2) if len(head) == 3 else []
    if len(tail) != 3:
        raise RegistrationError(
            "--probe", f"{text!r} is not COMPARTMENT:PROBE:POSITION:ACCURACY_C:CALIBRATION_DUE"
        )
    compartment_id, probe_id = head[0], head[1]
    position, accuracy, due = tail
    try:
        accuracy_c = float(accuracy)
    except ValueError as exc:
        raise RegistrationError("--probe", f"{text!r}: accuracy is not a number") from exc
    probe = {
        "probe_id": probe_id,
        "position": position,
        "accuracy_c": accuracy_c,
        "calibration_due": due,
    }
    return compartment_id, probe


def spec_from_options(
    *, vehicle_id: str, display_name: str, compartments: list[str], probes: list[str]
) -> VehicleSpec:
    """Build a VehicleSpec from the `add` command's options; raise RegistrationError when bad."""
    tables = [_parse_compartment_option(text) for text in compartments]
    by_id = {table["compartment_id"]: table for table in tables}
    for text in probes:
        compartment_id, probe = _parse_probe_option(text)
        if compartment_id not in by_id:
            raise RegistrationError(
                "--probe",
                f"{text!r} names compartment {compartment_id!r}, not given by --compartment",
            )
        by_id[compartment_id]["probes"].append(probe)
    return parse_vehicle(
        {"vehicle_id": vehicle_id, "display_name": display_name, "compartments": tables}
    )


def _spec(
    file: Path | None,
    vehicle_id: str | None,
    name: str | None,
    compartments: list[str],
    probes: list[str],
) -> VehicleSpec:
    if file is not None:
        if vehicle_id or name or compartments or probes:
            raise RegistrationError(
                "--file", "give either --file or --id/--name/--compartment/--probe, not both"
            )
        try:
            text = file.read_text("utf-8")
        except OSError as exc:
            raise RegistrationError("--file", f"cannot read {file}: {exc.strerror}") from exc
        return parse_vehicle_toml(text)
    if not vehicle_id:
        raise RegistrationError("--id", "missing (or give --file)")
    if not name:
        raise RegistrationError("--name", "missing (or give --file)")
    if not compartments:
        raise RegistrationError("--compartment", "give at least one (or give --file)")
    return spec_from_options(
        vehicle_id=vehicle_id, display_name=name, compartments=compartments, probes=probes
    )


@app.command("add")
def add_command(
    ctx: typer.Context,
    file: Annotated[
        Path | None,
        typer.Option("--file", help="Vehicle TOML file (vehicle_id, display_name, compartments)."),
    ] = None,
    vehicle_id: Annotated[
        str | None, typer.Option("--id", help="Vehicle id, also its MQTT user name.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
    compartment: Annotated[
        list[str] | None,
        typer.Option(
            "--compartment",
            metavar="ID:CLASS:VOLUME_M3",
            help="A compartment, repeatable; CLASS is refrigerated, frozen, cold, cool or room.",
        ),
    ] = None,
    probe: Annotated[
        list[str] | None,
        typer.Option(
            "--probe",
            metavar="COMPARTMENT:PROBE:POSITION:ACCURACY_C:DUE",
            help="A probe of a compartment; DUE is the calibration due date (YYYY-MM-DD). "
            "Repeatable.",
        ),
    ] = None,
    broker_url: Annotated[
        str | None,
        typer.Option(
            "--broker-url",
            help="Broker URL the vehicle's gateway connects to (default: the controller's).",
        ),
    ] = None,
) -> None:
    """Register a vehicle and write its gateway files and broker credentials."""
    settings = _settings(ctx)
    try:
        spec = _spec(file, vehicle_id, name, compartment or [], probe or [])
        with connect(settings.database_url) as conn:
            result = register_vehicle(
                conn,
                spec,
                rules=ProbeRules(),
                today=date.today(),
                credentials_dir=Path(settings.credentials_dir),
                password_file=Path(settings.broker_password_file),
                broker_url=broker_url or settings.mqtt_url,
                topic_prefix=settings.topic_prefix,
            )
    except RegistrationError as exc:
        _fail(f"{exc.field}: {exc.message}")
    except ControllerError as exc:
        _fail(str(exc))
    except psycopg.Error as exc:
        _fail(f"database: {str(exc).strip()}")
    except OSError as exc:
        _fail(f"cannot write {exc.filename}: {exc.strerror}")
    _out.print(f"registered vehicle [bold]{escape(result.vehicle_id)}[/]", highlight=False)
    for warning in result.warnings:
        _out.print(
            f"[yellow]warning:[/] {escape(f'{warning.field}: {warning.message}')}", highlight=False
        )
    _out.print(f"gateway files: {escape(str(result.vehicle_dir))} (copy to /etc/coldchain-edge/)")
    _out.print(
        f"broker password file updated: {escape(str(result.password_file))}"
        " (reload the broker: SIGHUP)"
    )


@app.command("list")
def list_command(ctx: typer.Context) -> None:
    """List registered vehicles with their compartments and probes."""
    settings = _settings(ctx)
    try:
        with connect(settings.database_url) as conn:
            records = list_vehicles(conn)
    except ControllerError as exc:
        _fail(str(exc))
    except psycopg.Error as exc:
        _fail(f"database: {str(exc).strip()}")
    table = Table(title=f"{len(records)} registered vehicle(s)")
    for column in ("vehicle", "name", "compartments", "probes", "next calibration", "registered"):
        table.add_column(column)
    for record in records:
        spec = record.spec
        probes = [p for c in spec.compartments for p in c.probes]
        due = min((p.calibration_due for p in probes), default=None)
        table.add_row(
            spec.vehicle_id,
            escape(spec.display_name),
            "\n".join(
                f"{c.compartment_id}: {c.temperature_class}, {c.volume_m3:g} m3"
                for c in spec.compartments
            ),
            str(len(probes)),
            due.isoformat() if due else "-",
            record.registered_at.strftime("%Y-%m-%d %H:%M %Z"),
        )
    _out.print(table)
