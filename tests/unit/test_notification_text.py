"""Alarm notification texts: the subject line, the SMS-sized text, the report and the JSON form."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.alarms.channels import (
    SMS_MAX_CHARS,
    ChannelValueError,
    Notification,
    Recipient,
    build_email,
    webhook_signature,
)

NOTE = Notification(
    alarm_id=42,
    kind="excursion",
    vehicle_id="VAN1",
    compartment_id="c1",
    severity="critical",
    opened_at=dt.datetime(2026, 3, 1, 10, 42, 17, tzinfo=dt.UTC),
    detail="c1 at 9.4 °C for 31 min (limit 8.0 °C)",
    escalation_level=1,
    repeat=0,
    rulebook_version="gsp-2026.1",
    ack_url="https://controller.example/alarms/42/ack",
)


def test_subject_golden() -> None:
    assert NOTE.subject() == "[ALARM L1] excursion VAN1/c1 since 10:42 UTC"


def test_subject_of_a_whole_vehicle_alarm_repeated_at_a_higher_level() -> None:
    note = dataclasses.replace(
        NOTE, kind="power_loss", compartment_id=None, escalation_level=2, repeat=3
    )
    assert note.subject() == "[ALARM L2] power_loss VAN1 since 10:42 UTC (repeat 3)"


def test_times_are_given_in_utc() -> None:
    berlin = dt.timezone(dt.timedelta(hours=2))
    note = dataclasses.replace(NOTE, opened_at=dt.datetime(2026, 6, 1, 1, 5, tzinfo=berlin))
    assert "since 23:05 UTC" in note.subject()
    assert "since 2026-05-31 23:05 UTC" in note.text()
    assert note.as_json()["opened_at"] == "2026-05-31T23:05:00+00:00"


def test_text_golden() -> None:
    assert NOTE.text() == (
        "[ALARM L1] excursion VAN1/c1, severity critical, since 2026-03-01 10:42 UTC\n"
        "c1 at 9.4 °C for 31 min (limit 8.0 °C)\n"
        "Acknowledge: https://controller.example/alarms/42/ack"
    )


def test_text_without_ack_url_says_how_to_acknowledge() -> None:
    note = dataclasses.replace(NOTE, ack_url=None)
    assert note.text().endswith("Acknowledge alarm 42 on the controller.")


def test_long_detail_is_clipped_and_the_ack_line_kept() -> None:
    note = dataclasses.replace(NOTE, detail="probe p2 reads high; " * 40)
    text = note.text()
    assert len(text) == SMS_MAX_CHARS
    head, detail, ack = text.split("\n")
    assert head.startswith("[ALARM L1] excursion VAN1/c1")
    assert detail.endswith("...")
    assert ack == "Acknowledge: https://controller.example/alarms/42/ack"


def test_a_long_ack_url_survives_whole_and_the_detail_gives_way() -> None:
    url = "https://controller.example/alarms/42/ack?token=" + "t" * 180
    note = dataclasses.replace(NOTE, ack_url=url, detail="x" * 100)
    text = note.text()
    assert len(text) <= SMS_MAX_CHARS
    assert text.endswith(f"Acknowledge: {url}")
    assert "xxx" not in text
    assert "[ALARM L1] excursion" in text


def test_line_breaks_in_fields_cannot_break_the_subject_or_the_text_layout() -> None:
    note = dataclasses.replace(NOTE, kind="excursion\r\nBcc: x@y", detail="line one\nline two")
    assert "\n" not in note.subject()
    assert "\r" not in note.subject()
    assert note.text().count("\n") == 2
    assert "line one line two" in note.text()


def test_report_carries_every_field_and_the_full_detail() -> None:
    note = dataclasses.replace(NOTE, detail="d" * 1000, repeat=2)
    report = note.report()
    assert report.startswith(note.subject() + "\n")
    for value in ("42", "excursion", "VAN1", "c1", "critical", "gsp-2026.1", "d" * 1000):
        assert value in report
    assert "level 1, repeat 2" in report
    assert "2026-03-01T10:42:17+00:00" in report
    assert "Acknowledge: https://controller.example/alarms/42/ack" in report
    whole_vehicle = dataclasses.replace(NOTE, compartment_id=None).report()
    assert "(whole vehicle)" in whole_vehicle


def test_as_json_is_json_and_complete() -> None:
    data = json.loads(json.dumps(NOTE.as_json()))
    assert data == {
        "alarm_id": 42,
        "kind": "excursion",
        "vehicle_id": "VAN1",
        "compartment_id": "c1",
        "severity": "critical",
        "opened_at": "2026-03-01T10:42:17+00:00",
        "detail": "c1 at 9.4 °C for 31 min (limit 8.0 °C)",
        "escalation_level": 1,
        "repeat": 0,
        "rulebook_version": "gsp-2026.1",
        "ack_url": "https://controller.example/alarms/42/ack",
        "subject": NOTE.subject(),
        "text": NOTE.text(),
    }


def test_a_naive_opening_time_is_rejected() -> None:
    with pytest.raises(ChannelValueError) as caught:
        dataclasses.replace(NOTE, opened_at=dt.datetime(2026, 3, 1, 10, 42))
    assert caught.value.field == "notification.opened_at"


@pytest.mark.parametrize(
    ("changes", "field_name"),
    [
        ({"name": "  "}, "recipient.name"),
        ({"email": "not-an-address"}, "recipient.email"),
        ({"webhook_url": "javascript:alert(1)"}, "recipient.webhook_url"),
    ],
)
def test_invalid_recipients_are_rejected(changes: dict[str, str], field_name: str) -> None:
    fields: dict[str, str] = {"name": "Alice", "role": "qa"} | changes
    with pytest.raises(ChannelValueError) as caught:
        Recipient(**fields)
    assert caught.value.field == field_name


def test_email_headers_and_body() -> None:
    alice = Recipient(name="Alice QA", role="qa", email="alice@example.org")
    message = build_email(NOTE, alice, from_addr="alarms@coldchain.test")
    assert message["To"] == "Alice QA <alice@example.org>"
    assert message["From"] == "alarms@coldchain.test"
    assert message["Subject"] == NOTE.subject()
    assert message["Message-ID"].endswith("@coldchain.test>")
    assert message.get_content() == NOTE.report()


def test_webhook_signature_golden() -> None:
    # HMAC-SHA256 of b"{}" under key "k", as any receiver would compute it.
    assert webhook_signature(b"{}", secret="k") == (
        "sha256=add853b103fbcc936a194f9eb15e29c4ff08af6e47d5d1bca4f20218e31e4fff"
    )


@given(
    kind=st.text(max_size=80),
    vehicle=st.text(min_size=1, max_size=80),
    compartment=st.none() | st.text(max_size=40),
    severity=st.text(max_size=40),
    detail=st.text(max_size=600),
    ack_url=st.none() | st.text(min_size=1, max_size=250),
    level=st.integers(min_value=0, max_value=9),
    repeat=st.integers(min_value=0, max_value=999),
    alarm_id=st.integers(min_value=1, max_value=10**12),
)
def test_texts_stay_within_their_limits(
    kind: str,
    vehicle: str,
    compartment: str | None,
    severity: str,
    detail: str,
    ack_url: str | None,
    level: int,
    repeat: int,
    alarm_id: int,
) -> None:
    note = Notification(
        alarm_id=alarm_id,
        kind=kind,
        vehicle_id=vehicle,
        compartment_id=compartment,
        severity=severity,
        opened_at=NOTE.opened_at,
        detail=detail,
        escalation_level=level,
        repeat=repeat,
        rulebook_version="v",
        ack_url=ack_url,
    )
    text = note.text()
    assert len(text) <= SMS_MAX_CHARS
    assert text.count("\n") <= 2
    url = " ".join((ack_url or "").split())
    ack = f"Acknowledge: {url}" if url else f"Acknowledge alarm {alarm_id} on the controller."
    # Only an ack line too long to leave room for a minimal head may itself be cut.
    if len(ack) <= SMS_MAX_CHARS - 41:
        assert text.endswith("\n" + ack)
    subject = note.subject()
    assert subject.startswith(f"[ALARM L{level}]")
    assert not any(c in subject for c in "\r\n")
