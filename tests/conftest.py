"""Shared fixtures: a unique database per test, a unique topic prefix, private brokers.

Services are real. When one does not answer the test fails; it never skips.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from coldchain_protocol.mqtt import clear_retained
from controller.storage.db import temporary_database

ADMIN_DATABASE_URL = os.environ.get(
    "COLDCHAIN_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
MQTT_URL = os.environ.get("COLDCHAIN_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 3
        ):
            return True
    except OSError:
        return False


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url_for(name: str) -> str:
    """The admin URL pointed at another database."""
    parts = urlsplit(ADMIN_DATABASE_URL)
    return parts._replace(path=f"/{name}").geturl()


@pytest.fixture(scope="session")
def admin_database_url() -> str:
    """URL of the maintenance database; fails the test when PostgreSQL does not answer."""
    if not _reachable(ADMIN_DATABASE_URL, 5432):
        pytest.fail(f"PostgreSQL does not answer at {ADMIN_DATABASE_URL}")
    return ADMIN_DATABASE_URL


@pytest.fixture
def database_url(admin_database_url: str) -> Iterator[str]:
    """A new, migrated database of this test's own, dropped afterwards."""
    with temporary_database(admin_database_url, prefix="coldchain_test") as url:
        yield url


@pytest.fixture(scope="session")
def mqtt_url() -> str:
    """URL of the shared Mosquitto; fails the test when it does not answer."""
    if not _reachable(MQTT_URL, 1883):
        pytest.fail(f"Mosquitto does not answer at {MQTT_URL}")
    return MQTT_URL


@pytest.fixture
def topic_prefix(mqtt_url: str) -> Iterator[str]:
    """A topic prefix of this test's own; its retained messages are removed afterwards."""
    prefix = f"cctest/{uuid.uuid4().hex[:12]}"
    yield prefix
    clear_retained(mqtt_url, prefix)


@dataclass
class PrivateBroker:
    """A Mosquitto of the test's own on a free port, which the test can stop and start."""

    workdir: Path
    extra_config: str = ""
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The broker's mqtt:// URL."""
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the broker and wait until it accepts connections."""
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "log_dest stderr\n"
            "log_type error\n"
            "log_type warning\n"
            f"{self.extra_config}\n"
        )
        log = (self.workdir / "mosquitto.log").open("ab")
        self.process = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited: {(self.workdir / 'mosquitto.log').read_text()}"
                )
            if _reachable(self.url, self.port):
                return
            time.sleep(0.05)
        raise RuntimeError("private mosquitto did not start")

    def stop(self) -> None:
        """Stop the broker (an outage); its clients lose their connections."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[Callable[..., PrivateBroker]]:
    """Factory of private brokers; every one is stopped after the test."""
    brokers: list[PrivateBroker] = []

    def make(extra_config: str = "", *, start: bool = True) -> PrivateBroker:
        workdir = tmp_path / f"broker{len(brokers)}"
        workdir.mkdir()
        broker = PrivateBroker(workdir=workdir, extra_config=extra_config)
        brokers.append(broker)
        if start:
            broker.start()
        return broker

    yield make
    for broker in brokers:
        broker.stop()
