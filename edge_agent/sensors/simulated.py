"""A simulated vehicle: reefer physics behind the same `SensorDriver` interface as real probes.

The driver owns one thermal state per compartment and advances it to the time of each `sample`
call; nothing reads a clock. Readings come out as the real drivers report them: each probe sees
the compartment air plus a fixed position offset, Gaussian noise and any injected probe fault,
rounded to 0.01 °C. The same seed and the same sequence of calls give the same readings.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from coldchain_protocol.channels import door_channel, temperature_channel
from edge_agent.errors import EdgeError
from edge_agent.sensors.thermal import (
    NO_FAULTS,
    Faults,
    ProbeStuck,
    ReeferParams,
    ReeferState,
    initial_state,
    step,
)

PositionSource = Callable[[float], tuple[float, float, float]]
"""Returns ``(lat, lon, speed_kmh)`` at a time (UTC seconds)."""

DoorSchedule = Callable[[str, float], bool]
"""Returns whether a compartment's door is open at a time (UTC seconds)."""

SHANGHAI_LAT = 31.23
SHANGHAI_LON = 121.47

# Doors and faults are sampled at this resolution between two `sample` calls, so a door opened
# for a minute between 30-second samples still lets its heat in.
_DOOR_POLL_S = 10.0
# A probe saturates at the ends of its measuring range (typical Pt100/NTC transmitter limits).
_PROBE_MIN_C = -55.0
_PROBE_MAX_C = 85.0


class UnknownCompartmentError(EdgeError, KeyError):
    """No compartment of the simulated vehicle has this id."""

    def __init__(self, compartment_id: str) -> None:
        super().__init__(f"no simulated compartment {compartment_id!r}")
        self.compartment_id = compartment_id

    def __str__(self) -> str:
        return f"no simulated compartment {self.compartment_id!r}"


@dataclass(frozen=True, slots=True, kw_only=True)
class CompartmentSpec:
    """One compartment of the simulated vehicle and where it starts.

    Probes are listed from the evaporator end to the door end; their fixed offsets spread evenly
    over ±`params.probe_gradient_c`. The product starts at `initial_product_c`, or in equilibrium
    with the air when None (an empty box to pre-cool is a small `product_capacitance_j_per_k`).
    """

    compartment_id: str
    probe_ids: tuple[str, ...]
    params: ReeferParams = field(default_factory=ReeferParams)
    initial_air_c: float = 5.0
    initial_product_c: float | None = None

    def __post_init__(self) -> None:
        _check_id("compartment_id", self.compartment_id)
        if len(self.probe_ids) < 2:
            raise ValueError(
                f"compartment {self.compartment_id!r} needs at least 2 probes (GSP), "
                f"got {len(self.probe_ids)}"
            )
        for probe_id in self.probe_ids:
            _check_id("probe id", probe_id)
        if len(set(self.probe_ids)) != len(self.probe_ids):
            raise ValueError(f"compartment {self.compartment_id!r} repeats a probe id")

    def probe_offsets_c(self) -> tuple[float, ...]:
        """Fixed per-probe offsets from the air temperature, evaporator end first."""
        gradient_c = self.params.probe_gradient_c
        last = len(self.probe_ids) - 1
        return tuple(-gradient_c + 2.0 * gradient_c * i / last for i in range(last + 1))


def _check_id(what: str, value: str) -> None:
    if not value or ":" in value or value != value.strip():
        raise ValueError(f"{what} must be non-empty, without ':' or surrounding spaces: {value!r}")


def fixed_position(
    *, lat: float = SHANGHAI_LAT, lon: float = SHANGHAI_LON, speed_kmh: float = 0.0
) -> PositionSource:
    """A position source that stays at one point (default: central Shanghai, parked)."""

    def position(now_s: float) -> tuple[float, float, float]:
        return (lat, lon, speed_kmh)

    return position


def doors_always_closed(compartment_id: str, now_s: float) -> bool:
    """The default door schedule: every door stays closed."""
    return False


@dataclass(slots=True)
class _Compartment:
    spec: CompartmentSpec
    offsets_c: tuple[float, ...]
    state: ReeferState
    faults: Faults = NO_FAULTS
    # The value each stuck probe froze at, with the fault that froze it.
    stuck_values_c: dict[str, tuple[ProbeStuck, float]] = field(default_factory=dict)


class SimulatedVehicleDriver:
    """A `SensorDriver` for a simulated refrigerated vehicle with scriptable faults.

    Power is one supply for the whole vehicle: `power_lost` injected into any compartment cuts
    every compartment's refrigeration and makes the `power` channel read 0.
    """

    def __init__(
        self,
        *,
        compartments: Iterable[CompartmentSpec],
        seed: int,
        position: PositionSource | None = None,
        door_open: DoorSchedule | None = None,
    ) -> None:
        specs = tuple(compartments)
        if not specs:
            raise ValueError("a simulated vehicle needs at least one compartment")
        ids = [spec.compartment_id for spec in specs]
        if len(set(ids)) != len(ids):
            raise ValueError(f"compartment ids must be unique, got {ids}")
        self._rng = random.Random(seed)
        self._position = position if position is not None else fixed_position()
        self._door_open = door_open if door_open is not None else doors_always_closed
        self._last_s: float | None = None
        self._compartments: dict[str, _Compartment] = {
            spec.compartment_id: _Compartment(
                spec=spec,
                offsets_c=spec.probe_offsets_c(),
                # Replaced by the first `sample`, which is when the unit is switched on.
                state=initial_state(
                    params=spec.params,
                    now_s=0.0,
                    air_c=spec.initial_air_c,
                    product_c=spec.initial_product_c,
                ),
            )
            for spec in specs
        }

    def follow(self, *, position: PositionSource, door_open: DoorSchedule) -> None:
        """Drive a new route: where the vehicle is and when its doors open, from now on."""
        self._position = position
        self._door_open = door_open

    def inject(self, compartment_id: str, faults: Faults) -> None:
        """Replace a compartment's faults; they act from the last `sample`'s time on."""
        compartment = self._compartment(compartment_id)
        compartment.faults = faults
        still_stuck = set(faults.probes_stuck)
        compartment.stuck_values_c = {
            probe_id: frozen
            for probe_id, frozen in compartment.stuck_values_c.items()
            if frozen[0] in still_stuck
        }

    def clear_faults(self, compartment_id: str | None = None) -> None:
        """Heal one compartment, or every compartment when `compartment_id` is None."""
        targets = self._compartments if compartment_id is None else (compartment_id,)
        for target in targets:
            self.inject(target, NO_FAULTS)

    def faults(self, compartment_id: str) -> Faults:
        """The faults currently injected into a compartment."""
        return self._compartment(compartment_id).faults

    def compartment_air_c(self, compartment_id: str) -> float:
        """The true air temperature of a compartment at the last sample (a test oracle)."""
        return self._compartment(compartment_id).state.air_c

    def compartment_state(self, compartment_id: str) -> ReeferState:
        """The full thermal state of a compartment at the last sample (a test oracle)."""
        return self._compartment(compartment_id).state

    def power_lost(self) -> bool:
        """Whether the vehicle's refrigeration supply is down (any compartment's `power_lost`)."""
        return any(c.faults.power_lost for c in self._compartments.values())

    def sample(self, now_s: float) -> Sequence[tuple[str, float]]:
        """Advance the physics to `now_s` and read every channel (the first call switches on)."""
        if not math.isfinite(now_s):
            raise ValueError(f"now_s must be finite, got {now_s}")
        if self._last_s is None:
            for compartment in self._compartments.values():
                spec = compartment.spec
                compartment.state = initial_state(
                    params=spec.params,
                    now_s=now_s,
                    air_c=spec.initial_air_c,
                    product_c=spec.initial_product_c,
                )
            self._last_s = now_s
        elif now_s > self._last_s:
            self._advance(self._last_s, now_s)
            self._last_s = now_s
        # A clock that stepped back leaves the physics where it is; time never runs backwards.
        return self._read(now_s)

    def _compartment(self, compartment_id: str) -> _Compartment:
        try:
            return self._compartments[compartment_id]
        except KeyError:
            raise UnknownCompartmentError(compartment_id) from None

    def _effective_faults(self, compartment: _Compartment, *, power_lost: bool) -> Faults:
        if power_lost and not compartment.faults.power_lost:
            return replace(compartment.faults, power_lost=True)
        return compartment.faults

    def _advance(self, start_s: float, end_s: float) -> None:
        chunks = max(1, math.ceil((end_s - start_s) / _DOOR_POLL_S))
        chunk_s = (end_s - start_s) / chunks
        power_lost = self.power_lost()
        for compartment in self._compartments.values():
            compartment_id = compartment.spec.compartment_id
            params = compartment.spec.params
            faults = self._effective_faults(compartment, power_lost=power_lost)
            state = compartment.state
            for i in range(chunks):
                t_s = start_s + i * chunk_s
                state = step(
                    state,
                    params=params,
                    dt_s=chunk_s,
                    now_s=t_s,
                    door_open=self._door_open(compartment_id, t_s),
                    faults=faults,
                )
            compartment.state = state

    def _read(self, now_s: float) -> list[tuple[str, float]]:
        readings: list[tuple[str, float]] = []
        for compartment in self._compartments.values():
            spec = compartment.spec
            faults = compartment.faults
            sigma_c = spec.params.probe_noise_sigma_c
            for probe_id, offset_c in zip(spec.probe_ids, compartment.offsets_c, strict=True):
                # Draw noise for every probe on every sample so the random stream (and so every
                # later reading) does not depend on which faults happen to be active.
                noise_c = self._rng.gauss(0.0, sigma_c) if sigma_c > 0 else 0.0
                value_c = compartment.state.air_c + offset_c + noise_c
                drift = faults.drift_for(probe_id)
                if drift is not None and now_s > drift.start_s:
                    value_c += drift.rate_c_per_h * (now_s - drift.start_s) / 3600.0
                value_c = round(min(_PROBE_MAX_C, max(_PROBE_MIN_C, value_c)), 2)
                stuck = faults.stuck_for(probe_id)
                if stuck is not None and now_s >= stuck.since_s:
                    _, value_c = compartment.stuck_values_c.setdefault(
                        probe_id,
                        (stuck, value_c if stuck.value_c is None else round(stuck.value_c, 2)),
                    )
                readings.append((temperature_channel(spec.compartment_id, probe_id), value_c))
            door_is_open = faults.door_stuck_open or self._door_open(spec.compartment_id, now_s)
            readings.append((door_channel(spec.compartment_id), 1.0 if door_is_open else 0.0))
        readings.append(("power", 0.0 if self.power_lost() else 1.0))
        lat, lon, speed_kmh = self._position(now_s)
        readings.append(("gps:lat", float(lat)))
        readings.append(("gps:lon", float(lon)))
        readings.append(("gps:speed", float(speed_kmh)))
        return readings
