"""Repeat and escalate alarm notifications until someone acknowledges.

Every `notify_interval_s` the escalator takes the open (unacknowledged) alarms whose next
notification is due, works out the escalation level the rulebook gives for the time since the
alarm opened, sends one round to the contacts of every level reached so far through every
configured channel, records who was reached how in the alarm's audit trail, and schedules the
next round `repeat_every_s` later. `FOR UPDATE SKIP LOCKED` lets replicas share the work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.rows import TupleRow

from controller.alarms.channels import Channel, ChannelSettings, Notification, Recipient
from controller.alarms.notify import notify_all
from controller.alarms.repository import Alarm, due_for_notification, record_notification
from controller.compliance.rulebook import Rulebook
from controller.compliance.rulebook_sections import Contact
from controller.settings import ControllerSettings
from controller.storage.db import connect
from edge_agent.clock import Clock

log = logging.getLogger(__name__)

# Alarm kinds whose contact lists the rulebook keys by another kind.
_CONTACT_KIND = {"excursion_predicted": "excursion"}


def channel_settings(settings: ControllerSettings) -> ChannelSettings:
    """The notification channels the controller settings configure."""
    return ChannelSettings(
        webhook_url=settings.webhook_url or None,
        webhook_secret=settings.webhook_secret or None,
        smtp_host=settings.smtp_host or None,
        smtp_port=settings.smtp_port,
        smtp_from=settings.smtp_from,
        smtp_username=settings.smtp_username or None,
        smtp_password=settings.smtp_password or None,
        smtp_starttls=settings.smtp_starttls,
        sms_gateway_url=settings.sms_gateway_url or None,
        sms_gateway_token=settings.sms_gateway_token or None,
        log=settings.notify_log,
    )


def recipients_for(rules: Rulebook, alarm: Alarm, *, level: int) -> list[Recipient]:
    """Everyone to reach for an alarm at `level`: the contacts of levels 1..level."""
    kind = _CONTACT_KIND.get(alarm.kind, alarm.kind)
    seen: dict[str, Contact] = {}
    for reached in range(1, level + 1):
        for contact in rules.contacts_for(site=alarm.vehicle_id, alarm=kind, level=reached):  # type: ignore[arg-type]
            seen.setdefault(contact.name, contact)
    return [
        Recipient(
            name=c.name,
            role=c.role,
            phone=c.channels.sms,
            email=c.channels.email,
        )
        for c in seen.values()
    ]


@dataclass(slots=True)
class EscalationStats:
    """Counters of the escalator."""

    rounds: int = 0
    deliveries: int = 0
    failures: int = 0
    errors: int = 0


class Escalator:
    """Sends due notification rounds; one per controller process."""

    def __init__(
        self,
        *,
        settings: ControllerSettings,
        rules: Rulebook,
        clock: Clock,
        channels: Sequence[Channel],
    ) -> None:
        self.settings = settings
        self.rules = rules
        self.clock = clock
        self.channels = list(channels)
        self.stats = EscalationStats()
        self._conn: psycopg.Connection[TupleRow] | None = None

    async def run(self) -> None:
        """Send due rounds every `notify_interval_s` until cancelled."""
        while True:
            try:
                await self.send_due()
            except psycopg.OperationalError as exc:
                log.warning("escalation: database unavailable (%s); retrying", exc)
                if self._conn is not None:
                    self._conn.close()
            except Exception:
                # Never let one bad round stop every later one (or the ingest beside it).
                self.stats.errors += 1
                log.exception("escalation round failed; retrying at the next interval")
                if self._conn is not None:
                    self._conn.close()
            await self.clock.sleep(self.settings.notify_interval_s)

    def _connection(self) -> psycopg.Connection[TupleRow]:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.settings.database_url)
        return self._conn

    async def send_due(self) -> int:
        """Send every due round now; returns how many alarms were notified."""
        now = datetime.fromtimestamp(self.clock.now_s(), UTC)
        conn = await asyncio.to_thread(self._connection)
        due = await asyncio.to_thread(self._due, conn, now)
        try:
            for alarm in due:
                elapsed_s = (now - alarm.opened_at).total_seconds()
                level = self.rules.alarms.level_at(elapsed_s)
                notification = Notification(
                    alarm_id=alarm.alarm_id,
                    kind=alarm.kind,
                    vehicle_id=alarm.vehicle_id,
                    compartment_id=alarm.compartment_id or None,
                    severity=alarm.severity,
                    opened_at=alarm.opened_at,
                    detail=alarm.detail,
                    escalation_level=level,
                    repeat=alarm.notifications_sent + 1,
                    rulebook_version=alarm.rulebook_version,
                    ack_url=f"{self.settings.public_url.rstrip('/')}/api/v1/alarms/"
                    f"{alarm.alarm_id}/acknowledge"
                    if self.settings.public_url
                    else None,
                )
                results = await notify_all(
                    notification, recipients_for(self.rules, alarm, level=level), self.channels
                )
                self.stats.rounds += 1
                self.stats.deliveries += sum(r.ok for r in results)
                self.stats.failures += sum(not r.ok for r in results)
                deliveries = [
                    {"channel": r.channel, "recipient": r.recipient, "ok": r.ok, "error": r.error}
                    for r in results
                ]
                next_at = now + timedelta(seconds=self.rules.alarms.repeat_every_s)
                await asyncio.to_thread(
                    record_notification,
                    conn,
                    alarm,
                    level=level,
                    next_at=next_at,
                    now=now,
                    deliveries=deliveries,
                )
        finally:
            await asyncio.to_thread(conn.commit)
        return len(due)

    @staticmethod
    def _due(conn: psycopg.Connection[TupleRow], now: datetime) -> list[Alarm]:
        return due_for_notification(conn, now=now)
