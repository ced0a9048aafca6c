"""The MQTT broker: ``CIM_MQTT_URL``, or a local Debian ``mosquitto`` bound to
127.0.0.1 that ``cim serve`` starts under the data directory.

The local broker keeps its state on disk (``persistence true``): the hub's
session and the QoS 1 readings queued for it survive a restart of the broker
and of the server.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from cim.errors import ConfigError
from cim.net import free_port


@dataclass(frozen=True)
class MqttAddress:
    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> MqttAddress:
        parsed = urlparse(url)
        if parsed.scheme not in ("mqtt", "tcp") or not parsed.hostname:
            raise ConfigError(f"CIM_MQTT_URL={url!r} is not an mqtt://host:port URL")
        return cls(parsed.hostname, parsed.port or 1883)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


class LocalBroker:
    """A mosquitto process for this data directory."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.home = data_dir / "mqtt"
        self.port = port
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> MqttAddress:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise ConfigError("mosquitto is not installed", hint="run scripts/bootstrap.sh, or set CIM_MQTT_URL")
        self.home.mkdir(parents=True, exist_ok=True)
        port_file = self.home / "port"
        if self.port is None:  # the same port as last time, so publishers configured with it find it again
            self.port = int(port_file.read_text()) if port_file.is_file() else free_port()
        conf = self.home / "mosquitto.conf"
        # max_inflight_messages: the hub acknowledges a batch of readings after it is stored, so mosquitto's
        # default of 20 unacknowledged messages a client would cap ingest at a few hundred readings a second;
        # 20,000 (a few seconds of a district's readings) bounds what the hub holds unstored, and stays well
        # inside MQTT's 65,535 packet ids, which must stay unique while unacknowledged;
        # max_queued_messages: readings kept for the hub while it is away (about 4 minutes of a district's sensors)
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {self.home}/\nautosave_interval 5\nmax_inflight_messages 20000\n"
            f"max_queued_messages 1000000\nlog_dest file {self.home}/mosquitto.log\nuser root\n"
        )
        port_file.write_text(str(self.port))
        with open(self.home / "stdout.log", "ab") as log:  # the broker keeps its own copy of the file
            self.proc = subprocess.Popen(
                [binary, "-c", str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = (self.home / "mosquitto.log").read_text(errors="replace").strip().splitlines()[-1:]
                raise ConfigError(f"mosquitto exited at start ({tail})", hint=f"see {self.home}/mosquitto.log")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return MqttAddress("127.0.0.1", self.port)
            except OSError:
                time.sleep(0.05)
        raise ConfigError(f"mosquitto did not listen on 127.0.0.1:{self.port} within {timeout:.0f} s")

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # mosquitto saves its state on the way out
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None
