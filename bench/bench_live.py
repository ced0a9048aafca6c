"""Live hub under load: MQTT readings for the full Futian sample (270,000
sensors) stored in PostGIS and pushed to WebSocket viewers, beside the bare
broker (the same Debian mosquitto, same config) delivering to a paho
subscriber that does nothing, in the same run.

    .venv/bin/python -m bench.bench_live [--seconds 30] [--rate 6000] [--viewers 20] [--publishers 2]

Set-up: the bench database gets the grid layers and the 270,000 sensors of
the full sample if it lacks them; `cim serve` runs on a free port (log in
bench/out/bench_live-serve.log). The broker's persisted queue of an earlier
run (bench/out/cim/mqtt/mosquitto.db) is removed first, so that nothing old
is replayed into the measurement.

Snapshot: GET /live/snapshot/sensors, median of 5, raw and gzip.

Ours: --publishers processes (MQTT 3.1.1 on a bare socket, QoS 1: they stand
for devices on other machines, so they should cost the server's cores little)
publish readings to random sensors at up to --rate in total for --seconds, each
with at most 200 readings not yet acknowledged by the broker (beyond that it
waits: nothing is queued in the publisher, so "published/s" is what the broker
acknowledged in the window and a reading's publish time is close to its time
on the wire). Sensors are
split between the publishers and each publisher's timestamps strictly increase
(µs), so every (sensor, ts) is new. Only sensors of categories without a
below/above threshold rule are used, since the value carries the publish time:
value = seconds since the run's start, 4 decimals (the hub keeps values as
float32: the raw epoch would lose ~2 minutes of precision). --viewers
WebSocket clients (one asyncio process) subscribe to everything; on every
delta each notes the arrival time and the sensor indices, and latency =
arrival - publish time for each (sensor, value) it receives that was
published (readings coalesced away are not seen, by design). After
publishing, the hub is given time to drain (counters.stored reaches what the
broker acknowledged, or no progress for 10 s, or --drain-timeout). Stored/s =
the rise of counters.stored over the publish window; cross-checked with
count(*) of live.readings received since the start. A timeline every 5 s shows
where readings wait: in the publishers (published - acked), in the broker
(acked - hub received) or in the hub's queue. CPU and peak RSS: the process
tree of `cim serve` (with its mosquitto), sampled from /proc every 0.25 s;
PostgreSQL's separately; the publishers' and the viewers' own.

Peer: a fresh mosquitto (cim.live.broker.LocalBroker in a temporary
directory) and one paho subscriber (QoS 1, acks at once, counts) receive the
same publishers at the same rate for the same time.

Goals (issue 6): >= 5,000 readings/s stored sustained, viewer p99 <= 1 s,
snapshot <= 5 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import select
import socket
import statistics
import struct
import subprocess
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import psycopg
import websockets

from bench.common import OUT, VENV_BIN, bench_settings, full_sample, process_stats, process_tree
from cim.config import Settings
from cim.db import database_url
from cim.live.broker import LocalBroker, MqttAddress, add_device
from cim.live.mqtt import remaining_length
from cim.net import free_port, wait_until_healthy

SENSORS = 270_000
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# --- set-up -------------------------------------------------------------------------------------------


def ensure_sample(settings: Settings) -> None:
    """The grid layers and the full sample's sensors in the bench database."""
    from cim.demo import SAMPLE_LAYERS
    from import_scripts.layer import LayerImporter, LayerOptions

    with psycopg.connect(database_url(settings), autocommit=True) as conn:
        row = None
        if conn.execute("SELECT to_regclass('cim.layers')").fetchone()[0]:
            row = conn.execute("SELECT feature_count FROM cim.layers WHERE name = 'sensors'").fetchone()
    if row and row[0] == SENSORS:
        return
    folder = full_sample()
    for layer in SAMPLE_LAYERS:
        if layer.name in ("streets", "communities", "grids", "sensors"):
            options = LayerOptions(title=layer.title, grid_join=layer.grid_join)
            report = LayerImporter(settings, folder / f"{layer.name}.gpkg", layer.name, options).run()
            print(f"imported {layer.name}: {report.feature_count:,} in {report.seconds:.1f} s", flush=True)


def get(url: str, headers: dict[str, str] | None = None) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=60) as r:
        return r.read()


def status(base: str) -> dict:
    return json.loads(get(f"{base}/live/status"))


# --- the process trees: CPU and RSS from /proc ----------------------------------------------------------


@dataclass
class Tree:
    root: int
    base: dict[int, int] = field(default_factory=dict)  # CPU ticks per pid at the window's start
    last: dict[int, int] = field(default_factory=dict)
    peak_rss: int = 0  # bytes, sum over the tree

    def cpu_s(self) -> float:
        return sum(t - self.base.get(pid, 0) for pid, t in self.last.items()) / CLK_TCK


class Sampler(threading.Thread):
    def __init__(self, trees: list[Tree], every: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.trees, self.every, self.done = trees, every, threading.Event()

    def sample(self) -> None:
        stats = process_stats()
        for tree in self.trees:
            rss = 0
            for pid in process_tree(tree.root, stats):
                f = stats[pid]
                tree.last[pid] = int(f[11]) + int(f[12])  # utime + stime
                rss += int(f[21]) * PAGE
            tree.peak_rss = max(tree.peak_rss, rss)

    def start_window(self) -> None:
        self.sample()
        for tree in self.trees:
            tree.base, tree.peak_rss = dict(tree.last), 0

    def run(self) -> None:
        while not self.done.wait(self.every):
            self.sample()


# --- publishers ------------------------------------------------------------------------------------------

WINDOW = 200  # unacknowledged readings per publisher: beyond it the publisher waits, so value ~ time on the wire


@dataclass
class Published:
    sent: int
    acked: int
    cpu_s: float
    keys: np.ndarray  # sensor index * 1e8 + value * 1e4: what a viewer may legitimately see


@dataclass
class Live:
    """The publishers' progress, readable while they run."""

    start: float = 0.0  # epoch: the window's start, once every publisher is connected
    calls: list = field(default_factory=list)  # a shared counter per publisher
    acks: list = field(default_factory=list)

    def counts(self) -> tuple[int, int]:
        return sum(v.value for v in self.calls), sum(v.value for v in self.acks)


def publisher(
    address: tuple[str, int, str, str],
    ids: list[str],
    index: np.ndarray,
    t0: float,
    go,
    start,
    calls,
    acks,
    seconds: float,
    rate: float,
    seed: int,
    out: mp.Queue,
) -> None:
    """Publish QoS 1 readings to random sensors of ``ids`` at up to ``rate`` for ``seconds`` from
    ``start`` (set by the parent once every publisher is connected), at most WINDOW unacknowledged.

    MQTT 3.1.1 written on a bare socket rather than through paho: the publishers stand for 270,000
    devices on other machines, and paho's per-message work (a third of a core at 5,000/s) would take
    the CPU from the server being measured. A QoS 1 PUBLISH is a few fixed bytes; the broker's
    PUBACKs are 4 bytes each, so counting them is counting bytes. ``address``: host, port, and the
    bench's publisher user and password (:func:`publisher_credentials`)."""
    sock = socket.create_connection(address[:2])
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client_id, user, password = f"bench-live-pub-{os.getpid()}".encode(), address[2].encode(), address[3].encode()
    body = (  # clean, user name and password, no keepalive
        b"\x00\x04MQTT\x04\xc2\x00\x00" + b"".join(struct.pack(">H", len(b)) + b for b in (client_id, user, password))
    )
    sock.sendall(b"\x10" + remaining_length(len(body)) + body)
    connack = sock.recv(4)
    assert connack[:1] == b"\x20" and connack[3:4] == b"\x00", connack
    topics = [struct.pack(">H", len(t)) + t for t in (f"cim/sensors/{sid}/reading".encode() for sid in ids)]
    picks = np.random.default_rng(seed).integers(0, len(ids), int(rate * seconds * 1.1) + 100).tolist()
    keys: list[int] = []
    sent, acked, last_us = 0, 0, 0
    ack_bytes = 0

    def read_acks(wait: float) -> int:
        """The PUBACKs so far (4 bytes each), after waiting up to ``wait`` for more."""
        nonlocal ack_bytes
        if select.select([sock], [], [], wait)[0]:
            ack_bytes += len(sock.recv(1 << 16))
            acks.value = ack_bytes // 4
        return ack_bytes // 4

    out.put("ready")
    go.wait()
    start_at = start.value
    time.sleep(max(0.0, start_at - time.time()))
    cpu0 = time.process_time()
    sock.setblocking(False)
    while True:
        now = time.time()
        if now >= start_at + seconds or sent >= len(picks):
            break
        due = min(int((now - start_at) * rate) + 1, len(picks))
        packets = []
        while sent < due and sent - acked < WINDOW:
            last_us = max(int(now * 1e6), last_us + 1)
            sec, us = divmod(last_us, 1_000_000)
            value = round(now - t0, 4)
            k = picks[sent]
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
            payload = f'{{"ts":"{ts}.{us:06d}Z","value":{value:.4f},"status":"normal"}}'.encode()
            topic = topics[k]
            packets += (
                b"\x32",
                remaining_length(len(topic) + 2 + len(payload)),
                topic,
                struct.pack(">H", sent % 65535 + 1),
                payload,
            )
            keys.append(int(index[k]) * 100_000_000 + round(value * 10_000))
            sent += 1
        if packets:
            sock.setblocking(True)
            sock.sendall(b"".join(packets))
            sock.setblocking(False)
            calls.value = sent
        acked = read_acks(0.002)
    cpu = time.process_time() - cpu0
    deadline = time.monotonic() + 60
    while acked < sent and time.monotonic() < deadline:
        acked = read_acks(0.05)
    sock.sendall(b"\xe0\x00")  # DISCONNECT
    sock.close()
    out.put(Published(sent, acked, cpu, np.array(keys, np.int64)))


def publisher_credentials(data_dir: Path) -> tuple[str, str]:
    """The bench's publisher user: its processes stand for thousands of devices, each of which may
    publish only to its own topic, so this user (bench only: it is in the bench's data directory, never
    a deployment's) may write every sensor's topic, through the broker's ``mqtt/acl.local``. Made
    before the broker starts (it reads acl.local then)."""
    user = "bench-publisher"
    (data_dir / "mqtt").mkdir(parents=True, exist_ok=True)
    (data_dir / "mqtt" / "acl.local").write_text(f"user {user}\ntopic write cim/sensors/+/reading\n")
    return user, add_device(data_dir, user)


def run_publishers(
    address: tuple[str, int, str, str], ids: list[str], t0: float, seconds: float, rate: float, k: int, live: Live
) -> list[Published]:
    """``k`` publisher processes (value = publish time - ``t0``), progress in ``live``."""
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    go, start = ctx.Event(), ctx.Value("d", 0.0)
    live.calls = [ctx.Value("q", 0, lock=False) for _ in range(k)]
    live.acks = [ctx.Value("q", 0, lock=False) for _ in range(k)]
    procs = [
        ctx.Process(
            target=publisher,
            args=(
                address,
                ids[j::k],
                np.arange(len(ids))[j::k],
                t0,
                go,
                start,
                live.calls[j],
                live.acks[j],
                seconds,
                rate / k,
                1000 + j,
                out,
            ),
        )
        for j in range(k)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        assert out.get(timeout=120) == "ready"
    start.value = live.start = time.time() + 0.5
    go.set()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return results


# --- viewers ---------------------------------------------------------------------------------------------


@dataclass
class Viewer:
    deltas: list[tuple[float, list[int], list[float | None]]] = field(default_factory=list)
    closed: str | None = None


async def viewer(url: str, v: Viewer, ready: asyncio.Event, stop: asyncio.Event) -> None:
    try:
        async with websockets.connect(url, max_size=None, open_timeout=30) as ws:
            assert json.loads(await ws.recv())["type"] == "hello"
            await ws.send(json.dumps({"subscribe": {}}))
            assert json.loads(await ws.recv())["type"] == "subscribed"
            ready.set()
            while not stop.is_set():
                try:
                    text = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                arrival = time.time()
                m = json.loads(text)
                if m.get("type") == "delta" and "sensors" in m:
                    v.deltas.append((arrival, m["sensors"]["i"], m["sensors"]["value"]))
    except Exception as exc:
        v.closed = repr(exc)


def latencies(viewers: list[Viewer], published: np.ndarray, t0: float) -> tuple[np.ndarray, float]:
    """Latency of every (sensor, value) seen that was published in this run, and the share of the
    published sensors each viewer saw (mean)."""
    pub_sensors = np.unique(published // 100_000_000)
    out, coverage = [], []
    for v in viewers:
        if not v.deltas:
            coverage.append(0.0)
            continue
        arrival = np.concatenate([np.full(len(i), a) for a, i, _ in v.deltas])
        idx = np.concatenate([np.asarray(i, np.int64) for _, i, _ in v.deltas])
        val = np.concatenate([np.asarray([np.nan if x is None else x for x in vals], float) for _, _, vals in v.deltas])
        ok = ~np.isnan(val)
        keys = idx[ok] * 100_000_000 + np.rint(val[ok] * 10_000).astype(np.int64)
        mine = np.isin(keys, published)
        out.append(arrival[ok][mine] - (t0 + val[ok][mine]))
        coverage.append(np.isin(pub_sensors, idx).mean())
    return (np.concatenate(out) if out else np.array([])), (float(np.mean(coverage)) if coverage else float("nan"))


# --- the peer: mosquitto alone --------------------------------------------------------------------------


def peer(ids: list[str], seconds: float, rate: float, k: int) -> dict[str, float]:
    """The bare broker: published/s (broker-acked in the window), delivered/s in the window, totals, tail."""
    with tempfile.TemporaryDirectory(prefix="bench-live-peer-") as tmp:
        broker = LocalBroker(Path(tmp))
        credentials = publisher_credentials(Path(tmp))
        address = broker.start()
        got = [0, 0.0]  # delivered, last arrival
        live = Live()

        def on_message(c, userdata, message) -> None:
            got[0] += 1
            got[1] = time.time()

        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-live-bare")
        sub.username_pw_set(address.username, address.password)  # the hub's user: it may read every reading
        sub.on_message = on_message
        sub.connect(address.host, address.port)
        sub.subscribe("cim/sensors/+/reading", qos=1)
        sub.loop_start()
        time.sleep(0.5)
        result: list[list[Published]] = []
        thread = threading.Thread(
            target=lambda: result.append(
                run_publishers((address.host, address.port, *credentials), ids, time.time(), seconds, rate, k, live)
            )
        )
        thread.start()
        while not live.start:
            time.sleep(0.01)
        time.sleep(max(0.0, live.start + seconds - time.time()))
        in_window, (_, acked_window) = got[0], live.counts()
        thread.join()
        acked = sum(p.acked for p in result[0])
        deadline = time.monotonic() + 60
        while got[0] < acked and time.monotonic() < deadline:
            time.sleep(0.05)
        sub.loop_stop()
        sub.disconnect()
        broker.stop()
    return {
        "published_s": acked_window / seconds,
        "delivered_s": in_window / seconds,
        "delivered": got[0],
        "acked": acked,
        "tail_s": max(0.0, got[1] - (live.start + seconds)),
        "pub_cpu_pct": sum(p.cpu_s for p in result[0]) / seconds * 100,
    }


# --- ours ------------------------------------------------------------------------------------------------


def snapshot(base: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, headers in (("raw", {}), ("gzip", {"Accept-Encoding": "gzip"})):
        times = []
        for _ in range(5):
            t = time.perf_counter()
            body = get(f"{base}/live/snapshot/sensors", headers)
            times.append(time.perf_counter() - t)
        out[f"{name}_kb"], out[f"{name}_ms"] = len(body) / 1024, statistics.median(times) * 1000
        if name == "raw":
            (n,) = struct.unpack_from("<I", body)
            out["count"] = json.loads(body[4 : 4 + n])["count"]
    return out


def usable_sensors(base: str, url: str) -> tuple[list[str], np.ndarray]:
    """Ids in snapshot order, and the indices of those whose category has no below/above rule."""
    body = get(f"{base}/live/snapshot/sensors")
    (n,) = struct.unpack_from("<I", body)
    header, data = json.loads(body[4 : 4 + n]), body[4 + n :]
    off, size = header["columns"]["ids"]
    ids = data[off : off + size].decode().split("\n")
    off, size = header["columns"]["category"]
    category = np.frombuffer(data[off : off + size], np.uint8)
    with psycopg.connect(url) as conn:
        ruled = {
            r[0] for r in conn.execute("SELECT DISTINCT category FROM live.rules WHERE kind IN ('below', 'above')")
        }
    if "*" in ruled:
        raise SystemExit("a below/above rule applies to every category: the value cannot carry the publish time")
    bad = [i for i, c in enumerate(header["categories"]) if c in ruled]
    return ids, np.flatnonzero(~np.isin(category, bad))


async def ours(
    base: str,
    url: str,
    ids: list[str],
    usable: np.ndarray,
    args: argparse.Namespace,
    sampler: Sampler,
    trees: list[Tree],
    credentials: tuple[str, str],
) -> dict[str, float]:
    broker = MqttAddress.parse(status(base)["mqtt"]["url"])
    stop, views = asyncio.Event(), [Viewer() for _ in range(args.viewers)]
    readies = [asyncio.Event() for _ in views]
    tasks = [
        asyncio.create_task(viewer(base.replace("http://", "ws://") + "/live/stream", v, r, stop))
        for v, r in zip(views, readies)
    ]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
    s0 = status(base)
    with psycopg.connect(url) as conn:
        db_start = conn.execute("SELECT now()").fetchone()[0]
    sampler.start_window()
    t0, live, cpu0 = time.time(), Live(), time.process_time()
    sub_ids = [ids[i] for i in usable]
    publishing = asyncio.create_task(
        asyncio.to_thread(
            run_publishers,
            (broker.host, broker.port, *credentials),
            sub_ids,
            t0,
            args.seconds,
            args.rate,
            args.publishers,
            live,
        )
    )
    timeline: list[tuple[float, dict, tuple[int, int]]] = []  # /live/status and the publishers', every 0.25 s
    while not publishing.done():
        timeline.append((time.time(), await asyncio.to_thread(status, base), live.counts()))
        await asyncio.sleep(0.25)
    pubs = publishing.result()
    window_end = live.start + args.seconds
    for p in pubs:  # indices into sub_ids -> snapshot indices in the keys
        p.keys = usable[p.keys // 100_000_000] * 100_000_000 + p.keys % 100_000_000
    acked, stored0 = sum(p.acked for p in pubs), s0["counters"]["stored"]
    last, last_change = timeline[-1][1]["counters"]["stored"], time.time()
    while True:
        s = await asyncio.to_thread(status, base)
        timeline.append((time.time(), s, live.counts()))
        if s["counters"]["stored"] != last:
            last, last_change = s["counters"]["stored"], time.time()
        done = last - stored0 >= acked and s["queued"] == 0
        if done or time.time() - last_change > 10 or time.time() - window_end > args.drain_timeout:
            break
        await asyncio.sleep(0.25)
    drained_at = (
        next(
            (t for t, st, _ in timeline if st["counters"]["stored"] - stored0 >= acked and st["queued"] == 0),
            time.time(),
        )
        if done
        else time.time()
    )
    await asyncio.sleep(1.0)  # the last push
    sampler.sample()
    stop.set()
    await asyncio.gather(*tasks)
    bench_cpu = time.process_time() - cpu0
    _, s1, (_, acked_window) = [row for row in timeline if row[0] <= window_end][-1]  # the end of the window
    print("  t s   published  broker-acked  hub received    stored  hub queue   (since the start of publishing)")
    next_t = live.start
    for t, st, (calls, acks) in timeline:
        if t >= next_t:
            received = st["counters"]["received"] - s0["counters"]["received"]
            print(
                f"{t - live.start:5.0f}{calls:>12,}{acks:>14,}{received:>14,}"
                f"{st['counters']['stored'] - stored0:>10,}{st['queued']:>11,}"
            )
            next_t += 5.0
    with psycopg.connect(url) as conn:
        in_db = conn.execute("SELECT count(*) FROM live.readings WHERE received_at >= %s", (db_start,)).fetchone()[0]
    lat, coverage = latencies(views, np.concatenate([p.keys for p in pubs]), t0)
    busy, span = drained_at - live.start, time.time() - t0
    c0, c1, c2 = s0["counters"], s1["counters"], s["counters"]
    server, db = trees

    def pct(q: float) -> float:
        return float(np.percentile(lat, q) * 1000) if len(lat) else float("nan")

    return {
        "published_s": acked_window / args.seconds,
        "acked": acked,
        "received_window_s": (c1["received"] - c0["received"]) / args.seconds,
        "stored_window_s": (c1["stored"] - c0["stored"]) / args.seconds,
        "stored_total": c2["stored"] - c0["stored"],
        "stored_overall_s": (c2["stored"] - c0["stored"]) / busy,
        "in_db": in_db,
        "duplicates": c2["duplicates"] - c0["duplicates"],
        "malformed": c2["malformed"] - c0["malformed"],
        "drained": float(done),
        "drain_s": max(0.0, drained_at - window_end),
        "queued_end_window": s1["queued"],
        "peak_queued": max(st["queued"] for _, st, _ in timeline),
        "pending": acked - (c2["stored"] - c0["stored"]),
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "max_ms": pct(100),
        "samples": len(lat),
        "coverage": coverage,
        "deltas": sum(len(v.deltas) for v in views) / max(1, len(views)),
        "dropped_viewers": sum(v.closed is not None for v in views),
        "cpu_pct": server.cpu_s() / span * 100,
        "rss_mb": server.peak_rss / 2**20,
        "db_cpu_pct": db.cpu_s() / span * 100,
        "db_rss_mb": db.peak_rss / 2**20,
        "pub_cpu_pct": sum(p.cpu_s for p in pubs) / args.seconds * 100,
        "bench_cpu_pct": bench_cpu / span * 100,
        "span_s": span,
    }


def postmaster(settings: Settings) -> int | None:
    pid_file = settings.data_dir / "pg" / "data" / "postmaster.pid"
    return None if settings.database_url or not pid_file.exists() else int(pid_file.read_text().split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=6000.0, help="readings/s, all publishers together")
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--publishers", type=int, default=2, help="publisher processes")
    parser.add_argument("--drain-timeout", type=float, default=120.0, help="s to wait for the hub after publishing")
    args = parser.parse_args()
    settings = bench_settings()
    url = database_url(settings)
    ensure_sample(settings)
    (LocalBroker(settings.data_dir).home / "mosquitto.db").unlink(missing_ok=True)  # an earlier run's undelivered queue
    credentials = publisher_credentials(settings.data_dir)  # before the broker starts
    env = dict(os.environ, CIM_DATA_DIR=str(settings.data_dir), CIM_ANONYMOUS_READ="true")  # viewers not signed in
    if settings.database_url:
        env["CIM_DATABASE_URL"] = settings.database_url
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = OUT / "bench_live-serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(VENV_BIN / "cim"), "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        t = time.perf_counter()
        wait_until_healthy(f"{base}/healthz", proc, timeout=300)
        st = status(base)
        print(
            f"cim serve up in {time.perf_counter() - t:.1f} s on {base}; broker {st['mqtt']['url']}, "
            f"{st['sensors']:,} sensors; log {log_path}",
            flush=True,
        )
        snap = snapshot(base)
        ids, usable = usable_sensors(base, url)
        print(
            f"publishing to {len(usable):,} of {len(ids):,} sensors (categories without a threshold rule)", flush=True
        )
        trees = [Tree(proc.pid)] + ([Tree(pm)] if (pm := postmaster(settings)) else [Tree(-1)])
        sampler = Sampler(trees)
        sampler.start()
        r = asyncio.run(ours(base, url, ids, usable, args, sampler, trees, credentials))
        sampler.done.set()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    pr = peer([ids[i] for i in usable], args.seconds, args.rate, args.publishers)

    def goal(ok: bool, measured: bool = True) -> str:
        return "n/a" if not measured else "met" if ok else "NOT met"

    rows = [
        ("target rate /s", f"{args.rate:,.0f}", f"{args.rate:,.0f}", ""),
        ("published /s (broker-acked in the window)", f"{r['published_s']:,.0f}", f"{pr['published_s']:,.0f}", ""),
        ("acknowledged by the broker, total", f"{r['acked']:,}", f"{pr['acked']:,}", ""),
        ("publishers' CPU % of a core (sum)", f"{r['pub_cpu_pct']:.0f}", f"{pr['pub_cpu_pct']:.0f}", ""),
        ("hub received /s (window)", f"{r['received_window_s']:,.0f}", "", ""),
        (
            "stored /s (window) | delivered /s",
            f"{r['stored_window_s']:,.0f}",
            f"{pr['delivered_s']:,.0f}",
            f">= 5,000: {goal(r['stored_window_s'] >= 5000)}",
        ),
        ("stored /s incl. drain", f"{r['stored_overall_s']:,.0f}", "", ""),
        (
            "stored total | in live.readings | delivered",
            f"{r['stored_total']:,} | {r['in_db']:,}",
            f"{pr['delivered']:,}",
            "",
        ),
        ("duplicates | malformed", f"{r['duplicates']:,} | {r['malformed']:,}", "", ""),
        (
            "drain s after the window",
            f"{r['drain_s']:.1f}" + ("" if r["drained"] else " (not drained)"),
            f"{pr['tail_s']:.1f}",
            "",
        ),
        ("pending at the end", f"{r['pending']:,}", f"{pr['acked'] - pr['delivered']:,}", ""),
        ("hub queue: end of window | peak", f"{r['queued_end_window']:,} | {r['peak_queued']:,}", "", ""),
        (
            "latency p50 / p99 / max ms",
            f"{r['p50_ms']:,.0f} / {r['p99_ms']:,.0f} / {r['max_ms']:,.0f}",
            "",
            f"p99 <= 1,000: {goal(r['p99_ms'] <= 1000, r['samples'] > 0)}",
        ),
        ("latency samples | published sensors seen", f"{r['samples']:,} | {r['coverage']:.1%}", "", ""),
        ("deltas per viewer | viewers dropped", f"{r['deltas']:,.0f} | {r['dropped_viewers']}", "", ""),
        ("server CPU % of a core (cim+mosquitto)", f"{r['cpu_pct']:.0f}", "", ""),
        ("server peak RSS MB", f"{r['rss_mb']:.0f}", "", ""),
        ("PostgreSQL CPU % | peak RSS MB", f"{r['db_cpu_pct']:.0f} | {r['db_rss_mb']:.0f}", "", ""),
        (f"viewers' process CPU % ({args.viewers} ws + polling)", f"{r['bench_cpu_pct']:.0f}", "", ""),
        (
            f"snapshot raw KB / ms ({snap['count']:,.0f} sensors)",
            f"{snap['raw_kb']:,.0f} / {snap['raw_ms']:.0f}",
            "",
            "",
        ),
        (
            "snapshot gzip KB / ms",
            f"{snap['gzip_kb']:,.0f} / {snap['gzip_ms']:.0f}",
            "",
            f"<= 5 MB: {goal(snap['gzip_kb'] <= 5 * 1024)}",
        ),
    ]
    print(
        f"\n{args.seconds:g} s at {args.rate:,.0f}/s, {args.publishers} publishers, {args.viewers} viewers; "
        f"server CPU over {r['span_s']:.0f} s (publisher start-up, window, drain)\n"
    )
    print(f"{'':<46}{'ours':>22}{'bare mosquitto':>16}  goal")
    for name, a, b, g in rows:
        print(f"{name:<46}{a:>22}{b:>16}  {g}")


if __name__ == "__main__":
    main()
