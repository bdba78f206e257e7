"""`coldchain demo` end to end, as a user runs it (short, on the local services)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg

from tests.conftest import clear_retained, database_url_for, free_port


def test_demo_runs_fleet_and_controller_and_stores_readings(
    admin_database_url: str, mqtt_url: str, tmp_path: Path
) -> None:
    name = f"coldchain_test_demo_{uuid.uuid4().hex[:10]}"
    prefix = f"cctest/{uuid.uuid4().hex[:12]}"
    env = dict(
        os.environ,
        COLDCHAIN_DATABASE_URL=database_url_for(name),  # the demo creates it
        COLDCHAIN_MQTT_URL=mqtt_url,
        COLDCHAIN_TOPIC_PREFIX=prefix,
        COLDCHAIN_API_PORT=str(free_port()),
    )
    try:
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "coldchain"),
                "--log-level",
                "WARNING",
                "demo",
                "--vehicles",
                "4",
                "--speed",
                "60",
                "--duration",
                "8",
                "--workdir",
                str(tmp_path),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        match = re.search(
            r"demo finished: ([\d,]+) rows stored, ([\d,]+) readings acknowledged",
            result.stdout.replace("\n", " "),
        )
        assert match, result.stdout[-2000:]
        stored = int(match.group(1).replace(",", ""))
        with psycopg.connect(database_url_for(name)) as conn:
            row = conn.execute(
                "SELECT count(*), count(DISTINCT vehicle_id) FROM readings"
            ).fetchone()
        assert row is not None
        assert row[0] == stored > 0
        assert row[1] == 4, "every simulated vehicle reported"
    finally:
        assert clear_retained(mqtt_url, prefix) >= 0
        with psycopg.connect(admin_database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
