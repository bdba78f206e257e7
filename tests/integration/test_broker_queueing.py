"""Mosquitto's default queue limit drops QoS 1 messages for a client that is behind; the
shipped broker configuration does not."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import PrivateBroker

DEPLOY_CONF = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "mosquitto.conf"
QUEUE_KEYS = ("max_queued_messages", "max_queued_bytes", "max_inflight_messages")
BURST = 3000


def shipped_queue_settings() -> str:
    """The queueing lines of deploy/mosquitto/mosquitto.conf, so the test follows the file."""
    lines = [
        line.strip()
        for line in DEPLOY_CONF.read_text().splitlines()
        if line.strip().split(" ")[0] in QUEUE_KEYS
    ]
    assert len(lines) == len(QUEUE_KEYS), lines
    return "\n".join(lines) + "\n"


def _client(client_id: str, port: int, received: list[bytes] | None = None) -> mqtt.Client:
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv311,
        clean_session=False,
    )
    lock = threading.Lock()
    if received is not None:

        def on_message(c: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
            with lock:
                received.append(message.payload)

        client.on_message = on_message
    client.connect("127.0.0.1", port)
    return client


def delivered_after_backlog(broker: PrivateBroker) -> int:
    """A persistent subscriber is away while BURST QoS 1 messages arrive; count what it gets."""
    topic = f"cctest/{uuid.uuid4().hex[:8]}/burst"
    subscriber_id = f"sub-{uuid.uuid4().hex[:8]}"
    sub = _client(subscriber_id, broker.port)
    sub.loop_start()
    sub.subscribe(topic, qos=1)[1]
    time.sleep(0.3)
    sub.loop_stop()
    sub.disconnect()
    pub = _client(f"pub-{uuid.uuid4().hex[:8]}", broker.port)
    pub.loop_start()
    infos = [pub.publish(topic, f"{i}".encode(), qos=1) for i in range(BURST)]
    for info in infos:
        info.wait_for_publish(10)
    pub.loop_stop()
    pub.disconnect()
    received: list[bytes] = []
    sub = _client(subscriber_id, broker.port, received)
    sub.loop_start()
    deadline = time.monotonic() + 15
    last, stable_since = -1, time.monotonic()
    while time.monotonic() < deadline and len(received) < BURST:
        if len(received) != last:
            last, stable_since = len(received), time.monotonic()
        elif time.monotonic() - stable_since > 2:
            break
        time.sleep(0.05)
    sub.loop_stop()
    sub.disconnect()
    return len(set(received))


def test_default_queue_limit_drops_and_shipped_config_keeps_everything(
    private_broker: Callable[..., PrivateBroker],
) -> None:
    default = delivered_after_backlog(private_broker())
    shipped = delivered_after_backlog(private_broker(shipped_queue_settings()))
    assert default < BURST, "Mosquitto's default (1000 queued) drops the rest of the burst"
    assert shipped == BURST, "the shipped configuration queues the whole burst"
