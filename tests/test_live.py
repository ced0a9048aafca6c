"""Live readings and tickets with the real broker (the local mosquitto `cim
serve` starts) and PostGIS: MQTT readings arrive and are stored, HTTP batches
are judged record by record and are idempotent, the 10-30-24 stages are right
at their boundaries, old daily partitions are dropped whole."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import signal
import subprocess
import time

import httpx
import pytest

from cim.live.broker import LocalBroker
from cim.live.sla import SlaRule, sla_of
from cim.live.store import Partitions, Reading, Ticket, ensure_live_schema, store_readings
from cim.net import wait_until_healthy
from tests.conftest import CIM
from tests.live_helpers import broker_of, device_client, mqtt_device, wait_for

UTC = dt.UTC
T0 = dt.datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def _iso(t: dt.datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


@pytest.fixture
def sensor_id(conn, server) -> str:
    return conn.execute("SELECT id FROM live.sensor_registry ORDER BY id LIMIT 1").fetchone()[0]


def _serve(env: dict[str, str], port: int, stdout=subprocess.DEVNULL) -> subprocess.Popen:
    """Another `cim serve` (its own data directory in ``env``), healthy."""
    proc = subprocess.Popen([CIM, "serve", "--port", str(port)], env=env, stdout=stdout, stderr=subprocess.STDOUT)
    wait_until_healthy(f"http://127.0.0.1:{port}/healthz", proc)
    return proc


@pytest.fixture(scope="module")
def publisher(server, settings):
    with mqtt_device(server, settings.data_dir, "test-publisher") as client:
        yield client


def test_the_hub_runs_a_local_broker_and_knows_the_sample_sensors(http):
    status = http.get("/live/status").json()
    assert status["mqtt"]["local_broker"] and status["mqtt"]["connected"]
    assert status["mqtt"]["url"].startswith("mqtt://127.0.0.1:")
    assert status["sensors"] == 5_000  # the small sample's sensors layer


def test_an_mqtt_reading_is_stored_and_becomes_the_latest(http, publisher, sensor_id):
    ts = dt.datetime.now(UTC).replace(microsecond=0)
    info = publisher.publish(
        f"cim/sensors/{sensor_id}/reading", json.dumps({"ts": _iso(ts), "value": 0.42, "status": "alarm"}), qos=1
    )
    info.wait_for_publish(10)
    latest = wait_for(lambda: (r := http.get(f"/live/sensors/{sensor_id}").json())["ts"] == _iso(ts) and r)
    assert latest["value"] == 0.42 and latest["status"] == "alarm" and latest["category"]
    history = http.get(
        f"/live/sensors/{sensor_id}/readings",
        params={"since": _iso(ts - dt.timedelta(seconds=1)), "until": _iso(ts + dt.timedelta(seconds=1))},
    )
    assert history.json()["readings"] == [{"ts": ts.isoformat(), "value": 0.42, "status": "alarm"}]


def test_malformed_messages_are_counted_and_never_stop_the_hub(http, publisher, sensor_id):
    before = http.get("/live/status").json()["counters"]["malformed"]
    for payload in (b"not json", b'{"ts": "yesterday", "value": 1}', b'{"ts": "2026-11-22T09:00:00Z", "value": "x"}'):
        publisher.publish(f"cim/sensors/{sensor_id}/reading", payload, qos=1).wait_for_publish(10)
    publisher.publish(
        "cim/sensors/no-such-sensor/reading", json.dumps({"ts": _iso(dt.datetime.now(UTC)), "value": 1}), qos=1
    ).wait_for_publish(10)
    ts = dt.datetime.now(UTC).replace(microsecond=0) + dt.timedelta(seconds=1)
    publisher.publish(
        f"cim/sensors/{sensor_id}/reading", json.dumps({"ts": _iso(ts), "value": 7, "status": "normal"}), qos=1
    ).wait_for_publish(10)
    wait_for(lambda: http.get(f"/live/sensors/{sensor_id}").json()["ts"] == _iso(ts))  # still running
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
    history = http.get(
        f"/live/sensors/{sensor_id}/readings", params={"since": _iso(T0), "until": _iso(T0 + dt.timedelta(minutes=3))}
    ).json()
    assert [r["value"] for r in history["readings"]] == [0, 1, 2]
    assert (
        http.post("/live/sensors/readings", json={"not": "a list"})
        .json()["rejected"][0]["reason"]
        .startswith("the body must be")
    )


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
    assert sla_of(contacted, resolve_due, rule).__dict__ == {
        "stage": "resolve",
        "due_at": resolve_due,
        "overdue": False,
    }
    assert sla_of(contacted, resolve_due + tick, rule).overdue
    on_time = Ticket("t", "12345", "noise", 114.05, 22.54, created, ack_due, contact_due, resolve_due)
    late = Ticket("t", "12345", "noise", 114.05, 22.54, created, ack_due, contact_due, resolve_due + tick)
    assert sla_of(on_time, resolve_due + dt.timedelta(days=9), rule).__dict__ == {
        "stage": "closed",
        "due_at": resolve_due,
        "overdue": False,
    }
    assert sla_of(late, resolve_due, rule).overdue
    # the limits are settings
    assert sla_of(t, created + dt.timedelta(minutes=6), SlaRule(acknowledge=dt.timedelta(minutes=5))).overdue


def test_tickets_are_created_updated_by_id_and_placed_in_their_grid(http, conn):
    now = dt.datetime.now(UTC).replace(microsecond=0)
    ticket = {
        "id": "T-LIVE-1",
        "channel": "12345热线",
        "category": "噪音扰民",
        "lon": 114.0553,
        "lat": 22.5333,
        "created_at": _iso(now - dt.timedelta(minutes=11)),
    }
    first = http.post("/live/tickets", json=ticket).json()
    assert first["created"] and first["sla"]["stage"] == "acknowledge" and first["sla"]["overdue"]
    update = {**ticket, "acknowledged_at": _iso(now - dt.timedelta(minutes=9))}
    second = http.post("/live/tickets", json=update).json()
    assert not second["created"] and second["sla"] == {
        "stage": "contact",
        "due_at": (now + dt.timedelta(minutes=19)).isoformat(),
        "overdue": False,
    }
    # an update that leaves a stage out keeps the stored one
    http.post("/live/tickets", json={**ticket, "contacted_at": _iso(now)})
    stored = http.get("/live/tickets/T-LIVE-1").json()
    assert stored["acknowledged_at"] == _iso(now - dt.timedelta(minutes=9)) and stored["sla"]["stage"] == "resolve"
    assert stored["street"] and stored["grid"]  # 进格入块
    assert conn.execute("SELECT count(*) FROM live.ticket_records WHERE id = 'T-LIVE-1'").fetchone() == (1,)
    bad = http.post("/live/tickets", json={**ticket, "created_at": "2026-11-22 10:00"})
    assert bad.status_code == 400 and "T-LIVE-1" in bad.json()["detail"]
    assert http.get("/live/tickets/NO-SUCH").status_code == 404
    sample = conn.execute("SELECT id FROM live.ticket_records WHERE resolved_at IS NOT NULL LIMIT 1").fetchone()[0]
    assert http.get(f"/live/tickets/{sample}").json()["sla"]["stage"] == "closed"  # the sample's tickets, too
    # the hub's tickets connection dies (as in a database restart): the next ticket is stored all the same
    assert conn.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'cim-live-tickets'"
    ).fetchone() == (1,)
    again = http.post("/live/tickets", json={**ticket, "id": "T-LIVE-2"})
    assert again.status_code == 200 and again.json()["created"]


def test_retention_drops_whole_old_partitions(conn, server):
    ensure_live_schema(conn)
    partitions = Partitions(retention_days=90)
    now = dt.datetime(2026, 11, 22, 12, tzinfo=UTC)
    old = now - dt.timedelta(days=120)
    count, kept = store_readings(
        conn, [Reading("retention-test", old, 1.0, "normal"), Reading("retention-test", now, 2.0, "normal")], partitions
    )
    assert count == len(kept) == 2
    dropped = partitions.drop_expired(conn, now)
    assert f"readings_{old:%Y%m%d}" in dropped and f"readings_{now:%Y%m%d}" not in dropped
    rows = conn.execute("SELECT ts FROM live.readings WHERE sensor_id = 'retention-test'").fetchall()
    assert rows == [(now,)]


# --- push, alarms, snapshot -------------------------------------------------------------------------


def _snapshot(http, **params) -> tuple[dict, dict]:
    """The sensor snapshot decoded: its header, and its columns with the body's size."""
    import struct

    import numpy as np

    body = http.get("/live/snapshot/sensors", params=params).content
    (n,) = struct.unpack_from("<I", body)
    header = json.loads(body[4 : 4 + n])
    data = body[4 + n :]

    def col(name, dtype):
        offset, size = header["columns"][name]
        return np.frombuffer(data[offset : offset + size], dtype)

    offset, size = header["columns"]["ids"]
    ids = data[offset : offset + size].decode().split("\n")
    w, s, e, n_ = header["extent"]
    return header, {
        "ids": ids,
        "lon": w + col("lon", "<u2") / 65535 * (e - w),
        "lat": s + col("lat", "<u2") / 65535 * (n_ - s),
        "value": col("value", "<f4"),
        "code": col("code", "u1"),
        "category": col("category", "u1"),
        "body": body,
    }


def test_the_sensor_snapshot_is_binary_columnar_and_small(http, conn):
    header, cols = _snapshot(http)
    rows = conn.execute("SELECT id, ST_X(geom), ST_Y(geom), category FROM live.sensor_registry ORDER BY id").fetchall()
    assert header["count"] == len(rows) == len(cols["ids"]) == 5_000
    assert cols["ids"] == [r[0] for r in rows]
    lon = [r[1] for r in rows]
    lat = [r[2] for r in rows]
    # 16-bit positions over the district: within a metre
    assert max(abs(a - b) for a, b in zip(cols["lon"], lon)) * 102_000 < 1.0
    assert max(abs(a - b) for a, b in zip(cols["lat"], lat)) * 111_000 < 1.0
    assert [header["categories"][c] for c in cols["category"]] == [r[3] for r in rows]
    # the raw block is ~21 bytes a sensor, ids included; what crosses the network (gzip) under 8: 270,000 in ~2 MB
    assert len(cols["body"]) / 5_000 < 22 and len(gzip.compress(cols["body"], 5)) / 5_000 < 8


def _ws(server: str):
    from websockets.sync.client import connect

    return connect(server.replace("http://", "ws://") + "/live/stream", open_timeout=10)


def _next(ws, predicate, timeout: float = 10.0) -> dict:
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            message = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        except TimeoutError:
            raise AssertionError(f"no such message; got {seen}") from None
        seen.append(message)
        if predicate(message):
            return message


def test_a_published_alarm_reaches_a_subscribed_viewer_and_clears(server, http, conn, publisher):
    sid, lon, lat = conn.execute(
        "SELECT id, ST_X(geom), ST_Y(geom) FROM live.sensor_registry WHERE category = "
        "'smoke_detector' ORDER BY id OFFSET 10 LIMIT 1"
    ).fetchone()
    far = conn.execute(
        "SELECT id FROM live.sensor_registry WHERE ST_Distance(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326)) > 0.02 "
        "ORDER BY id LIMIT 1",
        (lon, lat),
    ).fetchone()[0]
    index = _snapshot(http)[1]["ids"].index(sid)
    with _ws(server) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "hello"
        ws.send(
            json.dumps(
                {
                    "subscribe": {
                        "layers": ["sensors", "alarms"],
                        "bbox": [lon - 0.005, lat - 0.005, lon + 0.005, lat + 0.005],
                    }
                }
            )
        )
        assert json.loads(ws.recv(timeout=5))["type"] == "subscribed"
        ts = dt.datetime.now(UTC).replace(microsecond=0)
        for sensor in (far, sid):
            publisher.publish(
                f"cim/sensors/{sensor}/reading", json.dumps({"ts": _iso(ts), "value": 1, "status": "alarm"}), qos=1
            )
        delta = _next(ws, lambda m: m.get("alarms"))
        assert delta["sensors"]["i"] == [index] and delta["sensors"]["code"] == [2 | 0x80]  # alarm, alarm open
        assert [a["sensor_id"] for a in delta["alarms"]] == [sid] and delta["alarms"][0]["cleared_at"] is None
        publisher.publish(
            f"cim/sensors/{sid}/reading",
            json.dumps({"ts": _iso(ts + dt.timedelta(seconds=1)), "value": 0, "status": "normal"}),
            qos=1,
        )
        cleared = _next(ws, lambda m: m.get("alarms"))
        assert cleared["alarms"][0]["cleared_at"] and cleared["sensors"]["code"] == [1]
    assert http.get("/live/alarms").json()["count"] >= 1  # the far sensor's alarm is open
    assert any(a["sensor_id"] == sid for a in http.get("/live/alarms", params={"since": _iso(ts)}).json()["alarms"])


def test_threshold_and_offline_rules_raise_and_clear(http, conn):
    hydrant = conn.execute(
        "SELECT id, street FROM live.sensor_registry WHERE category = 'hydrant_pressure' ORDER BY id LIMIT 1"
    ).fetchone()
    now = dt.datetime.now(UTC).replace(microsecond=0)

    def open_kinds() -> set[str]:
        return {a["kind"] for a in http.get("/live/alarms").json()["alarms"] if a["sensor_id"] == hydrant[0]}

    http.post(
        "/live/sensors/readings",
        json=[{"sensor_id": hydrant[0], "ts": _iso(now - dt.timedelta(minutes=20)), "value": 0.10, "status": "normal"}],
    )
    assert open_kinds() == {"below", "offline"}  # pressure under 0.15 MPa, and nothing for 20 minutes
    counts = {a["area"]: a for a in http.get("/live/counts", params={"level": "street"}).json()["areas"]}
    assert counts[hydrant[1]]["alarms"] >= 1 and counts[hydrant[1]]["offline"] >= 1
    http.post(
        "/live/sensors/readings", json=[{"sensor_id": hydrant[0], "ts": _iso(now), "value": 0.30, "status": "normal"}]
    )
    assert open_kinds() == set()


# --- faults --------------------------------------------------------------------------------------------


def _stored(conn, sensor: str, since: dt.datetime) -> int:
    return conn.execute(
        "SELECT count(*) FROM live.readings WHERE sensor_id = %s AND ts >= %s", (sensor, since)
    ).fetchone()[0]


def test_a_restarted_broker_is_reconnected_and_queued_readings_arrive(settings, http, conn, publisher):
    sensor = conn.execute(
        "SELECT id FROM live.sensor_registry WHERE category = 'noise' ORDER BY id LIMIT 1"
    ).fetchone()[0]
    start = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(minutes=5)
    conf = LocalBroker(settings.data_dir).home / "mosquitto.conf"
    pid = int(subprocess.run(["pgrep", "-f", f"mosquitto -c {conf}"], capture_output=True, text=True).stdout.split()[0])
    for k in range(20):
        publisher.publish(
            f"cim/sensors/{sensor}/reading",
            json.dumps({"ts": _iso(start + dt.timedelta(seconds=k)), "value": k, "status": "normal"}),
            qos=1,
        )
        if k == 9:
            os.kill(pid, signal.SIGTERM)  # the broker goes away mid-stream; the hub starts it again
    wait_for(lambda: _stored(conn, sensor, start) == 20, timeout=60)
    status = wait_for(lambda: (s := http.get("/live/status").json())["mqtt"]["connected"] and s)
    assert status["mqtt"]["connected"]


def test_a_restarted_server_loses_no_reading(settings, db_url, conn, tmp_path):
    """A second `cim serve` on the same database with its own broker: stopped
    while a device keeps publishing, started again; every reading is stored once."""
    from cim.net import free_port
    from tests.conftest import cli_env

    env = {**cli_env(settings), "CIM_DATA_DIR": str(tmp_path / "second"), "CIM_DATABASE_URL": db_url}
    port = free_port()
    proc = _serve(env, port)
    sensor = conn.execute(
        "SELECT id FROM live.sensor_registry WHERE category = 'air_quality' ORDER BY id LIMIT 1"
    ).fetchone()[0]
    device = device_client(
        broker_of(f"http://127.0.0.1:{port}"), tmp_path / "second", sensor, "test-device", clean_session=False
    )
    device.reconnect_delay_set(0.1, 1)
    start = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(minutes=10)
    try:
        for k in range(40):
            device.publish(
                f"cim/sensors/{sensor}/reading",
                json.dumps({"ts": _iso(start + dt.timedelta(seconds=k)), "value": k, "status": "normal"}),
                qos=1,
            )
            if k == 19:
                proc.terminate()
                proc.wait(timeout=30)
        proc = _serve(env, port)
        wait_for(lambda: _stored(conn, sensor, start) == 40, timeout=60)
    finally:
        device.loop_stop()
        device.disconnect()
        proc.terminate()
        proc.wait(timeout=30)


# --- the viewer -------------------------------------------------------------------------------------------


def _publish_until(stop, publisher, sensor: str, status: str = "alarm", server: str | None = None) -> None:
    """A device that keeps reporting (a new reading every 0.3 s) until told to stop; given a server,
    it starts only once a viewer is connected, so what the viewer shows must come from a live delta."""
    while server and not stop.is_set() and httpx.get(f"{server}/live/status").json()["viewers"] == 0:
        stop.wait(0.2)
    k = 0
    while not stop.is_set():
        ts = dt.datetime.now(UTC) + dt.timedelta(microseconds=k)
        publisher.publish(
            f"cim/sensors/{sensor}/reading", json.dumps({"ts": _iso(ts), "value": 9.5, "status": status}), qos=1
        )
        k += 1
        stop.wait(0.3)


_WAIT_LIVE = """(async () => {
  const until = async (f, ms) => { const end = Date.now() + ms; while (Date.now() < end) { if (f()) return true;
    await new Promise((r) => setTimeout(r, 100)); } return false; };
  await until(() => window.__cimLive.ready && window.__cimLive.connected, 30000);
  %s
})()"""


@pytest.mark.browser
def test_the_viewer_shows_a_published_alarm_without_reload(server, conn, publisher):
    import threading

    from tests.browser import browse

    sid, lon, lat = conn.execute(
        "SELECT id, ST_X(geom), ST_Y(geom) FROM live.sensor_registry "
        "WHERE category = 'gas_detector' ORDER BY id LIMIT 1"
    ).fetchone()
    stop = threading.Event()
    device = threading.Thread(target=_publish_until, args=(stop, publisher, sid, "alarm", server), daemon=True)
    check = (
        _WAIT_LIVE
        % f"""
      const seen = await until(() => window.__cimLive.alarmIds.includes({json.dumps(sid)})
                                     && window.__cimLive.deltas >= 1, 30000);
      const layers = window.cimViewer.deck.props.layers.filter((l) => l.props.visible).map((l) => l.id);
      const alarms = window.cimViewer.deck.props.layers.find((l) => l.id === "live-alarms");
      return {{ seen, layers, alarmCount: alarms ? alarms.props.data.length : 0, live: window.__cimLive,
               status: document.getElementById("live-status").textContent,
               counts: document.querySelectorAll("#counts tbody tr").length }};"""
    )
    device.start()
    try:
        report = browse(f"{server}/viewer#view={lon:.6f},{lat:.6f},16,0,0&layers=sensors,cameras,tickets", eval=check)
    finally:
        stop.set()
        device.join()
    assert report["consoleErrors"] == [] and report["pageErrors"] == [] and report["foreignRequests"] == []
    result = report["eval"]
    assert result["seen"], result["live"]
    assert result["live"]["deltas"] >= 1 and result["live"]["sensors"] == 5_000 and result["live"]["cameras"] == 500
    assert {"live-sensors", "live-alarms", "live-camera-cones", "live-tickets"} <= set(result["layers"])
    assert result["alarmCount"] >= 1 and result["status"] == "实时连接正常" and result["counts"] == 10  # ten streets


@pytest.mark.browser
def test_a_camera_click_plays_its_hls_stream(server, settings):
    """An HLS stream made by Debian's ffmpeg, served for the sample's first camera, played through hls.js."""
    from tests.browser import browse

    folder = settings.streams_dir / "CAM000001"
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=15",
            "-t",
            "6",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "15",
            "-f",
            "hls",
            "-hls_time",
            "2",
            "-hls_list_size",
            "0",
            "-hls_playlist_type",
            "vod",
            str(folder / "index.m3u8"),
        ],
        check=True,
        timeout=120,
    )
    play = (
        _WAIT_LIVE
        % """
      window.cimLive.openCamera("CAM000001");
      const video = document.getElementById("camera-video");
      await until(() => video.currentTime > 1, 20000);
      return { time: video.currentTime, width: video.videoWidth, height: video.videoHeight,
               panel: !document.getElementById("camera").hidden,
               title: document.getElementById("camera-title").textContent,
               playing: window.__cimLive.playing };"""
    )
    report = browse(f"{server}/viewer#layers=cameras", eval=play)
    result = report["eval"]
    assert report["consoleErrors"] == [] and report["foreignRequests"] == []
    assert result["time"] > 1 and (result["width"], result["height"]) == (320, 240) and result["panel"]
    assert result["playing"] == {"id": "CAM000001", "url": "/live/cameras/CAM000001/index.m3u8"}


@pytest.mark.browser
def test_the_viewer_reconnects_after_a_server_restart(settings, db_url, tmp_path):
    import threading

    from cim.net import free_port
    from tests.browser import browse
    from tests.conftest import cli_env

    env = {**cli_env(settings), "CIM_DATA_DIR": str(tmp_path / "third"), "CIM_DATABASE_URL": db_url}
    port = free_port()
    log = tmp_path / "serve.log"
    procs = []

    def start_server() -> None:
        with open(log, "a") as out:
            procs.append(_serve(env, port, stdout=out))

    def restart_once_a_viewer_is_attached() -> None:
        wait_for(lambda: "WebSocket /live/stream" in log.read_text(), timeout=60)
        time.sleep(0.5)
        procs[-1].terminate()
        procs[-1].wait(timeout=30)
        start_server()

    start_server()
    restarter = threading.Thread(target=restart_once_a_viewer_is_attached, daemon=True)
    restarter.start()
    check = (
        _WAIT_LIVE
        % """
      const back = await until(() => window.__cimLive.reconnects >= 1 && window.__cimLive.connected, 60000);
      return { back, live: window.__cimLive, status: document.getElementById("live-status").textContent };"""
    )
    try:
        report = browse(f"http://127.0.0.1:{port}/viewer#layers=sensors", eval=check, timeout_ms=120_000)
    finally:
        restarter.join(timeout=60)
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
    assert report["eval"]["back"], report["eval"]
    assert report["eval"]["status"] == "实时连接正常" and report["eval"]["live"]["sensors"] == 5_000
    assert report["pageErrors"] == []


def test_the_hub_mqtt_session_reads_whole_packets_and_redelivers_what_it_did_not_acknowledge(tmp_path):
    """cim.live.mqtt against a real mosquitto: payloads of 1-, 2- and 3-byte MQTT lengths split across
    reads arrive whole and in order; what is not acknowledged comes again after a reconnection (and an
    acknowledgement with an earlier connection's packet ids is ignored); what is acknowledged does not."""
    from cim.live.broker import LocalBroker, hub_identity
    from cim.live.hub import TOPIC
    from cim.live.mqtt import Subscription

    def read_until(sub: Subscription, count: int, seconds: float = 20, got: list | None = None) -> list:
        got, deadline = got or [], time.monotonic() + seconds
        while len(got) < count and time.monotonic() < deadline:
            got += sub.read(0.1)
        return got

    def session() -> tuple[Subscription, list]:
        """Connected and subscribed, with what the broker sent meanwhile (a kept session's queue
        comes before the SUBACK)."""
        sub = Subscription(
            address.host,
            address.port,
            hub.client_id,
            TOPIC,
            keepalive=5,
            min_delay=0.05,
            username=address.username,
            password=address.password,
        )
        early, deadline = [], time.monotonic() + 10
        while not sub.subscribed and time.monotonic() < deadline:
            early += sub.read(0.1)
        assert sub.subscribed
        return sub, early

    broker = LocalBroker(tmp_path)
    address = broker.start()
    hub = hub_identity(tmp_path)
    device = device_client(address, tmp_path, "S-1", "test-device-2")
    topic = "cim/sensors/S-1/reading"
    try:
        sub, early = session()
        assert early == []
        payloads = [(f"{i}:" + "x" * (7, 300, 20_000)[i % 3]).encode() for i in range(600)]
        for p in payloads:
            device.publish(topic, p, qos=1).wait_for_publish(10)
        device.publish(topic, b"zero", qos=0).wait_for_publish(10)
        got = read_until(sub, 601)
        assert [m.payload for m in got[:600]] == payloads and {m.topic for m in got} == {topic}
        assert got[600].payload == b"zero" and got[600].packet_id == 0
        assert all(m.packet_id and m.connection == 1 for m in got[:600])
        assert sub.ack(1, [m.packet_id for m in got[:300]])
        assert sub.read(0.3) == []  # the reader sends the queued PUBACKs
        time.sleep(0.2)

        sub._sock.shutdown(2)  # the connection drops: the 300 unacknowledged come again on connection 2
        again = read_until(sub, 300)
        assert sub.connection == 2 and [m.payload for m in again] == payloads[300:]
        assert not sub.ack(1, [m.packet_id for m in got[300:]])  # connection 1's ids mean nothing now
        sub.close()

        sub, early = session()  # a new process, the same session: the 300 are still not acknowledged
        again = read_until(sub, 300, got=early)
        assert [m.payload for m in again] == payloads[300:]
        assert sub.ack(sub.connection, [m.packet_id for m in again])
        time.sleep(0.3)
        sub.close()
        sub, early = session()
        assert read_until(sub, 1, seconds=1.5, got=early) == []  # nothing left
        sub.close()
    finally:
        device.loop_stop()
        broker.stop()
