"""The wire contract (`coldchain_protocol`) and its specification `docs/protocol.md`.

The worked example in the document is parsed and re-verified here, so the document cannot drift
from the code without a test failing.
"""

from __future__ import annotations

import base64
import itertools
import math
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from coldchain_protocol import (
    PROTOCOL_VERSION,
    Ack,
    ChannelKind,
    ProtocolError,
    Reading,
    ResendRequest,
    SignatureError,
    Status,
    TelemetryBatch,
    Topics,
    channel_kind,
    decode_ack,
    decode_batch,
    decode_resend,
    decode_status,
    encode_ack,
    encode_batch_body,
    encode_resend,
    encode_status,
    load_private_key,
    load_public_key,
    plausible,
    private_key_pem,
    public_key_pem,
    sign_body,
    split_signed,
    verify_signed,
)
from coldchain_protocol.channels import door_channel, temperature_channel
from coldchain_protocol.messages import MAX_BATCH_READINGS, seq_ranges
from coldchain_protocol.mqtt import jittered_backoff
from coldchain_protocol.topics import TOPIC_VERSION, check_vehicle_id

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"

SEED = bytes(range(32))
KEY = Ed25519PrivateKey.from_private_bytes(SEED)
PUBLIC = KEY.public_key()
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))

T0 = 1_767_261_600_000  # 2026-01-01T10:00:00Z


# -- helpers ---------------------------------------------------------------------------------


def doc_block(name: str) -> str:
    """The text of the fenced block right after ``<!-- example-<name> -->`` in the document."""
    text = DOC.read_text(encoding="utf-8")
    pattern = re.compile(
        r"<!-- example-" + re.escape(name) + r" -->\n```text\n(.*?)\n```", re.DOTALL
    )
    matches = pattern.findall(text)
    assert len(matches) == 1, f"docs/protocol.md needs exactly one '<!-- example-{name} -->' block"
    return str(matches[0])


def sample_batch(*, history: bool = False) -> TelemetryBatch:
    return TelemetryBatch(
        vehicle_id="truck-042",
        boot_id="6f1c2a9e5b3d4c7f8a0e1d2c3b4a5f60",
        batch_id="0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f50",
        sent_ms=T0 + 30_250,
        history=history,
        readings=(
            Reading(1, T0, "temp:c1:p1", 4.25),
            Reading(2, T0, "temp:c1:p2", -18.5),
            Reading(3, T0, "door:c1", 0.0),
            Reading(4, T0, "power", 1.0),
            Reading(5, T0, "gps:lat", 52.520008, clock_synced=False),
        ),
    )


def valid_obj() -> dict[str, Any]:
    """A valid telemetry body as a JSON-ready object; tests break one thing at a time."""
    return {
        "v": 1,
        "type": "telemetry",
        "vehicle": "truck-042",
        "boot": "b" * 32,
        "batch": "c" * 32,
        "sent": T0 + 30_000,
        "history": False,
        "readings": [
            [1, T0, "temp:c1:p1", 4.25, 1],
            [2, T0, "door:c1", 0, 1],
        ],
    }


def with_fields(**changes: Any) -> bytes:
    obj = valid_obj()
    obj.update(changes)
    return orjson.dumps(obj)


def without_field(name: str) -> bytes:
    obj = valid_obj()
    del obj[name]
    return orjson.dumps(obj)


def with_reading(index: int, position: int, value: Any) -> bytes:
    obj = valid_obj()
    obj["readings"][index][position] = value
    return orjson.dumps(obj)


def with_raw_value(raw: bytes) -> bytes:
    """A body whose first reading's value is the raw JSON token `raw` (orjson cannot emit NaN)."""
    obj = valid_obj()
    obj["readings"][0][3] = 12345.5
    body = orjson.dumps(obj)
    assert body.count(b"12345.5") == 1
    return body.replace(b"12345.5", raw)


def ack_body(**changes: Any) -> bytes:
    obj: dict[str, Any] = {
        "v": 1,
        "type": "ack",
        "batch": "c" * 32,
        "ranges": [[1, 2]],
        "duplicates": 0,
        "rejected": None,
    }
    obj.update(changes)
    return orjson.dumps(obj)


def status_body(**changes: Any) -> bytes:
    obj: dict[str, Any] = {
        "v": 1,
        "type": "status",
        "state": "online",
        "boot": "b" * 32,
        "ts": T0,
        "outbox_depth": 3,
        "oldest_unacked_ms": T0 - 1000,
        "reconnects": 1,
        "refused": 0,
    }
    obj.update(changes)
    return orjson.dumps(obj)


# -- (a) the worked example in docs/protocol.md ----------------------------------------------


def test_doc_example_payload_verifies_and_decodes() -> None:
    payload = doc_block("payload").encode("utf-8")
    public = load_public_key(doc_block("public-key"))

    body = verify_signed(payload, public)
    batch = decode_batch(body)

    assert body == doc_block("body").encode("utf-8")
    assert batch.vehicle_id == "truck-042"
    assert batch.history is False
    assert [r.seq for r in batch.readings] == list(range(1201, 1209))
    assert {channel_kind(r.channel) for r in batch.readings} == set(ChannelKind)
    assert all(plausible(r.channel, r.value) for r in batch.readings)
    assert [r.clock_synced for r in batch.readings] == [True] * 7 + [False]
    # The example is exactly what the encoder produces for the decoded batch.
    assert encode_batch_body(batch) == body


def test_doc_example_key_material_matches_the_seed() -> None:
    seed = bytes.fromhex(doc_block("seed"))
    key = Ed25519PrivateKey.from_private_bytes(seed)

    assert seed == SEED
    assert public_key_pem(key).strip() == doc_block("public-key")
    assert private_key_pem(key).decode("ascii").strip() == doc_block("private-key")
    loaded = load_private_key(doc_block("private-key").encode("ascii"))
    assert public_key_pem(loaded) == public_key_pem(key)


def test_doc_example_signature_is_reproducible() -> None:
    """Ed25519 is deterministic: signing the documented body gives the documented payload."""
    body = doc_block("body").encode("utf-8")
    payload = doc_block("payload").encode("utf-8")

    assert sign_body(body, KEY) == payload
    assert payload.count(b"\n") == 1
    assert not payload.endswith(b"\n")
    assert len(payload.rpartition(b"\n")[2]) == 88


def test_doc_example_payload_refuses_tampering() -> None:
    payload = doc_block("payload").encode("utf-8")
    tampered = payload.replace(b"4.25", b"4.26", 1)
    assert tampered != payload

    with pytest.raises(SignatureError, match="does not verify"):
        verify_signed(tampered, load_public_key(doc_block("public-key")))


@pytest.mark.parametrize(
    ("name", "decode", "encode"),
    [
        ("ack", decode_ack, encode_ack),
        ("ack-rejected", decode_ack, encode_ack),
        ("resend", decode_resend, encode_resend),
        ("status-online", decode_status, encode_status),
        ("status-offline", decode_status, encode_status),
    ],
)
def test_doc_other_examples_decode_and_reencode(
    name: str, decode: Callable[[bytes], Any], encode: Callable[[Any], bytes]
) -> None:
    body = doc_block(name).encode("utf-8")
    assert encode(decode(body)) == body


def test_doc_examples_agree_with_each_other() -> None:
    batch = decode_batch(doc_block("body").encode("utf-8"))
    ack = decode_ack(doc_block("ack").encode("utf-8"))
    rejected = decode_ack(doc_block("ack-rejected").encode("utf-8"))
    online = decode_status(doc_block("status-online").encode("utf-8"))
    offline = decode_status(doc_block("status-offline").encode("utf-8"))

    assert ack.batch_id == batch.batch_id
    assert ack.ranges == seq_ranges([r.seq for r in batch.readings])
    assert ack.rejected is None
    assert rejected.rejected is not None
    assert rejected.ranges == ack.ranges
    assert (online.state, offline.state) == ("online", "offline")
    assert online.boot_id == offline.boot_id == batch.boot_id


def test_doc_states_the_code_constants() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert MAX_BATCH_READINGS == 10_000
    assert "**at most 10,000** elements" in text
    assert f"<prefix>/{TOPIC_VERSION}/<vehicle_id>/<kind>" in text
    assert PROTOCOL_VERSION == 1
    assert '`"v": 1`' in text


@pytest.mark.parametrize(
    ("channel", "low", "high"),
    [
        ("temp:<compartment>:<probe>", -90.0, 90.0),
        ("gps:lat", -90.0, 90.0),
        ("gps:lon", -180.0, 180.0),
        ("gps:speed", 0.0, 250.0),
    ],
)
def test_doc_channel_table_matches_plausible_ranges(channel: str, low: float, high: float) -> None:
    rows = [line for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith("|")]
    row = next(line for line in rows if line.startswith(f"| `{channel}` |"))
    assert f"| {low} .. {high} |" in row
    probe = "temp:c1:p1" if channel.startswith("temp") else channel
    assert plausible(probe, low) and plausible(probe, high)
    assert not plausible(probe, math.nextafter(low, -math.inf))
    assert not plausible(probe, math.nextafter(high, math.inf))


# -- (b) round trips of every message type ---------------------------------------------------


@pytest.mark.parametrize("history", [False, True])
def test_batch_round_trip_through_signature(history: bool) -> None:
    batch = sample_batch(history=history)
    body = encode_batch_body(batch)
    payload = sign_body(body, KEY)

    assert split_signed(payload) == (body, base64.b64decode(payload.rpartition(b"\n")[2]))
    assert decode_batch(verify_signed(payload, PUBLIC)) == batch


def test_batch_body_is_compact_json_with_the_documented_shape() -> None:
    body = encode_batch_body(sample_batch())
    obj = orjson.loads(body)

    assert b"\n" not in body and b" " not in body
    assert list(obj) == ["v", "type", "vehicle", "boot", "batch", "sent", "history", "readings"]
    assert obj["readings"][4] == [5, T0, "gps:lat", 52.520008, 0]
    assert obj["readings"][0][4] == 1


def test_integer_values_decode_as_floats() -> None:
    batch = decode_batch(with_reading(1, 3, 1))
    assert type(batch.readings[1].value) is float
    assert batch.readings[1].value == 1.0


@pytest.mark.parametrize(
    "ack",
    [
        Ack("c" * 32, ((1, 500),)),
        Ack("batch-1", ((1, 3), (7, 7), (9, 12)), duplicates=4),
        Ack("batch-2", ((5, 9),), rejected="seq 5: door:c1 = 0.5 is not physically plausible"),
        Ack("batch-3", (), rejected="schema: reading 0: unknown channel 'x'"),
        Ack("b", ((2**63 - 1, 2**63 - 1),)),
    ],
)
def test_ack_round_trip(ack: Ack) -> None:
    assert decode_ack(encode_ack(ack)) == ack


@pytest.mark.parametrize(
    "request_",
    [ResendRequest(((1, 1),)), ResendRequest(((10, 20), (30, 31))), ResendRequest(())],
)
def test_resend_round_trip(request_: ResendRequest) -> None:
    assert decode_resend(encode_resend(request_)) == request_


@pytest.mark.parametrize(
    "status",
    [
        Status("online", "b" * 32, T0, outbox_depth=12, oldest_unacked_ms=T0 - 5, reconnects=2),
        Status("offline", "b" * 32, T0),
        Status("online", "boot", 0, outbox_depth=0, oldest_unacked_ms=None, refused=7),
    ],
)
def test_status_round_trip(status: Status) -> None:
    assert decode_status(encode_status(status)) == status


def test_optional_fields_take_their_defaults() -> None:
    ack = decode_ack(b'{"v":1,"type":"ack","batch":"x","ranges":[[1,2]]}')
    assert (ack.duplicates, ack.rejected) == (0, None)

    status = decode_status(b'{"v":1,"type":"status","state":"offline","boot":"b","ts":5}')
    assert status == Status("offline", "b", 5)


@pytest.mark.parametrize(
    ("body", "decode"),
    [
        (with_fields(extra={"future": [1, 2]}, firmware="1.2.3"), decode_batch),
        (ack_body(extra=True), decode_ack),
        (b'{"v":1,"type":"resend","ranges":[[1,2]],"reason":"gap"}', decode_resend),
        (status_body(battery=0.93), decode_status),
    ],
)
def test_unknown_keys_are_ignored(body: bytes, decode: Callable[[bytes], Any]) -> None:
    obj = orjson.loads(body)
    known = {k: v for k, v in obj.items() if k not in ("extra", "firmware", "reason", "battery")}
    assert decode(body) == decode(orjson.dumps(known))


# -- (c) property: valid batches round-trip unchanged ----------------------------------------

_PART_IDS = st.from_regex(r"[A-Za-z0-9_-]{1,32}", fullmatch=True)
_CHANNELS = st.one_of(
    st.builds(temperature_channel, _PART_IDS, _PART_IDS),
    st.builds(door_channel, _PART_IDS),
    st.sampled_from(["power", "gps:lat", "gps:lon", "gps:speed"]),
)
_READINGS = st.builds(
    Reading,
    seq=st.integers(min_value=1, max_value=2**63 - 1),
    ts_ms=st.integers(min_value=0, max_value=253_402_300_799_999),
    channel=_CHANNELS,
    value=st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(min_value=-(2**53), max_value=2**53).map(float),
    ),
    clock_synced=st.booleans(),
)
_BATCHES = st.builds(
    TelemetryBatch,
    vehicle_id=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", fullmatch=True),
    boot_id=st.text(min_size=1, max_size=64),
    batch_id=st.text(min_size=1, max_size=64),
    sent_ms=st.integers(min_value=0, max_value=2**63 - 1),
    history=st.booleans(),
    readings=st.lists(_READINGS, min_size=1, max_size=40, unique_by=lambda r: r.seq).map(tuple),
)


@settings(max_examples=300, deadline=None)
@given(batch=_BATCHES)
def test_any_valid_batch_round_trips(batch: TelemetryBatch) -> None:
    body = encode_batch_body(batch)
    assert b"\n" not in body
    payload = sign_body(body, KEY)

    assert verify_signed(payload, PUBLIC) == body
    assert decode_batch(verify_signed(payload, PUBLIC)) == batch


@given(seqs=st.lists(st.integers(min_value=1, max_value=10_000), max_size=200))
def test_seq_ranges_cover_exactly_the_given_seqs(seqs: list[int]) -> None:
    ranges = seq_ranges(seqs)

    covered = [s for first, last in ranges for s in range(first, last + 1)]
    assert covered == sorted(set(seqs))
    for (_, last), (first, _) in itertools.pairwise(ranges):
        assert first > last + 1  # sorted, disjoint and merged
    assert decode_ack(encode_ack(Ack("x", ranges))).ranges == ranges


# -- (d) decode errors name the fault --------------------------------------------------------

_TOO_MANY = orjson.dumps(
    {**valid_obj(), "readings": [[i, T0, "power", 1, 1] for i in range(1, MAX_BATCH_READINGS + 2)]}
)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(b'{"v":1,"type":', "body is not valid JSON", id="truncated-json"),
        pytest.param(b"", "body is not valid JSON", id="empty"),
        pytest.param(b"\xef\xbb\xbf" + with_fields(), "body is not valid JSON", id="bom"),
        pytest.param(b'{"v":1,"boot":"\xff"}', "body is not valid JSON", id="bad-utf8"),
        pytest.param(b"[1,2,3]", "body is not a JSON object", id="array"),
        pytest.param(b'"telemetry"', "body is not a JSON object", id="string"),
        pytest.param(with_fields(v=2), "unsupported protocol version 2, expected 1", id="v2"),
        pytest.param(with_fields(v="1"), "unsupported protocol version '1'", id="v-string"),
        pytest.param(without_field("v"), "unsupported protocol version None", id="no-v"),
        pytest.param(
            with_fields(type="ack"), "message type 'ack', expected 'telemetry'", id="type"
        ),
        pytest.param(without_field("type"), "message type None", id="no-type"),
        pytest.param(without_field("vehicle"), "field 'vehicle' is missing", id="no-vehicle"),
        pytest.param(without_field("boot"), "field 'boot' is missing", id="no-boot"),
        pytest.param(without_field("batch"), "field 'batch' is missing", id="no-batch"),
        pytest.param(without_field("sent"), "field 'sent' is missing", id="no-sent"),
        pytest.param(without_field("history"), "field 'history' is missing", id="no-history"),
        pytest.param(
            without_field("readings"), "field 'readings' must be a non-empty list", id="no-readings"
        ),
        pytest.param(
            with_fields(readings=[]), "field 'readings' must be a non-empty list", id="empty"
        ),
        pytest.param(with_fields(vehicle=42), "field 'vehicle' is missing", id="vehicle-int"),
        pytest.param(with_fields(vehicle="-truck"), "invalid vehicle id '-truck'", id="bad-vid"),
        pytest.param(with_fields(vehicle="a" * 65), "invalid vehicle id", id="vid-too-long"),
        pytest.param(with_fields(boot=""), "'boot' and 'batch' must be 1-64", id="empty-boot"),
        pytest.param(with_fields(batch="x" * 65), "'boot' and 'batch' must be 1-64", id="long"),
        pytest.param(with_fields(sent=True), "field 'sent' is missing or has the wrong type"),
        pytest.param(with_fields(sent=1.0), "field 'sent'", id="sent-float"),
        pytest.param(with_fields(history=1), "field 'history' is missing or not a boolean"),
        pytest.param(with_fields(history="false"), "field 'history'", id="history-string"),
        pytest.param(with_fields(readings={"1": 1}), "field 'readings' must be a non-empty list"),
        pytest.param(
            with_fields(readings=[[1, T0, "power", 1]]),
            "reading 0 is not [seq, ts_ms, channel, value, clock_synced]",
            id="reading-4",
        ),
        pytest.param(
            with_fields(readings=[[1, T0, "power", 1, 1, "x"]]), "reading 0 is not", id="reading-6"
        ),
        pytest.param(with_fields(readings=[{"seq": 1}]), "reading 0 is not", id="reading-object"),
        pytest.param(
            with_reading(1, 0, True), "reading 1: seq must be an integer from 1 to 2^63-1"
        ),
        pytest.param(with_reading(0, 0, 0), "reading 0: seq must be an integer from 1", id="seq-0"),
        pytest.param(
            with_reading(0, 0, -3), "reading 0: seq must be an integer from 1", id="seq-neg"
        ),
        pytest.param(
            with_reading(0, 0, 1.0), "reading 0: seq must be an integer from 1", id="seq-1.0"
        ),
        pytest.param(
            with_reading(0, 0, "1"), "reading 0: seq must be an integer from 1", id="seq-str"
        ),
        pytest.param(with_reading(1, 0, 1), "reading 1: seq 1 appears twice in the batch"),
        pytest.param(with_reading(0, 1, False), "reading 0: ts_ms must be an integer from 0 to"),
        pytest.param(
            with_reading(0, 1, -1), "reading 0: ts_ms must be an integer from 0", id="ts-1"
        ),
        pytest.param(with_reading(0, 1, 1.5e12), "reading 0: ts_ms must be", id="ts-float"),
        pytest.param(with_reading(0, 2, "temp:c1"), "reading 0: unknown channel 'temp:c1'"),
        pytest.param(with_reading(0, 2, "humidity"), "unknown channel 'humidity'", id="chan"),
        pytest.param(with_reading(0, 2, 7), "reading 0: unknown channel 7", id="chan-int"),
        pytest.param(with_reading(0, 3, True), "reading 0: value must be a finite number"),
        pytest.param(with_reading(0, 3, None), "value must be a finite number", id="value-null"),
        pytest.param(with_reading(0, 3, "4.2"), "value must be a finite number", id="value-str"),
        pytest.param(with_raw_value(b"NaN"), "body is not valid JSON", id="value-nan"),
        pytest.param(with_raw_value(b"Infinity"), "body is not valid JSON", id="value-inf"),
        pytest.param(with_raw_value(b"-Infinity"), "body is not valid JSON", id="value-minf"),
        pytest.param(with_raw_value(b"1e400"), "body is not valid JSON", id="value-overflow"),
        pytest.param(with_reading(0, 4, True), "reading 0: clock_synced must be 0 or 1"),
        pytest.param(with_reading(0, 4, 1.0), "clock_synced must be 0 or 1", id="synced-1.0"),
        pytest.param(with_reading(0, 4, 2), "clock_synced must be 0 or 1", id="synced-2"),
        pytest.param(with_reading(0, 4, None), "clock_synced must be 0 or 1", id="synced-null"),
        pytest.param(_TOO_MANY, "batch has 10001 readings, at most 10000", id="too-many"),
    ],
)
def test_decode_batch_names_the_fault(body: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=re.escape(reason)) as caught:
        decode_batch(body)
    assert caught.value.reason == str(caught.value)


def test_decode_batch_accepts_exactly_the_maximum() -> None:
    readings = [[i, T0, "power", 1, 1] for i in range(1, MAX_BATCH_READINGS + 1)]
    batch = decode_batch(with_fields(readings=readings))
    assert len(batch.readings) == MAX_BATCH_READINGS


def test_decode_batch_does_not_require_sorted_or_contiguous_seqs() -> None:
    readings = [[9, T0, "power", 1, 1], [3, T0, "door:c1", 0, 0]]
    batch = decode_batch(with_fields(readings=readings))
    assert [r.seq for r in batch.readings] == [9, 3]


def test_other_message_types_are_refused_by_decode_batch() -> None:
    for body in (ack_body(), status_body(), encode_resend(ResendRequest(((1, 1),)))):
        with pytest.raises(ProtocolError, match="expected 'telemetry'"):
            decode_batch(body)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "body is not valid JSON"),
        (ack_body(v=2), "unsupported protocol version 2"),
        (ack_body(type="resend"), "message type 'resend', expected 'ack'"),
        (ack_body(batch=None), "field 'batch' is missing or has the wrong type"),
        (ack_body(duplicates=True), "field 'duplicates' must be a non-negative integer"),
        (ack_body(duplicates=1.5), "field 'duplicates' must be a non-negative integer"),
        (ack_body(rejected=1), "field 'rejected' must be a string or null"),
        (ack_body(ranges=None), "field 'ranges' must be a list of [first, last] pairs"),
        (ack_body(ranges=[[2, 1]]), "bad sequence range [2, 1]"),
        (ack_body(ranges=[[0, 1]]), "bad sequence range [0, 1]"),
        (ack_body(ranges=[[1]]), "bad sequence range [1]"),
        (ack_body(ranges=[[1, 2, 3]]), "bad sequence range [1, 2, 3]"),
        (ack_body(ranges=[[True, 2]]), "bad sequence range [True, 2]"),
        (ack_body(ranges=[[1, 2.0]]), "bad sequence range [1, 2.0]"),
        (ack_body(ranges=[5]), "bad sequence range 5"),
    ],
)
def test_decode_ack_names_the_fault(body: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=re.escape(reason)):
        decode_ack(body)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"v":1,"type":"resend"}', "field 'ranges' must be a list"),
        (b'{"v":1,"type":"resend","ranges":[[3,1]]}', "bad sequence range [3, 1]"),
        (b'{"v":1,"type":"ack","ranges":[]}', "message type 'ack', expected 'resend'"),
    ],
)
def test_decode_resend_names_the_fault(body: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=re.escape(reason)):
        decode_resend(body)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (status_body(state="sleeping"), "status state 'sleeping', expected 'online' or 'offline'"),
        (status_body(state=None), "field 'state' is missing or has the wrong type"),
        (status_body(boot=5), "field 'boot' is missing or has the wrong type"),
        (status_body(ts=None), "field 'ts' is missing or has the wrong type"),
        (status_body(ts=True), "field 'ts' is missing or has the wrong type"),
        (status_body(ts=1.5), "field 'ts' is missing or has the wrong type"),
        (status_body(oldest_unacked_ms="x"), "'oldest_unacked_ms' must be an integer or null"),
        (status_body(oldest_unacked_ms=True), "'oldest_unacked_ms' must be an integer or null"),
        (status_body(type="telemetry"), "message type 'telemetry', expected 'status'"),
    ],
)
def test_decode_status_names_the_fault(body: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=re.escape(reason)):
        decode_status(body)


# Regressions: each of these was a bug once (junk counters, seq beyond int8, "v": true,
# a trailing newline in a vehicle id, "power:").


@pytest.mark.parametrize("junk", ["abc", [1]])
def test_decode_status_refuses_junk_counters_with_a_protocol_error(junk: object) -> None:
    try:
        decode_status(status_body(outbox_depth=junk))
    except ProtocolError:
        return
    pytest.fail("decode_status accepted a non-integer outbox_depth")


def test_decode_batch_refuses_seq_beyond_signed_64_bits() -> None:
    with pytest.raises(ProtocolError, match="seq"):
        decode_batch(with_reading(0, 0, 2**63))


@pytest.mark.parametrize("version", [True, 1.0])
def test_version_must_be_the_integer_1(version: object) -> None:
    with pytest.raises(ProtocolError, match="unsupported protocol version"):
        decode_batch(with_fields(v=version))


def test_power_channel_with_empty_suffix_is_unknown() -> None:
    assert channel_kind("power:") is None


def test_vehicle_id_with_trailing_newline_is_refused() -> None:
    with pytest.raises(ProtocolError, match="invalid vehicle id"):
        check_vehicle_id("truck-042\n")


# -- (d) signatures --------------------------------------------------------------------------


def _payload() -> bytes:
    return sign_body(encode_batch_body(sample_batch()), KEY)


def test_signature_by_another_key_is_refused() -> None:
    payload = sign_body(encode_batch_body(sample_batch()), OTHER_KEY)
    with pytest.raises(SignatureError, match="does not verify against the vehicle's key"):
        verify_signed(payload, PUBLIC)


def test_tampered_body_is_refused() -> None:
    body, _, signature = _payload().rpartition(b"\n")
    tampered = body.replace(b'"history":false', b'"history":true')
    assert tampered != body
    with pytest.raises(SignatureError, match="does not verify"):
        verify_signed(tampered + b"\n" + signature, PUBLIC)


def test_signature_of_another_body_is_refused() -> None:
    other = sign_body(encode_batch_body(sample_batch(history=True)), KEY)
    body = _payload().rpartition(b"\n")[0]
    with pytest.raises(SignatureError, match="does not verify"):
        verify_signed(body + b"\n" + other.rpartition(b"\n")[2], PUBLIC)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        pytest.param(encode_batch_body(sample_batch()), "payload has no signature line", id="none"),
        pytest.param(b"", "payload has no signature line", id="empty"),
        pytest.param(
            encode_batch_body(sample_batch()) + b"\n!!not-base64!!",
            "signature is not valid base64",
            id="not-base64",
        ),
        pytest.param(
            encode_batch_body(sample_batch()) + b"\n" + base64.b64encode(b"abc"),
            "signature has 3 bytes, expected 64",
            id="short",
        ),
        pytest.param(
            sign_body(encode_batch_body(sample_batch()), KEY) + b"\n",
            "signature has 0 bytes, expected 64",
            id="trailing-newline",
        ),
        pytest.param(
            sign_body(encode_batch_body(sample_batch()), KEY) + b"\r",
            "signature is not valid base64",
            id="trailing-cr",
        ),
    ],
)
def test_malformed_signed_payload_is_refused(payload: bytes, reason: str) -> None:
    with pytest.raises(SignatureError, match=re.escape(reason)):
        verify_signed(payload, PUBLIC)


def test_signature_errors_are_protocol_errors() -> None:
    """The controller catches ProtocolError around verify_signed."""
    assert issubclass(SignatureError, ProtocolError)


def test_sign_body_refuses_a_body_with_a_newline() -> None:
    with pytest.raises(SignatureError, match="without newlines"):
        sign_body(b'{"v":1,\n"type":"telemetry"}', KEY)


def test_key_loading_refuses_garbage_and_other_algorithms() -> None:
    from cryptography.hazmat.primitives import serialization

    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_public_pem = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ec_private_pem = ec_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )

    with pytest.raises(SignatureError, match="cannot load public key"):
        load_public_key("not a key")
    with pytest.raises(SignatureError, match="not an Ed25519 key"):
        load_public_key(ec_public_pem)
    with pytest.raises(SignatureError, match="cannot load private key"):
        load_private_key(b"not a key")
    with pytest.raises(SignatureError, match="not an Ed25519 key"):
        load_private_key(ec_private_pem)


def test_pem_round_trip() -> None:
    assert public_key_pem(load_public_key(public_key_pem(KEY))) == public_key_pem(PUBLIC)
    assert public_key_pem(load_private_key(private_key_pem(KEY))) == public_key_pem(KEY)
    assert public_key_pem(KEY).startswith("-----BEGIN PUBLIC KEY-----\n")
    assert private_key_pem(KEY).startswith(b"-----BEGIN PRIVATE KEY-----\n")


# -- (e) topics ------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["coldchain", "cctest/0123456789ab", "a/b/c"])
@pytest.mark.parametrize("vehicle_id", ["truck-042", "T", "a.b_c-9", "x" * 64])
def test_topics_parse_their_own_topics(prefix: str, vehicle_id: str) -> None:
    topics = Topics(prefix)
    built = {
        "telemetry": topics.telemetry(vehicle_id),
        "status": topics.status(vehicle_id),
        "ack": topics.ack(vehicle_id),
        "resend": topics.resend(vehicle_id),
    }
    for kind, topic in built.items():
        assert topic == f"{prefix}/v1/{vehicle_id}/{kind}"
        assert topics.parse(topic) == (vehicle_id, kind)


def test_topic_filters() -> None:
    topics = Topics("coldchain")
    assert topics.all_telemetry() == "coldchain/v1/+/telemetry"
    assert topics.all_status() == "coldchain/v1/+/status"
    assert (
        topics.shared("coldchain-ingest", topics.all_telemetry())
        == "$share/coldchain-ingest/coldchain/v1/+/telemetry"
    )
    assert Topics().prefix == "coldchain"


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("other/v1/truck-042/telemetry", "is not under coldchain/v1/"),
        ("coldchainx/v1/truck-042/telemetry", "is not under coldchain/v1/"),
        ("coldchain/v2/truck-042/telemetry", "is not under coldchain/v1/"),
        ("coldchain/V1/truck-042/telemetry", "is not under coldchain/v1/"),
        ("coldchain/v1/truck-042", "is not under coldchain/v1/"),
        ("coldchain/v1/truck-042/telemetry/extra", "is not under coldchain/v1/"),
        ("coldchain/v1/fleet/truck-042/telemetry", "is not under coldchain/v1/"),
        ("/coldchain/v1/truck-042/telemetry", "is not under coldchain/v1/"),
        ("coldchain/v1/truck-042/telemetry/", "is not under coldchain/v1/"),
        ("$share/g/coldchain/v1/+/telemetry", "is not under coldchain/v1/"),
        ("", "is not under coldchain/v1/"),
        ("coldchain/v1/+/telemetry", "invalid vehicle id '+'"),
        ("coldchain/v1/#/telemetry", "invalid vehicle id '#'"),
        ("coldchain/v1//telemetry", "invalid vehicle id ''"),
        ("coldchain/v1/-truck/telemetry", "invalid vehicle id '-truck'"),
        ("coldchain/v1/truck 1/telemetry", "invalid vehicle id 'truck 1'"),
        (f"coldchain/v1/{'x' * 65}/telemetry", "invalid vehicle id"),
    ],
)
def test_topics_parse_refuses_foreign_topics(topic: str, reason: str) -> None:
    with pytest.raises(ProtocolError, match=re.escape(reason)):
        Topics("coldchain").parse(topic)


def test_topics_parse_refuses_other_prefixes() -> None:
    topic = Topics("cctest/aaaa").telemetry("truck-042")
    with pytest.raises(ProtocolError):
        Topics("cctest/bbbb").parse(topic)
    with pytest.raises(ProtocolError):
        Topics("cctest").parse(topic)


def test_topics_parse_leaves_the_kind_to_the_caller() -> None:
    """The service dead-letters unknown kinds itself ("unexpected topic kind")."""
    assert Topics().parse("coldchain/v1/truck-042/foo") == ("truck-042", "foo")


@pytest.mark.parametrize("vehicle_id", ["a", "A9", "truck-042", "t.1_x-y", "9" * 64])
def test_valid_vehicle_ids(vehicle_id: str) -> None:
    assert check_vehicle_id(vehicle_id) == vehicle_id


@pytest.mark.parametrize(
    "vehicle_id", ["", "-a", "_a", ".a", "a" * 65, "truck/1", "truck+", "tr\u00fcck", "a b", "a:b"]
)
def test_invalid_vehicle_ids(vehicle_id: str) -> None:
    with pytest.raises(ProtocolError, match="invalid vehicle id"):
        check_vehicle_id(vehicle_id)


# -- (f) channels ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "kind"),
    [
        ("temp:c1:p1", ChannelKind.TEMPERATURE),
        ("temp:front-1:probe_2", ChannelKind.TEMPERATURE),
        ("door:c1", ChannelKind.DOOR),
        ("power", ChannelKind.POWER),
        ("gps:lat", ChannelKind.GPS),
        ("gps:lon", ChannelKind.GPS),
        ("gps:speed", ChannelKind.GPS),
        ("temp", None),
        ("temp:", None),
        ("temp:c1", None),
        ("temp:c1:", None),
        ("temp::p1", None),
        ("door", None),
        ("door:", None),
        ("door:c1:x", None),
        ("power:c1", None),
        ("gps", None),
        ("gps:", None),
        ("gps:alt", None),
        ("gps:lat:x", None),
        ("TEMP:c1:p1", None),
        ("Power", None),
        ("humidity:c1", None),
        ("", None),
        (":", None),
    ],
)
def test_channel_kind(channel: str, kind: ChannelKind | None) -> None:
    assert channel_kind(channel) is kind


@pytest.mark.parametrize(
    ("channel", "value", "expected"),
    [
        ("temp:c1:p1", 4.0, True),
        ("temp:c1:p1", -90.0, True),
        ("temp:c1:p1", 90.0, True),
        ("temp:c1:p1", -90.01, False),
        ("temp:c1:p1", 90.01, False),
        ("temp:c1:p1", math.nan, False),
        ("temp:c1:p1", math.inf, False),
        ("temp:c1:p1", -math.inf, False),
        ("door:c1", 0.0, True),
        ("door:c1", 1.0, True),
        ("door:c1", -0.0, True),
        ("door:c1", 0.5, False),
        ("door:c1", 2.0, False),
        ("door:c1", -1.0, False),
        ("door:c1", math.nan, False),
        ("power", 0.0, True),
        ("power", 1.0, True),
        ("power", 0.999, False),
        ("gps:lat", -90.0, True),
        ("gps:lat", 90.0, True),
        ("gps:lat", 90.5, False),
        ("gps:lon", -180.0, True),
        ("gps:lon", 180.0, True),
        ("gps:lon", 100.0, True),
        ("gps:lon", -180.5, False),
        ("gps:speed", 0.0, True),
        ("gps:speed", 250.0, True),
        ("gps:speed", -0.1, False),
        ("gps:speed", 250.1, False),
        ("gps:speed", math.nan, False),
        ("gps:alt", 10.0, False),
        ("humidity:c1", 50.0, False),
        ("", 0.0, False),
    ],
)
def test_plausible(channel: str, value: float, expected: bool) -> None:
    assert plausible(channel, value) is expected


def test_every_well_formed_channel_has_a_plausible_range() -> None:
    for channel in ("temp:c1:p1", "door:c1", "power", "gps:lat", "gps:lon", "gps:speed"):
        assert channel_kind(channel) is not None
        assert plausible(channel, 0.0), channel


def test_channel_name_builders() -> None:
    assert temperature_channel("c1", "p1") == "temp:c1:p1"
    assert door_channel("c1") == "door:c1"
    assert channel_kind(temperature_channel("c1", "p1")) is ChannelKind.TEMPERATURE
    assert channel_kind(door_channel("c1")) is ChannelKind.DOOR


# -- (g) reconnect backoff -------------------------------------------------------------------


class _EdgeRandom(random.Random):
    """A Random whose uniform() always returns one end of the interval."""

    def __init__(self, *, upper: bool) -> None:
        super().__init__(0)
        self.upper = upper

    def uniform(self, a: float, b: float) -> float:
        return b if self.upper else a


def _take(n: int, delays: Any) -> list[float]:
    return [next(delays) for _ in range(n)]


def test_backoff_ceiling_doubles_up_to_the_maximum() -> None:
    delays = _take(8, jittered_backoff(min_s=0.5, max_s=10.0, rng=_EdgeRandom(upper=True)))
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_backoff_floor_is_half_the_minimum() -> None:
    delays = _take(8, jittered_backoff(min_s=0.5, max_s=10.0, rng=_EdgeRandom(upper=False)))
    assert delays == [0.25] * 8


@settings(max_examples=200, deadline=None)
@given(
    min_s=st.floats(min_value=0.001, max_value=100.0),
    factor=st.floats(min_value=1.0, max_value=1000.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_backoff_stays_within_bounds(min_s: float, factor: float, seed: int) -> None:
    max_s = min_s * factor
    delays = _take(40, jittered_backoff(min_s=min_s, max_s=max_s, rng=random.Random(seed)))
    ceiling = min_s
    for delay in delays:
        assert min_s / 2 <= delay <= ceiling * (1 + 1e-12)
        assert delay <= max_s * (1 + 1e-12)
        ceiling = min(max_s, ceiling * 2)


def test_backoff_grows_on_average() -> None:
    rng = random.Random(1234)
    runs = [_take(12, jittered_backoff(min_s=0.5, max_s=60.0, rng=rng)) for _ in range(500)]
    means = [sum(run[i] for run in runs) / len(runs) for i in range(12)]
    # Mean of uniform(min/2, ceiling) = (0.25 + ceiling) / 2 with ceiling 0.5, 1, 2, ... 60.
    for i in range(1, 8):
        assert means[i] > means[i - 1]
    assert means[-1] == pytest.approx((0.25 + 60.0) / 2, rel=0.1)
    assert all(0.25 <= d <= 60.0 for run in runs for d in run)


def test_backoff_uses_its_own_random_source_by_default() -> None:
    delays = _take(20, jittered_backoff(min_s=1.0, max_s=4.0))
    assert all(0.5 <= d <= 4.0 for d in delays)
    assert len(set(delays)) > 1
