"""The live picture in memory: every sensor's latest value, status and open
alarm, as numpy columns in the order of the snapshot, plus what changed since
the last push. The hub updates it as readings are checked (before they are
stored) and as alarms are raised or cleared; the server's push task takes the
changes four times a second.

The snapshot of 270,000 sensors is binary and columnar (see
:func:`sensor_snapshot`): positions as 16-bit steps of the registry's extent
(under a metre in a district, a few metres in a city), values as float32,
status and category as bytes, ids as one UTF-8 block.
"""

from __future__ import annotations

import json
import struct
import threading
from dataclasses import dataclass, field

import numpy as np
import psycopg

from cim.live.store import LIVE_SCHEMA, STATUSES, AlarmEvent, Reading, open_alarm_sensors

#: status codes of the snapshot and the deltas (low bits: none 0, normal 1, alarm 2, fault 3, offline 4);
#: ALARM_BIT marks an open alarm
STATUS_CODES = {"none": 0, **{status: i + 1 for i, status in enumerate(STATUSES)}}
ALARM_BIT = 0x80


@dataclass
class Registry:
    """The sensors in snapshot order (by id)."""

    ids: list[str]
    lon: np.ndarray
    lat: np.ndarray
    category: np.ndarray  # uint8 index into categories
    categories: list[str]
    version: int

    index: dict[str, int] = field(init=False, repr=False)  # id -> position

    def __post_init__(self) -> None:
        self.index = {sid: i for i, sid in enumerate(self.ids)}

    def bbox(self) -> tuple[float, float, float, float]:
        if not self.ids:
            return (0.0, 0.0, 0.0, 0.0)
        return (float(self.lon.min()), float(self.lat.min()), float(self.lon.max()), float(self.lat.max()))


def load_registry(conn: psycopg.Connection, version: int) -> Registry:
    rows = conn.execute(
        f"SELECT id, category, ST_X(geom), ST_Y(geom) FROM {LIVE_SCHEMA}.sensor_registry ORDER BY id"
    ).fetchall()
    categories = sorted({r[1] for r in rows})
    code = {c: i for i, c in enumerate(categories)}
    return Registry(
        [r[0] for r in rows],
        np.array([r[2] for r in rows], float),
        np.array([r[3] for r in rows], float),
        np.array([code[r[1]] for r in rows], np.uint8),
        categories,
        version,
    )


@dataclass
class Changes:
    sensors: np.ndarray  # indices whose state changed
    alarms: list[dict]
    tickets: list[dict]


@dataclass
class LiveState:
    registry: Registry
    value: np.ndarray = field(init=False)
    code: np.ndarray = field(init=False)  # status code | ALARM_BIT
    ts: np.ndarray = field(init=False)  # epoch seconds of the latest reading (nan: none)

    def __post_init__(self) -> None:
        n = len(self.registry.ids)
        self.value = np.full(n, np.nan, np.float32)
        self.code = np.zeros(n, np.uint8)
        self.ts = np.full(n, np.nan)
        self._lock = threading.Lock()
        self._dirty: set[int] = set()
        self._alarms: list[dict] = []
        self._tickets: list[dict] = []

    def load(self, conn: psycopg.Connection) -> None:
        """The stored state: latest readings and open alarms."""
        index = self.registry.index
        for sid, value, status, ts in conn.execute(
            f"SELECT sensor_id, value, status, ts FROM {LIVE_SCHEMA}.sensor_state"
        ):
            i = index.get(sid)
            if i is not None:
                self.value[i], self.code[i], self.ts[i] = value, STATUS_CODES.get(status, 0), ts.timestamp()
        for sid in open_alarm_sensors(conn):
            i = index.get(sid)
            if i is not None:
                self.code[i] |= ALARM_BIT

    def apply_readings(self, readings: list[Reading]) -> None:
        index = self.registry.index
        with self._lock:
            for r in readings:
                i = index.get(r.sensor_id)
                t = r.ts.timestamp()
                if i is None or t < self.ts[i]:  # (never true against nan: no reading yet)
                    continue  # an older reading does not change the picture
                self.value[i], self.ts[i] = r.value, t
                self.code[i] = (self.code[i] & ALARM_BIT) | STATUS_CODES[r.status]
                self._dirty.add(i)

    def apply_alarms(self, events: list[AlarmEvent], open_now: set[str]) -> None:
        """``open_now``: of the events' sensors, those that still have an open alarm."""
        index = self.registry.index
        with self._lock:
            for e in events:
                i = index.get(e.sensor_id)
                if i is None:
                    continue
                self.code[i] = (
                    (self.code[i] | ALARM_BIT) if e.sensor_id in open_now else (self.code[i] & (0xFF ^ ALARM_BIT))
                )
                self._dirty.add(i)
                self._alarms.append({**e.to_json(), "i": i})

    def add_ticket(self, ticket: dict) -> None:
        with self._lock:
            self._tickets.append(ticket)

    def columns(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the values and codes, consistent with each other (the writer may be updating them)."""
        with self._lock:
            return self.value.copy(), self.code.copy()

    def take(self) -> Changes:
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            alarms, self._alarms = self._alarms, []
            tickets, self._tickets = self._tickets, []
        return Changes(np.fromiter(sorted(dirty), np.int64, len(dirty)), alarms, tickets)


def quantise(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    span = hi - lo or 1.0
    return np.clip(np.rint((values - lo) / span * 65535), 0, 65535).astype("<u2")


def sensor_snapshot(state: LiveState, bbox: tuple[float, float, float, float] | None = None) -> bytes:
    """The sensors (in ``bbox``) as one binary block::

        uint32 header length, header JSON, then 4-byte aligned columns:
        ids (UTF-8, "\\n" between), lon and lat (uint16 steps of header.extent),
        value (float32, NaN: none yet), code (uint8: status | 0x80 open alarm),
        category (uint8 index into header.categories)

    The header says each column's byte offset and the registry version that
    the deltas' sensor indices (``header.index`` holds them for a bbox) refer to."""
    reg = state.registry
    value, code = state.columns()
    pick = np.arange(len(reg.ids))
    if bbox is not None:
        w, s, e, n = bbox
        pick = np.flatnonzero((reg.lon >= w) & (reg.lon <= e) & (reg.lat >= s) & (reg.lat <= n))
    extent = reg.bbox()
    ids = "\n".join(reg.ids[i] for i in pick).encode("utf-8")
    columns = [
        ("ids", ids),
        ("lon", quantise(reg.lon[pick], extent[0], extent[2]).tobytes()),
        ("lat", quantise(reg.lat[pick], extent[1], extent[3]).tobytes()),
        ("value", value[pick].astype("<f4").tobytes()),
        ("code", code[pick].tobytes()),
        ("category", reg.category[pick].tobytes()),
    ]
    layout, body, offset = {}, [], 0
    for name, data in columns:
        pad = (-offset) % 4
        body.append(b"\0" * pad)
        offset += pad
        layout[name] = [offset, len(data)]
        body.append(data)
        offset += len(data)
    header = {
        "count": len(pick),
        "version": reg.version,
        "extent": list(extent),
        "categories": reg.categories,
        "status_codes": STATUS_CODES,
        "alarm_bit": ALARM_BIT,
        "columns": layout,
        "index": pick.tolist() if bbox is not None else None,
    }
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * ((-len(head)) % 4)
    return struct.pack("<I", len(head)) + head + b"".join(body)
