"""Probe health findings: each kind on a small constructed record, none on a healthy one."""

from __future__ import annotations

import math
from datetime import date

from controller.compliance.models import CompartmentMeta, ProbeMeta, Sample
from controller.compliance.probes import ProbeFinding, probe_findings
from tests.unit.compliance.support import T0, rules

TODAY = date(2026, 3, 1)


def _meta(
    *probe_ids: str, volume_m3: float = 12.0, due: date = date(2026, 12, 31)
) -> CompartmentMeta:
    return CompartmentMeta(
        compartment_id="c1",
        volume_m3=volume_m3,
        probes=tuple(ProbeMeta(probe_id=p, accuracy_c=0.5, calibration_due=due) for p in probe_ids),
    )


def _wave(i: int, *, amplitude_c: float = 1.0) -> float:
    return 5.0 + amplitude_c * math.sin(i / 7.0)


def _findings(samples: list[Sample], meta: CompartmentMeta | None = None) -> list[ProbeFinding]:
    return probe_findings(
        samples=samples, compartment=meta or _meta("p1", "p2"), rules=rules(), today=TODAY
    )


def _healthy(n: int) -> list[Sample]:
    return [
        Sample(T0 + i * 30, p, round(_wave(i) + offset, 2))
        for i in range(n)
        for p, offset in (("p1", -0.3), ("p2", 0.3))
    ]


def test_a_healthy_record_has_no_findings() -> None:
    assert _findings(_healthy(240)) == []


def test_a_stuck_probe_is_found_while_the_other_moves() -> None:
    samples = [s for s in _healthy(240) if not (s.probe_id == "p2" and s.ts_s >= T0 + 3000)]
    samples += [Sample(T0 + i * 30, "p2", 5.55) for i in range(100, 240)]
    [stuck] = [f for f in _findings(samples) if f.kind == "stuck"]
    assert stuck.probe_ids == ("p2",) and stuck.start_s == T0 + 3000
    assert stuck.end_s == T0 + 239 * 30


def test_steady_probes_are_not_stuck_when_nothing_moves() -> None:
    samples = [Sample(T0 + i * 30, p, 5.0) for i in range(200) for p in ("p1", "p2")]
    assert [f.kind for f in _findings(samples)] == []


def test_disagreement_beyond_the_summed_accuracies_for_ten_minutes() -> None:
    samples = [
        Sample(T0 + i * 30, p, _wave(i) + (1.5 if p == "p2" and 40 <= i < 70 else 0.0))
        for i in range(120)
        for p in ("p1", "p2")
    ]
    [apart] = _findings(samples)
    assert (apart.kind, apart.probe_ids) == ("disagreement", ("p1", "p2"))
    assert (apart.start_s, apart.end_s) == (T0 + 40 * 30, T0 + 70 * 30)
    # 1.5 °C apart at -10 °C is within the summed ±1.0 accuracies there.
    frozen = [Sample(s.ts_s, s.probe_id, s.value_c - 15.0) for s in samples]
    assert _findings(frozen) == []
    brief = [s for s in samples if not (s.probe_id == "p2" and s.ts_s >= T0 + 55 * 30)]
    brief += [Sample(T0 + i * 30, "p2", _wave(i)) for i in range(55, 120)]
    assert _findings(brief) == [], "apart for 7.5 min only"


def test_impossible_values_and_jumps() -> None:
    values = [5.0] * 10 + [200.0, 200.0] + [5.0] * 5 + [17.0] + [5.0] * 5 + [float("nan")]
    samples = [Sample(T0 + i * 30, "p1", v) for i, v in enumerate(values)]
    samples += [Sample(T0 + i * 30, "p2", 5.0) for i in range(len(values))]
    kinds = [(f.kind, f.start_s, f.end_s) for f in _findings(samples)]
    assert ("impossible", T0 + 300, T0 + 360) in kinds
    assert ("impossible", T0 + 23 * 30, T0 + 23 * 30) in kinds
    assert ("jump", T0 + 16 * 30, T0 + 18 * 30) in kinds, "up and down again: one finding"
    assert len(kinds) == 3


def test_a_slow_change_between_distant_samples_is_not_a_jump() -> None:
    samples = [Sample(T0, "p1", 5.0), Sample(T0 + 600, "p1", 17.0)]
    assert not [f for f in _findings(samples, _meta("p1")) if f.kind == "jump"]


def test_silent_and_unknown_probes() -> None:
    samples = [
        s for s in _healthy(120) if not (s.probe_id == "p2" and 20 <= (s.ts_s - T0) / 30 < 50)
    ]
    samples += [Sample(T0 + i * 30, "p9", 5.0) for i in range(3)]
    found = _findings(samples)
    silent = [f for f in found if f.kind == "silent"]
    assert [(f.probe_ids, f.start_s, f.end_s) for f in silent] == [
        (("p2",), T0 + 19 * 30, T0 + 50 * 30)
    ]
    assert [f.probe_ids for f in found if f.kind == "unknown_probe"] == [("p9",)]


def test_registry_findings() -> None:
    meta = CompartmentMeta(
        compartment_id="c1",
        volume_m3=30.0,
        probes=(
            ProbeMeta(probe_id="p1", accuracy_c=0.5, calibration_due=date(2026, 2, 28)),
            ProbeMeta(probe_id="p2", accuracy_c=0.8, calibration_due=TODAY),
        ),
    )
    found = _findings(_healthy(40), meta)
    assert [(f.kind, f.probe_ids) for f in found] == [
        ("accuracy", ("p2",)),
        ("calibration_overdue", ("p1",)),
        ("too_few_probes", ("p1", "p2")),
    ]
    assert found[1].on_date == date(2026, 2, 28), "due today is not overdue yet"
    assert "at least 3" in found[2].detail


def test_the_window_limits_the_findings() -> None:
    values = [5.0] * 10 + [200.0] + [5.0] * 10
    samples = [Sample(T0 + i * 30, p, v) for i, v in enumerate(values) for p in ("p1", "p2")]
    found = probe_findings(
        samples=samples,
        compartment=_meta("p1", "p2"),
        rules=rules(),
        today=TODAY,
        window_start_s=T0 + 330,
        window_end_s=T0 + 600,
    )
    assert found == []
