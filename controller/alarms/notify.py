"""One notification round: every recipient through every channel that can reach them, at once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from controller.alarms.channels import Channel, DeliveryError, Notification, Recipient

_log = logging.getLogger(__name__)

DEFAULT_SEND_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """The outcome of one attempt to reach one recipient (by name) through one channel."""

    channel: str
    recipient: str
    ok: bool
    error: str | None


async def notify_all(
    notification: Notification,
    recipients: Sequence[Recipient],
    channels: Sequence[Channel],
    *,
    timeout_s: float = DEFAULT_SEND_TIMEOUT_S,
) -> list[DeliveryResult]:
    """Send one round to every recipient through every channel that accepts them, concurrently.

    A failed, hung or faulty send never stops the others; each is bounded by `timeout_s`.
    Returns one result per (channel, recipient) attempt, by recipient, then channel order.
    """
    attempts = [
        (channel, recipient)
        for recipient in recipients
        for channel in channels
        if channel.accepts(recipient)
    ]
    async with asyncio.TaskGroup() as tg:
        tasks = [
            tg.create_task(
                _attempt(notification, recipient, channel, timeout_s=timeout_s),
                name=f"notify-{notification.alarm_id}-{channel.name}-{recipient.name}",
            )
            for channel, recipient in attempts
        ]
    return [task.result() for task in tasks]


async def _attempt(
    notification: Notification, recipient: Recipient, channel: Channel, *, timeout_s: float
) -> DeliveryResult:
    try:
        async with asyncio.timeout(timeout_s):
            await channel.send(notification, recipient)
    except DeliveryError as exc:
        error = exc.reason
    except TimeoutError:
        error = f"no answer within {timeout_s:g} s"
    except Exception as exc:
        # A faulty channel must not keep the alarm from the others; the result records it.
        _log.exception("alarm %d: channel %s crashed", notification.alarm_id, channel.name)
        error = f"{type(exc).__name__}: {exc}"
    else:
        return DeliveryResult(channel.name, recipient.name, True, None)
    _log.warning(
        "alarm %d: %s to %s failed: %s", notification.alarm_id, channel.name, recipient.name, error
    )
    return DeliveryResult(channel.name, recipient.name, False, error)
