"""GSP evaluation on ingest: each committed batch updates its compartments' state, excursions
and alarms in one transaction; back-filled data re-runs the affected history; vehicles that
stop reporting or lose power raise their own alarms.

State lives in `compartment_state` and is read with a row lock for every batch, so a restarted
controller (or another replica on the shared subscription) carries on exactly where it was.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from prometheus_client import Histogram
from psycopg.rows import TupleRow

from coldchain_protocol import TelemetryBatch
from controller.alarms.repository import clear_condition, raise_alarm
from controller.compliance.errors import UnknownTemperatureClassError
from controller.compliance.excursions import Excursion
from controller.compliance.models import Sample
from controller.compliance.prediction import predict_band_exit
from controller.compliance.rulebook import Rulebook
from controller.compliance.rulebook_sections import TemperatureClass
from controller.evaluation.monitor import (
    CompartmentView,
    ExcursionEnded,
    ExcursionStarted,
    replay,
)
from controller.evaluation.store import (
    close_excursion,
    insert_excursion,
    save_state,
    saved_view,
    temperature_samples,
    utc,
)
from controller.evaluation.work import WorkQueue
from controller.settings import ControllerSettings
from controller.storage.db import connect
from edge_agent.clock import Clock

log = logging.getLogger(__name__)

GROUP_SECONDS = Histogram(
    "coldchain_evaluation_group_seconds",
    "Time to evaluate one group of committed batches (one transaction)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)

GROUP_BATCHES = 25  # batches evaluated in one transaction at most

# A back-fill re-runs history from this long before its oldest reading (or from the start of an
# excursion still open then), so an out-of-band run in progress is seen whole.
REEVALUATION_CONTEXT_S = 3600.0


def _fmt(ts_s: float) -> str:
    return utc(ts_s).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True, slots=True)
class CompartmentInfo:
    """What the registry says about one compartment."""

    band: TemperatureClass
    probe_ids: tuple[str, ...]


@dataclass(slots=True)
class EvaluationStats:
    """Counters of the evaluation service."""

    batches: int = 0
    samples: int = 0
    excursions_opened: int = 0
    excursions_closed: int = 0
    predictions_warned: int = 0
    reevaluations: int = 0
    link_alarms: int = 0
    power_alarms: int = 0
    skipped_compartments: int = 0
    failures: int = 0
    groups: int = 0
    busy_s: float = 0.0  # time spent evaluating groups
    slowest_group_s: float = 0.0


class EvaluationService:
    """Evaluates committed telemetry against the rulebook; one per controller process."""

    def __init__(self, *, settings: ControllerSettings, rules: Rulebook, clock: Clock) -> None:
        self.settings = settings
        self.rules = rules
        self.clock = clock
        self.stats = EvaluationStats()
        # One task works the queue, so the database connection is only ever used from one
        # thread at a time; batches that may raise an alarm go first.
        self._work = WorkQueue()
        self._conn: psycopg.Connection[TupleRow] | None = None
        self._registry: dict[str, dict[str, CompartmentInfo]] = {}
        self._last_data_s: dict[str, float] = {}
        self._link_alarmed: set[str] = set()
        self._power_alarmed: set[str] = set()
        self._loaded = False

    # -- wiring ----------------------------------------------------------------------------

    def submit(self, batches: Sequence[TelemetryBatch]) -> None:
        """Queue batches the ingest has just committed (called on the event loop)."""
        urgent: list[TelemetryBatch] = []
        normal: list[TelemetryBatch] = []
        for batch in batches:
            (urgent if self._may_alarm(batch) else normal).append(batch)
        self._work.put(urgent=urgent, normal=normal)

    def _may_alarm(self, batch: TelemetryBatch) -> bool:
        """Whether a batch carries a reading that can raise an alarm (a cheap look)."""
        compartments = self._registry.get(batch.vehicle_id)
        for reading in batch.readings:
            channel = reading.channel
            if channel == "power":
                if reading.value < 0.5:
                    return True
            elif channel.startswith("temp:") and compartments is not None:
                info = compartments.get(channel.split(":", 2)[1])
                if info is not None and info.band.side_outside(reading.value) is not None:
                    return True
        return False

    async def drained(self, *, timeout_s: float) -> bool:
        """Wait (bounded) until every submitted batch has been evaluated."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._work.idle()
        except TimeoutError:
            return False
        return True

    def pending(self) -> int:
        """Batches waiting to be evaluated."""
        return self._work.pending()

    async def run(self) -> None:
        """Evaluate queued batches and watch for silent vehicles until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._evaluating(), name="evaluation")
            tg.create_task(self._watching_links(), name="evaluation-links")

    async def _evaluating(self) -> None:
        while True:
            group = await self._work.take(limit=GROUP_BATCHES)
            try:
                if group is None:
                    await self._retrying(self.check_links, self.clock.now_s())
                else:
                    await self._retrying(self._evaluate_or_recover, group)
            finally:
                self._work.done()

    async def _watching_links(self) -> None:
        while True:
            await self.clock.sleep(self.settings.link_check_interval_s)
            self._work.put_link_check()

    def _evaluate_or_recover(self, group: list[TelemetryBatch]) -> None:
        """Evaluate; if that fails for an unexpected reason (a bug, bad data) the transaction
        rolled back: re-run the affected compartments from the stored readings instead, so no
        reading stays unjudged, and say so loudly."""
        try:
            self.evaluate(group)
        except (psycopg.OperationalError, psycopg.errors.SerializationFailure):
            raise
        except Exception:
            self.stats.failures += 1
            log.exception("evaluation of %d batches failed; re-evaluating from storage", len(group))
            earliest: dict[tuple[str, str], float] = {}
            for batch in group:
                for r in batch.readings:
                    if r.channel.startswith("temp:"):
                        key = (batch.vehicle_id, r.channel.split(":", 2)[1])
                        earliest[key] = min(earliest.get(key, r.ts_ms / 1000), r.ts_ms / 1000)
            for (vehicle_id, compartment_id), from_s in earliest.items():
                try:
                    self.reevaluate(vehicle_id, compartment_id, from_s=from_s)
                except (psycopg.OperationalError, psycopg.errors.SerializationFailure):
                    raise
                except Exception:
                    log.exception("re-evaluation of %s/%s failed", vehicle_id, compartment_id)

    async def _retrying(self, work: Any, *args: Any) -> None:
        delay_s = 0.2
        while True:
            try:
                await asyncio.to_thread(work, *args)
                return
            except (psycopg.OperationalError, psycopg.errors.SerializationFailure) as exc:
                log.warning("evaluation: database unavailable (%s); retrying", exc)
                if self._conn is not None:
                    self._conn.close()
                await asyncio.sleep(delay_s)
                delay_s = min(5.0, delay_s * 2)

    def _connection(self) -> psycopg.Connection[TupleRow]:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.settings.database_url)
        if not self._loaded:
            self._load(self._conn)
        return self._conn

    def _load(self, conn: psycopg.Connection[TupleRow]) -> None:
        """After a restart: which vehicles reported when, which alarms are active."""
        for vehicle_id, last in conn.execute(
            "SELECT vehicle_id, extract(epoch FROM max(last_ts)) FROM compartment_state"
            " GROUP BY vehicle_id"
        ):
            if last is not None:
                self._last_data_s[vehicle_id] = float(last)
        for kind, vehicle_id in conn.execute(
            "SELECT kind, vehicle_id FROM alarms WHERE state <> 'resolved' AND condition_active"
            " AND kind IN ('link_loss', 'power_loss')"
        ):
            (self._link_alarmed if kind == "link_loss" else self._power_alarmed).add(vehicle_id)
        conn.commit()
        self._loaded = True

    def _compartments(
        self, conn: psycopg.Connection[TupleRow], vehicle_id: str
    ) -> dict[str, CompartmentInfo]:
        known = self._registry.get(vehicle_id)
        if known is not None:
            return known
        probes: dict[str, list[str]] = defaultdict(list)
        for compartment_id, probe_id in conn.execute(
            "SELECT compartment_id, probe_id FROM probes WHERE vehicle_id = %s ORDER BY probe_id",
            (vehicle_id,),
        ):
            probes[compartment_id].append(probe_id)
        found: dict[str, CompartmentInfo] = {}
        for compartment_id, class_name in conn.execute(
            "SELECT compartment_id, temperature_class FROM compartments WHERE vehicle_id = %s",
            (vehicle_id,),
        ):
            try:
                band = self.rules.temperature_class(class_name)
            except UnknownTemperatureClassError:
                log.error(
                    "vehicle %s compartment %s: temperature class %r is not in rulebook %s",
                    vehicle_id,
                    compartment_id,
                    class_name,
                    self.rules.version,
                )
                continue
            found[compartment_id] = CompartmentInfo(band, tuple(probes[compartment_id]))
        self._registry[vehicle_id] = found
        return found

    # -- evaluation ------------------------------------------------------------------------

    def evaluate(self, batches: Sequence[TelemetryBatch]) -> None:
        """Evaluate committed batches in one transaction (then re-run any back-filled history)."""
        started = time.perf_counter()
        try:
            self._evaluate(batches)
        finally:
            took_s = time.perf_counter() - started
            self.stats.groups += 1
            self.stats.busy_s += took_s
            self.stats.slowest_group_s = max(self.stats.slowest_group_s, took_s)
            GROUP_SECONDS.observe(took_s)

    def _evaluate(self, batches: Sequence[TelemetryBatch]) -> None:
        conn = self._connection()
        now_s = self.clock.now_s()
        samples: dict[tuple[str, str], list[Sample]] = defaultdict(list)
        live: set[tuple[str, str]] = set()
        power: dict[str, tuple[float, float]] = {}
        newest: dict[str, float] = {}
        for batch in batches:
            vehicle_id = batch.vehicle_id
            for reading in batch.readings:
                ts_s = reading.ts_ms / 1000.0
                channel = reading.channel
                if channel.startswith("temp:"):
                    _, compartment_id, probe_id = channel.split(":", 2)
                    samples[(vehicle_id, compartment_id)].append(
                        Sample(ts_s, probe_id, reading.value)
                    )
                    if not batch.history:
                        live.add((vehicle_id, compartment_id))
                elif channel == "power" and ts_s >= power.get(vehicle_id, (-1.0, 0.0))[0]:
                    power[vehicle_id] = (ts_s, reading.value)
                newest[vehicle_id] = max(newest.get(vehicle_id, 0.0), ts_s)
        late: list[tuple[str, str, float]] = []
        with conn.transaction():
            for key in sorted(samples):  # a fixed lock order: replicas never deadlock
                vehicle_id, compartment_id = key
                info = self._compartments(conn, vehicle_id).get(compartment_id)
                if info is None:
                    self.stats.skipped_compartments += 1
                    continue
                batch_samples = samples[key]
                self.stats.samples += len(batch_samples)
                view = self._view(conn, vehicle_id, compartment_id, info)
                if view.is_late(batch_samples):
                    late.append((vehicle_id, compartment_id, min(s.ts_s for s in batch_samples)))
                for effect in view.feed(batch_samples):
                    self._apply(conn, vehicle_id, compartment_id, effect, now_s=now_s)
                prediction = None
                at_s = view.tracker.last_instant_s
                if (
                    key in live
                    and view.status == "in_band"
                    and at_s is not None
                    and (
                        view.predicted_at_s is None
                        or at_s - view.predicted_at_s >= self.settings.prediction_interval_s
                    )
                ):
                    prediction = self._predict(conn, vehicle_id, compartment_id, view, now_s)
                elif view.status == "excursion" and view.prediction_alarm:
                    self._clear_prediction(
                        conn, view, vehicle_id, compartment_id, now_s, "excursion"
                    )
                save_state(
                    conn,
                    vehicle_id,
                    compartment_id,
                    view,
                    prediction=prediction,
                    now_s=now_s,
                    version=self.rules.version,
                )
            for vehicle_id, (ts_s, value) in power.items():
                self._power(conn, vehicle_id, ts_s, value, now_s)
            for vehicle_id, ts_s in newest.items():
                self._last_data_s[vehicle_id] = max(self._last_data_s.get(vehicle_id, 0.0), ts_s)
                if vehicle_id in self._link_alarmed and (
                    now_s - self._last_data_s[vehicle_id] < self.rules.link.loss_after_s
                ):
                    clear_condition(
                        conn,
                        kind="link_loss",
                        vehicle_id=vehicle_id,
                        now=utc(now_s),
                        detail=f"data again from {_fmt(ts_s)}",
                    )
                    self._link_alarmed.discard(vehicle_id)
        self.stats.batches += len(batches)
        for vehicle_id, compartment_id, from_s in late:
            self.reevaluate(vehicle_id, compartment_id, from_s=from_s)

    def _view(
        self,
        conn: psycopg.Connection[TupleRow],
        vehicle_id: str,
        compartment_id: str,
        info: CompartmentInfo,
    ) -> CompartmentView:
        view = CompartmentView.resume(
            band=info.band,
            rules=self.rules,
            probe_ids=info.probe_ids,
            saved=saved_view(conn, vehicle_id, compartment_id),
        )
        if view.restarted:
            log.warning(
                "%s/%s: saved state does not match rulebook %s; evaluation starts afresh",
                vehicle_id,
                compartment_id,
                self.rules.version,
            )
        return view

    def _apply(
        self,
        conn: psycopg.Connection[TupleRow],
        vehicle_id: str,
        compartment_id: str,
        effect: ExcursionStarted | ExcursionEnded,
        *,
        now_s: float,
        backfilled: bool = False,
    ) -> None:
        e = effect.excursion
        if isinstance(effect, ExcursionStarted):
            insert_excursion(conn, vehicle_id, compartment_id, e, version=self.rules.version)
            self._raise_excursion(conn, vehicle_id, compartment_id, e, now_s, backfilled)
            self.stats.excursions_opened += 1
        else:
            close_excursion(conn, vehicle_id, compartment_id, e)
            clear_condition(
                conn,
                kind="excursion",
                vehicle_id=vehicle_id,
                compartment_id=compartment_id,
                now=utc(now_s),
                detail=f"back in band from {_fmt(e.end_s or e.last_s)}; peak {e.peak_c:.2f} °C",
            )
            self.stats.excursions_closed += 1

    def _raise_excursion(
        self,
        conn: psycopg.Connection[TupleRow],
        vehicle_id: str,
        compartment_id: str,
        e: Excursion,
        now_s: float,
        backfilled: bool,
    ) -> None:
        band = self._compartments(conn, vehicle_id)[compartment_id].band
        limits = f"{band.low_c if band.low_c is not None else '-inf'}-{band.high_c} °C"
        source = " (found in back-filled data)" if backfilled else ""
        raise_alarm(
            conn,
            kind="excursion",
            vehicle_id=vehicle_id,
            compartment_id=compartment_id,
            severity="critical",
            detail=f"{e.direction} excursion out of {band.name} {limits} since "
            f"{_fmt(e.start_s)}, peak {e.peak_c:.2f} °C on {', '.join(e.probe_ids)}{source}",
            data_ts=utc(e.start_s),
            now=utc(now_s),
            rulebook_version=self.rules.version,
        )

    def _predict(
        self,
        conn: psycopg.Connection[TupleRow],
        vehicle_id: str,
        compartment_id: str,
        view: CompartmentView,
        now_s: float,
    ) -> dict[str, Any] | None:
        at_s = view.tracker.last_instant_s
        if at_s is None:
            return None
        view.predicted_at_s = at_s
        settings = self.rules.prediction
        since_s = at_s - settings.window_s - settings.confirm_s
        recent = temperature_samples(conn, vehicle_id, compartment_id, from_s=since_s, to_s=at_s)
        prediction = predict_band_exit(recent, band=view.band, rules=self.rules, now_s=at_s)
        if prediction.warn and prediction.time_to_leave_band_s is not None:
            view.warned_at_s = at_s
            view.prediction_alarm = True
            minutes = prediction.time_to_leave_band_s / 60
            rate = prediction.rate_c_per_h or 0.0
            self.stats.predictions_warned += 1
            raise_alarm(
                conn,
                kind="excursion_predicted",
                vehicle_id=vehicle_id,
                compartment_id=compartment_id,
                severity="warning",
                detail=f"predicted to leave {view.band.name} ({prediction.predicted_exit}) in "
                f"{minutes:.0f} min; air {prediction.current_c:.2f} °C, {rate:+.1f} °C/h "
                f"(fit R² {prediction.fit_quality:.2f})",
                data_ts=utc(at_s),
                now=utc(now_s),
                rulebook_version=self.rules.version,
            )
        elif view.prediction_alarm and (
            view.warned_at_s is None
            or at_s - view.warned_at_s >= self.settings.prediction_clear_after_s
        ):
            # Cleared only after a quiet spell, so a trend near the threshold does not flap.
            self._clear_prediction(
                conn, view, vehicle_id, compartment_id, now_s, "no exit predicted any more"
            )
        return {
            "at_s": prediction.at_s,
            "warn": prediction.warn,
            "time_to_leave_band_s": prediction.time_to_leave_band_s,
            "predicted_exit": prediction.predicted_exit,
            "rate_c_per_h": prediction.rate_c_per_h,
            "fit_quality": prediction.fit_quality,
        }

    def _clear_prediction(
        self,
        conn: psycopg.Connection[TupleRow],
        view: CompartmentView,
        vehicle_id: str,
        compartment_id: str,
        now_s: float,
        why: str,
    ) -> None:
        view.prediction_alarm = False
        clear_condition(
            conn,
            kind="excursion_predicted",
            vehicle_id=vehicle_id,
            compartment_id=compartment_id,
            now=utc(now_s),
            detail=why,
        )

    def _power(
        self,
        conn: psycopg.Connection[TupleRow],
        vehicle_id: str,
        ts_s: float,
        value: float,
        now_s: float,
    ) -> None:
        if value < 0.5 and vehicle_id not in self._power_alarmed:
            raise_alarm(
                conn,
                kind="power_loss",
                vehicle_id=vehicle_id,
                severity="critical",
                detail=f"refrigeration power lost at {_fmt(ts_s)}",
                data_ts=utc(ts_s),
                now=utc(now_s),
                rulebook_version=self.rules.version,
            )
            self._power_alarmed.add(vehicle_id)
            self.stats.power_alarms += 1
        elif value >= 0.5 and vehicle_id in self._power_alarmed:
            clear_condition(
                conn,
                kind="power_loss",
                vehicle_id=vehicle_id,
                now=utc(now_s),
                detail=f"power back at {_fmt(ts_s)}",
            )
            self._power_alarmed.discard(vehicle_id)

    # -- silent vehicles -------------------------------------------------------------------

    def check_links(self, now_s: float) -> list[str]:
        """Raise a link-loss alarm for every vehicle silent longer than the rulebook allows."""
        conn = self._connection()
        limit_s = self.rules.link.loss_after_s
        candidates = [
            vehicle_id
            for vehicle_id, last_s in self._last_data_s.items()
            if now_s - last_s > limit_s and vehicle_id not in self._link_alarmed
        ]
        if not candidates:
            return []
        with conn.transaction():
            # Replicas on a shared subscription each see part of a van's batches: the stored
            # state, which every replica updates, says when data last came.
            for vehicle_id, stored_s in conn.execute(
                "SELECT vehicle_id, extract(epoch FROM max(last_ts))::float8 FROM"
                " compartment_state WHERE vehicle_id = ANY(%s) GROUP BY vehicle_id",
                (candidates,),
            ):
                if stored_s is not None:
                    self._last_data_s[vehicle_id] = max(self._last_data_s[vehicle_id], stored_s)
            silent = [
                (vehicle_id, self._last_data_s[vehicle_id])
                for vehicle_id in candidates
                if now_s - self._last_data_s[vehicle_id] > limit_s
            ]
            for vehicle_id, last_s in silent:
                raise_alarm(
                    conn,
                    kind="link_loss",
                    vehicle_id=vehicle_id,
                    severity="critical",
                    detail=f"no data since {_fmt(last_s)} ({(now_s - last_s) / 60:.0f} min; "
                    f"limit {limit_s / 60:g} min)",
                    data_ts=utc(last_s),
                    now=utc(now_s),
                    rulebook_version=self.rules.version,
                )
                self._link_alarmed.add(vehicle_id)
                self.stats.link_alarms += 1
        return [vehicle_id for vehicle_id, _ in silent]

    # -- back-fill -------------------------------------------------------------------------

    def reevaluate(self, vehicle_id: str, compartment_id: str, *, from_s: float) -> int:
        """Re-run a compartment's history from before `from_s`; returns excursions it found
        that were not known before (each raises its alarm, marked as back-filled)."""
        conn = self._connection()
        info = self._compartments(conn, vehicle_id).get(compartment_id)
        if info is None:
            return 0
        now_s = self.clock.now_s()
        with conn.transaction():
            before = saved_view(conn, vehicle_id, compartment_id) or {}
            start_s = from_s - REEVALUATION_CONTEXT_S
            row = conn.execute(
                "SELECT extract(epoch FROM min(start_ts)) FROM excursions WHERE vehicle_id = %s"
                " AND compartment_id = %s AND (end_ts IS NULL OR end_ts >= %s)",
                (vehicle_id, compartment_id, utc(start_s)),
            ).fetchone()
            if row is not None and row[0] is not None:
                start_s = min(start_s, float(row[0]))
            history = temperature_samples(conn, vehicle_id, compartment_id, from_s=start_s)
            view, found = replay(
                band=info.band, rules=self.rules, probe_ids=info.probe_ids, samples=history
            )
            # The predictor's bookkeeping is about live data: keep it across the re-run.
            view.predicted_at_s = before.get("predicted_at_s")
            view.warned_at_s = before.get("warned_at_s")
            view.prediction_alarm = bool(before.get("prediction_alarm", False))
            known = {
                round(float(start) * 1000): excursion_id
                for excursion_id, start in conn.execute(
                    "SELECT excursion_id, extract(epoch FROM start_ts) FROM excursions"
                    " WHERE vehicle_id = %s AND compartment_id = %s AND start_ts >= %s",
                    (vehicle_id, compartment_id, utc(start_s)),
                )
            }
            new = 0
            for excursion in found:
                key = round(excursion.start_s * 1000)
                if key in known:
                    del known[key]
                    close_excursion(conn, vehicle_id, compartment_id, excursion)
                    continue
                new += 1
                insert_excursion(
                    conn, vehicle_id, compartment_id, excursion, version=self.rules.version
                )
                self._raise_excursion(
                    conn, vehicle_id, compartment_id, excursion, now_s, backfilled=True
                )
                self.stats.excursions_opened += 1
            if found and found[-1].end_s is not None:
                clear_condition(
                    conn,
                    kind="excursion",
                    vehicle_id=vehicle_id,
                    compartment_id=compartment_id,
                    now=utc(now_s),
                    detail=f"back in band from {_fmt(found[-1].end_s)} (back-filled data)",
                )
            if known:  # excursions the fuller data no longer supports (derived records)
                conn.execute(
                    "DELETE FROM excursions WHERE excursion_id = ANY(%s)", (list(known.values()),)
                )
            save_state(
                conn,
                vehicle_id,
                compartment_id,
                view,
                prediction=None,
                now_s=now_s,
                version=self.rules.version,
            )
        self.stats.reevaluations += 1
        return new
