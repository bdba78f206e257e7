"""Broker addressing and reconnect backoff shared by the agent and the controller."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Host, port and credentials parsed from an mqtt:// URL."""

    host: str
    port: int
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """Parse ``mqtt://[user[:password]@]host[:port]``."""
        parts = urlsplit(url)
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 1883,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


def jittered_backoff(
    *, min_s: float, max_s: float, rng: random.Random | None = None
) -> Iterator[float]:
    """Yield reconnect delays: exponential growth capped at `max_s`, with full jitter.

    Full jitter spreads a fleet's reconnects after a broker restart instead of stampeding.
    """
    source = rng or random.Random()
    ceiling = min_s
    while True:
        yield source.uniform(min_s / 2, ceiling)
        ceiling = min(max_s, ceiling * 2)


def reraise_cancellation(errors: Sequence[BaseException]) -> None:
    """Re-raise a cancellation that a client library turned into another error.

    aiomqtt's ``__aexit__`` may raise MqttError while the task is being cancelled (the
    CancelledError is then in the error's context chain); a reconnect loop that catches it must
    not swallow the cancellation and loop forever. (``Task.cancelling()`` cannot be used: on
    Python 3.11 a failed TaskGroup leaves it raised.)
    """
    for error in errors:
        seen: BaseException | None = error
        while seen is not None:
            if isinstance(seen, asyncio.CancelledError):
                raise asyncio.CancelledError from error
            seen = seen.__context__


MqttProtocol = Literal["5", "3.1.1"]


def client_session_options(protocol: MqttProtocol) -> dict[str, Any]:
    """aiomqtt.Client keyword arguments for a fresh session in the given protocol version.

    MQTT 5 is the default; 3.1.1 exists for brokers such as the embedded demo broker (amqtt).
    paho refuses ``clean_start`` with 3.1.1, where ``clean_session`` plays that role.
    """
    import aiomqtt

    if protocol == "5":
        return {"protocol": aiomqtt.ProtocolVersion.V5, "clean_start": True}
    return {"protocol": aiomqtt.ProtocolVersion.V311, "clean_session": True}


def clear_retained(url: str, prefix: str, *, settle_s: float = 0.5) -> int:
    """Delete every retained message under `prefix` (e.g. a decommissioned vehicle's status).

    Returns how many were deleted. Blocking; for tools, tests and benchmarks.
    """
    import time
    import uuid

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    address = BrokerAddress.parse(url)
    found: set[str] = set()
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"cleanup-{uuid.uuid4().hex[:8]}",
    )
    if address.username:
        client.username_pw_set(address.username, address.password)

    def on_message(c: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if message.retain and message.payload:
            found.add(message.topic)

    client.on_message = on_message
    client.connect(address.host, address.port)
    client.loop_start()
    try:
        client.subscribe(f"{prefix}/#", qos=1)
        seen = -1
        while seen != len(found):  # retained messages arrive right after the subscription
            seen = len(found)
            time.sleep(settle_s)
        for topic in sorted(found):
            client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()
    return len(found)
