"""SQL adapter of the vehicle registry: tables vehicles, compartments and probes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from controller.errors import NotFound, RegistrationError
from controller.vehicles.models import CompartmentSpec, ProbeSpec, VehicleRecord, VehicleSpec

Connection = psycopg.Connection[Any]


def insert_vehicle(conn: Connection, spec: VehicleSpec, *, public_key_pem: str) -> None:
    """Insert a vehicle with its compartments and probes in one transaction (or savepoint)."""
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(
                "INSERT INTO vehicles (vehicle_id, display_name, public_key_pem)"
                " VALUES (%s, %s, %s)",
                (spec.vehicle_id, spec.display_name, public_key_pem),
            )
            cur.executemany(
                "INSERT INTO compartments"
                " (vehicle_id, compartment_id, temperature_class, volume_m3)"
                " VALUES (%s, %s, %s, %s)",
                [
                    (spec.vehicle_id, c.compartment_id, c.temperature_class, c.volume_m3)
                    for c in spec.compartments
                ],
            )
            cur.executemany(
                "INSERT INTO probes (vehicle_id, compartment_id, probe_id, position,"
                " accuracy_c, calibration_due) VALUES (%s, %s, %s, %s, %s, %s)",
                [
                    (
                        spec.vehicle_id,
                        c.compartment_id,
                        p.probe_id,
                        p.position,
                        p.accuracy_c,
                        p.calibration_due,
                    )
                    for c in spec.compartments
                    for p in c.probes
                ],
            )
    except psycopg.errors.UniqueViolation as exc:
        if exc.diag.table_name == "vehicles":
            raise RegistrationError("vehicle_id", "already registered") from exc
        raise RegistrationError("compartments", f"duplicate id: {exc.diag.message_detail}") from exc


def _assemble(
    vehicle_rows: Sequence[tuple[Any, ...]],
    compartment_rows: Sequence[tuple[Any, ...]],
    probe_rows: Sequence[tuple[Any, ...]],
) -> list[VehicleRecord]:
    probes: dict[tuple[str, str], list[ProbeSpec]] = {}
    for vid, cid, pid, position, accuracy, due in probe_rows:
        probes.setdefault((str(vid), str(cid)), []).append(
            ProbeSpec(str(pid), str(position), float(accuracy), due)
        )
    compartments: dict[str, list[CompartmentSpec]] = {}
    for vid, cid, tclass, volume in compartment_rows:
        compartments.setdefault(str(vid), []).append(
            CompartmentSpec(
                str(cid), str(tclass), float(volume), tuple(probes.get((str(vid), str(cid)), ()))
            )
        )
    records = []
    for vid, name, pem, registered_at in vehicle_rows:
        spec = VehicleSpec(str(vid), str(name), tuple(compartments.get(str(vid), ())))
        records.append(VehicleRecord(spec, str(pem), registered_at))
    return records


def _select(conn: Connection, vehicle_id: str | None) -> list[VehicleRecord]:
    where = "" if vehicle_id is None else " WHERE vehicle_id = %(vid)s"
    params = {"vid": vehicle_id}
    with conn.cursor(row_factory=tuple_row) as cur:
        vehicles = cur.execute(
            "SELECT vehicle_id, display_name, public_key_pem, registered_at FROM vehicles"
            f"{where} ORDER BY vehicle_id",
            params,
        ).fetchall()
        compartments = cur.execute(
            "SELECT vehicle_id, compartment_id, temperature_class, volume_m3 FROM compartments"
            f"{where} ORDER BY vehicle_id, compartment_id",
            params,
        ).fetchall()
        probes = cur.execute(
            "SELECT vehicle_id, compartment_id, probe_id, position, accuracy_c, calibration_due"
            f" FROM probes{where} ORDER BY vehicle_id, compartment_id, probe_id",
            params,
        ).fetchall()
    return _assemble(vehicles, compartments, probes)


def list_vehicles(conn: Connection) -> list[VehicleRecord]:
    """Every registered vehicle, ordered by id."""
    return _select(conn, None)


def get_vehicle(conn: Connection, vehicle_id: str) -> VehicleRecord:
    """One registered vehicle; raise NotFound when it is not registered."""
    records = _select(conn, vehicle_id)
    if not records:
        raise NotFound("vehicle", vehicle_id)
    return records[0]


def public_keys(conn: Connection) -> dict[str, str]:
    """Public key PEM of every registered vehicle, by vehicle id."""
    with conn.cursor(row_factory=tuple_row) as cur:
        rows = cur.execute("SELECT vehicle_id, public_key_pem FROM vehicles").fetchall()
    return {str(vid): str(pem) for vid, pem in rows}
