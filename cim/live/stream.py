"""Pushing the live picture to viewers over WebSocket (``/live/stream``).

A viewer first paints from the snapshots (``/live/snapshot/...``), then
subscribes: ``{"subscribe": {"layers": ["sensors", "alarms", "tickets"],
"bbox": [w, s, e, n]}}`` (both optional: everything). Four times a second
the changes since the last push are coalesced (a sensor that reported ten
times is sent once, with its latest state) and each subscriber gets those in
its box, compactly::

    {"type": "delta", "version": 3, "t": 1732266000.25,
     "sensors": {"i": [12, 40], "value": [0.4, 1.0], "code": [130, 1]},
     "alarms": [{"id", "sensor_id", "i", "kind", "message", "raised_at", "cleared_at", ...}],
     "tickets": [{"id", "lon", "lat", "stage", "due_at", "overdue", ...}]}

``i`` is a sensor's index in the snapshot of registry ``version``; when the
registry changes the viewer gets ``{"type": "reload"}`` and fetches the
snapshot again. A viewer that cannot keep up (a send that takes over 2 s) is
dropped; it reconnects and repaints from the snapshot.

A ticket's exact position is personal data (layers.sensitive): only a viewer
that connected as an operator or admin gets it; every other viewer gets the
ticket snapped to its grid cell's centroid, as the ticket snapshot gives it
(and its box selects on that position).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field

import numpy as np
from fastapi import WebSocket
from psycopg import sql

from cim.live.hub import LiveHub
from cim.live.store import LIVE_SCHEMA
from layers.sensitive import FALLBACK_DEGREES, grid_table, may_see, snapped_sql

log = logging.getLogger("cim.live")
PUSH_EVERY_S = 0.25
SEND_TIMEOUT_S = 2.0
LAYERS = ("sensors", "alarms", "tickets")


@dataclass(eq=False)  # compared and hashed as itself: a set of subscribers
class Subscriber:
    ws: WebSocket
    layers: set[str] = field(default_factory=lambda: set(LAYERS))
    bbox: tuple[float, float, float, float] | None = None
    #: sees tickets' exact positions: an operator or admin, by the identity the access check found at connect time
    exact: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        identity = getattr(getattr(self.ws, "state", None), "identity", None)
        self.exact = identity is not None and may_see(str(role) for role in identity.roles)

    def update(self, message: dict) -> None:
        sub = message.get("subscribe") if isinstance(message, dict) else None
        if not isinstance(sub, dict):
            raise ValueError('send {"subscribe": {"layers": [...], "bbox": [w, s, e, n]}}')
        layers = sub.get("layers", list(LAYERS))
        if not isinstance(layers, list) or not set(layers) <= set(LAYERS):
            raise ValueError(f"layers must be a list of {', '.join(LAYERS)}")
        bbox = sub.get("bbox")
        if bbox is not None and not (
            isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)
        ):
            raise ValueError("bbox must be [west, south, east, north] in degrees")
        self.layers, self.bbox = set(layers), (tuple(bbox) if bbox else None)

    def inside(self, lon, lat) -> np.ndarray:
        lon, lat = np.asarray(lon, float), np.asarray(lat, float)
        if self.bbox is None:
            return np.ones(lon.shape, bool)
        w, s, e, n = self.bbox
        return (lon >= w) & (lon <= e) & (lat >= s) & (lat <= n)


class Broadcaster:
    def __init__(self, hub: LiveHub) -> None:
        self.hub = hub
        self.subscribers: set[Subscriber] = set()
        self._task: asyncio.Task | None = None
        self._version = hub.state.registry.version

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="cim-live-push")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.push_once()
            except Exception:  # one bad push must not end the pushing
                log.exception("live push failed")
            await asyncio.sleep(max(0.0, PUSH_EVERY_S - (time.monotonic() - started)))

    async def push_once(self) -> None:
        state = self.hub.state
        changes = state.take()
        if state.registry.version != self._version:
            self._version = state.registry.version
            await self._send_all(lambda sub: {"type": "reload", "version": self._version})
            return
        if not (len(changes.sensors) or changes.alarms or changes.tickets) or not self.subscribers:
            return
        reg = state.registry
        idx = changes.sensors
        lon, lat = reg.lon[idx], reg.lat[idx]
        value, code = state.value[idx], state.code[idx]

        values = np.round(value.astype(float), 4)
        has_nan = bool(np.isnan(values).any())
        snapped: list[dict] = []
        if changes.tickets and any(not s.exact and "tickets" in s.layers for s in self.subscribers):
            snapped = await self._snapped(changes.tickets)

        def message(sub: Subscriber) -> dict | None:
            out: dict = {"type": "delta", "version": reg.version, "t": round(time.time(), 3)}
            if "sensors" in sub.layers and len(idx):
                keep = sub.inside(lon, lat)
                if keep.any():
                    kept = values[keep]
                    out["sensors"] = {
                        "i": idx[keep].tolist(),
                        "code": code[keep].tolist(),
                        "value": [None if np.isnan(v) else v for v in kept.tolist()] if has_nan else kept.tolist(),
                    }
            if "alarms" in sub.layers:
                alarms = [a for a in changes.alarms if sub.inside(reg.lon[a["i"]], reg.lat[a["i"]])]
                if alarms:
                    out["alarms"] = alarms
            if "tickets" in sub.layers:
                shown = changes.tickets if sub.exact else snapped
                tickets = [t for t in shown if sub.inside(t["lon"], t["lat"])]
                if tickets:
                    out["tickets"] = tickets
            return out if len(out) > 3 else None

        await self._send_all(message)

    async def _snapped(self, tickets: list[dict]) -> list[dict]:
        """``tickets`` with their positions snapped to their grid cells' centroids (as the
        ticket snapshot gives them to those who may not see the exact ones); rounded to
        FALLBACK_DEGREES where the stored ticket or the database cannot say."""
        positions: dict[str, tuple[float, float]] = {}
        try:
            app = next(iter(self.subscribers)).ws.app
            pool = app.state.pool
            grids = (await app.state.catalogue.layers(pool)).get(app.state.settings.grid_layer)
            point, join = snapped_sql(grid_table(grids), "r")
            query = sql.SQL(
                f"SELECT r.id, ST_X(p), ST_Y(p) FROM (SELECT r.id, {{point}} AS p "
                f"FROM {LIVE_SCHEMA}.ticket_records r {{join}} WHERE r.id = ANY(%s)) r"
            ).format(point=point, join=join)
            async with pool.connection() as conn:
                rows = await (await conn.execute(query, ([t["id"] for t in tickets],))).fetchall()
            positions = {tid: (lon, lat) for tid, lon, lat in rows if lon is not None and lat is not None}
        except Exception:  # never the exact position: rounded instead
            log.exception("tickets' grid positions unavailable; rounding them")

        def rounded(v: float) -> float:
            return round(round(v / FALLBACK_DEGREES) * FALLBACK_DEGREES, 7)

        out = []
        for t in tickets:
            lon, lat = positions.get(t["id"], (rounded(t["lon"]), rounded(t["lat"])))
            out.append({**t, "lon": round(lon, 7), "lat": round(lat, 7)})
        return out

    async def _send_all(self, message_for) -> None:
        encoded: dict[tuple, str | None] = {}  # viewers with the same subscription and right share one message

        async def send(sub: Subscriber) -> None:
            key = (frozenset(sub.layers), sub.bbox, sub.exact)
            if key not in encoded:
                message = message_for(sub)
                encoded[key] = None if message is None else json.dumps(message, separators=(",", ":"))
            text = encoded[key]
            if text is None:
                return
            try:
                await asyncio.wait_for(sub.ws.send_text(text), SEND_TIMEOUT_S)
            except Exception:  # gone or too slow: it reconnects and repaints from the snapshot
                self.subscribers.discard(sub)
                try:
                    await sub.ws.close()
                except Exception:
                    pass

        await asyncio.gather(*(send(s) for s in list(self.subscribers)))
