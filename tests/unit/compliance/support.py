"""Shared helpers of the compliance tests: the shipped rulebook and sample builders."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from controller.compliance.models import Sample
from controller.compliance.rulebook import (
    SHIPPED_RULEBOOK,
    Rulebook,
    TemperatureClass,
    load_rulebook,
    rulebook_from_dict,
)

DATA = Path(__file__).with_name("data")
T0 = 1_751_299_200.0  # 2025-07-01 00:00 Shanghai


@cache
def rules() -> Rulebook:
    """The shipped rulebook (loaded once)."""
    return load_rulebook()


def shipped_document() -> dict[str, Any]:
    """A fresh, mutable copy of the shipped rulebook document."""
    return copy.deepcopy(yaml.safe_load(SHIPPED_RULEBOOK.read_text(encoding="utf-8")))


def modified_rules(change: Callable[[dict[str, Any]], None]) -> Rulebook:
    """The shipped rulebook with `change` applied to its document, validated."""
    document = shipped_document()
    change(document)
    return rulebook_from_dict(document)


def band(name: str = "refrigerated", **overrides: float) -> TemperatureClass:
    """A class of the shipped rulebook, optionally with other timing."""
    return replace(rules().temperature_class(name), **overrides)


def series(
    values_c: Iterable[float], *, probe_id: str = "p1", start_s: float = T0, step_s: float = 30.0
) -> list[Sample]:
    """One probe's samples at a fixed cadence."""
    return [Sample(start_s + i * step_s, probe_id, v) for i, v in enumerate(values_c)]


def two_probes(
    values_c: Iterable[float], *, other_c: float = 5.0, start_s: float = T0, step_s: float = 30.0
) -> list[Sample]:
    """`p1` follows `values_c`; `p2` reads `other_c` at every instant."""
    samples: list[Sample] = []
    for i, v in enumerate(values_c):
        ts_s = start_s + i * step_s
        samples += [Sample(ts_s, "p1", v), Sample(ts_s, "p2", other_c)]
    return samples
