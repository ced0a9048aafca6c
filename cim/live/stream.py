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
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field

import numpy as np
from fastapi import WebSocket

from cim.live.hub import LiveHub

log = logging.getLogger("cim.live")
PUSH_EVERY_S = 0.25
SEND_TIMEOUT_S = 2.0
LAYERS = ("sensors", "alarms", "tickets")


@dataclass(eq=False)  # compared and hashed as itself: a set of subscribers
class Subscriber:
    ws: WebSocket
    layers: set[str] = field(default_factory=lambda: set(LAYERS))
    bbox: tuple[float, float, float, float] | None = None

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
                tickets = [t for t in changes.tickets if sub.inside(t["lon"], t["lat"])]
                if tickets:
                    out["tickets"] = tickets
            return out if len(out) > 3 else None

        await self._send_all(message)

    async def _send_all(self, message_for) -> None:
        encoded: dict[tuple, str | None] = {}  # viewers with the same subscription share one message, encoded once

        async def send(sub: Subscriber) -> None:
            key = (frozenset(sub.layers), sub.bbox)
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
