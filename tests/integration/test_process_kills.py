"""Processes killed with SIGKILL at arbitrary moments: the controller mid-batch, the agent
between commit and send. Afterwards every reading is stored exactly once."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg

from coldchain_protocol import generate_private_key, private_key_pem, public_key_pem
from tests.support.pipeline import (
    CountingDriver,
    agent_settings,
    assert_exactly_once,
    controller_settings,
    make_agent,
    register_vehicle,
    run_ingest,
    run_until_stopped,
    running,
    stored_readings,
    wait_until,
)

BIN = Path(sys.executable).parent


def _controller_process(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        COLDCHAIN_DATABASE_URL=database_url,
        COLDCHAIN_MQTT_URL=mqtt_url,
        COLDCHAIN_TOPIC_PREFIX=topic_prefix,
        COLDCHAIN_SHARE_GROUP="cctest",
        COLDCHAIN_GAP_GRACE_S="1",
        COLDCHAIN_GAP_CHECK_INTERVAL_S="0.5",
    )
    return subprocess.Popen(
        [str(BIN / "coldchain"), "--log-level", "WARNING", "controller", "run", "--no-api"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_controller_killed_mid_batch(
    database_url: str, mqtt_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    drivers, agents = [], []
    for vid in ("K1", "K2", "K3"):
        key = register_vehicle(database_url, vid)
        settings = agent_settings(
            vehicle_id=vid,
            mqtt_url=mqtt_url,
            topic_prefix=topic_prefix,
            workdir=tmp_path,
            ack_timeout_s=1.0,
            max_batch_readings=20,
        )
        driver = CountingDriver(limit=150)
        drivers.append(driver)
        agents.append(make_agent(settings, key, driver))
    controller = _controller_process(database_url, mqtt_url, topic_prefix)
    kills = 0
    try:
        async with running(*[lambda a=a: run_until_stopped(a) for a in agents]):
            for _ in range(3):
                before = len(stored_readings(database_url, "K1"))
                await wait_until(
                    lambda b=before: len(stored_readings(database_url, "K1")) > b,
                    timeout_s=45,
                    what="the controller storing readings",
                )
                controller.send_signal(signal.SIGKILL)
                controller.wait(10)
                kills += 1
                await asyncio.sleep(0.3)  # readings pile up while no controller runs
                controller = _controller_process(database_url, mqtt_url, topic_prefix)
            await wait_until(
                lambda: (
                    all(d.calls >= 150 for d in drivers)
                    and all(a.outbox.stats().depth == 0 for a in agents)
                ),
                timeout_s=60,
                what="every reading acknowledged after the kills",
            )
    finally:
        controller.terminate()
        controller.wait(10)
    assert kills == 3
    for vid, driver in zip(("K1", "K2", "K3"), drivers, strict=True):
        assert_exactly_once(database_url, vid, driver)


def _agent_config(tmp_path: Path, mqtt_url: str, topic_prefix: str) -> Path:
    config = tmp_path / "agent.toml"
    config.write_text(
        f"""
vehicle_id = "KA1"
mqtt_url = "{mqtt_url}"
topic_prefix = "{topic_prefix}"
private_key_file = "{tmp_path / "vehicle.key"}"
outbox_path = "{tmp_path / "outbox.db"}"
sample_interval_s = 0.02
publish_interval_s = 0.05
ack_timeout_s = 1.0
reconnect_min_s = 0.05
reconnect_max_s = 0.5

[[compartments]]
compartment_id = "c1"
low_c = 2.0
high_c = 8.0
probes = ["p1", "p2"]
"""
    )
    return config


def _outbox_state(path: Path) -> tuple[int, int]:
    """(highest seq ever assigned, readings still unacknowledged) read from the agent's file."""
    with sqlite3.connect(path) as db:
        next_seq = db.execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()[0]
        depth = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
    return int(next_seq) - 1, int(depth)


async def test_agent_killed_between_commit_and_send(
    database_url: str, mqtt_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    key = generate_private_key()
    (tmp_path / "vehicle.key").write_bytes(private_key_pem(key))
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO vehicles (vehicle_id, display_name, public_key_pem) VALUES (%s, %s, %s)",
            ("KA1", "KA1", public_key_pem(key)),
        )
    config = _agent_config(tmp_path, mqtt_url, topic_prefix)
    service = await run_ingest(
        controller_settings(database_url=database_url, mqtt_url=mqtt_url, topic_prefix=topic_prefix)
    )

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [str(BIN / "coldchain-edge"), "run", "--config", str(config), "--log-level", "ERROR"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async with running(service.run):
        for delay_s in (1.6, 1.2, 2.0, 1.4):
            agent = start()
            await asyncio.sleep(delay_s)
            agent.send_signal(signal.SIGKILL)  # wherever it is: mid-commit, mid-send, mid-ack
            agent.wait(10)
        agent = start()
        try:
            await wait_until(
                lambda: (tmp_path / "outbox.db").exists(), timeout_s=10, what="the outbox file"
            )
            await asyncio.sleep(0.5)
            agent.send_signal(signal.SIGTERM)
            agent.wait(10)
            max_seq, _ = _outbox_state(tmp_path / "outbox.db")
            agent = start()  # drain what is left, without sampling races at the end
            await wait_until(
                lambda: len(stored_readings(database_url, "KA1")) >= max_seq,
                timeout_s=60,
                what="every committed reading stored",
            )
        finally:
            agent.send_signal(signal.SIGTERM)
            agent.wait(10)
    max_seq, _ = _outbox_state(tmp_path / "outbox.db")
    with sqlite3.connect(tmp_path / "outbox.db") as db:
        unacked = {int(r[0]) for r in db.execute("SELECT seq FROM outbox")}
    seqs = [r[0] for r in stored_readings(database_url, "KA1")]
    assert max_seq > 100
    assert len(seqs) == len(set(seqs)), "a reading was stored twice"
    # Every reading ever committed is in the database or still waiting in the outbox.
    assert set(seqs) | unacked == set(range(1, max_seq + 1))
    assert service.stats.readings_inserted == len(seqs)
    with psycopg.connect(database_url) as conn:
        boots = conn.execute(
            "SELECT boot_id, min(seq), max(seq) FROM readings WHERE vehicle_id = 'KA1'"
            " GROUP BY boot_id ORDER BY min(seq)"
        ).fetchall()
    # Each run of the agent is a boot; readings keep the boot that took them, even when a later
    # boot sent them, and boots own disjoint, increasing seq ranges.
    assert len(boots) >= 2
    assert all(a[2] < b[1] for a, b in itertools.pairwise(boots))
