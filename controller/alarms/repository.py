"""Alarm records and their lifecycle in PostgreSQL: open -> acknowledged -> resolved.

Every change appends an `alarm_events` row (the audit trail is append-only) and a
`pg_notify('coldchain_events', ...)` that live dashboards receive when the transaction commits.
An alarm resolves when its condition has cleared and a person has acknowledged it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

import orjson
import psycopg
from psycopg.rows import TupleRow, tuple_row

from controller.errors import ControllerError, NotFound

AlarmState = Literal["open", "acknowledged", "resolved"]
Severity = Literal["warning", "critical"]
EVENTS_CHANNEL = "coldchain_events"

_COLUMNS = (
    "alarm_id, kind, vehicle_id, compartment_id, severity, state, condition_active, detail,"
    " data_ts, opened_at, cleared_at, acknowledged_by, acknowledged_at, ack_comment,"
    " resolved_at, escalation_level, notifications_sent, next_notify_at, rulebook_version"
)


class AlarmStateError(ControllerError):
    """The alarm cannot make this change from its current state."""

    def __init__(self, alarm_id: int, state: str, message: str) -> None:
        super().__init__(f"alarm {alarm_id} is {state}: {message}")
        self.alarm_id = alarm_id
        self.state = state
        self.message = message


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarm as stored."""

    alarm_id: int
    kind: str
    vehicle_id: str
    compartment_id: str
    severity: str
    state: str
    condition_active: bool
    detail: str
    data_ts: datetime
    opened_at: datetime
    cleared_at: datetime | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    ack_comment: str | None
    resolved_at: datetime | None
    escalation_level: int
    notifications_sent: int
    next_notify_at: datetime | None
    rulebook_version: str

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO 8601 strings)."""
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """One entry of an alarm's audit trail."""

    event_id: int
    at: datetime
    event: str
    actor: str
    detail: dict[str, Any]


def _q(
    conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...]
) -> psycopg.Cursor[TupleRow]:
    """Run a query with tuple rows whatever the connection's row factory."""
    return conn.cursor(row_factory=tuple_row).execute(query, params)


def _row(row: TupleRow) -> Alarm:
    return Alarm(*row)


def _record(
    conn: psycopg.Connection[Any],
    alarm: Alarm,
    *,
    event: str,
    actor: str,
    at: datetime,
    detail: dict[str, Any] | None = None,
) -> None:
    _q(
        conn,
        "INSERT INTO alarm_events (alarm_id, at, event, actor, detail) VALUES (%s, %s, %s, %s, %s)",
        (alarm.alarm_id, at, event, actor, orjson.dumps(detail or {}).decode()),
    )
    publish_event(conn, {"type": "alarm", "event": event, "alarm": alarm.as_json()})


def publish_event(conn: psycopg.Connection[Any], payload: dict[str, Any]) -> None:
    """Queue a live event for dashboards; PostgreSQL delivers it when the transaction commits."""
    _q(conn, "SELECT pg_notify(%s, %s)", (EVENTS_CHANNEL, orjson.dumps(payload).decode()))


def raise_alarm(
    conn: psycopg.Connection[Any],
    *,
    kind: str,
    vehicle_id: str,
    compartment_id: str = "",
    severity: Severity,
    detail: str,
    data_ts: datetime,
    now: datetime,
    rulebook_version: str,
) -> Alarm:
    """Open an alarm, or mark the unresolved one of the same kind active again."""
    row = _q(
        conn,
        f"INSERT INTO alarms (kind, vehicle_id, compartment_id, severity, state, condition_active,"
        f" detail, data_ts, opened_at, next_notify_at, rulebook_version)"
        f" VALUES (%s, %s, %s, %s, 'open', true, %s, %s, %s, %s, %s)"
        f" ON CONFLICT (kind, vehicle_id, compartment_id) WHERE state <> 'resolved' DO NOTHING"
        f" RETURNING {_COLUMNS}",
        (kind, vehicle_id, compartment_id, severity, detail, data_ts, now, now, rulebook_version),
    ).fetchone()
    if row is not None:
        alarm = _row(row)
        _record(conn, alarm, event="opened", actor="controller", at=now, detail={"detail": detail})
        return alarm
    existing = _unresolved(conn, kind=kind, vehicle_id=vehicle_id, compartment_id=compartment_id)
    if existing.condition_active:
        return existing
    again = _q(
        conn,
        f"UPDATE alarms SET condition_active = true, cleared_at = NULL, detail = %s"
        f" WHERE alarm_id = %s RETURNING {_COLUMNS}",
        (detail, existing.alarm_id),
    ).fetchone()
    assert again is not None
    alarm = _row(again)
    _record(conn, alarm, event="recurred", actor="controller", at=now, detail={"detail": detail})
    return alarm


def _unresolved(
    conn: psycopg.Connection[Any], *, kind: str, vehicle_id: str, compartment_id: str
) -> Alarm:
    row = _q(
        conn,
        f"SELECT {_COLUMNS} FROM alarms WHERE kind = %s AND vehicle_id = %s"
        f" AND compartment_id = %s AND state <> 'resolved' FOR UPDATE",
        (kind, vehicle_id, compartment_id),
    ).fetchone()
    if row is None:
        raise NotFound("alarm", f"{kind}/{vehicle_id}/{compartment_id}")
    return _row(row)


def clear_condition(
    conn: psycopg.Connection[Any],
    *,
    kind: str,
    vehicle_id: str,
    compartment_id: str = "",
    now: datetime,
    detail: str,
) -> Alarm | None:
    """The alarm's cause is gone: record it; an acknowledged alarm resolves."""
    row = _q(
        conn,
        f"UPDATE alarms SET condition_active = false, cleared_at = %s,"
        f" state = CASE WHEN state = 'acknowledged' THEN 'resolved' ELSE state END,"
        f" resolved_at = CASE WHEN state = 'acknowledged' THEN %s ELSE resolved_at END"
        f" WHERE kind = %s AND vehicle_id = %s AND compartment_id = %s"
        f" AND state <> 'resolved' AND condition_active RETURNING {_COLUMNS}",
        (now, now, kind, vehicle_id, compartment_id),
    ).fetchone()
    if row is None:
        return None
    alarm = _row(row)
    _record(conn, alarm, event="cleared", actor="controller", at=now, detail={"detail": detail})
    if alarm.state == "resolved":
        _record(
            conn,
            alarm,
            event="resolved",
            actor="controller",
            at=now,
            detail={"detail": "condition cleared after acknowledgement"},
        )
    return alarm


def get_alarm(conn: psycopg.Connection[Any], alarm_id: int, *, lock: bool = False) -> Alarm:
    """One alarm by id (NotFound if there is none)."""
    row = _q(
        conn,
        f"SELECT {_COLUMNS} FROM alarms WHERE alarm_id = %s{' FOR UPDATE' if lock else ''}",
        (alarm_id,),
    ).fetchone()
    if row is None:
        raise NotFound("alarm", str(alarm_id))
    return _row(row)


def alarm_events(conn: psycopg.Connection[Any], alarm_id: int) -> list[AlarmEvent]:
    """The audit trail of one alarm, oldest first."""
    rows = _q(
        conn,
        "SELECT event_id, at, event, actor, detail FROM alarm_events WHERE alarm_id = %s"
        " ORDER BY event_id",
        (alarm_id,),
    ).fetchall()
    return [AlarmEvent(*row) for row in rows]


def acknowledge(
    conn: psycopg.Connection[Any], alarm_id: int, *, by: str, comment: str, now: datetime
) -> Alarm:
    """A person takes charge: notifications stop; a cleared alarm resolves at once."""
    alarm = get_alarm(conn, alarm_id, lock=True)
    if alarm.state != "open":
        raise AlarmStateError(alarm_id, alarm.state, "only an open alarm can be acknowledged")
    resolved = not alarm.condition_active
    row = _q(
        conn,
        f"UPDATE alarms SET state = %s, acknowledged_by = %s, acknowledged_at = %s,"
        f" ack_comment = %s, next_notify_at = NULL, resolved_at = %s"
        f" WHERE alarm_id = %s RETURNING {_COLUMNS}",
        (
            "resolved" if resolved else "acknowledged",
            by,
            now,
            comment,
            now if resolved else None,
            alarm_id,
        ),
    ).fetchone()
    assert row is not None
    updated = _row(row)
    _record(conn, updated, event="acknowledged", actor=by, at=now, detail={"comment": comment})
    if resolved:
        _record(
            conn,
            updated,
            event="resolved",
            actor=by,
            at=now,
            detail={"detail": "acknowledged after the condition cleared"},
        )
    return updated


def resolve(
    conn: psycopg.Connection[Any], alarm_id: int, *, by: str, comment: str, now: datetime
) -> Alarm:
    """Close an alarm whose condition has cleared (acknowledging it if nobody had)."""
    alarm = get_alarm(conn, alarm_id, lock=True)
    if alarm.state == "resolved":
        raise AlarmStateError(alarm_id, alarm.state, "already resolved")
    if alarm.condition_active:
        raise AlarmStateError(
            alarm_id, alarm.state, "its condition is still active; acknowledge it instead"
        )
    if alarm.state == "open":
        return acknowledge(conn, alarm_id, by=by, comment=comment, now=now)
    row = _q(
        conn,
        f"UPDATE alarms SET state = 'resolved', resolved_at = %s WHERE alarm_id = %s"
        f" RETURNING {_COLUMNS}",
        (now, alarm_id),
    ).fetchone()
    assert row is not None
    updated = _row(row)
    _record(conn, updated, event="resolved", actor=by, at=now, detail={"comment": comment})
    return updated


def list_alarms(
    conn: psycopg.Connection[Any],
    *,
    state: str | None = None,
    kind: str | None = None,
    vehicle_id: str | None = None,
    compartment_id: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[Alarm]:
    """Alarms matching every given filter, newest first."""
    where: list[str] = ["true"]
    params: list[Any] = []
    for column, value in (
        ("state", state),
        ("kind", kind),
        ("vehicle_id", vehicle_id),
        ("compartment_id", compartment_id),
    ):
        if value is not None:
            where.append(f"{column} = %s")
            params.append(value)
    if since is not None:
        where.append("opened_at >= %s")
        params.append(since)
    rows = _q(
        conn,
        f"SELECT {_COLUMNS} FROM alarms WHERE {' AND '.join(where)}"
        f" ORDER BY opened_at DESC, alarm_id DESC LIMIT %s",
        (*params, limit),
    ).fetchall()
    return [_row(row) for row in rows]


def due_for_notification(conn: psycopg.Connection[Any], *, now: datetime) -> list[Alarm]:
    """Open (unacknowledged) alarms whose next notification is due, locked for this sender."""
    rows = _q(
        conn,
        f"SELECT {_COLUMNS} FROM alarms WHERE state = 'open' AND next_notify_at <= %s"
        f" ORDER BY next_notify_at FOR UPDATE SKIP LOCKED",
        (now,),
    ).fetchall()
    return [_row(row) for row in rows]


def record_notification(
    conn: psycopg.Connection[Any],
    alarm: Alarm,
    *,
    level: int,
    next_at: datetime,
    now: datetime,
    deliveries: list[dict[str, Any]],
) -> None:
    """Note one notification round (who was reached how) and when the next one is due."""
    row = _q(
        conn,
        f"UPDATE alarms SET escalation_level = %s, notifications_sent = notifications_sent + 1,"
        f" next_notify_at = %s WHERE alarm_id = %s RETURNING {_COLUMNS}",
        (level, next_at, alarm.alarm_id),
    ).fetchone()
    assert row is not None
    updated = _row(row)
    event = "escalated" if level > alarm.escalation_level and alarm.escalation_level else "notified"
    _record(
        conn,
        updated,
        event=event,
        actor="controller",
        at=now,
        detail={"level": level, "deliveries": deliveries},
    )
