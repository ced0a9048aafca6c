"""Live readings and tickets with the real broker (the local mosquitto `cim
serve` starts) and PostGIS: MQTT readings arrive and are stored, HTTP batches
are judged record by record and are idempotent, the 10-30-24 stages are right
at their boundaries, old daily partitions are dropped whole."""

from __future__ import annotations

import datetime as dt
import json
import time

import paho.mqtt.client as mqtt
import pytest

from cim.live.sla import SlaRule, sla_of
from layers.live import Partitions, Reading, Ticket, ensure_live_schema, store_readings

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def _iso(t: dt.datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def sensor_id(conn_module) -> str:
    return conn_module.execute("SELECT id FROM live.sensors ORDER BY id LIMIT 1").fetchone()[0]


@pytest.fixture(scope="module")
def conn_module(db_url, server):
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as c:
        yield c


@pytest.fixture(scope="module")
def publisher(http):
    status = http.get("/live/status").json()
    host, port = status["mqtt"]["url"].removeprefix("mqtt://").split(":")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-publisher")
    client.connect(host, int(port))
    client.loop_start()
    yield client
    client.loop_stop()
    client.disconnect()


def _wait_for(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_the_hub_runs_a_local_broker_and_knows_the_sample_sensors(http):
    status = http.get("/live/status").json()
    assert status["mqtt"]["local_broker"] and status["mqtt"]["connected"]
    assert status["mqtt"]["url"].startswith("mqtt://127.0.0.1:")
    assert status["sensors"] == 5_000  # the small sample's sensors layer


def test_an_mqtt_reading_is_stored_and_becomes_the_latest(http, publisher, sensor_id):
    ts = dt.datetime.now(UTC).replace(microsecond=0)
    info = publisher.publish(f"cim/sensors/{sensor_id}/reading",
                             json.dumps({"ts": _iso(ts), "value": 0.42, "status": "alarm"}), qos=1)
    info.wait_for_publish(10)
    latest = _wait_for(lambda: (r := http.get(f"/live/sensors/{sensor_id}").json())["ts"] == _iso(ts) and r)
    assert latest["value"] == 0.42 and latest["status"] == "alarm" and latest["category"]
    history = http.get(f"/live/sensors/{sensor_id}/readings",
                       params={"since": _iso(ts - dt.timedelta(seconds=1)), "until": _iso(ts + dt.timedelta(seconds=1))})
    assert history.json()["readings"] == [{"ts": ts.isoformat(), "value": 0.42, "status": "alarm"}]


def test_malformed_messages_are_counted_and_never_stop_the_hub(http, publisher, sensor_id):
    before = http.get("/live/status").json()["counters"]["malformed"]
    for payload in (b"not json", b'{"ts": "yesterday", "value": 1}', b'{"ts": "2026-11-22T09:00:00Z", "value": "x"}'):
        publisher.publish(f"cim/sensors/{sensor_id}/reading", payload, qos=1).wait_for_publish(10)
    publisher.publish("cim/sensors/no-such-sensor/reading", json.dumps({"ts": _iso(dt.datetime.now(UTC)), "value": 1}),
                      qos=1).wait_for_publish(10)
    ts = dt.datetime.now(UTC).replace(microsecond=0) + dt.timedelta(seconds=1)
    publisher.publish(f"cim/sensors/{sensor_id}/reading", json.dumps({"ts": _iso(ts), "value": 7, "status": "normal"}),
                      qos=1).wait_for_publish(10)
    _wait_for(lambda: http.get(f"/live/sensors/{sensor_id}").json()["ts"] == _iso(ts))  # still running
    assert http.get("/live/status").json()["counters"]["malformed"] == before + 4


def test_http_readings_are_judged_one_by_one_and_stored_once(http, sensor_id):
    ts = [T0 + dt.timedelta(minutes=i) for i in range(3)]
    batch = [{"sensor_id": sensor_id, "ts": _iso(t), "value": i, "status": "normal"} for i, t in enumerate(ts)]
    batch += [
        {"sensor_id": sensor_id, "ts": _iso(ts[0]), "value": 0},  # the same reading twice in one batch
        {"sensor_id": "no-such-sensor", "ts": _iso(T0), "value": 1},
        {"sensor_id": sensor_id, "ts": "2026-11-22T09:00:00", "value": 1},  # no time zone
        {"sensor_id": sensor_id, "ts": _iso(T0), "value": "high"},
        {"sensor_id": sensor_id, "ts": _iso(T0), "value": 1, "status": "burning"},
        {"sensor_id": sensor_id, "ts": _iso(dt.datetime.now(UTC) + dt.timedelta(hours=2)), "value": 1},
        "not an object",
    ]
    first = http.post("/live/sensors/readings", json=batch).json()
    assert (first["accepted"], first["stored"], first["duplicates"]) == (4, 3, 1)
    reasons = {r["index"]: r["reason"] for r in first["rejected"]}
    assert sorted(reasons) == [4, 5, 6, 7, 8, 9]
    assert "unknown sensor" in reasons[4] and "time zone" in reasons[5] and "finite number" in reasons[6]
    assert "status" in reasons[7] and "future" in reasons[8] and "JSON object" in reasons[9]
    again = http.post("/live/sensors/readings", json=batch[:3]).json()
    assert (again["stored"], again["duplicates"]) == (0, 3)
    history = http.get(f"/live/sensors/{sensor_id}/readings",
                       params={"since": _iso(T0), "until": _iso(T0 + dt.timedelta(minutes=3))}).json()
    assert [r["value"] for r in history["readings"]] == [0, 1, 2]
    assert http.post("/live/sensors/readings", json={"not": "a list"}).json()["rejected"][0]["reason"].startswith(
        "the body must be")


def test_sla_stages_at_their_boundaries():
    rule = SlaRule()
    created = T0
    tick = dt.timedelta(microseconds=1)
    t = Ticket("t", "12345", "noise", 114.05, 22.54, created)
    ack_due = created + dt.timedelta(minutes=10)
    assert sla_of(t, ack_due, rule).__dict__ == {"stage": "acknowledge", "due_at": ack_due, "overdue": False}
    assert sla_of(t, ack_due + tick, rule).overdue
    acked = Ticket("t", "12345", "noise", 114.05, 22.54, created, acknowledged_at=ack_due)
    contact_due = created + dt.timedelta(minutes=30)
    assert sla_of(acked, contact_due, rule).__dict__ == {"stage": "contact", "due_at": contact_due, "overdue": False}
    assert sla_of(acked, contact_due + tick, rule).overdue
    contacted = Ticket("t", "12345", "noise", 114.05, 22.54, created, ack_due, contact_due)
    resolve_due = created + dt.timedelta(hours=24)
    assert sla_of(contacted, resolve_due, rule).__dict__ == {"stage": "resolve", "due_at": resolve_due, "overdue": False}
    assert sla_of(contacted, resolve_due + tick, rule).overdue
    on_time = Ticket("t", "12345", "noise", 114.05, 22.54, created, ack_due, contact_due, resolve_due)
    late = Ticket("t", "12345", "noise", 114.05, 22.54, created, ack_due, contact_due, resolve_due + tick)
    assert sla_of(on_time, resolve_due + dt.timedelta(days=9), rule).__dict__ == {
        "stage": "closed", "due_at": resolve_due, "overdue": False}
    assert sla_of(late, resolve_due, rule).overdue
    # the limits are settings
    assert sla_of(t, created + dt.timedelta(minutes=6), SlaRule(acknowledge=dt.timedelta(minutes=5))).overdue


def test_tickets_are_created_updated_by_id_and_placed_in_their_grid(http, conn):
    now = dt.datetime.now(UTC).replace(microsecond=0)
    ticket = {"id": "T-LIVE-1", "channel": "12345热线", "category": "噪音扰民", "lon": 114.0553, "lat": 22.5333,
              "created_at": _iso(now - dt.timedelta(minutes=11))}
    first = http.post("/live/tickets", json=ticket).json()
    assert first["created"] and first["sla"]["stage"] == "acknowledge" and first["sla"]["overdue"]
    update = {**ticket, "acknowledged_at": _iso(now - dt.timedelta(minutes=9))}
    second = http.post("/live/tickets", json=update).json()
    assert not second["created"] and second["sla"] == {
        "stage": "contact", "due_at": (now + dt.timedelta(minutes=19)).isoformat(), "overdue": False}
    # an update that leaves a stage out keeps the stored one
    http.post("/live/tickets", json={**ticket, "contacted_at": _iso(now)})
    stored = http.get("/live/tickets/T-LIVE-1").json()
    assert stored["acknowledged_at"] == _iso(now - dt.timedelta(minutes=9)) and stored["sla"]["stage"] == "resolve"
    assert stored["street"] and stored["grid"]  # 进格入块
    assert conn.execute("SELECT count(*) FROM live.tickets WHERE id = 'T-LIVE-1'").fetchone() == (1,)
    bad = http.post("/live/tickets", json={**ticket, "created_at": "2026-11-22 10:00"})
    assert bad.status_code == 400 and "T-LIVE-1" in bad.json()["detail"]
    assert http.get("/live/tickets/NO-SUCH").status_code == 404
    sample = conn.execute("SELECT id FROM live.tickets WHERE resolved_at IS NOT NULL LIMIT 1").fetchone()[0]
    assert http.get(f"/live/tickets/{sample}").json()["sla"]["stage"] == "closed"  # the sample's tickets, too


def test_retention_drops_whole_old_partitions(conn, server):
    ensure_live_schema(conn)
    partitions = Partitions(retention_days=90)
    now = dt.datetime(2026, 11, 22, 12, tzinfo=UTC)
    old = now - dt.timedelta(days=120)
    kept = store_readings(conn, [Reading("retention-test", old, 1.0, "normal"),
                                 Reading("retention-test", now, 2.0, "normal")], partitions)
    assert len(kept) == 2
    dropped = partitions.drop_expired(conn, now)
    assert f"readings_{old:%Y%m%d}" in dropped and f"readings_{now:%Y%m%d}" not in dropped
    rows = conn.execute("SELECT ts FROM live.readings WHERE sensor_id = 'retention-test'").fetchall()
    assert rows == [(now,)]
