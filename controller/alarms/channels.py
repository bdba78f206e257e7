"""Alarm notification channels: what is sent about an alarm and the ways it reaches a person.

`Notification` and its texts are pure. Each channel is an adapter that sends one notification to
one recipient and raises `DeliveryError` when it could not; `notify.notify_all` runs a round.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from typing import ClassVar, Protocol
from urllib.parse import urlsplit

import httpx
import orjson

from controller.errors import ControllerError

_log = logging.getLogger(__name__)

SMS_MAX_CHARS = 300
SIGNATURE_HEADER = "X-Coldchain-Signature"
DEFAULT_TIMEOUT_S = 10.0
# A detail squeezed into fewer characters than this says nothing useful; the SMS drops it.
_MIN_DETAIL_CHARS = 12
_MIN_HEAD_CHARS = 40


class AlarmChannelError(ControllerError):
    """Base of the alarm channels' errors."""


class DeliveryError(AlarmChannelError):
    """A channel could not hand a notification over for `recipient` (a recipient's name)."""

    def __init__(self, channel: str, recipient: str, reason: str) -> None:
        super().__init__(f"{channel} to {recipient}: {reason}")
        self.channel = channel
        self.recipient = recipient
        self.reason = reason


class ChannelValueError(AlarmChannelError, ValueError):
    """A recipient, notification or channel setting is invalid; `field` names which value."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True, kw_only=True)
class Recipient:
    """One designated contact person and the addresses they can be reached at."""

    name: str
    role: str
    phone: str | None = None
    email: str | None = None
    webhook_url: str | None = None

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ChannelValueError("recipient.name", "must not be empty")
        if self.email is not None and "@" not in self.email:
            raise ChannelValueError("recipient.email", f"{self.email!r} is not an address")
        if self.webhook_url is not None:
            _check_http_url("recipient.webhook_url", self.webhook_url)


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification:
    """What is sent about one alarm in one round (`repeat` counts rounds at this level)."""

    alarm_id: int
    kind: str
    vehicle_id: str
    compartment_id: str | None
    severity: str
    opened_at: datetime
    detail: str
    escalation_level: int
    repeat: int
    rulebook_version: str
    ack_url: str | None = None

    def __post_init__(self) -> None:
        if self.opened_at.tzinfo is None or self.opened_at.utcoffset() is None:
            raise ChannelValueError("notification.opened_at", "must be timezone-aware")

    def subject(self) -> str:
        """One line naming level, kind, place and opening time, e.g. for an e-mail subject."""
        since = self.opened_at.astimezone(UTC).strftime("%H:%M")
        return (
            f"{self._tag()} {_one_line(self.kind)} {self._where()} since {since} UTC{self._nth()}"
        )

    def text(self) -> str:
        """At most `SMS_MAX_CHARS` characters, ending with how to ack; head and detail give way."""
        since = self.opened_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
        head = (
            f"{self._tag()} {_one_line(self.kind)} {self._where()}, "
            f"severity {_one_line(self.severity)}, since {since} UTC{self._nth()}"
        )
        ack = self._ack_line()
        detail = _one_line(self.detail)
        room = SMS_MAX_CHARS - len(head) - len(ack) - 2
        if detail and room >= _MIN_DETAIL_CHARS:
            return f"{head}\n{_clip(detail, room)}\n{ack}"
        # The way to acknowledge matters more than the head: shorten the head first.
        head = _clip(head, max(SMS_MAX_CHARS - len(ack) - 1, _MIN_HEAD_CHARS))
        return _clip(f"{head}\n{ack}", SMS_MAX_CHARS)

    def report(self) -> str:
        """The full plain-text form (no length limit), e.g. for an e-mail body."""
        rows = [
            ("Alarm", str(self.alarm_id)),
            ("Kind", self.kind),
            ("Vehicle", self.vehicle_id),
            ("Compartment", self.compartment_id or "(whole vehicle)"),
            ("Severity", self.severity),
            ("Open since", self.opened_at.astimezone(UTC).isoformat()),
            ("Escalation", f"level {self.escalation_level}, repeat {self.repeat}"),
            ("Rulebook", self.rulebook_version),
            ("Detail", self.detail),
        ]
        table = "\n".join(f"{label + ':':<13} {value}" for label, value in rows)
        return f"{self.subject()}\n\n{table}\n\n{self._ack_line()}\n"

    def as_json(self) -> dict[str, object]:
        """The notification as a JSON-ready mapping, with its subject and SMS text."""
        return {
            "alarm_id": self.alarm_id,
            "kind": self.kind,
            "vehicle_id": self.vehicle_id,
            "compartment_id": self.compartment_id,
            "severity": self.severity,
            "opened_at": self.opened_at.astimezone(UTC).isoformat(),
            "detail": self.detail,
            "escalation_level": self.escalation_level,
            "repeat": self.repeat,
            "rulebook_version": self.rulebook_version,
            "ack_url": self.ack_url,
            "subject": self.subject(),
            "text": self.text(),
        }

    def _tag(self) -> str:
        return f"[ALARM L{self.escalation_level}]"

    def _where(self) -> str:
        vehicle = _one_line(self.vehicle_id)
        if self.compartment_id is None:
            return vehicle
        return f"{vehicle}/{_one_line(self.compartment_id)}"

    def _nth(self) -> str:
        return f" (repeat {self.repeat})" if self.repeat > 0 else ""

    def _ack_line(self) -> str:
        url = _one_line(self.ack_url or "")
        if url:
            return f"Acknowledge: {url}"
        return f"Acknowledge alarm {self.alarm_id} on the controller."


class Channel(Protocol):
    """A way to reach a recipient; `send` raises `DeliveryError` when it could not."""

    @property
    def name(self) -> str:
        """Short channel name: "log", "webhook", "email" or "sms"."""
        ...

    def accepts(self, recipient: Recipient) -> bool:
        """Whether this channel can reach the recipient at all (e.g. SMS needs a phone)."""
        ...

    async def send(self, notification: Notification, recipient: Recipient) -> None:
        """Hand the notification over for the recipient, or raise `DeliveryError`."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class LogChannel:
    """Logs each notification at WARNING; for development, it reaches no person."""

    name: ClassVar[str] = "log"

    def accepts(self, recipient: Recipient) -> bool:
        """Every recipient can be logged."""
        return True

    async def send(self, notification: Notification, recipient: Recipient) -> None:
        """Log the notification's subject and detail."""
        _log.warning(
            "alarm %d to %s (%s): %s: %s",
            notification.alarm_id,
            recipient.name,
            recipient.role,
            notification.subject(),
            _one_line(notification.detail),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookChannel:
    """POSTs the notification as JSON to the recipient's webhook, else to `default_url`.

    With a `secret`, the body is signed: header `X-Coldchain-Signature: sha256=<hex HMAC>`.
    """

    name: ClassVar[str] = "webhook"
    default_url: str | None = None
    secret: str | None = field(default=None, repr=False)
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.default_url is not None:
            _check_http_url("webhook_url", self.default_url)
        _check_timeout(self.timeout_s)

    def accepts(self, recipient: Recipient) -> bool:
        """A recipient with a webhook URL, or anyone when a default URL is configured."""
        return (recipient.webhook_url or self.default_url) is not None

    async def send(self, notification: Notification, recipient: Recipient) -> None:
        """POST the notification plus the recipient's name and role."""
        url = recipient.webhook_url or self.default_url
        if url is None:
            raise DeliveryError(self.name, recipient.name, "no webhook URL")
        payload = notification.as_json() | {
            "recipient": {"name": recipient.name, "role": recipient.role}
        }
        body = orjson.dumps(payload)
        headers = {"Content-Type": "application/json"}
        if self.secret:
            headers[SIGNATURE_HEADER] = webhook_signature(body, secret=self.secret)
        await _post(
            channel=self.name,
            recipient=recipient,
            url=url,
            body=body,
            headers=headers,
            timeout_s=self.timeout_s,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class EmailChannel:
    """Sends a plain-text e-mail over SMTP (optionally STARTTLS and login) from a thread."""

    name: ClassVar[str] = "email"
    host: str
    port: int = 25
    from_addr: str = "coldchain@localhost"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S
    # None: the system's trusted CAs; tests and private relays pass their own.
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.host:
            raise ChannelValueError("smtp_host", "must not be empty")
        if not 0 < self.port < 65536:
            raise ChannelValueError("smtp_port", f"{self.port} is not a TCP port")
        if "@" not in self.from_addr:
            raise ChannelValueError("smtp_from", f"{self.from_addr!r} is not an address")
        if (self.username is None) != (self.password is None):
            raise ChannelValueError("smtp_username", "username and password go together")
        if self.username is not None and not self.starttls:
            raise ChannelValueError("smtp_starttls", "a login needs STARTTLS")
        _check_timeout(self.timeout_s)

    def accepts(self, recipient: Recipient) -> bool:
        """A recipient with an e-mail address."""
        return bool(recipient.email)

    async def send(self, notification: Notification, recipient: Recipient) -> None:
        """Build the e-mail and hand it to the SMTP server."""
        if not recipient.email:
            raise DeliveryError(self.name, recipient.name, "no e-mail address")
        message = build_email(notification, recipient, from_addr=self.from_addr)
        await asyncio.to_thread(self._deliver, message, recipient)

    def _deliver(self, message: EmailMessage, recipient: Recipient) -> None:
        # smtplib blocks; the socket timeout bounds the thread even after the caller gave up.
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                if self.starttls:
                    smtp.starttls(context=self.ssl_context or ssl.create_default_context())
                if self.username is not None and self.password is not None:
                    smtp.login(self.username, self.password)
                smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            reason = f"SMTP {self.host}:{self.port}: {type(exc).__name__}: {exc}"
            raise DeliveryError(self.name, recipient.name, reason) from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class SmsHttpChannel:
    """Sends an SMS through an HTTP gateway: POST {"to", "text", "ref"} with a bearer token."""

    name: ClassVar[str] = "sms"
    url: str
    token: str | None = field(default=None, repr=False)
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        _check_http_url("sms_gateway_url", self.url)
        _check_timeout(self.timeout_s)

    def accepts(self, recipient: Recipient) -> bool:
        """A recipient with a phone number."""
        return bool(recipient.phone)

    async def send(self, notification: Notification, recipient: Recipient) -> None:
        """POST the notification's SMS text to the gateway."""
        if not recipient.phone:
            raise DeliveryError(self.name, recipient.name, "no phone number")
        body = orjson.dumps(
            {"to": recipient.phone, "text": notification.text(), "ref": notification.alarm_id}
        )
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        await _post(
            channel=self.name,
            recipient=recipient,
            url=self.url,
            body=body,
            headers=headers,
            timeout_s=self.timeout_s,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelSettings:
    """The controller's notification settings; a channel is built only when configured."""

    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "coldchain@localhost"
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_starttls: bool = False
    sms_gateway_url: str | None = None
    sms_gateway_token: str | None = field(default=None, repr=False)
    log: bool = True


def build_channels(settings: ChannelSettings) -> list[Channel]:
    """The channels the settings configure; raises `ChannelValueError` on an invalid value.

    The webhook channel is always built: without a default URL it reaches only recipients who
    have a webhook URL of their own, and nobody else.
    """
    channels: list[Channel] = []
    if settings.log:
        channels.append(LogChannel())
    channels.append(
        WebhookChannel(default_url=settings.webhook_url, secret=settings.webhook_secret)
    )
    if settings.smtp_host:
        channels.append(
            EmailChannel(
                host=settings.smtp_host,
                port=settings.smtp_port,
                from_addr=settings.smtp_from,
                username=settings.smtp_username,
                password=settings.smtp_password,
                starttls=settings.smtp_starttls,
            )
        )
    if settings.sms_gateway_url:
        channels.append(
            SmsHttpChannel(url=settings.sms_gateway_url, token=settings.sms_gateway_token)
        )
    return channels


def webhook_signature(body: bytes, *, secret: str) -> str:
    """The `X-Coldchain-Signature` value of a webhook body: ``sha256=<hex HMAC-SHA256>``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def build_email(
    notification: Notification, recipient: Recipient, *, from_addr: str
) -> EmailMessage:
    """The plain-text e-mail about a notification for one recipient."""
    if not recipient.email:
        raise ChannelValueError("recipient.email", f"{recipient.name} has no e-mail address")
    message = EmailMessage()
    message["From"] = from_addr
    message["To"] = formataddr((_one_line(recipient.name), recipient.email))
    message["Subject"] = notification.subject()
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=from_addr.rpartition("@")[2] or "coldchain")
    message["X-Coldchain-Alarm"] = str(notification.alarm_id)
    message["X-Priority"] = "1"
    message["Importance"] = "high"
    message.set_content(notification.report())
    return message


async def _post(
    *,
    channel: str,
    recipient: Recipient,
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout_s: float,
) -> None:
    where = _redacted(url)
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.post(url, content=body, headers=headers)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        reason = f"POST {where}: {type(exc).__name__}: {exc}"
        raise DeliveryError(channel, recipient.name, reason) from exc
    if not response.is_success:
        reason = (
            f"POST {where} answered {response.status_code}: {_clip(_one_line(response.text), 200)}"
        )
        raise DeliveryError(channel, recipient.name, reason)


def _redacted(url: str) -> str:
    # Webhook URLs often carry their secret in the path or query: name only scheme and host.
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}/..."


def _check_http_url(field: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ChannelValueError(field, f"{_redacted(url)} is not an http(s) URL")


def _check_timeout(timeout_s: float) -> None:
    if not timeout_s > 0:
        raise ChannelValueError("timeout_s", f"must be positive, got {timeout_s}")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    if limit <= 3:
        return text[:limit]
    return text[: limit - 3].rstrip() + "..."
