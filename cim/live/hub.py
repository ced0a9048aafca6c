"""The live hub: readings in from MQTT (QoS 1, acknowledged only once stored)
and HTTP, stored in PostGIS in batches by one writer thread; tickets stored
as they come.

MQTT topic ``cim/sensors/{sensor_id}/reading``, JSON ``{"ts", "value",
"status"}``. The hub's MQTT session is persistent (a fixed client id, clean
session off): readings published while it is away are queued by the broker
and delivered when it is back; a reading is acknowledged to the broker only
after the transaction that stores it has committed, so a crash between the
two means a redelivery (stored once: (sensor_id, ts) is the key), never a
loss. A malformed message is counted, logged and acknowledged alone, and the
good readings around it are stored: every message is checked on its own
(:mod:`cim.live.records`: nothing in it can raise but a refusal), and a reading
PostgreSQL would still refuse is found by halving the batch and dropped alone
(counted and acknowledged too), so no message can make a batch fail on every
redelivery.

Refusals are in the audit too (``cim.audit``, action ``mqtt.refused``), as
summaries: at most one row per device (the topic's sensor id) every
:data:`REFUSAL_AUDIT_EVERY_S`, the first at once, the next with how many were
refused meanwhile and the first reason. The read loop only counts them; the
writer thread writes the rows due between its batches, in one transaction, and
what is pending when the hub stops.

A reading checked is on the live picture (state, snapshot, viewers) at once,
while it waits to be stored: what viewers see does not wait for PostgreSQL
(a slow commit once delayed them by seconds). Alarms from the rules, which
are evaluated in PostGIS, follow the commit.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import ssl
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

import psycopg

from cim.config import Settings
from cim.db import database_url
from cim.errors import InputError
from cim.live import records
from cim.live.broker import LocalBroker, MqttAddress, hub_identity
from cim.live.mqtt import Message, Subscription
from cim.live.sla import SlaRule, sla_of
from cim.live.state import LiveState, load_registry
from cim.live.store import (
    LIVE_SCHEMA,
    AlarmEvent,
    AuditRow,
    Partitions,
    Reading,
    Ticket,
    append_audit,
    ensure_live_schema,
    evaluate_rules,
    open_alarm_sensors,
    registry_layers_version,
    store_readings,
    sync_registries,
    upsert_ticket,
)
from layers.gridjoin import grid_placement
from layers.schema import ensure_schema

log = logging.getLogger("cim.live")

TOPIC = "cim/sensors/+/reading"
BATCH_MAX = 5_000  # readings per transaction
BATCH_WAIT_S = 0.05  # how long a batch waits to fill
SLOW_BATCH_S = 0.5  # a batch slower than this is logged
#: what one reading can make the storing of a batch raise (a value PostgreSQL refuses); anything else
#: (the database away, a bug) is not the readings' fault and drops none of them
_UNSTORABLE = (psycopg.DataError, ValueError, OverflowError)
_REGISTRY_REFRESH_S = 60.0
_RETENTION_EVERY_S = 3600.0
_OFFLINE_EVERY_S = 30.0
REFUSAL_AUDIT_EVERY_S = 60.0  # at most one mqtt.refused audit row per device in this long
_REASON_MAX = 200  # characters of the first reason an audit row quotes
_DEVICES_TRACKED = 1_000  # devices summarised apart; refusals of any further one share a summary (actor "mqtt")
_AUDIT_BACKLOG_MAX = 1_000  # rows kept for another try when the audit cannot be written
_AUDIT_RETRY_S = 5.0


@dataclass
class Counters:
    received: int = 0  # MQTT messages
    stored: int = 0  # new rows
    duplicates: int = 0
    malformed: int = 0  # MQTT messages refused (counted, logged and acknowledged)
    rejected: int = 0  # HTTP records refused (tickets too)
    alarms: int = 0  # alarms raised

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class _Refusals:
    """A device's refused MQTT messages since its last audit row."""

    actor: str  # the sensor id as the topic names it, or "mqtt"
    topic: str
    count: int = 0
    reason: str = ""  # the first one's
    since: dt.datetime | None = None  # when the first one came
    written_at: float | None = None  # (monotonic) when the device's last row was written

    def row(self, interval: float) -> AuditRow:
        since = self.since.isoformat() if self.since else None
        detail = {"refused": self.count, "reason": self.reason, "since": since, "interval_s": interval}
        return AuditRow(self.actor, "mqtt.refused", self.topic, detail)


def _device_of(topic: str) -> tuple[str, str, str]:
    """The key, actor and object of an MQTT topic's refusals: its sensor id (when it names a usable
    one, else "mqtt") and the topic, both shortened."""
    parts = topic.split("/", 3)
    if len(parts) == 4 and parts[:2] == ["cim", "sensors"] and parts[3] == "reading" and parts[2]:
        return parts[2][:200], records.safe_id(parts[2]) or "mqtt", topic[:500]
    return topic[:500], "mqtt", topic[:500]


def _reason(exc: Exception) -> str:
    """Why a message was refused, as its audit row says it."""
    if isinstance(exc, records.RecordError):
        return str(exc)
    return f"checking it failed ({type(exc).__name__})"


class RefusalAudit:
    """Refused MQTT messages summarised for the audit: :meth:`add` counts one (the read loop and the
    writer call it: a lock and a dict), :meth:`due` gives the rows to write now. A device's first
    refusal is due at once, those that follow once :attr:`interval` has passed since its last row."""

    def __init__(self, interval: float = REFUSAL_AUDIT_EVERY_S) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._devices: dict[str, _Refusals] = {}
        self._pending = False  # some refusal is in no row yet (read without the lock: a cheap check)

    def add(self, topic: str, reason: str) -> None:
        key, actor, shown_topic = _device_of(topic)
        with self._lock:
            entry = self._devices.get(key)
            if entry is None:
                if len(self._devices) >= _DEVICES_TRACKED:
                    key, actor, shown_topic = "", "mqtt", TOPIC
                entry = self._devices.setdefault(key, _Refusals(actor, shown_topic))
            if entry.count == 0:
                entry.reason = reason[:_REASON_MAX]
                entry.since = dt.datetime.now(dt.UTC)
            entry.count += 1
            self._pending = True

    def due(self, now: float, *, everything: bool = False) -> list[AuditRow]:
        """The rows due at ``now`` (monotonic; all pending ones with ``everything``). A device idle for
        an interval is forgotten: its next refusal is due at once."""
        if not self._pending:
            return []
        rows: list[AuditRow] = []
        with self._lock:
            waiting = False
            for key, entry in list(self._devices.items()):
                free = entry.written_at is None or now - entry.written_at >= self.interval
                if entry.count and (free or everything):
                    rows.append(entry.row(self.interval))
                    entry.count, entry.written_at = 0, now
                elif entry.count:
                    waiting = True
                elif free:
                    del self._devices[key]
            self._pending = waiting
        return rows


@dataclass
class _Item:
    readings: list[Reading]
    connection: int = 0  # MQTT messages to acknowledge once stored: their connection and packet ids
    packet_ids: list[int] | None = None
    future: Future | None = None  # an HTTP request waiting for the answer


class LiveHub:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.counters = Counters()
        self.sla = SlaRule(
            dt.timedelta(minutes=settings.sla_acknowledge_minutes),
            dt.timedelta(minutes=settings.sla_contact_minutes),
            dt.timedelta(hours=settings.sla_resolve_hours),
        )
        self.partitions = Partitions(settings.live_retention_days)
        self.address: MqttAddress | None = None
        self.broker: LocalBroker | None = None
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=200_000)
        self._stop = threading.Event()
        self._ticket_lock = threading.Lock()
        self._count_lock = threading.Lock()  # HTTP requests are checked in threads of the server's pool
        self._mqtt: Subscription | None = None
        self._reader: threading.Thread | None = None
        self._writer: threading.Thread | None = None
        self._warned = 0
        self.refusals = RefusalAudit()
        self._audit_backlog: list[AuditRow] = []  # rows whose writing failed, tried again
        self._audit_retry_at = 0.0

    # --- life -------------------------------------------------------------------------------------

    def start(self) -> None:
        self._conn = self._connect("writer")
        self._ticket_conn = self._connect("tickets")
        ensure_schema(self._conn)  # a new database: the catalogue, so that the grid layer can be looked up
        ensure_live_schema(self._conn)
        counts = sync_registries(self._conn)
        self._synced_from = registry_layers_version(self._conn)
        reported = [r[0] for r in self._conn.execute(f"SELECT sensor_id FROM {LIVE_SCHEMA}.sensor_state")]
        evaluate_rules(self._conn, reported)  # rules added or changed while the hub was away
        evaluate_rules(self._conn, None)
        self.state = LiveState(load_registry(self._conn, version=1))
        self.state.load(self._conn)
        self._placement = grid_placement(self._ticket_conn, self.settings.grid_layer)
        log.info("live registries: %s", counts)
        if self.settings.mqtt_url:
            self.address = MqttAddress.parse(self.settings.mqtt_url)
        else:
            self.broker = LocalBroker(self.settings.data_dir)
            self.address = self.broker.start()
        self._writer = threading.Thread(target=self._write_loop, name="cim-live-writer", daemon=True)
        self._writer.start()
        # the session's client id: random, kept in the data directory (a guessed one would take the session over)
        client_id = hub_identity(self.settings.data_dir).client_id
        tls = None
        if self.address.tls:  # the system's CAs, or CIM_MQTT_CA_FILE's
            ca_file = self.settings.mqtt_ca_file
            tls = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self._mqtt = Subscription(
            self.address.host,
            self.address.port,
            client_id,
            TOPIC,
            keepalive=30,
            username=self.address.username,
            password=self.address.password,
            tls=tls,
        )
        self._reader = threading.Thread(target=self._read_loop, name="cim-live-mqtt", daemon=True)
        self._reader.start()

    def _connect(self, role: str) -> psycopg.Connection:
        """A connection named in pg_stat_activity (cim-live-writer, cim-live-tickets)."""
        return psycopg.connect(database_url(self.settings), autocommit=True, application_name=f"cim-live-{role}")

    @property
    def connected(self) -> bool:
        return self._mqtt is not None and self._mqtt.connected

    def stop(self) -> None:
        self._stop.set()
        if self._reader is not None:
            self._reader.join(timeout=10)
        if self._writer is not None:
            self._writer.join(timeout=30)  # stores and acknowledges what was read
        if self._mqtt is not None:
            self._mqtt.close()  # the session stays: what is published meanwhile waits in the broker
        for conn in (getattr(self, "_conn", None), getattr(self, "_ticket_conn", None)):
            if conn is not None:
                conn.close()
        if self.broker is not None:
            self.broker.stop()

    def status(self) -> dict:
        return {
            "mqtt": {
                "url": self.address.url if self.address else None,
                "connected": self.connected,
                "refused": self._mqtt.refused if self._mqtt is not None else None,
                "topic": TOPIC,
                "local_broker": self.broker is not None,
            },
            "sensors": len(self.state.registry.ids),
            "registry_version": self.state.registry.version,
            "queued": self._queue.qsize(),
            "counters": self.counters.to_json(),
        }

    # --- MQTT ---------------------------------------------------------------------------------------

    def _read_loop(self) -> None:
        assert self._mqtt is not None  # start() subscribes before it starts the reader
        while not self._stop.is_set():
            try:
                messages = self._mqtt.read(timeout=0.2)
                if messages:
                    self._on_messages(messages)
            except Exception:  # a bug must not stop ingest; what was not acknowledged comes again on reconnection
                log.exception("reading MQTT messages failed")

    def _on_messages(self, messages: list[Message]) -> None:
        """Check each message; the good ones go to the writer as one item (acknowledged once stored),
        the malformed are counted, logged and acknowledged at once. A message can only refuse itself:
        whatever checking it raises (a refusal, or a bug) is that message's alone."""
        self.counters.received += len(messages)
        now, oldest = self._time_limits()
        readings: list[Reading] = []
        stored_ids: list[int] = []
        refused_ids: list[int] = []
        for message in messages:
            try:
                readings.append(self._check_message(message, now, oldest))
                stored_ids.append(message.packet_id)
            except Exception as exc:
                self.counters.malformed += 1
                refused_ids.append(message.packet_id)
                self.refusals.add(message.topic, _reason(exc))
                if not isinstance(exc, records.RecordError):
                    log.exception("checking the MQTT message on %s failed; refused", records.shown(message.topic, 120))
                elif self._warned < 20 or self.counters.malformed % 1000 == 0:
                    self._warned += 1
                    log.warning(
                        "refused MQTT message on %s (%d refused so far): %s",
                        records.shown(message.topic, 120),
                        self.counters.malformed,
                        exc,
                    )
        connection = messages[0].connection
        assert self._mqtt is not None  # the messages were read from it
        self._mqtt.ack(connection, refused_ids)
        if readings:
            self._accept(_Item(readings, connection, stored_ids))

    def _check_message(self, message: Message, now: dt.datetime, oldest: dt.datetime) -> Reading:
        parts = message.topic.split("/")
        if len(parts) != 4 or parts[0] != "cim" or parts[1] != "sensors" or parts[3] != "reading":
            raise records.RecordError(f"topic {records.shown(message.topic)} is not cim/sensors/<sensor_id>/reading")
        if len(message.payload) > records.PAYLOAD_MAX:
            raise records.RecordError(
                f"the payload has {len(message.payload):,} bytes (a reading has at most {records.PAYLOAD_MAX:,})"
            )
        payload = records.parse_json(message.payload)
        return records.reading(payload, parts[2], now=now, oldest=oldest, known=self.state.registry.index)

    def _time_limits(self) -> tuple[dt.datetime, dt.datetime]:
        """Now and the oldest time kept: a reading must fall between them (give or take the slack
        for device clocks). Read once per batch of messages or HTTP request."""
        now = dt.datetime.now(dt.UTC)
        return now, self.partitions.oldest_kept(now)

    def _accept(self, item: _Item) -> None:
        """Checked readings: on the live picture at once, then queued to be stored."""
        self.state.apply_readings(item.readings)
        self._queue.put(item)

    # --- HTTP ---------------------------------------------------------------------------------------

    def check_readings(self, body) -> records.Checked:
        now, oldest = self._time_limits()
        checked = records.readings(body, now=now, oldest=oldest, known=self.state.registry.index)
        self._count_rejected(len(checked.rejected))
        return checked

    def take_readings(self, raw: bytes) -> tuple[records.Checked, Future]:
        """A request's body of readings, parsed, checked and submitted: what a thread of the server's
        pool does, off the event loop. Raises :class:`~cim.live.records.BatchTooLarge` for a batch over
        ``live_batch_max`` and a :class:`~cim.live.records.RecordError` for a body that is not JSON."""
        checked = self.check_readings(records.parse_batch(raw, self.settings.live_batch_max))
        return checked, self.submit(checked.accepted)

    def check_ticket(self, body: object) -> Ticket:
        """A ticket from a request's body (parsed, or its bytes), or an :class:`~cim.errors.InputError`
        naming it and the problem (counted as refused, as readings are)."""
        try:
            if isinstance(body, (bytes, bytearray)):
                body = records.parse_json(body, "the body")
            return records.ticket(body)
        except records.RecordError as exc:
            self._count_rejected(1)
            ticket_id = records.safe_id(body.get("id")) if isinstance(body, dict) else None
            raise InputError(f"ticket {ticket_id!r}", str(exc)) from None

    def _count_rejected(self, n: int) -> None:
        if n:
            with self._count_lock:
                self.counters.rejected += n

    def submit(self, readings: list[Reading]) -> Future:
        """Store ``readings``; the future's result is how many were new."""
        future: Future = Future()
        if not readings:
            future.set_result(0)
        else:
            self._accept(_Item(readings, future=future))
        return future

    def store_ticket(self, ticket: Ticket) -> tuple[bool, Ticket]:
        with self._ticket_lock:
            for attempt in (1, 2):
                try:
                    placement = (
                        self._placement.place_point(self._ticket_conn, ticket.lon, ticket.lat)
                        if self._placement
                        else {}
                    )
                    created, stored = upsert_ticket(self._ticket_conn, ticket, placement)
                    break
                except psycopg.OperationalError:  # the database restarted since: once more on a new connection
                    if attempt == 2:
                        raise
                    log.warning("the tickets' database connection was lost; reconnecting")
                    self._ticket_conn.close()
                    self._ticket_conn = self._connect("tickets")
        sla = sla_of(stored, dt.datetime.now(dt.UTC), self.sla)
        self.state.add_ticket(
            {
                "id": stored.id,
                "lon": stored.lon,
                "lat": stored.lat,
                "stage": sla.stage,
                "due_at": sla.due_at.timestamp(),
                "overdue": sla.overdue,
                "channel": stored.channel,
                "category": stored.category,
            }
        )
        return created, stored

    # --- the writer ---------------------------------------------------------------------------------

    def _next_batch(self) -> list[_Item]:
        try:
            items = [self._queue.get(timeout=0.2)]
        except queue.Empty:
            return []
        count = len(items[0].readings)
        deadline = time.monotonic() + BATCH_WAIT_S
        while count < BATCH_MAX:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            items.append(item)
            count += len(item.readings)
        return items

    def _store(self, items: list[_Item]) -> None:
        readings = [r for item in items for r in item.readings]
        t0 = time.monotonic()
        while True:
            try:
                # the new (sensor_id, ts) are only needed to answer HTTP requests
                count, new, unstorable = self._store_each(readings, keys=any(item.future is not None for item in items))
                break
            except psycopg.OperationalError as exc:  # the database went away: keep the batch, try again
                log.error("storing %d readings failed (%s); retrying in 1 s", len(readings), exc)
                time.sleep(1.0)
                try:
                    self._conn.close()
                    self._conn = self._connect("writer")
                except psycopg.OperationalError:
                    pass
        t1 = time.monotonic()
        self.counters.stored += count
        self.counters.duplicates += len(readings) - count - len(unstorable)
        if unstorable:  # refused after all: counted as the checks' refusals are (MQTT ones acknowledged below)
            self._count_unstorable(items, readings, unstorable)
        stored_ids: dict[int, list[int]] = {}  # by connection
        for item in items:
            if item.packet_ids:
                stored_ids.setdefault(item.connection, []).extend(item.packet_ids)
        for connection, ids in stored_ids.items():
            assert self._mqtt is not None  # packet ids come only from messages read from it
            self._mqtt.ack(connection, ids)  # stored: the broker may forget them now
        try:  # the readings are stored and acknowledged: an alarm evaluation that fails is logged, not fatal
            self._alarms(evaluate_rules(self._conn, sorted({r.sensor_id for r in readings})))
        except Exception:
            log.exception("evaluating alarm rules failed")
        t2 = time.monotonic()
        if t2 - t0 > SLOW_BATCH_S:  # readings wait meanwhile: say where the time went
            log.warning(
                "a batch of %d readings took %.2f s (stored in %.2f s, alarm rules %.2f s)",
                len(readings),
                t2 - t0,
                t1 - t0,
                t2 - t1,
            )
        unclaimed = new or set()  # a reading sent twice in one batch is new once
        for item in items:
            fresh = 0
            for r in item.readings:
                if (r.sensor_id, r.ts) in unclaimed:
                    unclaimed.discard((r.sensor_id, r.ts))
                    fresh += 1
            if item.future is not None:  # answered once its alarms are raised or cleared too
                item.future.set_result(fresh)

    def _count_unstorable(self, items: list[_Item], readings: list[Reading], unstorable: dict[int, str]) -> None:
        """Readings PostgreSQL refused (by position in ``readings``, with the reason): MQTT ones are
        counted and audited as the checks' refusals are, HTTP ones as refused records."""
        owner = [i for i, item in enumerate(items) for _ in item.readings]
        mqtt = [k for k in unstorable if items[owner[k]].future is None]
        self.counters.malformed += len(mqtt)
        self._count_rejected(len(unstorable) - len(mqtt))
        for k in mqtt:
            self.refusals.add(f"cim/sensors/{readings[k].sensor_id}/reading", unstorable[k])

    def _store_each(
        self, readings: list[Reading], *, keys: bool
    ) -> tuple[int, set[tuple[str, dt.datetime]] | None, dict[int, str]]:
        """Store ``readings`` in one transaction; if one of them makes PostgreSQL refuse the batch
        (which the checks should have prevented), find it by halves and store the others. Returns how
        many were new, their keys (with ``keys``) and the positions of the readings dropped, each with
        PostgreSQL's reason."""
        try:
            count, new = store_readings(self._conn, readings, self.partitions, keys=keys)
            return count, new, {}
        except _UNSTORABLE as exc:
            if len(readings) == 1:
                r = readings[0]
                log.warning("dropped a reading PostgreSQL refuses (%s at %s): %s", r.sensor_id, r.ts, exc)
                first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                return 0, (set() if keys else None), {0: f"PostgreSQL refused it: {first_line}"}
        half = len(readings) // 2
        count1, new1, bad1 = self._store_each(readings[:half], keys=keys)
        count2, new2, bad2 = self._store_each(readings[half:], keys=keys)
        new = (new1 or set()) | (new2 or set()) if keys else None
        return count1 + count2, new, bad1 | {half + i: reason for i, reason in bad2.items()}

    def _write_refusals(self, *, everything: bool = False) -> None:
        """The mqtt.refused audit rows due (all pending with ``everything``), in one transaction on the
        writer's connection. A failure is logged and the rows tried again a few seconds later: it
        never touches the readings."""
        now = time.monotonic()
        if now < self._audit_retry_at and not everything:
            return
        rows = self._audit_backlog + self.refusals.due(now, everything=everything)
        if not rows:
            return
        try:
            append_audit(self._conn, rows)
            self._audit_backlog = []
        except Exception as exc:
            self._audit_backlog = rows[-_AUDIT_BACKLOG_MAX:]
            self._audit_retry_at = now + _AUDIT_RETRY_S
            log.warning("writing %d mqtt.refused audit rows failed (%s); trying again", len(rows), exc)

    def _alarms(self, events: list[AlarmEvent]) -> None:
        if not events:
            return
        still_open = open_alarm_sensors(self._conn, sorted({e.sensor_id for e in events}))
        self.state.apply_alarms(events, still_open)
        self.counters.alarms += sum(e.cleared_at is None for e in events)

    def _refresh_registry(self) -> None:
        """Sensors added or removed (a new import of the sensors layer): a new registry version.
        Nothing is read or written unless one of the three layers was imported again."""
        version = registry_layers_version(self._conn)
        if version == self._synced_from:
            return
        sync_registries(self._conn)
        self._synced_from = version
        registry = load_registry(self._conn, self.state.registry.version)
        if registry.ids != self.state.registry.ids:
            registry.version += 1
            state = LiveState(registry)
            state.load(self._conn)
            self.state = state

    def _write_loop(self) -> None:
        last_refresh = last_retention = last_offline = time.monotonic()
        while not (self._stop.is_set() and self._queue.empty()):
            items = self._next_batch()
            if items:
                try:
                    self._store(items)
                except Exception as exc:  # a bug must not stop the hub: answer the waiting requests, go on
                    log.exception("storing a batch failed")
                    for item in items:
                        if item.future is not None and not item.future.done():
                            item.future.set_exception(exc)
            self._write_refusals()
            now = time.monotonic()
            if self.broker is not None and not self._stop.is_set() and self.broker.exited():
                log.warning("the local MQTT broker stopped; starting it again on the same port")
                try:
                    self.broker.start()
                except Exception:
                    log.exception("restarting the local MQTT broker failed; trying again")
                    time.sleep(1.0)
            try:
                if now - last_offline > _OFFLINE_EVERY_S:
                    self._alarms(evaluate_rules(self._conn, None))
                    last_offline = time.monotonic()
                    if last_offline - now > SLOW_BATCH_S:  # readings wait meanwhile
                        log.warning("the offline check took %.2f s", last_offline - now)
                if now - last_refresh > _REGISTRY_REFRESH_S:
                    self._refresh_registry()
                    last_refresh = now
                if now - last_retention > _RETENTION_EVERY_S:
                    dropped = self.partitions.drop_expired(self._conn, dt.datetime.now(dt.UTC))
                    if dropped:
                        log.info("retention: dropped %s", ", ".join(dropped))
                    last_retention = now
            except psycopg.Error:
                log.exception("live housekeeping failed; trying again later")
        self._write_refusals(everything=True)  # stopping: what is pending, whatever its interval
