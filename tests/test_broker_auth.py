"""Who may do what on the local MQTT broker: nobody anonymously, a device only
its own sensor's readings, nobody as the hub without its password; and the
URLs of an external broker (credentials, TLS)."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import socket
import ssl
import struct
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import paho.mqtt.client as mqtt
import pytest

from cim.config import Settings
from cim.errors import ConfigError
from cim.live.broker import HUB_USER, LocalBroker, MqttAddress, add_device, hub_identity
from cim.live.hub import TOPIC
from cim.live.mqtt import Subscription, remaining_length
from cim.net import free_port
from tests.conftest import CIM
from tests.live_helpers import broker_of, device_client, wait_for

UTC = dt.UTC


def _string(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">H", len(b)) + b


def _publish_packet(topic: str, payload: bytes, packet_id: int = 1) -> bytes:
    body = _string(topic) + struct.pack(">H", packet_id) + payload
    return b"\x32" + remaining_length(len(body)) + body


def _connack(
    address: MqttAddress,
    client_id: str,
    *,
    username: str | None = None,
    password: str | None = None,
    then: bytes = b"",
) -> int:
    """The CONNACK return code the broker answers a raw MQTT 3.1.1 CONNECT with (``then`` is sent in the
    same write, before the answer: a PUBLISH that must not get through)."""
    flags, payload = 0x02, _string(client_id)  # clean session
    if username is not None:
        flags, payload = flags | 0x80, payload + _string(username)
    if password is not None:
        flags, payload = flags | 0x40, payload + _string(password)
    body = _string("MQTT") + bytes([4, flags]) + struct.pack(">H", 30) + payload
    with socket.create_connection((address.host, address.port), timeout=5) as sock:
        sock.sendall(b"\x10" + remaining_length(len(body)) + body + then)
        head = b""
        while len(head) < 4:
            chunk = sock.recv(4 - len(head))
            assert chunk, "the broker closed the connection without a CONNACK"
            head += chunk
    assert head[:2] == b"\x20\x02", head
    return head[3]


def _reading(ts: dt.datetime) -> bytes:
    return json.dumps({"ts": ts.isoformat().replace("+00:00", "Z"), "value": 1.5, "status": "normal"}).encode()


def _stored(conn, sensor: str, ts: dt.datetime) -> int:
    return conn.execute("SELECT count(*) FROM live.readings WHERE sensor_id = %s AND ts = %s", (sensor, ts)).fetchone()[
        0
    ]


def _moment() -> dt.datetime:
    """A time no other test uses: a few seconds ago, at a random microsecond."""
    return dt.datetime.now(UTC).replace(microsecond=random.randrange(1_000_000)) - dt.timedelta(seconds=5)


@pytest.fixture
def two_sensors(conn, server) -> tuple[str, str]:
    rows = conn.execute(
        "SELECT id FROM live.sensor_registry WHERE category = 'smoke_detector' ORDER BY id DESC OFFSET 20 LIMIT 2"
    ).fetchall()
    return rows[0][0], rows[1][0]


# --- the local broker of `cim serve` ------------------------------------------------------------------


def test_an_anonymous_client_is_refused_and_what_it_publishes_is_not_stored(settings, server, http, conn, two_sensors):
    sensor, _ = two_sensors
    address = broker_of(server)
    sneaked, legit = _moment(), _moment() + dt.timedelta(milliseconds=1)
    topic = f"cim/sensors/{sensor}/reading"
    assert _connack(address, "test-anonymous", then=_publish_packet(topic, _reading(sneaked))) == 5  # not authorised
    device = device_client(address, settings.data_dir, sensor, "test-auth-legit")
    try:
        device.publish(topic, _reading(legit), qos=1).wait_for_publish(10)
        wait_for(lambda: _stored(conn, sensor, legit) == 1)
    finally:
        device.loop_stop()
        device.disconnect()
    assert _stored(conn, sensor, sneaked) == 0


def test_a_device_publishes_its_own_readings_only(settings, server, conn, two_sensors):
    """mosquitto drops an MQTT 3.1.1 PUBLISH the ACL refuses without a word (the PUBACK still comes):
    what is checked is that it never reaches the hub, while the device's own reading does."""
    mine, theirs = two_sensors
    foreign, own = _moment(), _moment() + dt.timedelta(milliseconds=1)
    device = device_client(broker_of(server), settings.data_dir, mine, "test-auth-device")
    try:
        device.publish(f"cim/sensors/{theirs}/reading", _reading(foreign), qos=1).wait_for_publish(10)
        device.publish(f"cim/sensors/{mine}/reading", _reading(own), qos=1).wait_for_publish(10)
        wait_for(lambda: _stored(conn, mine, own) == 1)  # the same connection: the foreign one came before
        time.sleep(0.3)
    finally:
        device.loop_stop()
        device.disconnect()
    assert _stored(conn, theirs, foreign) == 0 and _stored(conn, mine, foreign) == 0


def test_nobody_connects_as_the_hub_without_its_password(settings, server, http):
    address = broker_of(server)
    hub = hub_identity(settings.data_dir)
    assert hub.username == HUB_USER and len(hub.client_id) > 30  # random, not derived from the data directory
    assert (settings.data_dir / "mqtt" / "hub.json").stat().st_mode & 0o777 == 0o600
    assert _connack(address, "test-not-the-hub", username=HUB_USER) in (4, 5)
    assert _connack(address, "test-not-the-hub", username=HUB_USER, password="guess") in (4, 5)
    assert _connack(address, hub.client_id, username=HUB_USER, password="guess") in (4, 5)  # no takeover
    status = http.get("/live/status").json()["mqtt"]
    assert status["connected"] and status["refused"] is None
    assert "@" not in status["url"]  # the status shows no credentials

    sub = Subscription(address.host, address.port, "test-wrong-hub", TOPIC, username=HUB_USER, password="guess")
    try:
        assert sub.read(0.2) == [] and not sub.connected
        assert sub.refused and ("bad user name or password" in sub.refused or "not authorised" in sub.refused)
        assert "CONNACK code" in sub.refused and HUB_USER in sub.refused
    finally:
        sub.close()


# --- `cim devices` ------------------------------------------------------------------------------------


def test_cim_devices_add_list_remove_and_the_running_broker_reloads(tmp_path):
    env = dict(os.environ, CIM_DATA_DIR=str(tmp_path), COLUMNS="200", NO_COLOR="1")
    env.pop("CIM_MQTT_URL", None)

    def cim(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([CIM, "devices", *args], env=env, capture_output=True, text=True, timeout=60)

    broker = LocalBroker(tmp_path)
    address = broker.start()
    try:
        added = cim("add", "S-42")
        assert added.returncode == 0, added.stderr
        password = added.stdout.strip().splitlines()[-1]
        assert len(password) >= 24 and password not in (tmp_path / "mqtt" / "passwd").read_text()  # hashed
        assert cim("list").stdout.split() == ["S-42"]  # the hub's own user is not a device
        assert wait_for(lambda: _connack(address, "test-s42", username="S-42", password=password) == 0)
        assert _connack(address, "test-s42", username="S-42", password="wrong") in (4, 5)
        assert cim("add", "a/b").returncode != 0 and cim("add", HUB_USER).returncode != 0
        assert cim("remove", "S-42").returncode == 0 and cim("remove", "S-42").returncode == 1
        assert wait_for(lambda: _connack(address, "test-s42", username="S-42", password=password) in (4, 5))
        assert "no devices" in cim("list").stdout
    finally:
        broker.stop()
    assert cim("add", "S-43").returncode == 0  # no broker running: it reads the file at its next start


def test_a_restarted_local_broker_keeps_the_hub_identity(tmp_path):
    broker = LocalBroker(tmp_path)
    first = broker.start()
    broker.stop()
    second = broker.start()
    try:
        assert (
            (first.username, first.password)
            == (second.username, second.password)
            == (
                HUB_USER,
                hub_identity(tmp_path).password,
            )
        )
        assert _connack(second, hub_identity(tmp_path).client_id, username=HUB_USER, password=second.password) == 0
    finally:
        broker.stop()


# --- an external broker ---------------------------------------------------------------------------------


def test_mqtt_urls_keep_credentials_and_tls():
    a = MqttAddress.parse("mqtts://hub:s%40cret%3A1@broker.example.org")
    assert (a.host, a.port, a.username, a.password, a.tls) == ("broker.example.org", 8883, "hub", "s@cret:1", True)
    assert a.url == "mqtts://broker.example.org:8883" and "cret" not in repr(a)
    b = MqttAddress.parse("mqtt://hub:pw@10.0.0.5:1884")
    assert (b.host, b.port, b.username, b.password, b.tls) == ("10.0.0.5", 1884, "hub", "pw", False)
    c = MqttAddress.parse("mqtt://localhost")
    assert (c.port, c.username, c.password, c.tls) == (1883, None, None, False)
    assert MqttAddress.parse("mqtts://h:9999").port == 9999
    with pytest.raises(ConfigError) as info:
        MqttAddress.parse("http://hub:topsecret@h")
    assert "topsecret" not in str(info.value)
    assert Settings(mqtt_url="mqtts://u:p@h:8883").mqtt_url == "mqtts://u:p@h:8883"
    with pytest.raises(ValueError):
        Settings(mqtt_url="https://h")


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def _tls_files(tmp: Path) -> tuple[Path, Path, Path]:
    """A private CA and a certificate of 127.0.0.1 / localhost it signed (openssl)."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
    )
    (tmp / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"
    )
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "san.ext",
    )  # fmt: skip
    return tmp / "ca.crt", tmp / "server.crt", tmp / "server.key"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_the_hub_session_over_tls_with_credentials(tmp_path):
    """What the hub does with ``mqtts://user:password@host`` and CIM_MQTT_CA_FILE: a mosquitto with a TLS
    listener (the local broker's password and ACL files), the hub's Subscription over TLS."""
    broker = LocalBroker(tmp_path)
    broker.start()  # the password file with the hub's user, and the ACL
    broker.stop()
    home = tmp_path / "mqtt"
    ca, cert, key = _tls_files(tmp_path)
    port = free_port()
    (home / "tls.conf").write_text(
        f"listener {port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\nallow_anonymous false\n"
        f"password_file {home}/passwd\nacl_file {home}/acl\nlog_dest file {home}/tls.log\nuser root\n"
    )
    password = add_device(tmp_path, "S-7")  # before this broker starts: it is not the one `add_device` reloads
    proc = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(home / "tls.conf")])
    hub = hub_identity(tmp_path)
    address = MqttAddress.parse(f"mqtts://{HUB_USER}:{quote(hub.password, safe='')}@localhost:{port}")
    device = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-tls-device")
    device.username_pw_set("S-7", password)
    device.tls_set(ca_certs=str(ca))
    sub = Subscription(
        address.host,
        address.port,
        hub.client_id,
        TOPIC,
        min_delay=0.05,
        username=address.username,
        password=address.password,
        tls=ssl.create_default_context(cafile=str(ca)),
    )
    try:
        wait_for(lambda: _listening(port))
        wait_for(lambda: sub.read(0.1) == [] and sub.subscribed)
        device.connect(address.host, address.port)
        device.loop_start()
        payloads = [b"%d:" % i + b"x" * (i * 97 % 30_000) for i in range(300)]
        for p in payloads:
            device.publish("cim/sensors/S-7/reading", p, qos=1)
        got: list = []
        deadline = time.monotonic() + 20
        while len(got) < 300 and time.monotonic() < deadline:  # acknowledged as they come (20 in flight)
            batch = sub.read(0.1)
            got += batch
            if batch:
                assert sub.ack(sub.connection, [m.packet_id for m in batch])
        assert [m.payload for m in got] == payloads
        assert sub.read(0.3) == []

        plain = Subscription(address.host, address.port, "test-tls-plain", TOPIC, username=HUB_USER, password="x")
        assert plain.read(0.5) == [] and not plain.connected  # a plain-text client gets no CONNACK from TLS
        plain.close()
        untrusted = Subscription(
            address.host,
            address.port,
            "test-tls-untrusted",
            TOPIC,
            username=address.username,
            password=address.password,
            tls=ssl.create_default_context(),  # the system's CAs do not know the private CA
        )
        assert untrusted.read(0.5) == [] and not untrusted.connected
        assert untrusted.refused and "CERTIFICATE_VERIFY_FAILED" in untrusted.refused
        untrusted.close()
    finally:
        sub.close()
        device.loop_stop()
        device.disconnect()
        proc.terminate()
        proc.wait(timeout=10)
