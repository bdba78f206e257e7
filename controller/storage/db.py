"""Database connections and versioned migrations."""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from controller.errors import DatabaseUnavailable, MigrationError

log = logging.getLogger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def redact(url: str) -> str:
    """Return the URL with any password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection[TupleRow]:
    """Open a connection; raise DatabaseUnavailable with the reason when it fails."""
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(redact(url), str(exc).strip()) from exc


@dataclass(frozen=True, slots=True)
class Migration:
    """One versioned SQL file."""

    version: str
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    """Return the packaged migration files in version order."""
    folder = resources.files("controller.storage") / "migrations"
    out = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            out.append(Migration(match.group(1), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(out, key=lambda m: m.version)


def timescaledb_available(conn: psycopg.Connection[TupleRow]) -> bool:
    """Whether the TimescaleDB extension can be created in this server."""
    row = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    return row is not None


def migrate(url: str) -> list[str]:
    """Apply pending migrations in order, each in its own transaction; return those applied."""
    with connect(url, autocommit=True) as conn:
        if timescaledb_available(conn):
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            except psycopg.Error as exc:
                log.warning("TimescaleDB is installed but cannot be created: %s", exc)
        else:
            log.warning(
                "TimescaleDB is not available in this PostgreSQL: readings go into a plain "
                "table (no hypertable chunks or time-based chunk exclusion)"
            )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        applied_rows = conn.execute("SELECT version FROM schema_migrations").fetchall()
        applied = {str(row[0]) for row in applied_rows}
        done = []
        for migration in available_migrations():
            if migration.version in applied:
                continue
            try:
                with conn.transaction():
                    # A lock makes concurrent `migrate` runs (several replicas) apply each once.
                    conn.execute("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")
                    again = conn.execute(
                        "SELECT 1 FROM schema_migrations WHERE version = %s", (migration.version,)
                    ).fetchone()
                    if again:
                        continue
                    conn.execute(migration.sql.encode("utf-8"))
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (migration.version, migration.name),
                    )
            except psycopg.Error as exc:
                raise MigrationError(migration.name, str(exc).strip()) from exc
            log.info("applied migration %s", migration.name)
            done.append(migration.name)
        return done


def is_hypertable(conn: psycopg.Connection[TupleRow], table: str) -> bool:
    """Whether `table` is a TimescaleDB hypertable."""
    has_ext = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    if not has_ext:
        return False
    row = conn.execute(
        "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = %s", (table,)
    ).fetchone()
    return row is not None


@contextlib.contextmanager
def temporary_database(admin_url: str, *, prefix: str) -> Iterator[str]:
    """Create a uniquely named, migrated database; yield its URL; drop it on exit.

    For tests and benchmarks, which must leave no trace on a shared server.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    try:
        migrate(url)
        yield url
    finally:
        with connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
