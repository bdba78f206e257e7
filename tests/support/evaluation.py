"""Helpers for compliance tests: a registered simulated vehicle and telemetry batches produced
by the reefer physics, stored and evaluated the way the ingest does it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import psycopg
import uvicorn

from coldchain_protocol import TelemetryBatch, generate_private_key, public_key_pem
from coldchain_protocol.messages import Reading
from controller.api.app import create_app
from controller.compliance.rulebook import Rulebook
from controller.evaluation.service import EvaluationService
from controller.ingest.writer import write_batches
from controller.settings import ControllerSettings
from controller.vehicles.repository import insert_vehicle
from edge_agent.clock import Clock
from edge_agent.sensors.simulated import CompartmentSpec, SimulatedVehicleDriver
from edge_agent.sensors.thermal import Faults, ReeferParams
from simulators.fleet import FleetSpec
from tests.conftest import free_port

T0 = datetime(2026, 7, 1, 1, 0, tzinfo=UTC).timestamp()  # 09:00 in Shanghai, summer


def register(database_url: str, vehicle_id: str) -> None:
    """Register a simulated 12 m3 refrigerated van (one compartment c1, probes p1 and p2)."""
    with psycopg.connect(database_url) as conn:
        insert_vehicle(
            conn,
            FleetSpec(vehicles=1).vehicle_spec(vehicle_id),
            public_key_pem=public_key_pem(generate_private_key()),
        )


def physics_batches(
    vehicle_id: str,
    *,
    samples: int,
    start_s: float = T0,
    interval_s: float = 30.0,
    compressor_failed: tuple[float, float] | None = None,
    seed: int = 3,
) -> list[TelemetryBatch]:
    """One batch per sample of a simulated van; the compressor is down in [from, to) (seconds
    after `start_s`) when given."""
    driver = SimulatedVehicleDriver(
        compartments=[
            CompartmentSpec(
                compartment_id="c1", probe_ids=("p1", "p2"), params=ReeferParams(setpoint_c=5.0)
            )
        ],
        seed=seed,
    )
    batches = []
    seq = 0
    for i in range(samples):
        now_s = start_s + i * interval_s
        if compressor_failed is not None:
            failed = compressor_failed[0] <= now_s - start_s < compressor_failed[1]
            driver.inject("c1", Faults(compressor_failed=failed))
        readings = []
        for channel, value in driver.sample(now_s):
            seq += 1
            readings.append(Reading(seq, int(now_s * 1000), channel, value, True))
        batches.append(
            TelemetryBatch(vehicle_id, "boot1", f"b{i}", int(now_s * 1000), False, tuple(readings))
        )
    return batches


def store_and_evaluate(
    database_url: str, service: EvaluationService, batches: Sequence[TelemetryBatch]
) -> None:
    """Commit batches as the ingest does, then hand them to the evaluation, one at a time."""
    with psycopg.connect(database_url) as conn:
        for batch in batches:
            write_batches(conn, [batch], received_at=datetime.now(UTC))
            conn.commit()
            service.evaluate([batch])


@contextlib.asynccontextmanager
async def serving_api(
    settings: ControllerSettings, *, rules: Rulebook, clock: Clock
) -> AsyncIterator[str]:
    """Run the real API under uvicorn on a free port; yields its base URL."""
    port = free_port()
    app = create_app(settings.model_copy(update={"api_port": port}), rules=rules, clock=clock)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve(), name="test-api")
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.05)
        assert server.started, "API did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
