"""Vehicle registration: GSP checks, the vehicle's key pair, gateway files, broker credentials.

The gateway's files land in ``<credentials_dir>/<vehicle_id>/``:

- ``vehicle.key``: the Ed25519 private key (PKCS#8 PEM, mode 0600); its public half is stored in
  ``vehicles.public_key_pem`` so the controller can verify every telemetry batch.
- ``agent.toml`` (mode 0600, it holds the broker password): the edge agent's configuration.

Keys of ``agent.toml``:

- ``vehicle_id``: the vehicle id, also the MQTT user name.
- ``mqtt_url``: ``mqtt://<vehicle_id>:<password>@host:port`` (``mqtts://`` when the broker URL is).
- ``topic_prefix``: the topic prefix (topics are ``<prefix>/v1/<vehicle_id>/<kind>``).
- ``private_key_file``: where the gateway keeps ``vehicle.key`` (default
  ``/etc/coldchain-edge/vehicle.key``, next to ``/etc/coldchain-edge/agent.toml``).
- ``outbox_path``: the agent's SQLite outbox (default ``/var/lib/coldchain-edge/outbox.db``).
- ``[[compartments]]``: one table per compartment with ``compartment_id``,
  ``temperature_class``, ``low_c`` and ``high_c`` (the class's limits in °C; a key is left out
  when the class has no limit on that side, e.g. ``cool`` has only ``high_c = 20.0``) and
  ``probes``, the list of probe ids (channels ``temp:<compartment_id>:<probe_id>``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import quote, urlsplit

from coldchain_protocol.signing import generate_private_key, private_key_pem, public_key_pem
from controller.errors import RegistrationError
from controller.vehicles import repository
from controller.vehicles.credentials import (
    DEFAULT_CONTROLLER_USERNAME,
    check_topic_prefix,
    generate_password,
    upsert_password,
    write_file_atomic,
)
from controller.vehicles.models import VehicleRecord, VehicleSpec
from controller.vehicles.repository import Connection
from controller.vehicles.rules import (
    TEMPERATURE_CLASSES,
    Finding,
    ProbeRules,
    blocking,
    check_vehicle,
)

KEY_FILE_NAME = "vehicle.key"
AGENT_CONFIG_NAME = "agent.toml"


@dataclass(frozen=True, slots=True)
class GatewayPaths:
    """Where the files written at registration live on the vehicle's gateway."""

    private_key_file: str = "/etc/coldchain-edge/vehicle.key"
    outbox_path: str = "/var/lib/coldchain-edge/outbox.db"


DEFAULT_GATEWAY_PATHS = GatewayPaths()


@dataclass(frozen=True, slots=True)
class RegistrationResult:
    """What registering a vehicle produced; `warnings` did not block (e.g. overdue calibration)."""

    vehicle_id: str
    warnings: tuple[Finding, ...]
    vehicle_dir: Path
    private_key_file: Path
    agent_config_file: Path
    password_file: Path
    public_key_pem: str


def agent_mqtt_url(broker_url: str, *, username: str, password: str) -> str:
    """The broker URL with the vehicle's user name and password in it (any other user dropped)."""
    parts = urlsplit(broker_url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise RegistrationError("broker_url", f"{broker_url!r} is not an mqtt:// or mqtts:// URL")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = f":{parts.port}" if parts.port is not None else ""
    userinfo = f"{quote(username, safe='')}:{quote(password, safe='')}"
    return f"{parts.scheme}://{userinfo}@{host}{port}"


def _toml_str(value: str) -> str:
    # A JSON string literal is a valid TOML basic string.
    return json.dumps(value)


def render_agent_config(
    spec: VehicleSpec, *, mqtt_url: str, topic_prefix: str, paths: GatewayPaths
) -> str:
    """Render the edge agent's ``agent.toml`` for a vehicle (keys: see the module docstring)."""
    lines = [
        f"# Edge agent configuration of vehicle {spec.vehicle_id} ({spec.display_name}).",
        "# Written by `coldchain vehicles add`; it holds the broker password: keep it 0600.",
        f"vehicle_id = {_toml_str(spec.vehicle_id)}",
        f"mqtt_url = {_toml_str(mqtt_url)}",
        f"topic_prefix = {_toml_str(topic_prefix)}",
        f"private_key_file = {_toml_str(paths.private_key_file)}",
        f"outbox_path = {_toml_str(paths.outbox_path)}",
    ]
    for compartment in spec.compartments:
        tclass = TEMPERATURE_CLASSES[compartment.temperature_class]
        lines += [
            "",
            "[[compartments]]",
            f"compartment_id = {_toml_str(compartment.compartment_id)}",
            f"temperature_class = {_toml_str(compartment.temperature_class)}",
        ]
        if tclass.low_c is not None:
            lines.append(f"low_c = {float(tclass.low_c)!r}")
        if tclass.high_c is not None:
            lines.append(f"high_c = {float(tclass.high_c)!r}")
        probes = ", ".join(_toml_str(p.probe_id) for p in compartment.probes)
        lines.append(f"probes = [{probes}]")
    return "\n".join(lines) + "\n"


def _raise_blocking(findings: list[Finding]) -> None:
    errors = blocking(findings)
    if not errors:
        return
    first, rest = errors[0], errors[1:]
    message = first.message
    if rest:
        message += "; also " + "; ".join(f"{f.field}: {f.message}" for f in rest)
    raise RegistrationError(first.field, message)


def register_vehicle(
    conn: Connection,
    spec: VehicleSpec,
    *,
    rules: ProbeRules,
    today: date,
    credentials_dir: Path,
    password_file: Path,
    broker_url: str,
    topic_prefix: str,
    controller_username: str = DEFAULT_CONTROLLER_USERNAME,
    gateway_paths: GatewayPaths = DEFAULT_GATEWAY_PATHS,
) -> RegistrationResult:
    """Check, store and provision a vehicle; raise RegistrationError naming the field at fault.

    The broker reads the password file at start and on SIGHUP: reload it afterwards.
    """
    check_topic_prefix(topic_prefix)
    if spec.vehicle_id == controller_username:
        raise RegistrationError("vehicle_id", f"{spec.vehicle_id!r} is the controller's user name")
    findings = check_vehicle(spec, rules=rules, today=today)
    _raise_blocking(findings)
    password = generate_password()
    mqtt_url = agent_mqtt_url(broker_url, username=spec.vehicle_id, password=password)
    key = generate_private_key()
    public_pem = public_key_pem(key)
    vehicle_dir = credentials_dir / spec.vehicle_id
    key_file = vehicle_dir / KEY_FILE_NAME
    config_file = vehicle_dir / AGENT_CONFIG_NAME
    # Files and the broker password are written inside the transaction: a duplicate id fails
    # before anything of the registered vehicle is touched, and a failed write rolls back the row.
    with conn.transaction():
        repository.insert_vehicle(conn, spec, public_key_pem=public_pem)
        vehicle_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_file_atomic(key_file, private_key_pem(key), mode=0o600)
        config = render_agent_config(
            spec, mqtt_url=mqtt_url, topic_prefix=topic_prefix, paths=gateway_paths
        )
        write_file_atomic(config_file, config.encode("utf-8"), mode=0o600)
        upsert_password(password_file, username=spec.vehicle_id, password=password)
    return RegistrationResult(
        vehicle_id=spec.vehicle_id,
        warnings=tuple(f for f in findings if f.severity == "warning"),
        vehicle_dir=vehicle_dir,
        private_key_file=key_file,
        agent_config_file=config_file,
        password_file=password_file,
        public_key_pem=public_pem,
    )


def list_vehicles(conn: Connection) -> list[VehicleRecord]:
    """Every registered vehicle, ordered by id."""
    return repository.list_vehicles(conn)


def get_vehicle(conn: Connection, vehicle_id: str) -> VehicleRecord:
    """One registered vehicle; raise NotFound when it is not registered."""
    return repository.get_vehicle(conn, vehicle_id)


def public_keys(conn: Connection) -> dict[str, str]:
    """Public key PEM of every registered vehicle, by vehicle id (for signature checks)."""
    return repository.public_keys(conn)
