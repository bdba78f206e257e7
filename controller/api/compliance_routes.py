"""Compliance API: alarms (list, filter, acknowledge, resolve), compartment state, excursions,
the GSP verdict for a time window, the pre-cooling check before loading, and a live event
stream (server-sent events) of alarms and compartment state."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

import orjson
import psycopg
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, Field

from controller.alarms import repository
from controller.alarms.repository import EVENTS_CHANNEL, AlarmStateError
from controller.compliance.errors import UnknownTemperatureClassError
from controller.compliance.models import CompartmentMeta, ProbeMeta, Sample
from controller.compliance.rulebook import Rulebook
from controller.compliance.verdict import window_verdict
from controller.errors import NotFound

log = logging.getLogger(__name__)

_TIME_KEYS = {
    "start_s",
    "end_s",
    "last_s",
    "confirmed_s",
    "peak_s",
    "window_start_s",
    "window_end_s",
}


class AcknowledgeRequest(BaseModel):
    """Who takes charge of an alarm, and what they are doing about it."""

    by: str = Field(min_length=1, max_length=200, description="Name of the person acknowledging")
    comment: str = Field(default="", max_length=2000)


class ResolveRequest(BaseModel):
    """Who closes an alarm whose condition has cleared, and why."""

    by: str = Field(min_length=1, max_length=200)
    comment: str = Field(min_length=1, max_length=2000, description="What was done")


class LoadingCheckRequest(BaseModel):
    """The loading step asks whether goods of a class may go into a compartment now."""

    temperature_class: str | None = Field(
        default=None, description="The goods' class; must match the compartment's"
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (
                datetime.fromtimestamp(v, UTC).isoformat()
                if k in _TIME_KEYS and isinstance(v, float)
                else _jsonable(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value


def _aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None:
        raise HTTPException(422, f"{name} must carry a time zone, e.g. 2026-12-04T08:00:00Z")
    return value


def compliance_router(
    *, pool: ConnectionPool[Any], rules: Rulebook, now_s: Callable[[], float], database_url: str
) -> APIRouter:
    """The compliance endpoints, on the API's connection pool."""
    router = APIRouter(prefix="/api/v1")

    def now() -> datetime:
        return datetime.fromtimestamp(now_s(), UTC)

    def alarm_or_404(conn: psycopg.Connection[Any], alarm_id: int) -> repository.Alarm:
        try:
            return repository.get_alarm(conn, alarm_id)
        except NotFound:
            raise HTTPException(404, f"alarm {alarm_id} does not exist") from None

    @router.get("/alarms")
    def alarms(
        state: Annotated[str | None, Query(pattern="^(open|acknowledged|resolved)$")] = None,
        kind: str | None = None,
        vehicle_id: str | None = None,
        compartment_id: str | None = None,
        since: Annotated[
            datetime | None, Query(description="Opened at or after (ISO-8601)")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    ) -> list[dict[str, Any]]:
        """Alarms, newest first, filtered by state, kind, vehicle, compartment, opening time."""
        with pool.connection() as conn:
            found = repository.list_alarms(
                conn,
                state=state,
                kind=kind,
                vehicle_id=vehicle_id,
                compartment_id=compartment_id,
                since=None if since is None else _aware("since", since),
                limit=limit,
            )
        return [a.as_json() for a in found]

    @router.get("/alarms/{alarm_id}")
    def alarm(alarm_id: int) -> dict[str, Any]:
        """One alarm with its whole audit trail."""
        with pool.connection() as conn:
            found = alarm_or_404(conn, alarm_id)
            events = repository.alarm_events(conn, alarm_id)
        return {**found.as_json(), "events": [_jsonable(dataclasses.asdict(e)) for e in events]}

    def change(
        alarm_id: int, action: Callable[..., repository.Alarm], *, by: str, comment: str
    ) -> dict[str, Any]:
        with pool.connection() as conn:
            alarm_or_404(conn, alarm_id)
            try:
                done = action(conn, alarm_id, by=by, comment=comment, now=now())
            except AlarmStateError as exc:
                raise HTTPException(409, str(exc)) from exc
        return done.as_json()

    @router.post("/alarms/{alarm_id}/acknowledge")
    def acknowledge(alarm_id: int, body: AcknowledgeRequest) -> dict[str, Any]:
        """Take charge of an open alarm: notifications stop; it resolves once its cause clears."""
        return change(alarm_id, repository.acknowledge, by=body.by, comment=body.comment)

    @router.post("/alarms/{alarm_id}/resolve")
    def resolve(alarm_id: int, body: ResolveRequest) -> dict[str, Any]:
        """Close an alarm whose condition has cleared, with what was done."""
        return change(alarm_id, repository.resolve, by=body.by, comment=body.comment)

    _STATE_COLUMNS = (
        "vehicle_id, compartment_id, temperature_class, rulebook_version, status, last_ts,"
        " in_band_since, latest, prediction, updated_at"
    )

    @router.get("/compartments")
    def compartments(
        status: Annotated[
            str | None, Query(pattern="^(no_data|in_band|pending|excursion)$")
        ] = None,
    ) -> list[dict[str, Any]]:
        """The current state of every evaluated compartment."""
        with pool.connection() as conn:
            rows = conn.execute(
                f"SELECT {_STATE_COLUMNS} FROM compartment_state"
                " WHERE %(s)s::text IS NULL OR status = %(s)s ORDER BY vehicle_id, compartment_id",
                {"s": status},
            ).fetchall()
        return [_jsonable(dict(r)) for r in rows]

    def state_row(
        conn: psycopg.Connection[Any], vehicle_id: str, compartment_id: str
    ) -> dict[str, Any]:
        row = conn.execute(
            f"SELECT {_STATE_COLUMNS} FROM compartment_state"
            " WHERE vehicle_id = %(v)s AND compartment_id = %(c)s",
            {"v": vehicle_id, "c": compartment_id},
        ).fetchone()
        if row is None:
            known = conn.execute(
                "SELECT 1 FROM compartments WHERE vehicle_id = %(v)s AND compartment_id = %(c)s",
                {"v": vehicle_id, "c": compartment_id},
            ).fetchone()
            if known is None:
                raise HTTPException(404, f"no compartment {compartment_id!r} on {vehicle_id!r}")
            return {"vehicle_id": vehicle_id, "compartment_id": compartment_id, "status": "no_data"}
        return dict(row)

    @router.get("/vehicles/{vehicle_id}/compartments/{compartment_id}/state")
    def compartment_state(vehicle_id: str, compartment_id: str) -> dict[str, Any]:
        """One compartment's current state: status, latest values, prediction, in band since."""
        with pool.connection() as conn:
            state: dict[str, Any] = _jsonable(state_row(conn, vehicle_id, compartment_id))
        return state

    @router.get("/vehicles/{vehicle_id}/compartments/{compartment_id}/excursions")
    def excursions(
        vehicle_id: str,
        compartment_id: str,
        start: Annotated[datetime | None, Query(alias="from")] = None,
        end: Annotated[datetime | None, Query(alias="to")] = None,
    ) -> list[dict[str, Any]]:
        """Excursions of a compartment overlapping a window (default: all)."""
        with pool.connection() as conn:
            rows = conn.execute(
                "SELECT excursion_id, direction, start_ts, end_ts, confirmed_ts, peak_c, probes,"
                " rulebook_version, decided_at FROM excursions"
                " WHERE vehicle_id = %(v)s AND compartment_id = %(c)s"
                " AND (%(to)s::timestamptz IS NULL OR start_ts < %(to)s)"
                " AND (%(from)s::timestamptz IS NULL OR end_ts IS NULL OR end_ts > %(from)s)"
                " ORDER BY start_ts",
                {"v": vehicle_id, "c": compartment_id, "from": start, "to": end},
            ).fetchall()
        return [_jsonable(dict(r)) for r in rows]

    @router.get("/vehicles/{vehicle_id}/compartments/{compartment_id}/verdict")
    def verdict(
        vehicle_id: str,
        compartment_id: str,
        start: Annotated[datetime, Query(alias="from", description="ISO-8601, inclusive")],
        end: Annotated[datetime, Query(alias="to", description="ISO-8601, exclusive")],
    ) -> dict[str, Any]:
        """The GSP verdict on a window (e.g. one order's time on board): pass, fail or
        incomplete, with every reason, the excursions, recording gaps, probe findings and the
        temperature summary (MKT is information only)."""
        start, end = _aware("from", start), _aware("to", end)
        if end <= start:
            raise HTTPException(422, "'to' must be after 'from'")
        if end - start > timedelta(days=31):
            raise HTTPException(422, "a verdict window is at most 31 days")
        with pool.connection() as conn:
            info = conn.execute(
                "SELECT temperature_class, volume_m3 FROM compartments"
                " WHERE vehicle_id = %(v)s AND compartment_id = %(c)s",
                {"v": vehicle_id, "c": compartment_id},
            ).fetchone()
            if info is None:
                raise HTTPException(404, f"no compartment {compartment_id!r} on {vehicle_id!r}")
            probes = conn.execute(
                "SELECT probe_id, accuracy_c, calibration_due FROM probes"
                " WHERE vehicle_id = %(v)s AND compartment_id = %(c)s ORDER BY probe_id",
                {"v": vehicle_id, "c": compartment_id},
            ).fetchall()
            context = timedelta(seconds=rules.recording.max_gap_s) + timedelta(hours=6)
            samples = [
                Sample(r["t"], r["channel"].rsplit(":", 1)[1], r["value"])
                for r in conn.execute(
                    "SELECT extract(epoch FROM ts)::float8 AS t, channel, value FROM readings"
                    " WHERE vehicle_id = %(v)s AND ts >= %(from)s AND ts < %(to)s"
                    " AND channel LIKE %(ch)s ORDER BY ts",
                    {
                        "v": vehicle_id,
                        "from": start - context,
                        "to": end,
                        "ch": f"temp:{compartment_id}:%",
                    },
                )
            ]
        try:
            band = rules.temperature_class(info["temperature_class"])
        except UnknownTemperatureClassError as exc:
            raise HTTPException(409, str(exc)) from exc
        meta = CompartmentMeta(
            compartment_id=compartment_id,
            volume_m3=info["volume_m3"],
            probes=tuple(
                ProbeMeta(
                    probe_id=p["probe_id"],
                    accuracy_c=p["accuracy_c"],
                    calibration_due=p["calibration_due"],
                )
                for p in probes
            ),
        )
        decided = window_verdict(
            samples=samples,
            band=band,
            compartment=meta,
            rules=rules,
            window_start_s=start.timestamp(),
            window_end_s=end.timestamp(),
            today=now().date(),
        )
        return {
            "vehicle_id": vehicle_id,
            "compartment_id": compartment_id,
            **_jsonable(dataclasses.asdict(decided)),
        }

    @router.post("/vehicles/{vehicle_id}/compartments/{compartment_id}/loading-check")
    def loading_check(
        vehicle_id: str, compartment_id: str, body: LoadingCheckRequest | None = None
    ) -> dict[str, Any]:
        """May goods be loaded into this compartment now? Only after it has been in band for
        the rulebook's settle time (pre-cooling), with fresh data and no open alarm; a refusal
        lists every reason."""
        current = now()
        required_s = rules.loading.precool_settle_s
        with pool.connection() as conn:
            state = state_row(conn, vehicle_id, compartment_id)
            active = conn.execute(
                "SELECT kind, detail FROM alarms WHERE vehicle_id = %(v)s"
                " AND compartment_id IN (%(c)s, '') AND state <> 'resolved' AND condition_active",
                {"v": vehicle_id, "c": compartment_id},
            ).fetchall()
        reasons: list[str] = []
        status = state.get("status", "no_data")
        klass = state.get("temperature_class")
        if body is not None and body.temperature_class is not None and klass is not None:
            try:
                wanted = rules.temperature_class(body.temperature_class).name
            except UnknownTemperatureClassError as exc:
                raise HTTPException(422, str(exc)) from exc
            if wanted != klass:
                reasons.append(f"the compartment is {klass}, the goods need {wanted}")
        last_ts: datetime | None = state.get("last_ts")
        since: datetime | None = state.get("in_band_since")
        in_band_s = 0.0
        if status != "in_band":
            reasons.append(f"the compartment is not in band (status {status})")
        elif since is None or last_ts is None:
            reasons.append("no in-band record yet")
        else:
            age_s = (current - last_ts).total_seconds()
            if age_s > rules.recording.max_gap_s:
                reasons.append(
                    f"no record for {age_s / 60:.0f} min (limit {rules.recording.max_gap_s / 60:g} min)"
                )
            in_band_s = (last_ts - since).total_seconds()
            if in_band_s < required_s:
                reasons.append(
                    f"in band for {in_band_s / 60:.1f} min; pre-cooling needs {required_s / 60:g} min"
                )
        for alarm_row in active:
            reasons.append(f"active {alarm_row['kind']} alarm: {alarm_row['detail']}")
        return {
            "vehicle_id": vehicle_id,
            "compartment_id": compartment_id,
            "allowed": not reasons,
            "reasons": reasons,
            "status": status,
            "temperature_class": klass,
            "in_band_for_s": in_band_s,
            "required_s": required_s,
            "checked_at": current.isoformat(),
            "rulebook_version": rules.version,
        }

    @router.get("/events")
    async def events(request: Request) -> StreamingResponse:
        """Server-sent events: every alarm change (`event: alarm`) and compartment state update
        (`event: compartment`) as the controller commits it."""

        async def stream() -> AsyncIterator[bytes]:
            conn = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
            try:
                await conn.execute(f"LISTEN {EVENTS_CHANNEL}")
                yield b": connected\n\n"
                notifies = conn.notifies(timeout=15.0)
                while True:
                    async for notify in notifies:
                        payload = orjson.loads(notify.payload)
                        kind = payload.get("type", "message")
                        yield f"event: {kind}\ndata: {notify.payload}\n\n".encode()
                    if await request.is_disconnected():
                        return
                    yield b": keep-alive\n\n"
                    notifies = conn.notifies(timeout=15.0)
            finally:
                await conn.close()

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router
