"""The MQTT broker: ``CIM_MQTT_URL``, or a local Debian ``mosquitto`` bound to
127.0.0.1 that ``cim serve`` starts under the data directory.

The local broker keeps its state on disk (``persistence true``): the hub's
session and the QoS 1 readings queued for it survive a restart of the broker
and of the server.

Nobody connects to it anonymously (``allow_anonymous false``). Its password
file (``mqtt/passwd``, made with Debian's ``mosquitto_passwd``) holds the hub's
user and one user per device, named by its sensor id (``cim devices add``);
its ACL (``mqtt/acl``, written at each start) lets the hub read
``cim/sensors/+/reading`` and each device write only its own
``cim/sensors/<its user name>/reading``. The hub's password and client id are
random, made once and kept in ``mqtt/hub.json`` (mode 0600): its persistent
session resumes after a restart, and nobody can guess it to take it over.
Extra ACL lines an operator needs (a gateway publishing for many sensors) go
in ``mqtt/acl.local``, appended as they are.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from cim.errors import ConfigError, InputError
from cim.net import free_port

HUB_USER = "cim-hub"
#: what a device's user name (its sensor id) may not hold: MQTT topic wildcards and separators, the
#: password file's separator, spaces and control characters
_BAD_NAME = re.compile(r"[/+#:\s\x00-\x1f\x7f]")


@dataclass(frozen=True)
class MqttAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> MqttAddress:
        """``mqtt://[user:password@]host[:1883]`` or ``mqtts://[user:password@]host[:8883]`` (TLS);
        user and password percent-encoded."""
        parsed = urlparse(url)
        if parsed.scheme not in ("mqtt", "tcp", "mqtts", "ssl") or not parsed.hostname:
            raise ConfigError(f"CIM_MQTT_URL={_shown(url)!r} is not an mqtt:// or mqtts://host:port URL")
        tls = parsed.scheme in ("mqtts", "ssl")
        try:
            port = parsed.port or (8883 if tls else 1883)
        except ValueError:
            raise ConfigError(f"CIM_MQTT_URL={_shown(url)!r} has a bad port") from None
        username = unquote(parsed.username) if parsed.username is not None else None
        password = unquote(parsed.password) if parsed.password is not None else None
        return cls(parsed.hostname, port, username, password, tls)

    @property
    def url(self) -> str:
        """The broker's URL, without the credentials (safe to show)."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def _shown(url: str) -> str:
    """``url`` with its password hidden."""
    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


# --- the hub's identity -----------------------------------------------------------------------------


@dataclass(frozen=True)
class HubIdentity:
    username: str
    password: str = field(repr=False)
    client_id: str = field(repr=False)


def hub_identity(data_dir: Path) -> HubIdentity:
    """The hub's user, password and MQTT client id: random, made once, kept in ``mqtt/hub.json`` (0600)."""
    path = data_dir / "mqtt" / "hub.json"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        made = {
            "username": HUB_USER,
            "password": secrets.token_urlsafe(32),
            "client_id": "cim-hub-" + secrets.token_hex(16),
        }
        with contextlib.suppress(FileExistsError):  # another process made it first: theirs is kept
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(made, f)
    kept = json.loads(path.read_text())
    return HubIdentity(kept["username"], kept["password"], kept["client_id"])


# --- the password file ------------------------------------------------------------------------------


def _mosquitto_passwd() -> str:
    binary = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not Path(binary).exists():
        raise ConfigError("mosquitto_passwd is not installed", hint="install Debian's mosquitto package")
    return binary


def _passwd_lines(home: Path) -> list[str]:
    path = home / "passwd"
    return [line for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def _write_passwd(home: Path, lines: list[str]) -> None:
    """Replace the password file at once (0600)."""
    home.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=home, prefix=".passwd-")  # mode 0600
    with os.fdopen(fd, "w") as f:
        f.write("".join(line + "\n" for line in lines))
    os.replace(tmp, home / "passwd")


def _set_password(home: Path, user: str, password: str) -> None:
    """Add or replace ``user`` in the password file, hashed by ``mosquitto_passwd -U`` (the password is
    written to a private file for it, never put on a command line)."""
    home.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=home, prefix=".plain-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(f"{user}:{password}\n")
        done = subprocess.run([_mosquitto_passwd(), "-U", tmp], capture_output=True, text=True)
        if done.returncode != 0:
            raise ConfigError(f"mosquitto_passwd failed: {(done.stderr or done.stdout).strip()}")
        hashed = Path(tmp).read_text().strip()
    finally:
        Path(tmp).unlink(missing_ok=True)
    others = [line for line in _passwd_lines(home) if line.split(":", 1)[0] != user]
    _write_passwd(home, [*others, hashed])


def _check_device(sensor_id: str) -> None:
    if not sensor_id or _BAD_NAME.search(sensor_id):
        raise InputError(
            f"device {sensor_id!r}", "cannot be an MQTT user (no '/', '+', '#', ':', spaces or control characters)"
        )
    if sensor_id == HUB_USER:
        raise InputError(f"device {sensor_id!r}", "is the hub's own MQTT user")


def add_device(data_dir: Path, sensor_id: str) -> str:
    """Give the device of ``sensor_id`` an MQTT user (its sensor id) and a new random password, returned
    (a device added again gets a new one); a running local broker reloads the password file."""
    _check_device(sensor_id)
    home = data_dir / "mqtt"
    password = secrets.token_urlsafe(24)
    _set_password(home, sensor_id, password)
    reload(data_dir)
    return password


def remove_device(data_dir: Path, sensor_id: str) -> bool:
    """Remove the device's user (False if it had none); a running local broker reloads the file (the
    device's open connection stays until it ends: mosquitto checks passwords at CONNECT)."""
    _check_device(sensor_id)
    home = data_dir / "mqtt"
    lines = _passwd_lines(home)
    kept = [line for line in lines if line.split(":", 1)[0] != sensor_id]
    if len(kept) == len(lines):
        return False
    _write_passwd(home, kept)
    reload(data_dir)
    return True


def devices(data_dir: Path) -> list[str]:
    """The devices' users (sensor ids), sorted."""
    return sorted(n for line in _passwd_lines(data_dir / "mqtt") if (n := line.split(":", 1)[0]) != HUB_USER)


def reload(data_dir: Path) -> bool:
    """SIGHUP the local broker whose pid the data directory records, if it is running (it reloads its
    password and ACL files); False if none is: it reads them at its next start."""
    home = data_dir / "mqtt"
    try:
        pid = int((home / "mosquitto.pid").read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return False
    if str(home / "mosquitto.conf").encode() not in cmdline:  # the pid was reused by another process
        return False
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        return False
    return True


# --- the broker -------------------------------------------------------------------------------------


class LocalBroker:
    """A mosquitto process for this data directory."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.home = data_dir / "mqtt"
        self.port = port
        self.proc: subprocess.Popen | None = None

    def _write_access(self, hub: HubIdentity) -> None:
        """The hub's entry in the password file, and the ACL (written at each start)."""
        _set_password(self.home, hub.username, hub.password)  # (again: hub.json is what counts)
        extra = self.home / "acl.local"
        (self.home / "acl").write_text(
            "# written by cim at each start of the broker; extra lines go in acl.local\n"
            "# a device (its user name is its sensor id) publishes its own readings only\n"
            "pattern write cim/sensors/%u/reading\n\n"
            f"user {hub.username}\ntopic read cim/sensors/+/reading\n"
            + (f"\n# acl.local\n{extra.read_text()}\n" if extra.is_file() else "")
        )

    def start(self, timeout: float = 10.0) -> MqttAddress:
        """Start mosquitto; the address it returns carries the hub's credentials."""
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise ConfigError("mosquitto is not installed", hint="run scripts/bootstrap.sh, or set CIM_MQTT_URL")
        self.home.mkdir(parents=True, exist_ok=True)
        hub = hub_identity(self.data_dir)
        self._write_access(hub)
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
            f"listener {self.port} 127.0.0.1\nallow_anonymous false\n"
            f"password_file {self.home}/passwd\nacl_file {self.home}/acl\npersistence true\n"
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
        (self.home / "mosquitto.pid").write_text(str(self.proc.pid))  # for `cim devices` to make it reload
        address = MqttAddress("127.0.0.1", self.port, hub.username, hub.password)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = (self.home / "mosquitto.log").read_text(errors="replace").strip().splitlines()[-1:]
                raise ConfigError(f"mosquitto exited at start ({tail})", hint=f"see {self.home}/mosquitto.log")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return address
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
