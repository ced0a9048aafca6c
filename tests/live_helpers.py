"""Helpers the live tests share: waiting for a condition, and MQTT devices.

The local broker admits no anonymous client, and a device may publish only to its own topic
(``cim/sensors/<its sensor id>/reading``), so a test publishes through real device users: one per
sensor it publishes for, made with :func:`cim.live.broker.add_device` (what `cim devices add` does)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt

from cim.live.broker import MqttAddress, add_device


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


def device_client(
    address: MqttAddress, data_dir: Path, sensor_id: str, client_id: str, *, clean_session: bool = True
) -> mqtt.Client:
    """A paho client for the device of ``sensor_id`` (given an MQTT user now, in the broker of
    ``data_dir``), connected, its loop running. It retries until the broker accepts it: mosquitto
    reloads its password file on the SIGHUP `add_device` sends, a moment later."""
    password = add_device(data_dir, sensor_id)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session)
    client.username_pw_set(sensor_id, password)
    client.reconnect_delay_set(0.05, 1)
    client.connect_async(address.host, address.port)
    client.loop_start()
    try:
        wait_for(client.is_connected, timeout=15)
    except AssertionError:
        client.loop_stop()
        raise AssertionError(f"the device {sensor_id!r} could not connect to {address.url}") from None
    return client


class Devices:
    """Devices of the broker of a server, one per sensor: ``publish(topic, ...)`` goes through the device
    of the topic's sensor (``cim/sensors/<sensor id>/reading``), made on first use."""

    def __init__(self, address: MqttAddress, data_dir: Path, client_id: str) -> None:
        self.address, self.data_dir, self.client_id = address, data_dir, client_id
        self._clients: dict[str, mqtt.Client] = {}
        self._lock = threading.Lock()

    def device(self, sensor_id: str) -> mqtt.Client:
        with self._lock:
            if sensor_id not in self._clients:
                self._clients[sensor_id] = device_client(
                    self.address, self.data_dir, sensor_id, f"{self.client_id}-{sensor_id}"[:200]
                )
            return self._clients[sensor_id]

    def publish(self, topic: str, payload: Any = None, qos: int = 0) -> mqtt.MQTTMessageInfo:
        parts = topic.split("/")
        assert len(parts) == 4 and parts[:2] == ["cim", "sensors"] and parts[3] == "reading", topic
        return self.device(parts[2]).publish(topic, payload, qos=qos)

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.loop_stop()
                client.disconnect()
            self._clients.clear()


@contextmanager
def mqtt_device(server: str, data_dir: Path, client_id: str) -> Iterator[Devices]:
    """Devices of the broker of the server at ``server`` (its data directory ``data_dir``)."""
    devices = Devices(broker_of(server), data_dir, client_id)
    try:
        yield devices
    finally:
        devices.close()
