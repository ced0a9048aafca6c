"""The hub's MQTT session: one persistent MQTT 3.1.1 subscription, read in
batches, acknowledged in batches.

Written on a bare socket rather than through paho-mqtt, for speed: paho reads
each message through several Python layers into an object and a callback,
and acknowledges each with its own locked write. At 5,000 readings a second
that was a third of the hub's core (py-spy), the largest single cost. Here a
``read`` parses every whole packet that has arrived in one pass, and
``ack`` queues the PUBACKs of a stored batch, which the reader sends in one
write. Only what the hub
needs is spoken: CONNECT (clean session off, so the broker queues QoS 1
messages while the hub is away; user name and password when given), SUBSCRIBE at QoS 1, PUBLISH in (QoS 0 and
1), PUBACK, PINGREQ and DISCONNECT. paho-mqtt is still what publishes (tests,
tools).

A connection lost is reconnected by ``read`` with backoff, and the
subscription renewed. Packet ids are only valid on the connection that
delivered them, so every message carries its connection's number and
``ack`` ignores the ids of an earlier connection: the broker redelivers those
messages (with DUP set), and a reading stored twice is stored once.
"""

from __future__ import annotations

import logging
import select
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass

log = logging.getLogger("cim.live")

_CONNACK, _PUBLISH, _SUBACK, _PINGRESP = 2, 3, 9, 13
_CONNACK_REASONS = {
    1: "unacceptable protocol version",
    2: "client id rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}
_PINGREQ, _DISCONNECT = b"\xc0\x00", b"\xe0\x00"


def remaining_length(n: int) -> bytes:
    """MQTT's variable-length "remaining length" (7 bits a byte)."""
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (128 if n else 0))
        if not n:
            return bytes(out)


def _string(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">H", len(b)) + b


@dataclass(slots=True)
class Message:
    topic: str
    payload: bytes
    packet_id: int  # 0 for QoS 0: nothing to acknowledge
    connection: int  # the connection that delivered it: its packet id means nothing on another


class Refused(ConnectionError):
    """The broker answered CONNECT with a refusal (not worth retrying quickly)."""


#: what a non-blocking socket (plain or TLS) raises when it has nothing to give or no room to take now
_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class Subscription:
    """A persistent session (fixed ``client_id``) subscribed to ``topic`` at QoS 1.

    One thread calls ``read`` and does all the socket's input and output; ``ack`` may be called from
    another thread: it queues the PUBACKs and wakes the reader. (A writer thread blocked sending
    PUBACKs to a broker that is itself blocked sending to a reader waiting for that writer would be a
    deadlock: it happened under load, so only the reader touches the socket.)"""

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        topic: str,
        *,
        keepalive: int = 30,
        min_delay: float = 0.2,
        max_delay: float = 5.0,
        username: str | None = None,
        password: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.host, self.port, self.client_id, self.topic = host, port, client_id, topic
        self.username, self._password, self._tls = username, password, tls
        self.refused: str | None = None  # why the broker refused the last CONNECT, until one is accepted
        self.keepalive, self.min_delay, self.max_delay = keepalive, min_delay, max_delay
        self.connected = False
        self.subscribed = False  # the broker confirmed the subscription on this connection
        self.connection = 0
        self._sock: socket.socket | None = None
        self._buffer = bytearray()  # received, not yet parsed
        self._out = bytearray()  # to send on the current connection
        self._out_lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._last_sent = self._last_heard = 0.0
        self._retry_at, self._delay = 0.0, min_delay
        self._closed = False

    # --- connecting ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{'mqtts' if self._tls else 'mqtt'}://{self.host}:{self.port}"

    def _connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=10)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self.host)
            flags, payload = 0, _string(self.client_id)  # clean session off
            if self.username is not None:
                flags, payload = flags | 0x80, payload + _string(self.username)
                if self._password is not None:
                    flags, payload = flags | 0x40, payload + _string(self._password)
            body = (
                _string("MQTT")
                + bytes([4, flags])  # protocol level 4 (3.1.1)
                + struct.pack(">H", self.keepalive)
                + payload
            )
            sock.sendall(b"\x10" + remaining_length(len(body)) + body)
            head = b""
            while len(head) < 4:  # CONNACK is the first packet the broker sends: 0x20 0x02 flags code
                chunk = sock.recv(4 - len(head))
                if not chunk:
                    raise ConnectionError("the broker closed the connection before CONNACK")
                head += chunk
            if head[0] >> 4 != _CONNACK:
                raise ConnectionError(f"the broker answered CONNECT with packet type {head[0] >> 4}")
            if head[3]:
                hint = (
                    f" (user {self.username!r}: check the credentials in CIM_MQTT_URL, or the local broker's "
                    "mqtt/hub.json and mqtt/passwd)"
                    if head[3] in (4, 5)
                    else ""
                )
                raise Refused(
                    f"the broker at {self.url} refused the hub: {_CONNACK_REASONS.get(head[3], head[3])} "
                    f"(CONNACK code {head[3]}){hint}"
                )
            topic = _string(self.topic)
            sock.sendall(b"\x82" + remaining_length(2 + len(topic) + 1) + b"\x00\x01" + topic + b"\x01")
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        with self._out_lock:
            self._sock, self._buffer, self._out = sock, bytearray(), bytearray()
            self.connection += 1
            self.connected = True
            self._last_sent = self._last_heard = time.monotonic()
        self._delay, self.refused = self.min_delay, None
        log.info("MQTT connected to %s as %s, subscribed to %s", self.url, self.username or "anonymous", self.topic)

    def _lost(self, why: str) -> None:
        with self._out_lock:
            sock, self._sock, self.connected, self.subscribed = self._sock, None, False, False
            self._out = bytearray()  # PUBACKs for a connection that is gone: the broker redelivers
        if sock is not None:
            sock.close()
            if not self._closed:
                log.warning("MQTT connection to %s lost (%s); reconnecting", self.url, why)
        self._retry_at = time.monotonic() + self._delay
        self._delay = min(self._delay * 2, self.max_delay)

    # --- the socket's input and output ----------------------------------------------------------------

    def read(self, timeout: float = 0.2) -> list[Message]:
        """The messages that arrived (waiting up to ``timeout`` for the first), sending what is
        queued meanwhile; connects or reconnects first when needed. Never raises for a lost
        connection: it is retried."""
        if self._closed:
            return []
        if self._sock is None:
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                time.sleep(min(wait, timeout))
                return []
            try:
                self._connect()
            except Refused as exc:
                if str(exc) != self.refused:  # said once, not every retry
                    log.error("%s; trying again every %.0f s", exc, self.max_delay)
                self.refused = str(exc)
                self._retry_at, self._delay = time.monotonic() + self.max_delay, self.max_delay
                return []
            except ssl.SSLError as exc:  # a certificate not trusted, or TLS against a plain listener: said once
                if f"TLS: {exc}" != self.refused:
                    log.error("MQTT over TLS to %s failed: %s (CIM_MQTT_CA_FILE for a private CA)", self.url, exc)
                self.refused = f"TLS: {exc}"
                self._lost(f"connecting: {exc}")
                return []
            except OSError as exc:
                self._lost(f"connecting: {exc}")
                return []
        sock = self._sock
        assert sock is not None  # connected above: only _lost() clears it
        now = time.monotonic()
        if now - self._last_sent > self.keepalive / 2:
            self._queue_out(_PINGREQ, self.connection)
        if now - self._last_heard > self.keepalive * 1.5:
            self._lost(f"nothing heard for {self.keepalive * 1.5:.0f} s")
            return []
        deadline = now + timeout
        try:
            while True:
                pending = self._tls is not None and isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
                readable, writable, _ = select.select(
                    [sock, self._wake_r],
                    [sock] if self._out else [],
                    [],
                    0.0 if pending else max(0.0, deadline - time.monotonic()),
                )
                if pending and sock not in readable:  # decrypted already, in the TLS layer: select cannot see it
                    readable.append(sock)
                if self._wake_r in readable:
                    try:
                        self._wake_r.recv(4096)
                    except BlockingIOError:
                        pass
                if writable:
                    self._flush(sock)
                if sock in readable:
                    if not self._receive(sock):
                        self._lost("closed by the broker")
                        return self._parse()
                    self._flush(sock)  # the PINGREQ or PUBACKs queued meanwhile, when there is room
                    return self._parse()
                if time.monotonic() >= deadline:
                    return []
        except OSError as exc:
            self._lost(str(exc))
            return []

    def _receive(self, sock: socket.socket) -> bool:
        """What is available now, in big reads (up to 4 MB, more if one packet is bigger); False when
        the broker closed the connection."""
        while True:
            try:
                chunk = sock.recv(1 << 18)
            except _WOULD_BLOCK:
                break
            if not chunk:
                return False
            self._buffer += chunk
            if len(self._buffer) >= 1 << 22:
                break
        self._last_heard = time.monotonic()
        return True

    def _flush(self, sock: socket.socket) -> None:
        with self._out_lock:
            if self._out and sock is self._sock:
                try:
                    sent = sock.send(self._out)
                except _WOULD_BLOCK:
                    return
                del self._out[:sent]
                self._last_sent = time.monotonic()

    def _queue_out(self, data: bytes, connection: int) -> bool:
        with self._out_lock:
            if self._sock is None or connection != self.connection:
                return False
            self._out += data
        try:
            self._wake_w.send(b"\0")
        except BlockingIOError:
            pass  # already woken
        return True

    def _parse(self) -> list[Message]:
        """Every whole packet in the buffer; a partial one stays for the next read."""
        buf, out, pos, end, connection = self._buffer, [], 0, len(self._buffer), self.connection
        while pos + 2 <= end:
            first = buf[pos]
            length, shift, i = 0, 0, pos + 1
            while i < end:
                digit = buf[i]
                length |= (digit & 0x7F) << shift
                i += 1
                if not digit & 0x80:
                    break
                shift += 7
            else:
                break  # the length itself is incomplete
            if i + length > end:
                break
            kind = first >> 4
            if kind == _PUBLISH:
                qos = (first >> 1) & 3
                n = (buf[i] << 8) | buf[i + 1]
                topic = bytes(buf[i + 2 : i + 2 + n]).decode("utf-8", "replace")
                at = i + 2 + n
                packet_id = 0
                if qos:
                    packet_id = (buf[at] << 8) | buf[at + 1]
                    at += 2
                out.append(Message(topic, bytes(buf[at : i + length]), packet_id, connection))
            elif kind == _SUBACK and length >= 3:
                self.subscribed = buf[i + 2] != 0x80
                if not self.subscribed:
                    log.error("the broker refused the subscription to %s", self.topic)
            pos = i + length  # CONNACK was read in _connect; PINGRESP and the rest need nothing
        del buf[:pos]
        return out

    # --- acknowledging ------------------------------------------------------------------------------

    def ack(self, connection: int, packet_ids: list[int]) -> bool:
        """PUBACK ``packet_ids`` (sent by the reader, in one write) if ``connection`` is still the
        current one; else the broker redelivers those messages after the reconnection."""
        ids = [p for p in packet_ids if p]
        return bool(ids) and self._queue_out(b"".join(b"\x40\x02" + struct.pack(">H", p) for p in ids), connection)

    def close(self) -> None:
        """Send what is queued and DISCONNECT: the session (and what the broker queues for it) is kept.
        Called once the reader has stopped."""
        self._closed = True
        sock = self._sock
        if sock is not None:
            with self._out_lock:
                out, self._out = bytes(self._out) + _DISCONNECT, bytearray()
            try:
                sock.settimeout(2)
                sock.sendall(out)
                if self._tls is None:  # (TLS: the broker closes on DISCONNECT; a TCP half-close would end TLS)
                    sock.shutdown(socket.SHUT_WR)
                deadline = time.monotonic() + 2
                while sock.recv(1 << 16) and time.monotonic() < deadline:  # until the broker closes: closing
                    pass  # with unread input resets the connection, and the broker may drop PUBACKs unread
            except OSError:
                pass
        self._lost("closed")
        self._wake_r.close()
        self._wake_w.close()
