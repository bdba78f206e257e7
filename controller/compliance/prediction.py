"""Predict when a compartment will leave its band, from the last minutes of its air temperature.

The compartment air (the mean over probes at each instant) over the rulebook's prediction window
is fitted with three models and the one with the best BIC is used:

- a linear trend ``T = a + r t``;
- the first-order thermal model ``T = T_inf + (T_0 - T_inf) exp(-t / tau)``;
- the same with a drifting equilibrium ``T_inf + r t`` (the slowly warming load behind the air:
  after a compressor failure the air settles within minutes on a level that keeps rising).

The exponentials are fitted by variable projection: for a fixed tau the model is linear in its
other parameters, so a log grid of tau (refined around its best point) is scanned in closed form.
A best tau on the grid's edge means the exponential is not identified (the data are a line, or
noise) and only the line remains. The predicted exit is where the fitted path crosses a limit
within `horizon_s`; None when it settles inside the band or leaves later.

The limits are moved inwards by the mean spread between the governing probe (the warmest for
the high limit, the coldest for the low one) and the air mean, so the prediction is about the
probe that will decide the excursion. Three guards keep normal operation quiet:

- the fit must explain the data (`min_fit_quality`, R²): the sawtooth of compressor cycling and
  the spike of a door opening fit badly, the steady rise after a compressor failure fits well;
- trailing spans from `window_s` down to `min_span_s` are tried and the longest that fits well
  is used, so a failure is seen in the latest minutes while older ones still show cycling;
- a warning needs every prediction of the last `confirm_s` to have warned as well;
- exits predicted sooner than `min_lead_s` do not warn: the excursion alarm is minutes away,
  and short extrapolations of steep transients (the pull-down after a defrost heading for a
  level the thermostat never lets it reach) are where the unit's own control intervenes.

Known limit: a defrost cycle (compressor off, heater on, about 12 min) looks like a compressor
failure for its duration; at a high ambient it can raise a warning (see `prediction_eval`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from controller.compliance.excursions import Direction
from controller.compliance.rulebook import Rulebook, TemperatureClass

FloatArray = npt.NDArray[np.float64]
Model = Literal["exponential", "exponential_drift", "linear", "insufficient"]

_SECONDS_PER_HOUR = 3600.0
_TAU_MIN_S = 30.0
_TAU_MAX_S = 6.0 * _SECONDS_PER_HOUR
_TAU_GRID_S = np.geomspace(_TAU_MIN_S, _TAU_MAX_S, 32)
_TAU_REFINE = 17
# Resolution of the search for the exit along the fitted path.
_EXIT_STEP_S = 30.0
# Trailing spans tried, from the whole window down to the minimum span.
_SPANS = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class Prediction:
    """Where the compartment air is heading, as of the last instant `at_s` of the window.

    `time_to_leave_band_s` is None when the model settles inside the band or exits beyond the
    horizon, and 0 when the governing probe is already out of band (then the excursion tracker
    is in charge and `warn` is False). `warn` means: exit predicted between `min_lead_s` and
    `warn_before_exit_s` ahead, by a fit with R² >= `min_fit_quality`, and so at every instant
    of the last `confirm_s`. `fit_quality` is R² of the model on the span it was fitted on (the
    longest trailing span that fits well; see the module docstring).
    """

    at_s: float
    model: Model
    current_c: float | None
    rate_c_per_h: float | None
    time_to_leave_band_s: float | None
    predicted_exit: Direction | None
    t_inf_c: float | None
    tau_s: float | None
    fit_quality: float
    warn: bool


@dataclass(frozen=True, slots=True)
class _Fit:
    """T(u) = level + drift * u + transient * exp(-u / tau), u seconds after the last instant."""

    model: Model
    level_c: float
    drift_c_per_s: float
    transient_c: float
    tau_s: float | None
    sse: float
    quality: float = 0.0

    def at(self, ahead_s: FloatArray) -> FloatArray:
        """The model's temperature `ahead_s` seconds after the last instant."""
        path = self.level_c + self.drift_c_per_s * ahead_s
        if self.tau_s is not None:
            path = path + self.transient_c * np.exp(-ahead_s / self.tau_s)
        return path

    @property
    def current_c(self) -> float:
        """The model's temperature at the last instant."""
        return self.level_c + self.transient_c

    @property
    def rate_c_per_s(self) -> float:
        """The model's slope at the last instant."""
        decay = self.transient_c / self.tau_s if self.tau_s is not None else 0.0
        return self.drift_c_per_s - decay


def predict_band_exit(
    samples: Iterable[tuple[float, str, float]],
    *,
    band: TemperatureClass,
    rules: Rulebook,
    now_s: float,
) -> Prediction:
    """Fit the samples of the window before `now_s` and predict when the band will be left.

    Pass at least `prediction.window_s + prediction.confirm_s` of samples: a warning is only
    raised when the prediction at every instant of the last `confirm_s` warned as well.
    """
    settings = rules.prediction
    health = rules.probe_health
    start_s = now_s - settings.window_s - settings.confirm_s
    recent = [
        (t, v)
        for t, _, v in samples
        if start_s <= t <= now_s and health.impossible_low_c <= v <= health.impossible_high_c
    ]
    if not recent:
        return _insufficient(now_s)
    times = np.array([t for t, _ in recent], dtype=np.float64)
    values = np.array([v for _, v in recent], dtype=np.float64)
    instants, inverse = np.unique(times, return_inverse=True)
    air = _Air(
        instants_s=instants,
        mean_c=np.bincount(inverse, weights=values) / np.bincount(inverse),
        top_c=_reduce_at(np.maximum, inverse, values, instants.size, -np.inf),
        bottom_c=_reduce_at(np.minimum, inverse, values, instants.size, np.inf),
    )
    last = instants.size - 1
    prediction = _predict_at(air, last, band=band, rules=rules)
    if prediction.warn:
        earliest_s = instants[last] - settings.confirm_s
        for index in range(last - 1, -1, -1):
            if instants[index] < earliest_s:
                break
            if not _predict_at(air, index, band=band, rules=rules).warn:
                return replace(prediction, warn=False)
    return prediction


@dataclass(frozen=True, slots=True)
class _Air:
    instants_s: FloatArray
    mean_c: FloatArray
    top_c: FloatArray
    bottom_c: FloatArray


def _reduce_at(
    ufunc: np.ufunc, inverse: npt.NDArray[np.intp], values: FloatArray, size: int, fill: float
) -> FloatArray:
    out = np.full(size, fill)
    ufunc.at(out, inverse, values)
    return out


def _predict_at(air: _Air, last: int, *, band: TemperatureClass, rules: Rulebook) -> Prediction:
    """The prediction from the window ending at instant `last` (without the confirmation)."""
    settings = rules.prediction
    at_s = float(air.instants_s[last])
    first = int(np.searchsorted(air.instants_s, at_s - settings.window_s, side="left"))
    window = slice(first, last + 1)
    instants, mean_c = air.instants_s[window], air.mean_c[window]
    top_c, bottom_c = air.top_c[window], air.bottom_c[window]
    if instants.size < settings.min_samples or at_s - instants[0] < settings.min_span_s:
        return _insufficient(at_s)

    fit = _fit_best(
        instants - at_s,
        mean_c,
        min_span_s=settings.min_span_s,
        min_samples=settings.min_samples,
        min_quality=settings.min_fit_quality,
    )
    exit_side: Direction | None = band.side_outside(float(top_c[-1])) or band.side_outside(
        float(bottom_c[-1])
    )
    already_out = exit_side is not None
    time_s: float | None = 0.0 if already_out else None
    if not already_out:
        high_c = None if band.high_c is None else band.high_c - float(np.mean(top_c - mean_c))
        low_c = None if band.low_c is None else band.low_c + float(np.mean(mean_c - bottom_c))
        exit_side, time_s = _time_to_exit(
            fit, high_c=high_c, low_c=low_c, horizon_s=settings.horizon_s
        )
    warn = (
        not already_out
        and time_s is not None
        and settings.min_lead_s <= time_s <= settings.warn_before_exit_s
        and fit.quality >= settings.min_fit_quality
    )
    return Prediction(
        at_s=at_s,
        model=fit.model,
        current_c=fit.current_c,
        rate_c_per_h=fit.rate_c_per_s * _SECONDS_PER_HOUR,
        time_to_leave_band_s=time_s,
        predicted_exit=exit_side,
        t_inf_c=None if fit.model == "linear" else fit.level_c,
        tau_s=fit.tau_s,
        fit_quality=fit.quality,
        warn=warn,
    )


def _insufficient(at_s: float) -> Prediction:
    return Prediction(
        at_s=at_s,
        model="insufficient",
        current_c=None,
        rate_c_per_h=None,
        time_to_leave_band_s=None,
        predicted_exit=None,
        t_inf_c=None,
        tau_s=None,
        fit_quality=0.0,
        warn=False,
    )


def _fit_best(
    x_s: FloatArray, y_c: FloatArray, *, min_span_s: float, min_samples: int, min_quality: float
) -> _Fit:
    """The longest trailing span (of the whole window down to `min_span_s`) that fits well.

    A failure shows first in the most recent minutes while the older part of the window still
    holds normal cycling; a shorter span catches it sooner, a longer one is steadier.
    """
    full_span_s = -float(x_s[0])
    fallback: _Fit | None = None
    for span_s in np.linspace(full_span_s, min(min_span_s, full_span_s), _SPANS).tolist():
        keep = x_s >= -span_s - 1e-9
        if int(keep.sum()) < min_samples:
            continue
        fit = _fit(x_s[keep], y_c[keep])
        if fit.quality >= min_quality:
            return fit
        fallback = fallback or fit
    return fallback if fallback is not None else _fit(x_s, y_c)


def _fit(x_s: FloatArray, y_c: FloatArray) -> _Fit:
    """Fit the three models on times relative to the last instant (x <= 0); keep the best BIC.

    For a fixed tau each exponential model is linear in its other parameters, so its residual
    has a closed form (the basis is regressed out of the mean, or out of the line): a coarse
    log grid of tau is scanned in one vector step, then refined around its best point. A best
    tau on the coarse grid's edge means the exponential is not identified and is skipped.
    """
    n = x_s.size
    y_mean = float(y_c.mean())
    y_dev = y_c - y_mean
    total = float(y_dev @ y_dev)
    x_mean = float(x_s.mean())
    x_dev = x_s - x_mean
    x_var = float(x_dev @ x_dev)
    slope = float(x_dev @ y_dev) / x_var if x_var > 0 else 0.0
    line_residual = y_dev - slope * x_dev
    line_sse = float(line_residual @ line_residual)
    line = _Fit("linear", y_mean - slope * x_mean, slope, 0.0, None, line_sse)
    candidates = [(_bic(line_sse, n=n, params=2), line)]

    def scan(taus_s: FloatArray, *, drift: bool) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Residuals, amplitudes and basis slopes per tau (basis exp(-(x - x_first)/tau))."""
        basis = np.exp(-(x_s[None, :] - x_s[0]) / taus_s[:, None])
        basis_dev = basis - basis.mean(axis=1, keepdims=True)
        target, base_sse = (line_residual, line_sse) if drift else (y_dev, total)
        slopes = (basis_dev @ x_dev) / x_var if drift else np.zeros(taus_s.size)
        if drift:
            basis_dev = basis_dev - slopes[:, None] * x_dev[None, :]
        var = np.sum(basis_dev**2, axis=1)
        cov = basis_dev @ target
        ok = var > 1e-12
        amplitudes = np.where(ok, cov / np.where(ok, var, 1.0), 0.0)
        return np.where(ok, base_sse - amplitudes * cov, np.inf), amplitudes, slopes

    for drift in (False, True):
        if drift and x_var <= 0:
            continue
        sse, _, _ = scan(_TAU_GRID_S, drift=drift)
        k = int(np.argmin(sse))
        if not (0 < k < _TAU_GRID_S.size - 1 and np.isfinite(sse[k])):
            continue
        taus_s = np.geomspace(_TAU_GRID_S[k - 1], _TAU_GRID_S[k + 1], _TAU_REFINE)
        sse, amplitudes, slopes = scan(taus_s, drift=drift)
        j = int(np.argmin(sse))
        tau_s, c = float(taus_s[j]), float(amplitudes[j])
        basis_mean = float(np.exp(-(x_s - x_s[0]) / tau_s).mean())
        transient_c = c * math.exp(x_s[0] / tau_s)  # the basis at x = 0
        rate = slope - c * float(slopes[j]) if drift else 0.0
        level_c = y_mean - rate * x_mean - c * basis_mean
        model: Model = "exponential_drift" if drift else "exponential"
        fit = _Fit(model, level_c, rate, transient_c, tau_s, max(0.0, float(sse[j])))
        candidates.append((_bic(fit.sse, n=n, params=4 if drift else 3), fit))
    best = min(candidates, key=lambda candidate: candidate[0])[1]
    quality = 1.0 - best.sse / total if total > 0 else 1.0
    return replace(best, sse=max(0.0, best.sse), quality=max(0.0, quality))


def _bic(sse: float, *, n: int, params: int) -> float:
    return n * math.log(max(sse, 1e-12 * n) / n) + params * math.log(n)


def _time_to_exit(
    fit: _Fit, *, high_c: float | None, low_c: float | None, horizon_s: float
) -> tuple[Direction | None, float | None]:
    """First time within the horizon the model crosses a limit (linear between grid points)."""
    ahead_s = np.linspace(0.0, horizon_s, max(2, int(horizon_s // _EXIT_STEP_S) + 1))
    path_c = fit.at(ahead_s)
    crossings: list[tuple[float, Direction]] = []
    if high_c is not None:
        time_s = _first_crossing(ahead_s, path_c - high_c)
        if time_s is not None:
            crossings.append((time_s, "high"))
    if low_c is not None:
        time_s = _first_crossing(ahead_s, low_c - path_c)
        if time_s is not None:
            crossings.append((time_s, "low"))
    if not crossings:
        return None, None
    time_s, side = min(crossings)
    return side, time_s


def _first_crossing(ahead_s: FloatArray, excess_c: FloatArray) -> float | None:
    """When `excess_c` (beyond the limit when >= 0) first reaches 0, or None."""
    beyond = excess_c >= 0
    if not beyond.any():
        return None
    i = int(np.argmax(beyond))
    if i == 0:
        return 0.0
    before_c, after_c = float(excess_c[i - 1]), float(excess_c[i])
    share = -before_c / (after_c - before_c)
    return float(ahead_s[i - 1] + share * (ahead_s[i] - ahead_s[i - 1]))
