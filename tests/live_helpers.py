"""Helpers the live tests share: waiting for a condition, and an MQTT device."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import paho.mqtt.client as mqtt

from cim.live.broker import MqttAddress


def broker_of(base_url: str) -> MqttAddress:
    """The broker a `cim serve` at ``base_url`` uses."""
    return MqttAddress.parse(httpx.get(f"{base_url}/live/status").json()["mqtt"]["url"])


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
    """``predicate()``'s first true value, polled every 50 ms; AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


@contextmanager
def mqtt_device(server: str, client_id: str) -> Iterator[mqtt.Client]:
    """A paho client connected to the broker of the server at ``server``, its loop running."""
    broker = broker_of(server)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        yield client
    finally:
        client.loop_stop()
        client.disconnect()
