"""The dispatcher-facing HTTP API (FastAPI): vehicles, readings, ingest health, dead letters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from controller.api.compliance_routes import compliance_router
from controller.compliance.rulebook import Rulebook, load_rulebook
from controller.settings import ControllerSettings
from edge_agent.clock import Clock, SystemClock


def create_app(
    settings: ControllerSettings,
    *,
    ingest_stats: Callable[[], dict[str, Any]] | None = None,
    rules: Rulebook | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """Build the API; the connection pool opens with the app and closes with it."""
    pool = ConnectionPool(
        settings.database_url, min_size=1, max_size=8, open=False, kwargs={"row_factory": dict_row}
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        pool.open(wait=True, timeout=30)
        try:
            yield
        finally:
            pool.close()

    app = FastAPI(title="Cold-chain controller", version="1", lifespan=lifespan)
    app.state.pool = pool

    def rows(query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        with pool.connection() as conn:
            return list(conn.execute(query, params).fetchall())  # type: ignore[arg-type]

    Limit = Annotated[int, Query(ge=1, le=10_000, description="At most this many rows.")]

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Liveness: the database answers."""
        rows("SELECT 1", {})
        return {"status": "ok"}

    @app.get("/api/v1/vehicles")
    def vehicles() -> list[dict[str, Any]]:
        """Registered vehicles with their latest reported status."""
        return rows(
            "SELECT v.vehicle_id, v.display_name, v.registered_at, s.state, s.reported_at,"
            " s.outbox_depth, s.oldest_unacked_at, s.reconnects, s.refused,"
            " q.contiguous_to, q.max_seq"
            " FROM vehicles v LEFT JOIN vehicle_status s USING (vehicle_id)"
            " LEFT JOIN vehicle_sequences q USING (vehicle_id) ORDER BY v.vehicle_id",
            {},
        )

    def existing_vehicle(vehicle_id: str) -> str:
        if not rows("SELECT 1 FROM vehicles WHERE vehicle_id = %(v)s", {"v": vehicle_id}):
            raise HTTPException(404, f"vehicle {vehicle_id!r} is not registered")
        return vehicle_id

    Vehicle = Annotated[str, Depends(existing_vehicle)]

    @app.get("/api/v1/vehicles/{vehicle_id}/readings")
    def readings(
        vehicle_id: Vehicle,
        start: Annotated[datetime, Query(alias="from", description="ISO-8601, inclusive")],
        end: Annotated[datetime, Query(alias="to", description="ISO-8601, exclusive")],
        channel: Annotated[str | None, Query(description="Only this channel")] = None,
        limit: Limit = 1000,
    ) -> list[dict[str, Any]]:
        """A vehicle's stored readings in a time window, device timestamps, oldest first."""
        if start.tzinfo is None or end.tzinfo is None:
            raise HTTPException(422, "'from' and 'to' must carry a UTC offset")
        if end <= start:
            raise HTTPException(422, "'to' must be after 'from'")
        return rows(
            "SELECT seq, ts, channel, value, clock_synced, history, boot_id, received_at"
            " FROM readings WHERE vehicle_id = %(v)s AND ts >= %(a)s AND ts < %(b)s"
            " AND (%(c)s::text IS NULL OR channel = %(c)s) ORDER BY ts, seq LIMIT %(n)s",
            {"v": vehicle_id, "a": start, "b": end, "c": channel, "n": limit},
        )

    @app.get("/api/v1/vehicles/{vehicle_id}/gaps")
    def gaps(vehicle_id: Vehicle) -> list[dict[str, Any]]:
        """Sequence gaps detected for a vehicle (open and closed)."""
        return rows(
            "SELECT first_seq, last_seq, detected_at, resend_requests, last_requested_at,"
            " closed_at FROM sequence_gaps WHERE vehicle_id = %(v)s ORDER BY first_seq",
            {"v": vehicle_id},
        )

    @app.get("/api/v1/dead-letters")
    def dead_letters(
        vehicle_id: Annotated[str | None, Query(description="Only this vehicle")] = None,
        limit: Limit = 100,
    ) -> list[dict[str, Any]]:
        """Refused messages with their reasons, newest first (payload as text when it is)."""
        return rows(
            "SELECT id, received_at, topic, vehicle_id, reason, first_seq, last_seq,"
            " length(payload) AS payload_bytes FROM dead_letters"
            " WHERE (%(v)s::text IS NULL OR vehicle_id = %(v)s)"
            " ORDER BY received_at DESC, id DESC LIMIT %(n)s",
            {"v": vehicle_id, "n": limit},
        )

    @app.get("/api/v1/dead-letters/{letter_id}/payload")
    def dead_letter_payload(letter_id: int) -> Response:
        """The refused message's raw payload, byte for byte."""
        found = rows("SELECT payload FROM dead_letters WHERE id = %(i)s", {"i": letter_id})
        if not found:
            raise HTTPException(404, f"dead letter {letter_id} not found")
        return Response(bytes(found[0]["payload"]), media_type="application/octet-stream")

    @app.get("/api/v1/ingest/stats")
    def stats() -> dict[str, Any]:
        """This controller process's ingest counters and table totals."""
        totals = rows(
            "SELECT (SELECT count(*) FROM dead_letters) AS dead_letters,"
            " (SELECT count(*) FROM vehicles) AS vehicles,"
            " (SELECT count(*) FROM sequence_gaps WHERE closed_at IS NULL) AS open_gaps",
            {},
        )[0]
        return {"process": ingest_stats() if ingest_stats else None, "totals": totals}

    app.include_router(
        compliance_router(
            pool=pool,
            rules=rules or load_rulebook(),
            now_s=(clock or SystemClock()).now_s,
            database_url=settings.database_url,
        )
    )

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        """Prometheus metrics."""
        return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)

    return app
