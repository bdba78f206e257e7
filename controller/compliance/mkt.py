"""Mean kinetic temperature and a time-weighted temperature summary (informational only).

MKT (Haynes) over irregular samples, each instant weighted by the time it stands for:

    T_mkt = (dH/R) / -ln( sum_i w_i exp(-(dH/R) / T_i) / sum_i w_i )    (T in kelvin)

Weights follow the compliance core's time attribution: the interval after an instant takes its
value, and an interval longer than `max_gap_s` weighs nothing. Several samples at one instant
(one per probe) are averaged for the mean and MKT; min and max cover every sample that counts.
MKT never excuses an excursion (ZLG position): verdicts show it, never decide on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from controller.compliance.errors import InsufficientDataError

KELVIN_OFFSET = 273.15
DEFAULT_DELTA_H_OVER_R_K = 10_000.0

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    """Min, max, time-weighted mean and MKT of a series; None where there is no data for it.

    `covered_s` is the time the weights add up to (0 when nothing is covered).
    """

    min_c: float | None
    max_c: float | None
    mean_c: float | None
    mkt_c: float | None
    covered_s: float
    samples: int


@dataclass(frozen=True, slots=True)
class _Weighted:
    instants_s: FloatArray
    values_c: FloatArray
    weights_s: FloatArray
    counted: npt.NDArray[np.bool_]


def _weigh(
    ts_s: Sequence[float] | FloatArray,
    values_c: Sequence[float] | FloatArray,
    *,
    max_gap_s: float | None,
    window_start_s: float | None,
    window_end_s: float | None,
) -> _Weighted:
    times = np.asarray(ts_s, dtype=np.float64)
    values = np.asarray(values_c, dtype=np.float64)
    if times.shape != values.shape or times.ndim != 1:
        raise ValueError(f"ts_s and values_c must be 1-D of one length, got {times.shape}")
    if not (np.all(np.isfinite(times)) and np.all(np.isfinite(values))):
        raise ValueError("ts_s and values_c must be finite")
    instants, inverse = np.unique(times, return_inverse=True)
    sums = np.bincount(inverse, weights=values, minlength=instants.size)
    means = sums / np.bincount(inverse, minlength=instants.size)
    limit_s = np.inf if max_gap_s is None else max_gap_s
    start_s = -np.inf if window_start_s is None else window_start_s
    end_s = np.inf if window_end_s is None else window_end_s
    weights = np.zeros(instants.size)
    if instants.size:
        nxt = np.append(instants[1:], end_s if window_end_s is not None else instants[-1])
        lengths = nxt - instants
        clipped = np.clip(np.minimum(nxt, end_s) - np.maximum(instants, start_s), 0.0, None)
        weights = np.where(lengths <= limit_s, clipped, 0.0)
        lead_s = instants[0] - start_s
        if window_start_s is not None and 0 < lead_s <= limit_s:
            weights[0] += min(instants[0], end_s) - start_s
    in_window = (instants >= start_s) & (instants <= end_s)
    counted = (weights > 0) | in_window
    return _Weighted(instants, means, weights, counted[inverse])


def _mkt_c(values_c: FloatArray, weights_s: FloatArray, delta_h_over_r_k: float) -> float:
    kelvin = values_c + KELVIN_OFFSET
    if np.any(kelvin <= 0):
        raise ValueError("temperatures must be above absolute zero")
    exponents = -delta_h_over_r_k / kelvin
    top = float(exponents.max())
    log_mean = top + float(np.log(np.sum(weights_s * np.exp(exponents - top)) / weights_s.sum()))
    mkt_c = -delta_h_over_r_k / log_mean - KELVIN_OFFSET
    # Jensen: mean <= MKT <= max exactly; clamp away rounding of the last few ulps.
    mean_c = _mean_c(values_c, weights_s)
    return float(np.clip(mkt_c, mean_c, values_c.max()))


def _mean_c(values_c: FloatArray, weights_s: FloatArray) -> float:
    mean_c = float(np.average(values_c, weights=weights_s))
    return float(np.clip(mean_c, values_c.min(), values_c.max()))


def mean_kinetic_temperature_c(
    ts_s: Sequence[float] | FloatArray,
    values_c: Sequence[float] | FloatArray,
    *,
    delta_h_over_r_k: float = DEFAULT_DELTA_H_OVER_R_K,
    max_gap_s: float | None = None,
) -> float:
    """Time-weighted MKT (°C) of irregular samples; raises when no time is covered."""
    weighted = _weigh(ts_s, values_c, max_gap_s=max_gap_s, window_start_s=None, window_end_s=None)
    mask = weighted.weights_s > 0
    if not mask.any():
        raise InsufficientDataError("mean kinetic temperature", len(weighted.counted))
    return _mkt_c(weighted.values_c[mask], weighted.weights_s[mask], delta_h_over_r_k)


def temperature_summary(
    ts_s: Sequence[float] | FloatArray,
    values_c: Sequence[float] | FloatArray,
    *,
    delta_h_over_r_k: float = DEFAULT_DELTA_H_OVER_R_K,
    max_gap_s: float | None = None,
    window_start_s: float | None = None,
    window_end_s: float | None = None,
) -> Summary:
    """Min, max, time-weighted mean and MKT over a window (the whole series when None)."""
    weighted = _weigh(
        ts_s,
        values_c,
        max_gap_s=max_gap_s,
        window_start_s=window_start_s,
        window_end_s=window_end_s,
    )
    all_values = np.asarray(values_c, dtype=np.float64)[weighted.counted]
    mask = weighted.weights_s > 0
    covered_s = float(weighted.weights_s.sum())
    if not all_values.size:
        return Summary(min_c=None, max_c=None, mean_c=None, mkt_c=None, covered_s=0.0, samples=0)
    mean_c: float | None = None
    mkt_c: float | None = None
    if mask.any():
        values, weights = weighted.values_c[mask], weighted.weights_s[mask]
        mean_c = _mean_c(values, weights)
        mkt_c = _mkt_c(values, weights, delta_h_over_r_k)
    return Summary(
        min_c=float(all_values.min()),
        max_c=float(all_values.max()),
        mean_c=mean_c,
        mkt_c=mkt_c,
        covered_s=covered_s,
        samples=int(all_values.size),
    )
