"""Runs one controller process: ingest and the HTTP API under one task group."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import asdict
from pathlib import Path

import uvicorn

from coldchain_protocol.config import ConfigError
from controller.alarms.channels import Channel, build_channels
from controller.alarms.escalation import Escalator, channel_settings
from controller.api.app import create_app
from controller.compliance.errors import RulebookError
from controller.compliance.rulebook import Rulebook, load_rulebook
from controller.errors import MigrationError
from controller.evaluation.service import EvaluationService
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


def load_rules(settings: ControllerSettings) -> Rulebook:
    """The rulebook in force: the configured file, or the shipped GSP rulebook."""
    # The settings validated the file already; a file changed since fails here, named.
    try:
        return load_rulebook(Path(settings.rulebook_file) if settings.rulebook_file else None)
    except RulebookError as exc:
        raise ConfigError("rulebook_file", str(exc)) from exc


class ControllerCore:
    """Ingest, GSP evaluation and alarm escalation of one controller process (no API)."""

    def __init__(
        self,
        *,
        settings: ControllerSettings,
        clock: Clock,
        ingest: IngestService | None = None,
        channels: list[Channel] | None = None,
    ) -> None:
        self.settings = settings
        self.rules = load_rules(settings)
        self.ingest = ingest or IngestService(settings=settings, clock=clock)
        self.evaluation = EvaluationService(settings=settings, rules=self.rules, clock=clock)
        self.escalator = Escalator(
            settings=settings,
            rules=self.rules,
            clock=clock,
            channels=build_channels(channel_settings(settings)) if channels is None else channels,
        )
        if settings.evaluation:
            self.ingest.observers.append(self.evaluation.submit)

    async def run(self) -> None:
        """Run every part until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.ingest.run(), name="ingest")
            if self.settings.evaluation:
                tg.create_task(self.evaluation.run(), name="evaluation")
                tg.create_task(self.escalator.run(), name="escalation")


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
    core = ControllerCore(settings=settings, clock=clock, ingest=service)
    ingest, evaluation, escalator = core.ingest, core.evaluation, core.escalator
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(core.run(), name="core")
            if api:
                app = create_app(
                    settings,
                    ingest_stats=lambda: {
                        **asdict(ingest.stats),
                        "evaluation": asdict(evaluation.stats),
                        "evaluation_pending": evaluation.pending(),
                        "notifications": asdict(escalator.stats),
                    },
                    rules=core.rules,
                    clock=clock,
                )
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
