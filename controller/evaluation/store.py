"""SQL of the evaluation: compartment state, excursion records, readings to re-run."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from psycopg.rows import TupleRow

from controller.alarms.repository import publish_event
from controller.compliance.excursions import Excursion
from controller.compliance.models import Sample
from controller.evaluation.monitor import CompartmentView

Connection = psycopg.Connection[TupleRow]


def utc(ts_s: float) -> datetime:
    """UTC datetime of epoch seconds."""
    return datetime.fromtimestamp(ts_s, UTC)


def saved_view(conn: Connection, vehicle_id: str, compartment_id: str) -> dict[str, Any] | None:
    """A compartment's saved evaluation state, row-locked until the transaction ends."""
    row = conn.execute(
        "SELECT tracker FROM compartment_state WHERE vehicle_id = %s AND compartment_id = %s"
        " FOR UPDATE",
        (vehicle_id, compartment_id),
    ).fetchone()
    return None if row is None else dict(row[0])


def insert_excursion(
    conn: Connection, vehicle_id: str, compartment_id: str, e: Excursion, *, version: str
) -> None:
    """Record an excursion that met the alarm delay."""
    conn.execute(
        "INSERT INTO excursions (vehicle_id, compartment_id, direction, start_ts, end_ts,"
        " confirmed_ts, peak_c, probes, rulebook_version) VALUES"
        " (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            vehicle_id,
            compartment_id,
            e.direction,
            utc(e.start_s),
            None if e.end_s is None else utc(e.end_s),
            utc(e.confirmed_s),
            e.peak_c,
            list(e.probe_ids),
            version,
        ),
    )


def close_excursion(conn: Connection, vehicle_id: str, compartment_id: str, e: Excursion) -> None:
    """Update an excursion's end, peak and probes."""
    conn.execute(
        "UPDATE excursions SET end_ts = %s, peak_c = %s, probes = %s, decided_at = now()"
        " WHERE vehicle_id = %s AND compartment_id = %s AND start_ts = %s",
        (
            None if e.end_s is None else utc(e.end_s),
            e.peak_c,
            list(e.probe_ids),
            vehicle_id,
            compartment_id,
            utc(e.start_s),
        ),
    )


def save_state(
    conn: Connection,
    vehicle_id: str,
    compartment_id: str,
    view: CompartmentView,
    *,
    prediction: dict[str, Any] | None,
    now_s: float,
    version: str,
) -> None:
    """Store a compartment's state and tell live dashboards."""
    last_s = view.last_instant_s
    state = {
        "vehicle_id": vehicle_id,
        "compartment_id": compartment_id,
        "temperature_class": view.band.name,
        "status": view.status,
        "last_ts": None if last_s is None else utc(last_s).isoformat(),
        "in_band_since": None
        if view.in_band_since_s is None
        else utc(view.in_band_since_s).isoformat(),
        "latest_c": view.latest_c,
        "prediction": prediction,
        "rulebook_version": version,
    }
    conn.execute(
        "INSERT INTO compartment_state (vehicle_id, compartment_id, temperature_class,"
        " rulebook_version, status, last_ts, in_band_since, latest, prediction, tracker,"
        " updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (vehicle_id, compartment_id) DO UPDATE SET"
        " temperature_class = excluded.temperature_class,"
        " rulebook_version = excluded.rulebook_version, status = excluded.status,"
        " last_ts = excluded.last_ts, in_band_since = excluded.in_band_since,"
        " latest = excluded.latest,"
        " prediction = coalesce(excluded.prediction, compartment_state.prediction),"
        " tracker = excluded.tracker, updated_at = excluded.updated_at",
        (
            vehicle_id,
            compartment_id,
            view.band.name,
            version,
            view.status,
            None if last_s is None else utc(last_s),
            None if view.in_band_since_s is None else utc(view.in_band_since_s),
            orjson.dumps(view.latest_c).decode(),
            None if prediction is None else orjson.dumps(prediction).decode(),
            orjson.dumps(view.saved()).decode(),
            utc(now_s),
        ),
    )
    publish_event(conn, {"type": "compartment", "state": state})


def temperature_samples(
    conn: Connection,
    vehicle_id: str,
    compartment_id: str,
    *,
    from_s: float,
    to_s: float | None = None,
) -> list[Sample]:
    """A compartment's stored probe readings from `from_s` (to `to_s`), oldest first."""
    return [
        Sample(float(ts), channel.rsplit(":", 1)[1], float(value))
        for ts, channel, value in conn.execute(
            "SELECT extract(epoch FROM ts), channel, value FROM readings"
            " WHERE vehicle_id = %s AND ts >= %s AND (%s::timestamptz IS NULL OR ts <= %s)"
            " AND channel LIKE %s ORDER BY ts",
            (
                vehicle_id,
                utc(from_s),
                None if to_s is None else utc(to_s),
                None if to_s is None else utc(to_s),
                f"temp:{compartment_id}:%",
            ),
        )
    ]
