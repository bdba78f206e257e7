"""GSP: while a probe is out of range, records leave at least every 2 minutes even when the
normal publish cadence is slower."""

from __future__ import annotations

from pathlib import Path

from coldchain_protocol import generate_private_key
from coldchain_protocol.config import load_settings
from edge_agent.agent import EdgeAgent
from edge_agent.clock import SystemClock
from edge_agent.outbox import Outbox
from edge_agent.settings import AgentSettings


class SilentDriver:
    def sample(self, now_s: float) -> list[tuple[str, float]]:
        return []


def make_agent(tmp_path: Path) -> EdgeAgent:
    settings = load_settings(
        AgentSettings,
        vehicle_id="CAD1",
        private_key_file=tmp_path / "k",
        outbox_path=tmp_path / "o.db",
        compartments=[{"compartment_id": "c1", "low_c": 2, "high_c": 8, "probes": ["p1", "p2"]}],
        publish_interval_s=600.0,
        excursion_publish_interval_s=120.0,
        alarm_delay_s=0.0,
    )
    outbox = Outbox(settings.outbox_path, budget_bytes=settings.outbox_budget_bytes)
    return EdgeAgent(
        settings=settings,
        driver=SilentDriver(),
        clock=SystemClock(),
        key=generate_private_key(),
        outbox=outbox,
    )


def test_slow_cadence_in_band(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    agent.monitor.update(1000.0, [("temp:c1:p1", 5.0), ("temp:c1:p2", 5.1)])
    agent._last_live_s = 1000.0
    assert not agent._live_due(1000.0 + 121)
    assert agent._live_due(1000.0 + 600)


def test_two_minute_cadence_while_out_of_band(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    agent.monitor.update(1000.0, [("temp:c1:p1", 9.5), ("temp:c1:p2", 5.1)])
    agent._last_live_s = 1000.0
    assert not agent._live_due(1000.0 + 119)
    assert agent._live_due(1000.0 + 120)
    # Back in band: the normal cadence returns.
    agent.monitor.update(1100.0, [("temp:c1:p1", 5.0), ("temp:c1:p2", 5.1)])
    assert not agent._live_due(1000.0 + 121)
