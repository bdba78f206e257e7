"""Lumped thermal model of one reefer compartment: air, product, compressor, defrost and doors.

Two nodes exchange heat: the compartment air (with the interior lining and evaporator that follow
it closely) and the product load. The air gains heat from the ambient through the insulated box
(plus an air-exchange term while the door is open) and from the product or defrost heater; the
compressor removes a fixed capacity while it runs. The unit's own thermostat reads the true air
temperature (monitoring probes are independent of the cooling control, as GSP asks), switches
with a hysteresis band, respects an anti-short-cycle restart delay and pauses for defrost.

Everything here is pure and deterministic: time is passed in, nothing reads a clock or does I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

SECONDS_PER_HOUR = 3600.0
SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ReeferParams:
    """Physical constants of one compartment and its environment (defaults: a loaded ~12 m3 van).

    The product defaults to ~400 kg of packed medicines (about 3 kJ/(kg K)) well coupled to the
    fan-forced air; an empty box is the same with a small `product_capacitance_j_per_k`.
    """

    ua_w_per_k: float = 40.0
    air_capacitance_j_per_k: float = 50_000.0
    product_capacitance_j_per_k: float = 1_200_000.0
    product_coupling_w_per_k: float = 800.0
    compressor_capacity_w: float = 2_500.0
    setpoint_c: float = 5.0
    hysteresis_c: float = 1.0
    min_compressor_off_s: float = 180.0
    defrost_interval_h: float = 6.0
    defrost_duration_min: float = 12.0
    defrost_heater_w: float = 150.0
    door_open_conductance_w_per_k: float = 120.0
    ambient_mean_c: float = 30.0
    ambient_amplitude_c: float = 5.0
    ambient_peak_hour: float = 15.0
    utc_offset_h: float = 8.0
    probe_noise_sigma_c: float = 0.05
    probe_gradient_c: float = 0.3
    max_substep_s: float = 5.0

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if not math.isfinite(value):
                raise ValueError(f"ReeferParams.{spec.name} must be a finite number, got {value}")
        positive = (
            "ua_w_per_k",
            "air_capacitance_j_per_k",
            "product_capacitance_j_per_k",
            "product_coupling_w_per_k",
            "max_substep_s",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"ReeferParams.{name} must be > 0, got {getattr(self, name)}")
        non_negative = (
            "compressor_capacity_w",
            "hysteresis_c",
            "min_compressor_off_s",
            "defrost_duration_min",
            "defrost_heater_w",
            "door_open_conductance_w_per_k",
            "ambient_amplitude_c",
            "probe_noise_sigma_c",
            "probe_gradient_c",
        )
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ValueError(f"ReeferParams.{name} must be >= 0, got {getattr(self, name)}")
        if self.defrost_duration_min > 0 and self.defrost_interval_h * 60.0 <= (
            self.defrost_duration_min
        ):
            raise ValueError(
                "ReeferParams.defrost_interval_h must be longer than defrost_duration_min "
                f"(got {self.defrost_interval_h} h and {self.defrost_duration_min} min)"
            )
        if not 0.0 <= self.ambient_peak_hour < 24.0:
            raise ValueError(
                f"ReeferParams.ambient_peak_hour must be in [0, 24), got {self.ambient_peak_hour}"
            )

    @property
    def defrost_enabled(self) -> bool:
        """Whether the unit defrosts at all (a zero duration disables it)."""
        return self.defrost_duration_min > 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ReeferState:
    """The compartment's thermal and control state at one instant."""

    air_c: float
    product_c: float
    compressor_on: bool = False
    compressor_off_since_s: float = -math.inf
    defrost_until_s: float = -math.inf
    next_defrost_s: float = math.inf


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeDrift:
    """A probe whose reading drifts by `rate_c_per_h` from `start_s` on (calibration loss)."""

    probe_id: str
    rate_c_per_h: float
    start_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeStuck:
    """A probe frozen from `since_s` on: at `value_c`, or at its first reading from then when None."""

    probe_id: str
    since_s: float
    value_c: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Faults:
    """Failures injected into one compartment; the default is a healthy compartment.

    `power_lost` stops the compressor and defrost heater and makes the gateway report power 0;
    `door_stuck_open` keeps the door open whatever the door schedule says.
    """

    compressor_failed: bool = False
    power_lost: bool = False
    door_stuck_open: bool = False
    probe_drifts: tuple[ProbeDrift, ...] = ()
    probes_stuck: tuple[ProbeStuck, ...] = ()

    def drift_for(self, probe_id: str) -> ProbeDrift | None:
        """Return the drift fault of a probe, or None."""
        return next((d for d in self.probe_drifts if d.probe_id == probe_id), None)

    def stuck_for(self, probe_id: str) -> ProbeStuck | None:
        """Return the stuck fault of a probe, or None."""
        return next((s for s in self.probes_stuck if s.probe_id == probe_id), None)


NO_FAULTS = Faults()


def ambient_c(*, params: ReeferParams, now_s: float) -> float:
    """Outside air temperature: a daily sinusoid peaking at `ambient_peak_hour` local time."""
    local_hour = ((now_s / SECONDS_PER_HOUR) + params.utc_offset_h) % 24.0
    phase = 2.0 * math.pi * (local_hour - params.ambient_peak_hour) / 24.0
    return params.ambient_mean_c + params.ambient_amplitude_c * math.cos(phase)


def initial_state(
    *, params: ReeferParams, now_s: float, air_c: float, product_c: float | None = None
) -> ReeferState:
    """A compartment switched on at `now_s`: compressor off, first defrost one interval later."""
    if not math.isfinite(air_c) or (product_c is not None and not math.isfinite(product_c)):
        raise ValueError(f"initial temperatures must be finite, got {air_c} and {product_c}")
    next_defrost_s = (
        now_s + params.defrost_interval_h * SECONDS_PER_HOUR if params.defrost_enabled else math.inf
    )
    return ReeferState(
        air_c=air_c,
        product_c=air_c if product_c is None else product_c,
        next_defrost_s=next_defrost_s,
    )


def max_stable_substep_s(*, params: ReeferParams) -> float:
    """The largest explicit-Euler substep used: `max_substep_s`, shortened for stiff parameters."""
    air_conductance_w_per_k = (
        params.ua_w_per_k + params.door_open_conductance_w_per_k + params.product_coupling_w_per_k
    )
    # Half the shortest time constant keeps Euler monotone (no overshoot, no oscillation).
    air_tau_s = params.air_capacitance_j_per_k / air_conductance_w_per_k
    product_tau_s = params.product_capacitance_j_per_k / params.product_coupling_w_per_k
    return min(params.max_substep_s, 0.5 * air_tau_s, 0.5 * product_tau_s)


def step(
    state: ReeferState,
    *,
    params: ReeferParams,
    dt_s: float,
    now_s: float,
    door_open: bool,
    faults: Faults = NO_FAULTS,
) -> ReeferState:
    """Advance `state`, valid at `now_s`, by `dt_s` seconds with the door and faults held fixed."""
    if not math.isfinite(dt_s) or dt_s < 0:
        raise ValueError(f"dt_s must be a finite number >= 0, got {dt_s}")
    if dt_s == 0:
        return state
    substeps = max(1, math.ceil(dt_s / max_stable_substep_s(params=params)))
    h_s = dt_s / substeps

    air_c = state.air_c
    product_c = state.product_c
    compressor_on = state.compressor_on
    off_since_s = state.compressor_off_since_s
    defrost_until_s = state.defrost_until_s
    next_defrost_s = state.next_defrost_s

    is_open = door_open or faults.door_stuck_open
    outside_w_per_k = params.ua_w_per_k + (params.door_open_conductance_w_per_k if is_open else 0.0)
    coupling_w_per_k = params.product_coupling_w_per_k
    defrost_s = params.defrost_duration_min * 60.0
    defrost_interval_s = params.defrost_interval_h * SECONDS_PER_HOUR
    low_c = params.setpoint_c - params.hysteresis_c
    high_c = params.setpoint_c + params.hysteresis_c

    for i in range(substeps):
        t_s = now_s + i * h_s
        if params.defrost_enabled and t_s >= next_defrost_s:
            defrost_until_s = t_s + defrost_s
            next_defrost_s = t_s + defrost_interval_s
        defrosting = t_s < defrost_until_s

        can_run = not (faults.power_lost or faults.compressor_failed or defrosting)
        if compressor_on and (not can_run or air_c <= low_c):
            compressor_on = False
            off_since_s = t_s
        elif (
            not compressor_on
            and can_run
            and air_c >= high_c
            and t_s - off_since_s >= params.min_compressor_off_s
        ):
            compressor_on = True

        heat_to_air_w = outside_w_per_k * (ambient_c(params=params, now_s=t_s) - air_c)
        heat_to_air_w += coupling_w_per_k * (product_c - air_c)
        if compressor_on:
            heat_to_air_w -= params.compressor_capacity_w
        if defrosting and not faults.power_lost:
            heat_to_air_w += params.defrost_heater_w
        heat_to_product_w = coupling_w_per_k * (air_c - product_c)

        air_c += heat_to_air_w * h_s / params.air_capacitance_j_per_k
        product_c += heat_to_product_w * h_s / params.product_capacitance_j_per_k

    return replace(
        state,
        air_c=air_c,
        product_c=product_c,
        compressor_on=compressor_on,
        compressor_off_since_s=off_since_s,
        defrost_until_s=defrost_until_s,
        next_defrost_s=next_defrost_s,
    )


def is_defrosting(state: ReeferState, *, now_s: float) -> bool:
    """Whether the compartment is in a defrost cycle at `now_s`."""
    return now_s < state.defrost_until_s
