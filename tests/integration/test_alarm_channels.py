"""Alarm channels against real local servers: an HTTP receiver and an aiosmtpd SMTP server."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from controller.alarms.channels import (
    SIGNATURE_HEADER,
    Channel,
    ChannelSettings,
    ChannelValueError,
    DeliveryError,
    EmailChannel,
    LogChannel,
    Notification,
    Recipient,
    SmsHttpChannel,
    WebhookChannel,
    build_channels,
)
from controller.alarms.notify import DeliveryResult, notify_all

SECRET = "webhook-secret"
TOKEN = "sms-token"

NOTE = Notification(
    alarm_id=42,
    kind="excursion",
    vehicle_id="VAN1",
    compartment_id="c1",
    severity="critical",
    opened_at=dt.datetime(2026, 3, 1, 10, 42, tzinfo=dt.UTC),
    detail="c1 at 9.4 °C for 31 min (limit 8.0 °C)",
    escalation_level=1,
    repeat=0,
    rulebook_version="gsp-2026.1",
    ack_url="https://controller.example/alarms/42/ack",
)
ALICE = Recipient(
    name="Alice QA",
    role="responsible person",
    phone="+4915100000001",
    email="alice@example.org",
)
BOB = Recipient(name="Bob", role="dispatcher", email="bob@example.org")
CAROL = Recipient(name="Carol", role="driver", phone="+4915100000003")


# --- an HTTP receiver -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """Records every POST; `/fail...` answers 500, `/slow...` hangs until released, else 200."""

    server: ThreadingHTTPServer
    release: threading.Event = field(default_factory=threading.Event)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    def posts(self, prefix: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path.startswith(prefix)]


def _handler_for(receiver_box: list[HttpReceiver]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            receiver = receiver_box[0]
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                receiver.received.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
            if self.path.startswith("/slow"):
                receiver.release.wait(5)
            status = 500 if self.path.startswith("/fail") else 200
            answer = b"gateway exploded" if status == 500 else b'{"ok": true}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def http() -> Iterator[HttpReceiver]:
    """A real HTTP server on an ephemeral port, serving from a thread."""
    box: list[HttpReceiver] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(box))
    receiver = HttpReceiver(server=server)
    box.append(receiver)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="http-receiver"
    )
    thread.start()
    yield receiver
    receiver.release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


# --- an SMTP server ------------------------------------------------------------------------


@dataclass
class Mailbox:
    port: int
    messages: list[tuple[Envelope, EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        parsed = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((envelope, parsed))
        return "250 Message accepted for delivery"


async def _serve_smtp(**smtp_options: Any) -> tuple[asyncio.Server, Mailbox]:
    mailbox = Mailbox(port=0)
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(mailbox, hostname="localhost", **smtp_options), "127.0.0.1", 0
    )
    mailbox.port = server.sockets[0].getsockname()[1]
    return server, mailbox


@pytest.fixture
async def smtp() -> AsyncIterator[Mailbox]:
    """A real aiosmtpd server without TLS on an ephemeral port, in the test's event loop."""
    server, mailbox = await _serve_smtp()
    async with server:
        yield mailbox


@dataclass(frozen=True, slots=True)
class Tls:
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture
def tls(tmp_path: Path) -> Tls:
    """A self-signed certificate for 127.0.0.1, as server context and trusting client context."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "coldchain test smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path = tmp_path / "smtp.crt"
    key_path = tmp_path / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    return Tls(server=server, client=ssl.create_default_context(cafile=str(cert_path)))


def _only(login: str, password: str) -> Any:
    def authenticate(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data == (login.encode(), password.encode())
        return AuthResult(success=ok, handled=False)

    return authenticate


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _by_pair(results: list[DeliveryResult]) -> dict[tuple[str, str], DeliveryResult]:
    return {(r.channel, r.recipient): r for r in results}


# --- one round through every channel -------------------------------------------------------


async def test_one_round_reaches_every_recipient_through_every_channel_that_accepts_them(
    http: HttpReceiver, smtp: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    alice = Recipient(
        name=ALICE.name,
        role=ALICE.role,
        phone=ALICE.phone,
        email=ALICE.email,
        webhook_url=http.url("/hook/alice"),
    )
    channels: list[Channel] = [
        LogChannel(),
        WebhookChannel(default_url=http.url("/hook/default"), secret=SECRET),
        EmailChannel(host="127.0.0.1", port=smtp.port, from_addr="alarms@coldchain.test"),
        SmsHttpChannel(url=http.url("/sms"), token=TOKEN),
    ]
    with caplog.at_level(logging.WARNING, logger="controller.alarms.channels"):
        results = await notify_all(NOTE, [alice, BOB, CAROL], channels, timeout_s=3)

    assert [(r.channel, r.recipient) for r in results] == [
        ("log", "Alice QA"),
        ("webhook", "Alice QA"),
        ("email", "Alice QA"),
        ("sms", "Alice QA"),
        ("log", "Bob"),
        ("webhook", "Bob"),
        ("email", "Bob"),
        ("log", "Carol"),
        ("webhook", "Carol"),
        ("sms", "Carol"),
    ]
    assert all(r.ok and r.error is None for r in results), results

    # Webhooks: Alice's own URL, the default for the others; signed JSON bodies.
    assert len(http.posts("/hook/alice")) == 1
    assert len(http.posts("/hook/default")) == 2
    for post in http.posts("/hook"):
        expected = hmac.new(SECRET.encode(), post.body, hashlib.sha256).hexdigest()
        assert post.headers[SIGNATURE_HEADER.lower()] == f"sha256={expected}"
        assert post.headers["content-type"] == "application/json"
        body = post.json()
        assert body["alarm_id"] == 42
        assert body["kind"] == "excursion"
        assert body["vehicle_id"] == "VAN1"
        assert body["compartment_id"] == "c1"
        assert body["opened_at"] == "2026-03-01T10:42:00+00:00"
        assert body["ack_url"] == NOTE.ack_url
        assert body["rulebook_version"] == "gsp-2026.1"
        assert body["subject"] == NOTE.subject()
    recipients = sorted(p.json()["recipient"]["name"] for p in http.posts("/hook"))
    assert recipients == ["Alice QA", "Bob", "Carol"]
    assert http.posts("/hook/alice")[0].json()["recipient"] == {
        "name": "Alice QA",
        "role": "responsible person",
    }

    # SMS: to both phones, the SMS text, the alarm as ref, the bearer token.
    sms = http.posts("/sms")
    assert sorted(p.json()["to"] for p in sms) == ["+4915100000001", "+4915100000003"]
    for post in sms:
        assert post.headers["authorization"] == f"Bearer {TOKEN}"
        assert post.json()["text"] == NOTE.text()
        assert post.json()["ref"] == 42

    # E-mail: one per address, with the subject and the full report.
    assert sorted(env.rcpt_tos[0] for env, _ in smtp.messages) == [
        "alice@example.org",
        "bob@example.org",
    ]
    for envelope, message in smtp.messages:
        assert envelope.mail_from == "alarms@coldchain.test"
        assert message["Subject"] == "[ALARM L1] excursion VAN1/c1 since 10:42 UTC"
        assert message["X-Coldchain-Alarm"] == "42"
        body = message.get_content()
        assert "c1 at 9.4 °C for 31 min" in body
        assert "gsp-2026.1" in body
        assert NOTE.ack_url is not None and NOTE.ack_url in body
    to_alice = next(m for e, m in smtp.messages if e.rcpt_tos == ["alice@example.org"])
    assert to_alice["To"] == "Alice QA <alice@example.org>"

    # Log: one warning per recipient.
    logged = [r.getMessage() for r in caplog.records if r.name == "controller.alarms.channels"]
    assert len(logged) == 3
    assert all("[ALARM L1] excursion VAN1/c1" in line for line in logged)


# --- failures ------------------------------------------------------------------------------


async def test_http_500_is_a_failed_result_while_the_other_channels_deliver(
    http: HttpReceiver, smtp: Mailbox
) -> None:
    channels: list[Channel] = [
        WebhookChannel(default_url=http.url("/fail")),
        EmailChannel(host="127.0.0.1", port=smtp.port),
        SmsHttpChannel(url=http.url("/sms")),
    ]
    results = _by_pair(await notify_all(NOTE, [ALICE], channels, timeout_s=3))

    failed = results[("webhook", "Alice QA")]
    assert not failed.ok
    assert failed.error is not None
    assert "500" in failed.error
    assert "gateway exploded" in failed.error
    assert results[("email", "Alice QA")].ok
    assert results[("sms", "Alice QA")].ok
    assert len(http.posts("/fail")) == 1
    assert len(http.posts("/sms")) == 1
    assert len(smtp.messages) == 1


async def test_a_failing_send_raises_delivery_error_with_its_fields(http: HttpReceiver) -> None:
    channel = SmsHttpChannel(url=http.url("/fail/sms?key=hidden"))
    with pytest.raises(DeliveryError) as caught:
        await channel.send(NOTE, ALICE)
    assert caught.value.channel == "sms"
    assert caught.value.recipient == "Alice QA"
    assert "500" in caught.value.reason
    # The gateway URL's path and query may hold a secret: errors name only scheme and host.
    assert "hidden" not in str(caught.value)


async def test_unreachable_smtp_server_is_a_failed_result(http: HttpReceiver) -> None:
    channels: list[Channel] = [
        EmailChannel(host="127.0.0.1", port=_closed_port(), timeout_s=2),
        SmsHttpChannel(url=http.url("/sms")),
    ]
    results = _by_pair(await notify_all(NOTE, [ALICE], channels, timeout_s=3))

    failed = results[("email", "Alice QA")]
    assert not failed.ok
    assert failed.error is not None
    assert "ConnectionRefusedError" in failed.error
    assert results[("sms", "Alice QA")].ok


async def test_unreachable_http_endpoint_is_a_failed_result() -> None:
    channel = WebhookChannel(default_url=f"http://127.0.0.1:{_closed_port()}/hook")
    [result] = await notify_all(NOTE, [BOB], [channel], timeout_s=3)
    assert not result.ok
    assert result.error is not None
    assert "ConnectError" in result.error


async def test_a_hanging_endpoint_is_cut_off_without_holding_up_the_round(
    http: HttpReceiver,
) -> None:
    channels: list[Channel] = [
        WebhookChannel(default_url=http.url("/slow")),
        SmsHttpChannel(url=http.url("/sms")),
    ]
    started = time.monotonic()
    results = _by_pair(await notify_all(NOTE, [ALICE], channels, timeout_s=0.5))
    elapsed = time.monotonic() - started

    assert elapsed < 2
    assert results[("webhook", "Alice QA")] == DeliveryResult(
        "webhook", "Alice QA", False, "no answer within 0.5 s"
    )
    assert results[("sms", "Alice QA")].ok


async def test_sms_skips_a_recipient_without_a_phone(http: HttpReceiver) -> None:
    channel = SmsHttpChannel(url=http.url("/sms"))
    assert not channel.accepts(BOB)
    results = await notify_all(NOTE, [BOB, CAROL], [channel], timeout_s=3)

    assert results == [DeliveryResult("sms", "Carol", True, None)]
    assert [p.json()["to"] for p in http.posts("/sms")] == ["+4915100000003"]


async def test_webhook_without_default_url_reaches_only_recipients_with_their_own(
    http: HttpReceiver,
) -> None:
    dana = Recipient(name="Dana", role="on call", webhook_url=http.url("/hook/dana"))
    results = await notify_all(NOTE, [BOB, dana], [WebhookChannel()], timeout_s=3)

    assert results == [DeliveryResult("webhook", "Dana", True, None)]
    [post] = http.posts("/hook")
    assert post.path == "/hook/dana"
    assert SIGNATURE_HEADER.lower() not in post.headers


@dataclass(frozen=True, slots=True)
class BrokenChannel:
    """A channel with a bug: it raises something other than DeliveryError."""

    name: str = "broken"

    def accepts(self, recipient: Recipient) -> bool:
        return True

    async def send(self, notification: Notification, recipient: Recipient) -> None:
        raise RuntimeError("bug in a channel")


async def test_a_crashing_channel_is_a_failed_result_and_the_round_goes_on(
    http: HttpReceiver,
) -> None:
    channels: list[Channel] = [BrokenChannel(), SmsHttpChannel(url=http.url("/sms"))]
    results = await notify_all(NOTE, [CAROL], channels, timeout_s=3)

    assert results == [
        DeliveryResult("broken", "Carol", False, "RuntimeError: bug in a channel"),
        DeliveryResult("sms", "Carol", True, None),
    ]


async def test_sending_to_a_recipient_the_channel_cannot_reach_is_a_delivery_error() -> None:
    with pytest.raises(DeliveryError, match="no e-mail address"):
        await EmailChannel(host="127.0.0.1").send(NOTE, CAROL)
    with pytest.raises(DeliveryError, match="no phone number"):
        await SmsHttpChannel(url="http://127.0.0.1:9/sms").send(NOTE, BOB)
    with pytest.raises(DeliveryError, match="no webhook URL"):
        await WebhookChannel().send(NOTE, BOB)


# --- SMTP with STARTTLS and login ----------------------------------------------------------


async def test_email_over_starttls_with_login(tls: Tls) -> None:
    server, mailbox = await _serve_smtp(
        tls_context=tls.server,
        require_starttls=True,
        auth_required=True,
        authenticator=_only("coldchain", "s3cret"),
    )
    async with server:
        good = EmailChannel(
            host="127.0.0.1",
            port=mailbox.port,
            username="coldchain",
            password="s3cret",
            starttls=True,
            ssl_context=tls.client,
        )
        await good.send(NOTE, BOB)

        wrong = EmailChannel(
            host="127.0.0.1",
            port=mailbox.port,
            username="coldchain",
            password="wrong",
            starttls=True,
            ssl_context=tls.client,
        )
        with pytest.raises(DeliveryError) as caught:
            await wrong.send(NOTE, BOB)

    assert "SMTPAuthenticationError" in caught.value.reason
    [(envelope, message)] = mailbox.messages
    assert envelope.rcpt_tos == ["bob@example.org"]
    assert message["Subject"] == NOTE.subject()


async def test_email_refuses_a_server_certificate_it_does_not_trust(tls: Tls) -> None:
    server, mailbox = await _serve_smtp(tls_context=tls.server, require_starttls=True)
    async with server:
        channel = EmailChannel(host="127.0.0.1", port=mailbox.port, starttls=True)
        with pytest.raises(DeliveryError) as caught:
            await channel.send(NOTE, BOB)
    assert "SSLCertVerificationError" in caught.value.reason
    assert mailbox.messages == []


# --- building channels from settings -------------------------------------------------------


def test_build_channels_builds_only_what_is_configured() -> None:
    minimal = build_channels(ChannelSettings())
    assert [c.name for c in minimal] == ["log", "webhook"]
    assert [c.name for c in build_channels(ChannelSettings(log=False))] == ["webhook"]

    full = build_channels(
        ChannelSettings(
            webhook_url="https://hooks.example/alarm",
            webhook_secret="whsec",
            smtp_host="mail.example",
            smtp_port=587,
            smtp_from="alarms@example.org",
            smtp_username="coldchain",
            smtp_password="pw-not-in-repr",
            smtp_starttls=True,
            sms_gateway_url="https://sms.example/send",
            sms_gateway_token="token-not-in-repr",
        )
    )
    assert [c.name for c in full] == ["log", "webhook", "email", "sms"]
    everything = repr(full)
    assert "whsec" not in everything
    assert "pw-not-in-repr" not in everything
    assert "token-not-in-repr" not in everything


@pytest.mark.parametrize(
    ("settings", "field_name"),
    [
        (ChannelSettings(webhook_url="ftp://hooks.example/x"), "webhook_url"),
        (ChannelSettings(sms_gateway_url="sms.example/send"), "sms_gateway_url"),
        (ChannelSettings(smtp_host="mail.example", smtp_port=0), "smtp_port"),
        (ChannelSettings(smtp_host="mail.example", smtp_username="u"), "smtp_username"),
        (
            ChannelSettings(smtp_host="mail.example", smtp_username="u", smtp_password="p"),
            "smtp_starttls",
        ),
    ],
)
def test_build_channels_rejects_invalid_settings(
    settings: ChannelSettings, field_name: str
) -> None:
    with pytest.raises(ChannelValueError) as caught:
        build_channels(settings)
    assert caught.value.field == field_name


# --- escalation until acknowledged (real database, real receivers) ---------------------------


async def test_alarms_repeat_and_escalate_until_acknowledged(
    database_url: str, http: HttpReceiver, smtp: Mailbox
) -> None:
    from datetime import UTC, datetime

    from controller.alarms.escalation import Escalator
    from controller.alarms.repository import acknowledge, alarm_events, raise_alarm
    from controller.compliance.rulebook import load_rulebook
    from controller.settings import ControllerSettings
    from edge_agent.clock import ScaledClock
    from tests.support.evaluation import T0, register

    rules = load_rulebook()
    register(database_url, "ESC1")
    clock = ScaledClock(speed=1e-9, start_s=T0)  # time moves only when the test moves it
    escalator = Escalator(
        settings=ControllerSettings(database_url=database_url, public_url="https://cc.example"),
        rules=rules,
        clock=clock,
        channels=[
            SmsHttpChannel(url=http.url("/sms"), token="t0k3n"),
            EmailChannel(host="127.0.0.1", port=smtp.port, from_addr="alarms@cc.example"),
        ],
    )
    with psycopg.connect(database_url) as conn:
        alarm = raise_alarm(
            conn,
            kind="excursion",
            vehicle_id="ESC1",
            compartment_id="c1",
            severity="critical",
            detail="high excursion since 09:58, peak 9.1 °C",
            data_ts=datetime.fromtimestamp(T0 - 60, UTC),
            now=datetime.fromtimestamp(T0, UTC),
            rulebook_version=rules.version,
        )

    assert await escalator.send_due() == 1
    level_1 = {p.json()["to"] for p in http.posts("/sms")}
    assert len(level_1) == 3, "GSP: at least three people are told at once"
    assert {m["To"].addresses[0].addr_spec for _, m in smtp.messages} == {
        "dispatch@example.com",
        "qa-oncall@example.com",
    }
    assert "https://cc.example/api/v1/alarms/" in http.posts("/sms")[0].json()["text"]
    assert await escalator.send_due() == 0, "the next round waits for repeat_every_s"

    clock.start_s += rules.alarms.repeat_every_s
    assert await escalator.send_due() == 1
    assert len(http.posts("/sms")) == 6, "repeated to the same three"

    clock.start_s += rules.alarms.levels[0].escalate_after_s or 0
    assert await escalator.send_due() == 1
    latest = {p.json()["to"] for p in http.posts("/sms")[6:]}
    assert len(latest) == 4 and level_1 < latest, "level 2 adds the quality manager"

    with psycopg.connect(database_url) as conn:
        acknowledge(
            conn,
            alarm.alarm_id,
            by="Quality manager",
            comment="on it",
            now=datetime.fromtimestamp(clock.now_s(), UTC),
        )
    clock.start_s += rules.alarms.repeat_every_s * 3
    assert await escalator.send_due() == 0, "nobody is notified once someone acknowledged"
    with psycopg.connect(database_url) as conn:
        trail = alarm_events(conn, alarm.alarm_id)
    assert [e.event for e in trail] == [
        "opened",
        "notified",
        "notified",
        "escalated",
        "acknowledged",
    ]
    assert trail[3].detail["level"] == 2
    assert all(d["ok"] for d in trail[1].detail["deliveries"])
