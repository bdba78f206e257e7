"""Runs one controller process: ingest and the HTTP API under one task group."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import asdict

import uvicorn

from controller.api.app import create_app
from controller.errors import MigrationError
from controller.ingest.service import IngestService
from controller.settings import ControllerSettings
from controller.storage.db import available_migrations, connect
from edge_agent.clock import Clock

log = logging.getLogger(__name__)


def pending_migrations(database_url: str) -> list[str]:
    """Names of packaged migrations not yet applied to the database."""
    with connect(database_url) as conn:
        exists = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
        applied: set[str] = set()
        if exists and exists[0] is not None:
            applied = {str(r[0]) for r in conn.execute("SELECT version FROM schema_migrations")}
    return [m.name for m in available_migrations() if m.version not in applied]


class _ServerStopped(Exception):
    """The API server exited (a signal): end the whole process."""


async def run_controller(
    settings: ControllerSettings,
    *,
    clock: Clock,
    api: bool = True,
    service: IngestService | None = None,
) -> None:
    """Run ingest (and the API) until cancelled or the API server is told to exit."""
    pending = await asyncio.to_thread(pending_migrations, settings.database_url)
    if pending:
        raise MigrationError(pending[0], "not applied: run `coldchain db migrate` first")
    ingest = service or IngestService(settings=settings, clock=clock)
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(ingest.run(), name="ingest")
            if api:
                app = create_app(settings, ingest_stats=lambda: asdict(ingest.stats))
                config = uvicorn.Config(
                    app, host=settings.api_host, port=settings.api_port, log_level="warning"
                )
                server = uvicorn.Server(config)

                async def serve() -> None:
                    task = asyncio.create_task(server.serve(), name="uvicorn")
                    try:
                        await asyncio.shield(task)
                    except asyncio.CancelledError:
                        # Let uvicorn shut down cleanly instead of cancelling it mid-lifespan.
                        server.should_exit = True
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(task, 10)
                        raise
                    raise _ServerStopped

                tg.create_task(serve(), name="api")
                log.info("API on http://%s:%s", settings.api_host, settings.api_port)
    except* _ServerStopped:
        log.info("controller stopped")
