"""Local alarms on the gateway: delay, hysteresis, worst probe, power loss, outputs."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
from collections.abc import Sequence
from pathlib import Path

import pytest

from edge_agent.alarms import (
    AlarmEvent,
    Band,
    CallbackAlarmOutput,
    CommandAlarmOutput,
    LocalAlarmMonitor,
    LogAlarmOutput,
)

FRIDGE = Band(2.0, 8.0)


def monitor(delay_s: float = 60.0, hysteresis_c: float = 0.3) -> LocalAlarmMonitor:
    return LocalAlarmMonitor(
        bands={"c1": FRIDGE, "c2": Band(-25.0, -10.0)},
        alarm_delay_s=delay_s,
        hysteresis_c=hysteresis_c,
    )


def c1(p1: float, p2: float = 5.0) -> list[tuple[str, float]]:
    return [("temp:c1:p1", p1), ("temp:c1:p2", p2)]


def feed(
    m: LocalAlarmMonitor, series: Sequence[tuple[float, Sequence[tuple[str, float]]]]
) -> list[AlarmEvent]:
    events: list[AlarmEvent] = []
    for now_s, readings in series:
        events.extend(m.update(now_s, readings))
    return events


def summary(events: list[AlarmEvent]) -> list[tuple[str, str, bool, float]]:
    return [(e.kind, e.subject, e.raised, e.at_s) for e in events]


def test_excursion_raised_only_after_the_alarm_delay() -> None:
    m = monitor(delay_s=60)
    events = feed(m, [(t, c1(9.0)) for t in range(0, 130, 10)])
    assert summary(events) == [("excursion", "c1", True, 60.0)]
    assert "8.0" in events[0].detail and "1.00" in events[0].detail
    assert m.out_of_band()


def test_excursion_delay_restarts_when_back_in_band() -> None:
    m = monitor(delay_s=60)
    series = [(t, c1(9.0)) for t in range(0, 60, 10)]  # out for 50 s
    series.append((60, c1(5.0)))  # back inside before the delay ran out
    series += [(t, c1(9.0)) for t in range(70, 200, 10)]
    events = feed(m, series)
    assert summary(events) == [("excursion", "c1", True, 130.0)], "60 s after it left again"


def test_noise_around_the_limit_does_not_flap() -> None:
    m = monitor(delay_s=30, hysteresis_c=0.3)
    # Before an alarm: dipping back inside every other sample means never 30 s continuously out.
    noisy = [(t, c1(8.1 if (t // 10) % 2 == 0 else 7.9)) for t in range(0, 300, 10)]
    assert feed(m, noisy) == []
    assert not m.out_of_band()  # it was inside at the last sample

    # Raised after 30 s out; noise just inside the limit (within the hysteresis) keeps it raised.
    raised = feed(m, [(t, c1(8.2)) for t in range(300, 340, 10)])
    assert summary(raised) == [("excursion", "c1", True, 330.0)]
    jitter = [8.1, 7.9, 7.75, 8.05, 7.8, 7.71, 7.9, 8.3]
    assert feed(m, [(400 + i * 10, c1(v)) for i, v in enumerate(jitter)]) == []
    assert m.out_of_band()

    # Cleared once inside by at least the hysteresis, once.
    cleared = feed(m, [(500, c1(7.6)), (510, c1(7.5)), (520, c1(7.9))])
    assert summary(cleared) == [("excursion", "c1", False, 500.0)]
    # And a new excursion needs the full delay again.
    assert feed(m, [(530, c1(8.5)), (550, c1(8.5))]) == []
    assert summary(feed(m, [(560, c1(8.5))])) == [("excursion", "c1", True, 560.0)]


def test_clearing_uses_the_hysteresis_on_the_low_side_too() -> None:
    m = monitor(delay_s=0, hysteresis_c=0.5)
    assert summary(m.update(0, c1(1.0))) == [("excursion", "c1", True, 0.0)]
    assert m.update(10, c1(2.4)) == []  # inside, but by less than 0.5
    assert summary(m.update(20, c1(2.5))) == [("excursion", "c1", False, 20.0)]


def test_worst_probe_decides() -> None:
    m = monitor(delay_s=0)
    assert m.update(0, c1(5.0, 7.9)) == []
    assert summary(m.update(10, c1(5.0, 8.4))) == [("excursion", "c1", True, 10.0)]
    # One probe deep inside does not clear the alarm while the other is still near the limit.
    assert m.update(20, c1(3.0, 7.8)) == []
    assert summary(m.update(30, c1(5.0, 7.6))) == [("excursion", "c1", False, 30.0)]
    # The cold side counts as much as the warm side.
    assert summary(m.update(40, c1(1.5, 7.9))) == [("excursion", "c1", True, 40.0)]
    assert summary(m.update(50, c1(5.0, 5.0))) == [("excursion", "c1", False, 50.0)]


def test_excursion_detail_reports_the_worst_distance() -> None:
    m = monitor(delay_s=0)
    [event] = m.update(0, c1(9.0, 10.5))
    assert "2.50" in event.detail


def test_power_loss_raise_and_clear() -> None:
    m = monitor()
    assert m.update(0, [("power", 1.0)]) == [], "power present from the start is no event"
    lost = m.update(10, [("power", 0.0)])
    assert summary(lost) == [("power_loss", "power", True, 10.0)]
    assert m.update(20, [("power", 0.0)]) == [], "raised once, not on every sample"
    restored = m.update(30, [("power", 1.0)])
    assert summary(restored) == [("power_loss", "power", False, 30.0)]
    assert m.update(40, [("power", 1.0)]) == []


def test_power_loss_needs_no_delay_and_does_not_touch_compartments() -> None:
    m = monitor(delay_s=600)
    events = m.update(0, [("power", 0.0), *c1(5.0)])
    assert summary(events) == [("power_loss", "power", True, 0.0)]
    assert not m.out_of_band()


def test_compartments_are_independent() -> None:
    m = monitor(delay_s=20)
    freezer_ok = [("temp:c2:p1", -18.0), ("temp:c2:p2", -17.0)]
    freezer_warm = [("temp:c2:p1", -18.0), ("temp:c2:p2", -8.0)]
    events = feed(m, [(t, [*c1(5.0), *freezer_warm]) for t in (0, 10, 20)])
    assert summary(events) == [("excursion", "c2", True, 20.0)]
    events = feed(m, [(t, [*c1(9.0), *freezer_warm]) for t in (30, 40, 50)])
    assert summary(events) == [("excursion", "c1", True, 50.0)]
    events = feed(m, [(60, [*c1(9.0), *freezer_ok])])
    assert summary(events) == [("excursion", "c2", False, 60.0)], "c1 stays raised"
    # A sample without c2's probes changes nothing for c2.
    assert feed(m, [(70, c1(9.0))]) == []
    events = feed(m, [(80, c1(5.0))])
    assert summary(events) == [("excursion", "c1", False, 80.0)]
    assert not m.out_of_band()


def test_unknown_compartments_and_other_channels_are_ignored() -> None:
    m = monitor(delay_s=0)
    readings = [("temp:c9:p1", 50.0), ("door:c1", 1.0), ("gps:speed", 80.0), *c1(5.0)]
    assert m.update(0, readings) == []
    assert not m.out_of_band()


def test_a_band_without_lower_limit() -> None:
    m = LocalAlarmMonitor(bands={"cool": Band(-math.inf, 20.0)}, alarm_delay_s=0)
    assert m.update(0, [("temp:cool:p1", -30.0), ("temp:cool:p2", 19.0)]) == []
    [event] = m.update(10, [("temp:cool:p1", -30.0), ("temp:cool:p2", 21.0)])
    assert (event.kind, event.subject, event.raised) == ("excursion", "cool", True)


# -- outputs -----------------------------------------------------------------------------------

EVENT = AlarmEvent("excursion", "c1", True, 12.0, "out of 2.0..8.0 °C by 1.00 °C")


async def test_command_output_runs_the_command_with_the_alarm_in_its_environment(
    tmp_path: Path,
) -> None:
    out = tmp_path / "alarm.txt"
    script = (
        'printf "%s|%s|%s|%s" "$COLDCHAIN_ALARM_KIND" "$COLDCHAIN_ALARM_SUBJECT"'
        ' "$COLDCHAIN_ALARM_STATE" "$COLDCHAIN_ALARM_DETAIL" > "$1"'
    )
    output = CommandAlarmOutput(["sh", "-c", script, "sh", str(out)])
    await output.emit(EVENT)
    assert out.read_text(encoding="utf-8") == "excursion|c1|raised|out of 2.0..8.0 °C by 1.00 °C"
    await output.emit(AlarmEvent("power_loss", "power", False, 13.0, "power restored"))
    assert out.read_text(encoding="utf-8") == "power_loss|power|cleared|power restored"


async def test_failing_command_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="edge_agent.alarms")
    await CommandAlarmOutput(["sh", "-c", "exit 3"]).emit(EVENT)
    await CommandAlarmOutput([str(tmp_path / "no-such-siren")]).emit(EVENT)
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("exited with 3" in m for m in messages), messages
    assert any("no-such-siren" in m and "failed" in m for m in messages), messages


async def test_hanging_command_is_logged_after_its_timeout(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="edge_agent.alarms")
    pid_file = tmp_path / "pid"
    output = CommandAlarmOutput(
        ["sh", "-c", 'echo $$ > "$1"; exec sleep 30', "sh", str(pid_file)], timeout_s=0.3
    )
    try:
        await asyncio.wait_for(output.emit(EVENT), 10)
        assert any("timed out" in r.getMessage() for r in caplog.records)
    finally:
        _kill_if_running(pid_file)


async def test_hanging_command_is_killed_after_its_timeout(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    output = CommandAlarmOutput(
        ["sh", "-c", 'echo $$ > "$1"; exec sleep 30', "sh", str(pid_file)], timeout_s=0.3
    )
    try:
        await output.emit(EVENT)
        await asyncio.sleep(0.2)
        pid = int(pid_file.read_text())
        assert _process_state(pid) in (None, "Z"), "the timed-out alarm command still runs"
    finally:
        _kill_if_running(pid_file)


def _process_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _kill_if_running(pid_file: Path) -> None:
    try:
        pid = int(pid_file.read_text())
    except (FileNotFoundError, ValueError):
        return
    if _process_state(pid) not in (None, "Z"):
        os.kill(pid, signal.SIGKILL)


async def test_callback_and_log_outputs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="edge_agent.alarms")
    seen: list[AlarmEvent] = []
    await CallbackAlarmOutput(seen.append).emit(EVENT)
    assert seen == [EVENT]
    await LogAlarmOutput().emit(EVENT)
    await LogAlarmOutput().emit(AlarmEvent("excursion", "c1", False, 20.0, "back inside"))
    levels = [(r.levelno, "RAISED" in r.getMessage()) for r in caplog.records]
    assert levels == [(logging.ERROR, True), (logging.WARNING, False)]
