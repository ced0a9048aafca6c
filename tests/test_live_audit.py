"""Refused live input is in the audit (``cim.audit``), not only in counters and log lines: a refused
MQTT message gives an ``mqtt.refused`` row naming the device and the reason, at most one per device
and interval however many are refused (the rest are counted in the next row), and a body over
``CIM_MAX_BODY_BYTES`` gives a ``request.too_large`` row, the 413 itself not waiting for it."""

from __future__ import annotations

import datetime as dt
import json
import random
import time
import uuid

import httpx
import pytest

from cim.live.hub import RefusalAudit
from cim.live.store import Reading
from tests.live_helpers import mqtt_device, wait_for

UTC = dt.UTC


def _iso(t: dt.datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _times(n: int) -> list[dt.datetime]:
    """``n`` times a millisecond apart that no other test uses (two days ago, from a random microsecond)."""
    start = dt.datetime.now(UTC).replace(microsecond=random.randrange(1_000_000)) - dt.timedelta(days=2)
    return [start + dt.timedelta(milliseconds=i) for i in range(n)]


@pytest.fixture
def sensor_ids(conn, server) -> list[str]:
    """Smoke detectors of these tests' own (tests/test_live_intake.py takes the last 12, whose refusals
    would fall in the same audit interval)."""
    return [
        r[0]
        for r in conn.execute(
            "SELECT id FROM live.sensor_registry WHERE category = 'smoke_detector' ORDER BY id DESC OFFSET 12 LIMIT 4"
        )
    ]


@pytest.fixture(scope="module")
def publisher(server, settings):
    with mqtt_device(server, settings.data_dir, "test-audit-publisher") as client:
        yield client


def _last_audit_id(conn) -> int:
    return conn.execute("SELECT coalesce(max(id), 0) FROM cim.audit").fetchone()[0]


def _rows(conn, after: int, action: str, actor: str | None = None) -> list[tuple]:
    return conn.execute(
        "SELECT actor, via, object, address, ok, detail FROM cim.audit "
        "WHERE id > %s AND action = %s AND (%s::text IS NULL OR actor = %s) ORDER BY id",
        (after, action, actor, actor),
    ).fetchall()


def _malformed(http) -> int:
    return http.get("/live/status").json()["counters"]["malformed"]


def _stored(conn, sensor: str, times: list[dt.datetime]) -> int:
    return conn.execute(
        "SELECT count(*) FROM live.readings WHERE sensor_id = %s AND ts = ANY(%s)", (sensor, times)
    ).fetchone()[0]


def _poison(ts: dt.datetime) -> bytes:
    return b'{"ts": "' + _iso(ts).encode() + b'", "value": 1' + b"0" * 399 + b"}"  # a 400-digit number


# --- the summaries themselves ---------------------------------------------------------------------------


def test_a_flood_from_one_device_is_one_row_at_once_and_one_an_interval_later():
    audit = RefusalAudit(interval=60.0)
    for i in range(10_000):
        audit.add("cim/sensors/S-1/reading", f"reason {i}")
    first = audit.due(100.0)
    assert [(r.actor, r.action, r.object_, r.detail["refused"], r.detail["reason"]) for r in first] == [
        ("S-1", "mqtt.refused", "cim/sensors/S-1/reading", 10_000, "reason 0")
    ]
    audit.add("cim/sensors/S-1/reading", "later")
    assert audit.due(159.0) == []  # within the interval: pending
    later = audit.due(160.0)
    assert [(r.detail["refused"], r.detail["reason"]) for r in later] == [(1, "later")]
    assert audit.due(300.0) == []  # idle for an interval: forgotten, its next refusal is due at once
    audit.add("cim/sensors/S-1/reading", "again")
    assert [r.detail["refused"] for r in audit.due(300.1)] == [1]


def test_what_is_pending_is_given_whole_when_stopping_and_odd_topics_are_named_safely():
    audit = RefusalAudit(interval=60.0)
    audit.add("cim/sensors/S-2/reading", "x" * 1_000)
    assert len(audit.due(0.0)) == 1
    audit.add("cim/sensors/S-2/reading", "pending")
    audit.add("cim/sensors/" + "S" * 300 + "/reading", "an id too long")
    audit.add("cim/sensors/bad\0id/reading", "a NUL")
    rows = {r.object_[:20]: r for r in audit.due(1.0, everything=True)}
    assert rows["cim/sensors/S-2/read"].detail["refused"] == 1
    assert rows["cim/sensors/SSSSSSSS"].actor == "mqtt" and len(rows["cim/sensors/SSSSSSSS"].detail["reason"]) < 201
    actor, _, _, object_, _, detail = rows["cim/sensors/bad\0id/r"].params()
    assert actor == "mqtt" and object_ == "cim/sensors/bad\\x00id/reading" and "NUL" in json.loads(detail)["reason"]


# --- MQTT -----------------------------------------------------------------------------------------------


def test_a_poison_message_beside_1000_good_ones_is_one_audit_row(http, conn, publisher, sensor_ids):
    sensor, times = sensor_ids[0], _times(1000)
    before, after = _malformed(http), _last_audit_id(conn)
    topic = f"cim/sensors/{sensor}/reading"
    for i, ts in enumerate(times):
        publisher.publish(topic, json.dumps({"ts": _iso(ts), "value": i, "status": "normal"}), qos=1)
        if i == 500:
            publisher.publish(topic, _poison(ts), qos=1)
    wait_for(lambda: _stored(conn, sensor, times) == 1000, timeout=20)
    assert _malformed(http) == before + 1
    rows = wait_for(lambda: _rows(conn, after, "mqtt.refused", sensor))
    time.sleep(0.5)  # nothing more comes
    assert _rows(conn, after, "mqtt.refused", sensor) == rows and len(rows) == 1
    actor, via, object_, _, ok, detail = rows[0]
    assert (actor, via, object_, ok, detail["refused"]) == (sensor, "mqtt", topic, False, 1)
    assert "finite number" in detail["reason"], detail


def test_500_poison_messages_in_a_burst_are_at_most_two_rows(
    in_process, http, conn, publisher, sensor_ids, monkeypatch
):
    """The interval shortened to 5 s, so that the second row (the rest of the burst) comes in the test."""
    monkeypatch.setattr(in_process.app.state.hub.refusals, "interval", 5.0)
    sensor, ts = sensor_ids[1], _times(1)[0]
    before, after = _malformed(http), _last_audit_id(conn)
    infos = [publisher.publish(f"cim/sensors/{sensor}/reading", _poison(ts), qos=1) for _ in range(500)]
    for info in infos:
        info.wait_for_publish(timeout=10)
    wait_for(lambda: _malformed(http) == before + 500, timeout=20)

    def counted() -> int:
        return sum(row[5]["refused"] for row in _rows(conn, after, "mqtt.refused", sensor))

    wait_for(lambda: counted() == 500, timeout=15)
    rows = _rows(conn, after, "mqtt.refused", sensor)
    assert 1 <= len(rows) <= 2, [row[5] for row in rows]
    assert all("finite number" in row[5]["reason"] for row in rows)


def test_a_reading_postgresql_refuses_is_audited_from_the_writer(in_process, conn, sensor_ids):
    """The writer's last line (a reading the checks let through, here made by hand with a NUL in its
    sensor id, as if from MQTT: an item without a waiting request) is audited as the checks' refusals."""
    from cim.live.hub import _Item

    hub = in_process.app.state.hub
    sensor, times = sensor_ids[2], _times(3)
    bad = f"bad\0{uuid.uuid4().hex[:8]}"
    after = _last_audit_id(conn)
    hub._accept(_Item([Reading(sensor, times[0], 1.0, "normal"), Reading(bad, times[1], 1.0, "normal")]))
    rows = wait_for(lambda: _rows(conn, after, "mqtt.refused", "mqtt"))
    mine = [row for row in rows if bad.replace("\0", "\\x00") in row[2]]
    assert len(mine) == 1 and mine[0][5]["reason"].startswith("PostgreSQL refused it"), rows
    assert _stored(conn, sensor, times[:1]) == 1


# --- HTTP: bodies over the limit ------------------------------------------------------------------------


def test_a_50_mb_post_is_a_413_and_an_audit_row(server, settings, tokens, conn):
    after = _last_audit_id(conn)
    device = {"Authorization": f"Bearer {tokens['device']}"}
    path = f"{server}/live/sensors/readings"
    with httpx.Client(timeout=30) as client:
        declared = client.post(path, content=b"[" + b" " * (50 << 20) + b"]", headers=device)
        chunked = client.post(path, content=(b" " * (1 << 20) for _ in range(50)), headers=device)
        anonymous = client.post(path, content=b" " * (50 << 20))
    for answer in (declared, chunked, anonymous):
        assert answer.status_code == 413 and f"{settings.max_body_bytes:,} bytes" in answer.json()["detail"]
    rows = wait_for(lambda: (r := _rows(conn, after, "request.too_large")) and len(r) >= 3 and r)
    assert len(rows) == 3
    for _, via, object_, address, ok, detail in rows:
        assert (object_, address, ok, detail["status"]) == ("POST /live/sensors/readings", "127.0.0.1", False, 413)
        assert detail["limit"] == settings.max_body_bytes and via in ("token", "anonymous")
    # refused from the Content-Length (who sent it identified afterwards), or as the body streamed in
    sizes = {(row[0], row[5].get("content_length")): row[5].get("received") for row in rows}
    assert sizes.keys() == {("anonymous", 50 << 20), ("token:test-device", (50 << 20) + 2), ("token:test-device", None)}
    assert settings.max_body_bytes < sizes["token:test-device", None] < (50 << 20)  # counted as it streamed


def test_a_batch_over_the_cap_is_a_refused_row_with_its_reason(http, settings, conn):
    """A 413 the application raises itself (more than CIM_LIVE_BATCH_MAX readings) goes through
    Starlette's handler, not the app's: the body limit's middleware audits it."""
    after = _last_audit_id(conn)
    body = "[" + ",".join(["{}"] * (settings.live_batch_max + 1)) + "]"
    answer = http.post("/live/sensors/readings", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 413
    rows = wait_for(lambda: _rows(conn, after, "refused", "token:test-admin"))
    assert len(rows) == 1
    _, _, object_, _, ok, detail = rows[0]
    assert (object_, ok, detail["status"]) == ("POST /live/sensors/readings", False, 413)
    assert "CIM_LIVE_BATCH_MAX" in detail["reason"]
