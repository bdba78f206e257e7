"""The MQTT wire contract shared by the edge agent and the controller.

Topics, message schemas, signing and versioning live here and only here; `docs/protocol.md`
describes the same contract for implementers in other languages.
"""

from coldchain_protocol.channels import ChannelKind, channel_kind, plausible
from coldchain_protocol.errors import ProtocolError, SignatureError
from coldchain_protocol.messages import (
    PROTOCOL_VERSION,
    Ack,
    Reading,
    ResendRequest,
    Status,
    TelemetryBatch,
    decode_ack,
    decode_batch,
    decode_resend,
    decode_status,
    encode_ack,
    encode_batch_body,
    encode_resend,
    encode_status,
)
from coldchain_protocol.signing import (
    generate_private_key,
    load_private_key,
    load_public_key,
    private_key_pem,
    public_key_pem,
    sign_body,
    split_signed,
    verify_signed,
)
from coldchain_protocol.topics import Topics

__all__ = [
    "PROTOCOL_VERSION",
    "Ack",
    "ChannelKind",
    "ProtocolError",
    "Reading",
    "ResendRequest",
    "SignatureError",
    "Status",
    "TelemetryBatch",
    "Topics",
    "channel_kind",
    "decode_ack",
    "decode_batch",
    "decode_resend",
    "decode_status",
    "encode_ack",
    "encode_batch_body",
    "encode_resend",
    "encode_status",
    "generate_private_key",
    "load_private_key",
    "load_public_key",
    "plausible",
    "private_key_pem",
    "public_key_pem",
    "sign_body",
    "split_signed",
    "verify_signed",
]
