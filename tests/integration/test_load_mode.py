"""`coldchain load`: a fleet samples for a bounded time, drains, stops by itself and reports
exactly what it committed; the report matches what the database holds."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from tests.support.pipeline import run_coldchain


def test_load_command_reports_what_it_sent(
    database_url: str, mqtt_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    report_file = tmp_path / "report.json"
    result = run_coldchain(
        "load",
        "--vehicles",
        "60",
        "--seconds",
        "4",
        "--sample-interval",
        "0.5",
        "--report",
        str(report_file),
        "--workdir",
        str(tmp_path / "fleet"),
        database_url=database_url,
        mqtt_url=mqtt_url,
        topic_prefix=topic_prefix,
        timeout_s=150,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(report_file.read_text())
    assert report["vehicles"] == 60 and report["drained"] is True
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT vehicle_id, count(*), count(DISTINCT seq), max(seq) FROM readings"
            " GROUP BY vehicle_id"
        ).fetchall()
    stored = {vid: (count, distinct, max_seq) for vid, count, distinct, max_seq in rows}
    assert set(stored) == set(report["committed"])
    for vehicle_id, max_seq in report["committed"].items():
        assert stored[vehicle_id] == (max_seq, max_seq, max_seq), vehicle_id
    # Roughly 8 samples of 7 channels per vehicle in 4 s at 0.5 s intervals.
    assert report["total_committed"] == sum(report["committed"].values()) >= 60 * 7 * 6
    assert "readings committed" in result.stdout
