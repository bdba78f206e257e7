"""GSP evaluation against the real database: excursions and alarms from committed batches,
state that survives a restart, back-filled data judged like live data, the alarm lifecycle and
audit trail, the pre-cooling check and the verdict through the real API, live events (SSE)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import psycopg
import pytest

from controller.compliance.excursions import detect_excursions
from controller.compliance.models import split_by_compartment
from controller.compliance.rulebook import load_rulebook
from controller.evaluation.service import EvaluationService
from controller.settings import ControllerSettings
from edge_agent.clock import ScaledClock
from tests.support.evaluation import (
    T0,
    physics_batches,
    register,
    serving_api,
    store_and_evaluate,
)

RULES = load_rulebook()
FAILURE = (3600.0, 7200.0)  # compressor down from 1 h to 2 h into the run


def service_for(database_url: str, *, at_s: float) -> EvaluationService:
    settings = ControllerSettings(database_url=database_url)
    return EvaluationService(
        settings=settings, rules=RULES, clock=ScaledClock(speed=1.0, start_s=at_s)
    )


def excursions_of(database_url: str, vehicle_id: str) -> list[tuple[float, float | None, str]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM start_ts)::float8, extract(epoch FROM end_ts)::float8,"
            " direction FROM excursions WHERE vehicle_id = %s ORDER BY start_ts",
            (vehicle_id,),
        ).fetchall()
    return [(start - T0, None if end is None else end - T0, d) for start, end, d in rows]


def batch_truth(vehicle_id: str, samples: int) -> list[tuple[float, float | None, str]]:
    """Excursions of the same data decided in one batch run of the pure core."""
    readings = [
        (r.ts_ms / 1000, r.channel, r.value)
        for b in physics_batches(vehicle_id, samples=samples, compressor_failed=FAILURE)
        for r in b.readings
    ]
    band = RULES.temperature_class("refrigerated")
    found = detect_excursions(split_by_compartment(readings)["c1"], band=band, rules=RULES)
    return [(e.start_s - T0, None if e.end_s is None else e.end_s - T0, e.direction) for e in found]


def test_compressor_failure_opens_and_clears_an_excursion_alarm(database_url: str) -> None:
    register(database_url, "EVA1")
    batches = physics_batches("EVA1", samples=360, compressor_failed=FAILURE)  # 3 h
    service = service_for(database_url, at_s=T0 + 3 * 3600)
    store_and_evaluate(database_url, service, batches)
    found = excursions_of(database_url, "EVA1")
    assert len(found) == 1 and found[0][2] == "high"
    start, end, _ = found[0]
    assert FAILURE[0] < start < FAILURE[1] and end is not None and end > FAILURE[1]
    assert found == batch_truth("EVA1", 360), "live evaluation = batch evaluation"
    with psycopg.connect(database_url) as conn:
        alarms = dict(
            conn.execute(
                "SELECT kind, condition_active FROM alarms WHERE vehicle_id = 'EVA1'"
            ).fetchall()
        )
        events = [
            e
            for (e,) in conn.execute(
                "SELECT event FROM alarm_events JOIN alarms USING (alarm_id)"
                " WHERE kind = 'excursion' ORDER BY event_id"
            )
        ]
        state = conn.execute(
            "SELECT status, rulebook_version FROM compartment_state WHERE vehicle_id = 'EVA1'"
        ).fetchone()
    assert alarms["excursion"] is False, "the excursion ended: its condition has cleared"
    assert events == ["opened", "cleared"]
    assert "excursion_predicted" in alarms, "the predictor warned before the band was left"
    assert state == ("in_band", RULES.version)


def test_state_survives_a_controller_restart(database_url: str) -> None:
    register(database_url, "RST1")
    batches = physics_batches("RST1", samples=300, compressor_failed=FAILURE)
    # Stop in the middle of the excursion; a new service (a restarted controller) goes on.
    store_and_evaluate(database_url, service_for(database_url, at_s=T0 + 4000), batches[:150])
    store_and_evaluate(database_url, service_for(database_url, at_s=T0 + 9000), batches[150:])
    assert excursions_of(database_url, "RST1") == batch_truth("RST1", 300)
    with psycopg.connect(database_url) as conn:
        opened = conn.execute(
            "SELECT count(*) FROM alarms WHERE vehicle_id = 'RST1' AND kind = 'excursion'"
        ).fetchone()
    assert opened == (1,), "one excursion, one alarm, across the restart"


def test_back_filled_data_gives_the_same_excursions_as_live_data(database_url: str) -> None:
    register(database_url, "LATE1")
    batches = physics_batches("LATE1", samples=360, compressor_failed=FAILURE)
    # A link outage from 50 min to 2 h 30: live data resumes first, the held readings follow.
    held = batches[100:300]
    service = service_for(database_url, at_s=T0 + 3 * 3600)
    store_and_evaluate(database_url, service, batches[:100])
    store_and_evaluate(database_url, service, batches[300:])
    for i in range(0, len(held), 40):  # the backlog drains oldest first, in full batches
        chunk = held[i : i + 40]
        merged = type(chunk[0])(
            "LATE1", "boot1", f"h{i}", 0, True, tuple(r for b in chunk for r in b.readings)
        )
        store_and_evaluate(database_url, service, [merged])
    assert service.stats.reevaluations >= 1
    assert excursions_of(database_url, "LATE1") == batch_truth("LATE1", 360)
    with psycopg.connect(database_url) as conn:
        detail = conn.execute(
            "SELECT detail FROM alarms WHERE vehicle_id = 'LATE1' AND kind = 'excursion'"
        ).fetchone()
    assert detail is not None and "back-filled" in detail[0]


async def test_alarm_lifecycle_precooling_and_verdict_through_the_api(database_url: str) -> None:
    register(database_url, "API1")
    batches = physics_batches("API1", samples=360, compressor_failed=FAILURE)
    clock = ScaledClock(speed=1.0, start_s=T0 + 3 * 3600)
    settings = ControllerSettings(database_url=database_url)
    service = EvaluationService(settings=settings, rules=RULES, clock=clock)
    # Up to 1 h 40: the compressor failed 40 min ago and the van is out of band now.
    await asyncio.to_thread(store_and_evaluate, database_url, service, batches[:200])
    clock.start_s = T0 + 200 * 30 - 1 - (clock.now_s() - clock.start_s)
    async with (
        serving_api(settings, rules=RULES, clock=clock) as base,
        httpx.AsyncClient(base_url=base, timeout=10) as http,
    ):
        listed = (await http.get("/api/v1/alarms", params={"kind": "excursion"})).json()
        assert [a["vehicle_id"] for a in listed] == ["API1"]
        alarm_id = listed[0]["alarm_id"]
        assert listed[0]["state"] == "open" and listed[0]["condition_active"] is True
        assert (await http.get("/api/v1/alarms", params={"state": "closed"})).status_code == 422

        check = (await http.post("/api/v1/vehicles/API1/compartments/c1/loading-check")).json()
        assert check["allowed"] is False
        assert any("not in band" in r for r in check["reasons"])
        assert any("excursion alarm" in r for r in check["reasons"])

        # Acknowledging needs a name; the condition is still active so it stays unresolved.
        bad = await http.post(f"/api/v1/alarms/{alarm_id}/acknowledge", json={"by": ""})
        assert bad.status_code == 422
        missing = await http.post("/api/v1/alarms/999999/acknowledge", json={"by": "Li Wei"})
        assert missing.status_code == 404
        early = await http.post(
            f"/api/v1/alarms/{alarm_id}/resolve", json={"by": "Li Wei", "comment": "fixed"}
        )
        assert early.status_code == 409 and "still active" in early.json()["detail"]

        events: list[str] = []

        async def listen() -> None:
            async with http.stream("GET", "/api/v1/events") as stream:
                async for line in stream.aiter_lines():
                    events.append(line)
                    if line.startswith("data:") and '"acknowledged"' in line:
                        return

        listener = asyncio.create_task(listen())
        await asyncio.sleep(0.5)
        ack = await http.post(
            f"/api/v1/alarms/{alarm_id}/acknowledge",
            json={"by": "Li Wei", "comment": "driver told to return to depot"},
        )
        assert ack.status_code == 200 and ack.json()["state"] == "acknowledged"
        await asyncio.wait_for(listener, 10)
        assert "event: alarm" in events
        again = await http.post(f"/api/v1/alarms/{alarm_id}/acknowledge", json={"by": "Li Wei"})
        assert again.status_code == 409

        # The rest of the day: the repair brings the compartment back; the alarm resolves.
        await asyncio.to_thread(store_and_evaluate, database_url, service, batches[200:])
        clock.start_s += 160 * 30
        detail = (await http.get(f"/api/v1/alarms/{alarm_id}")).json()
        assert detail["state"] == "resolved"
        assert [e["event"] for e in detail["events"]] == [
            "opened",
            "acknowledged",
            "cleared",
            "resolved",
        ]
        assert detail["events"][1]["actor"] == "Li Wei"

        state = (await http.get("/api/v1/vehicles/API1/compartments/c1/state")).json()
        assert state["status"] == "in_band"
        check = (
            await http.post(
                "/api/v1/vehicles/API1/compartments/c1/loading-check",
                json={"temperature_class": "refrigerated"},
            )
        ).json()
        assert check["allowed"] is True, check["reasons"]
        wrong = (
            await http.post(
                "/api/v1/vehicles/API1/compartments/c1/loading-check",
                json={"temperature_class": "frozen"},
            )
        ).json()
        assert wrong["allowed"] is False and "goods need frozen" in wrong["reasons"][0]

        def iso(offset_s: float) -> str:
            return datetime.fromtimestamp(T0 + offset_s, UTC).isoformat()

        failed = (
            await http.get(
                "/api/v1/vehicles/API1/compartments/c1/verdict",
                params={"from": iso(3000), "to": iso(9000)},
            )
        ).json()
        assert failed["status"] == "fail"
        assert failed["reasons"][0]["code"] == "excursion"
        assert failed["rulebook_version"] == RULES.version
        assert failed["summary"]["mkt_c"] <= failed["summary"]["max_c"]
        passed = (
            await http.get(
                "/api/v1/vehicles/API1/compartments/c1/verdict",
                params={"from": iso(600), "to": iso(3000)},
            )
        ).json()
        assert passed["status"] == "pass", passed["reasons"]
        naive = await http.get(
            "/api/v1/vehicles/API1/compartments/c1/verdict",
            params={"from": "2026-07-01T01:00:00", "to": iso(9000)},
        )
        assert naive.status_code == 422
        unknown = await http.get("/api/v1/vehicles/NOPE/compartments/c1/state")
        assert unknown.status_code == 404


def test_the_audit_trail_is_append_only(database_url: str) -> None:
    register(database_url, "AUD1")
    batches = physics_batches("AUD1", samples=240, compressor_failed=FAILURE)
    store_and_evaluate(database_url, service_for(database_url, at_s=T0 + 7200), batches)
    with psycopg.connect(database_url) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE alarm_events SET actor = 'someone else'")
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM alarm_events")
