"""Per-request CPU time of vector tiles, in-process: what the middlewares and the access
check cost each tile, measured without the noise of wall-clock throughput.

The app (``create_app`` over the bench database) is called directly as an ASGI app, one
request at a time, on bench_mvt's tiles (z12-z16 over Futian, layers buildings, sensors,
grids, parcels; ``--tiles`` of them, spread over all), each request with a viewer's API
token. After a warm-up pass (catalogue, token cache, PostgreSQL's cache), each variant is
timed in two modes:

- ``304``: the request sends the tile's current ETag, so no tile query runs: the
  time is the framework's, the middlewares', the dependencies' and the access check's;
- ``tile``: the full request, the tile query included (the database server's time is
  not counted: CPU time is this process's).

Variants: ``full`` (the app as served), the app without the access dependency
(``-authorize``), without each middleware (``-BodyLimit``...), without any of them
(``bare``). CPU time is ``time.process_time``, taken around each request; the variants'
passes are interleaved, and ``each`` (the figure to compare) is the mean over the requests
of each request's fastest pass: the machine's other work only ever adds time, and rarely
to the same request in every pass. ``pass`` and ``median`` are whole passes' means.

    .venv/bin/python bench/profile_tiles.py [--modes 304,tile] [--repeat 10] [--tiles 400]
    .venv/bin/python bench/profile_tiles.py --modes 304 --profile full --cpu-timer  # cProfile

The commit before auth, in a worktree (only ``full`` exists there), on the same database::

    git worktree add /tmp/before 391e20f
    CIM_BENCH_DATA_DIR=$PWD/bench/out/cim PYTHONPATH=/tmp/before .venv/bin/python bench/profile_tiles.py

(run as a script, not with ``-m``, so that ``PYTHONPATH`` decides which ``cim`` is imported).
Needs bench.bench_import's data (``CIM_BENCH_DATA_DIR``, default bench/out/cim); makes sure
of the schemas as ``cim serve`` does when it starts, and adds (then revokes) a token.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import importlib.util
import math
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Any

from psycopg_pool import AsyncConnectionPool

import cim
import cim.server.app as app_module
from cim.config import Settings
from cim.db import connect, database_url

HERE = Path(__file__).resolve().parent
FUTIAN = (113.985, 22.502, 114.101, 22.591)
CAP = 50_000
HOST = b"127.0.0.1:8000"
HAS_AUTH = importlib.util.find_spec("cim.server.access") is not None


def tiles(z: int) -> list[tuple[int, int, int]]:
    """bench_mvt's tiles of Futian at zoom z."""
    n = 2**z

    def xy(lon: float, lat: float) -> tuple[int, int]:
        return (int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n))

    x0, y1 = xy(FUTIAN[0], FUTIAN[1])
    x1, y0 = xy(FUTIAN[2], FUTIAN[3])
    return [(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]


def settings() -> Settings:
    data_dir = Path(os.environ.get("CIM_BENCH_DATA_DIR", HERE / "out" / "cim")).resolve()
    url = os.environ.get("CIM_BENCH_DATABASE_URL") or None
    if url is None and not (data_dir / "pg").is_dir():  # no new cluster made by a mistyped path
        raise SystemExit(f"no bench cluster in {data_dir}: run bench.bench_import, or set CIM_BENCH_DATA_DIR")
    # as bench_mvt serves: anonymous reads on, the same feature cap
    return Settings(data_dir=data_dir, database_url=url, anonymous_read=True, mvt_feature_limit=CAP)


def ensure_schemas(s: Settings) -> None:
    """What ``cim serve`` makes sure of when it starts (its lifespan, not run here): the catalogue's
    and, with auth, the auth schema's tables and columns (a bench database of an older commit)."""
    from layers.schema import ensure_schema

    with connect(s, autocommit=True) as conn:
        ensure_schema(conn)
        if HAS_AUTH:
            from cim.auth.store import ensure_auth_schema

            ensure_auth_schema(conn)


def make_token(s: Settings) -> tuple[str, int | None]:
    """A viewer's API token in the bench database (revoked at the end); none before auth."""
    if not HAS_AUTH:
        return "cim_none", None
    from cim.auth.store import create_token

    with connect(s, autocommit=True) as conn:
        token = create_token(conn, "bench-profile", ["viewer"], "bench")
    return token.secret, token.id


def revoke(s: Settings, token_id: int | None) -> None:
    if token_id is not None:
        from cim.auth.store import revoke_token

        with connect(s, autocommit=True) as conn:
            revoke_token(conn, token_id)


def build(s: Settings, without: set[str]) -> Any:
    """``create_app(s)`` without the middlewares named in ``without`` (class names) and, with
    ``authorize`` in it, without the app-wide access dependency."""
    real = app_module.FastAPI

    class NoAppDependencies(real):  # type: ignore[misc, valid-type]
        def __init__(self, **kwargs: Any) -> None:
            kwargs.pop("dependencies", None)
            super().__init__(**kwargs)

    if "authorize" in without:
        app_module.FastAPI = NoAppDependencies  # type: ignore[misc]
    try:
        app = app_module.create_app(s)
    finally:
        app_module.FastAPI = real  # type: ignore[misc]
    app.user_middleware[:] = [m for m in app.user_middleware if m.cls.__name__ not in without]
    return app


def middlewares(s: Settings) -> list[str]:
    return [m.cls.__name__ for m in app_module.create_app(s).user_middleware]


class Client:
    """Requests sent straight to an ASGI app, as uvicorn would (one at a time)."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.base_headers = [
            (b"host", HOST),
            (b"user-agent", b"python-httpx/0.28.1"),
            (b"accept", b"*/*"),
            (b"accept-encoding", b"gzip, deflate"),
            (b"connection", b"keep-alive"),
            (b"authorization", f"Bearer {token}".encode()),
        ]

    async def get(self, path: str, etag: bytes | None = None) -> tuple[int, dict[bytes, bytes], int]:
        headers = self.base_headers if etag is None else [*self.base_headers, (b"if-none-match", etag)]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": headers,
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        sent = False
        status = 0
        out_headers: dict[bytes, bytes] = {}
        size = 0

        async def receive() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.Event().wait()  # the client stays (http.disconnect only when it goes)
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
                out_headers.update(message.get("headers", ()))
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, out_headers, size


async def timed_pass(client: Client, paths: list[str], etags: dict[str, bytes], mode: str) -> tuple[list[float], float]:
    """One pass over ``paths``: each request's CPU µs, and the pass's CPU µs per request."""
    expected = {304} if mode == "304" else {200, 204}
    clock = time.process_time_ns
    each = []
    gc.collect()
    start = clock()
    for path in paths:
        t0 = clock()
        status, _, _ = await client.get(path, etags[path] if mode == "304" else None)
        each.append((clock() - t0) / 1e3)
        if status not in expected:
            raise SystemExit(f"{mode}: {status} for {path}")
    return each, (clock() - start) / 1e3 / len(paths)


VARIANTS: dict[str, Any] = {}


async def main_async(args: argparse.Namespace) -> None:
    s = settings()
    names = middlewares(s)
    VARIANTS["full"] = lambda s: build(s, set())
    if HAS_AUTH:
        VARIANTS["-authorize"] = lambda s: build(s, {"authorize"})
    for name in names:
        VARIANTS[f"-{name}"] = lambda s, name=name: build(s, {name})
    if HAS_AUTH or names:
        VARIANTS["bare"] = lambda s: build(s, {"authorize", *names})
    chosen = [v for v in args.variants.split(",") if v in VARIANTS] if args.variants else list(VARIANTS)
    layer_names = args.layers.split(",")
    zooms = [int(z) for z in args.zooms.split(",")]
    paths = [
        f"/layers/{layer}/tiles/{z}/{x}/{y}.mvt" for layer in layer_names for zoom in zooms for z, x, y in tiles(zoom)
    ]
    if args.tiles:
        paths = paths[:: max(1, len(paths) // args.tiles)][: args.tiles]

    print(f"cim from {Path(cim.__file__).parent.parent} ({'with' if HAS_AUTH else 'without'} auth)")
    print(f"middlewares (outermost first): {', '.join(names) or 'none'}; {len(paths)} requests a pass")
    ensure_schemas(s)
    token, token_id = make_token(s)
    pool = AsyncConnectionPool(database_url(s), min_size=2, max_size=8, open=False, kwargs={"autocommit": True})
    await pool.open(wait=True, timeout=30)
    try:
        # warm-up pass, and every tile's ETag (for the 304 mode)
        client = Client(VARIANTS["full"](s), token)
        client.app.state.pool = pool
        etags: dict[str, bytes] = {}
        for path in paths:
            status, headers, _ = await client.get(path)
            if status not in (200, 204):
                raise SystemExit(f"warm-up: {status} for {path}")
            etags[path] = headers[b"etag"]
        if args.profile:
            await profile(s, pool, token, args.profile, paths, etags, args)
            return
        clients = {}
        for variant in chosen:
            clients[variant] = Client(VARIANTS[variant](s), token)
            clients[variant].app.state.pool = pool
        print(
            f"CPU µs per request (this process; the database's time is not counted), {args.repeat} interleaved "
            "passes: 'each' = the mean over the requests of each request's fastest pass, 'pass' = the fastest "
            "pass's mean, 'median' = the median pass's mean"
        )
        for mode in args.modes.split(","):
            best: dict[str, list[float]] = {}
            passes: dict[str, list[float]] = {}
            for client in clients.values():  # warm-up: each app's caches, its middleware stack
                await timed_pass(client, paths[:50], etags, mode)
            for _ in range(args.repeat):
                for variant, client in clients.items():  # interleaved: a busy spell hits every variant
                    each, mean = await timed_pass(client, paths, etags, mode)
                    best[variant] = [min(a, b) for a, b in zip(best.get(variant, each), each)]
                    passes.setdefault(variant, []).append(mean)
            print(f"mode {mode}:")
            full = sum(best["full"]) / len(paths) if "full" in best else None
            for variant in chosen:
                each_us = sum(best[variant]) / len(paths)
                ordered = sorted(passes[variant])
                line = (
                    f"  {variant:<24} each {each_us:8.1f}   pass {ordered[0]:8.1f}   "
                    f"median {ordered[len(ordered) // 2]:8.1f}"
                )
                if full is not None and variant != "full":
                    line += f"   full - this: {full - each_us:+7.1f}"
                print(line)
    finally:
        await pool.close()
        revoke(s, token_id)


async def profile(
    s: Settings,
    pool: AsyncConnectionPool,
    token: str,
    variant: str,
    paths: list[str],
    etags: dict[str, bytes],
    args: argparse.Namespace,
) -> None:
    """cProfile (or pyinstrument, ``--pyinstrument``) of one variant in the first mode."""
    mode = args.modes.split(",")[0]
    client = Client(VARIANTS[variant](s), token)
    client.app.state.pool = pool
    for path in paths[:50]:
        await client.get(path, etags.get(path) if mode == "304" else None)
    requests = paths * max(1, args.repeat)
    if args.pyinstrument:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0001, async_mode="disabled")
        profiler.start()
        for path in requests:
            await client.get(path, etags.get(path) if mode == "304" else None)
        profiler.stop()
        print(profiler.output_text(unicode=True, color=False, show_all=False))
        return
    prof = cProfile.Profile(time.process_time) if args.cpu_timer else cProfile.Profile()
    prof.enable()
    for path in requests:
        await client.get(path, etags.get(path) if mode == "304" else None)
    prof.disable()
    stats = pstats.Stats(prof)
    print(f"{variant}, mode {mode}: {len(requests)} requests (divide the times by it for a request's share)")
    stats.sort_stats(args.sort).print_stats(args.top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", default="buildings,sensors,grids,parcels")
    parser.add_argument("--zooms", default="12,13,14,15,16")
    parser.add_argument("--tiles", type=int, default=400, help="requests a pass, spread over all the tiles (0: all)")
    parser.add_argument("--modes", default="304,tile", help="304 (no tile query) and/or tile (the full request)")
    parser.add_argument("--variants", default="", help="comma-separated (default: all): full,-authorize,...,bare")
    parser.add_argument("--repeat", type=int, default=10, help="passes of each variant (with --profile: of the list)")
    parser.add_argument("--profile", default="", help="profile this variant instead of timing the variants")
    parser.add_argument("--pyinstrument", action="store_true")
    parser.add_argument("--cpu-timer", action="store_true", help="cProfile counts CPU time (default: wall time)")
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    try:
        import uvloop  # as uvicorn runs the app
    except ImportError:
        asyncio.run(main_async(args))
    else:
        uvloop.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
