"""Checking live records one by one: what is kept, and for each one refused, why.

A batch is never refused whole: every record is judged on its own, and the
answer names each refused record (its position and id) with the reason.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from cim.live.store import STATUSES, Reading, Ticket

FUTURE_SLACK = dt.timedelta(minutes=5)  # clocks of field devices drift; further ahead is a wrong clock


@dataclass
class Rejection:
    index: int  # position in the batch
    id: str | None  # sensor or ticket id, when the record had one
    reason: str

    def to_json(self) -> dict:
        return {"index": self.index, "id": self.id, "reason": self.reason}


@dataclass
class Checked:
    accepted: list = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


class RecordError(ValueError):
    """Why one record is refused."""


def parse_time(value: Any, name: str) -> dt.datetime:
    """An ISO-8601 time with its offset (``Z`` or ``+08:00``); a time without
    one is refused rather than guessed."""
    if not isinstance(value, str):
        raise RecordError(f"{name} must be an ISO-8601 string")
    try:
        parsed = dt.datetime.fromisoformat(value)  # Python 3.11 reads a trailing Z itself
    except ValueError:
        raise RecordError(f"{name} {value!r} is not an ISO-8601 time") from None
    if parsed.tzinfo is None:
        raise RecordError(f"{name} {value!r} has no time zone (add Z or +08:00)")
    return parsed


def _finite_number(value: object) -> TypeGuard[float]:
    """A JSON number (not a boolean) that is finite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _optional_time(record: dict, name: str) -> dt.datetime | None:
    value = record.get(name)
    return None if value is None else parse_time(value, name)


def reading(
    record: Any,
    sensor_id: str | None = None,
    *,
    now: dt.datetime,
    oldest: dt.datetime,
    known: Container[str] | None = None,
) -> Reading:
    """One reading: ``{"sensor_id", "ts", "value", "status"}`` (over MQTT the
    sensor id is in the topic)."""
    if not isinstance(record, dict):
        raise RecordError("a reading must be a JSON object")
    sensor_id = sensor_id if sensor_id is not None else record.get("sensor_id")
    if not isinstance(sensor_id, str) or not sensor_id:
        raise RecordError("sensor_id is missing")
    if known is not None and sensor_id not in known:
        raise RecordError(f"unknown sensor {sensor_id!r} (not in live.sensor_registry)")
    ts = parse_time(record.get("ts"), "ts")
    if ts > now + FUTURE_SLACK:
        raise RecordError(f"ts {record['ts']} is in the future")
    if ts < oldest:
        raise RecordError(f"ts {record['ts']} is older than the retention ({oldest:%Y-%m-%d})")
    value = record.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RecordError("value must be a finite number")
    status = record.get("status", "normal")
    if status not in STATUSES:
        raise RecordError(f"status {status!r} is not one of {', '.join(STATUSES)}")
    return Reading(sensor_id, ts, float(value), status)


def readings(records: Any, *, now: dt.datetime, oldest: dt.datetime, known: Container[str]) -> Checked:
    out = Checked()
    if not isinstance(records, list):
        out.rejected.append(Rejection(0, None, "the body must be a JSON array of readings"))
        return out
    for i, record in enumerate(records):
        try:
            out.accepted.append(reading(record, now=now, oldest=oldest, known=known))
        except RecordError as exc:
            sid = record.get("sensor_id") if isinstance(record, dict) else None
            out.rejected.append(Rejection(i, sid if isinstance(sid, str) else None, str(exc)))
    return out


def ticket(record: Any) -> Ticket:
    """One ticket: ``id``, ``channel``, ``category``, ``lon``, ``lat``,
    ``created_at``, optional ``acknowledged_at``, ``contacted_at``,
    ``resolved_at``, ``address``, ``department``, ``status``."""
    if not isinstance(record, dict):
        raise RecordError("a ticket must be a JSON object")
    for name in ("id", "channel", "category"):
        if not isinstance(record.get(name), str) or not record[name]:
            raise RecordError(f"{name} is missing")
    lon, lat = record.get("lon"), record.get("lat")
    if not (_finite_number(lon) and _finite_number(lat)) or not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise RecordError("lon and lat must be WGS84 degrees")
    created = parse_time(record.get("created_at"), "created_at")
    stages = {name: _optional_time(record, name) for name in ("acknowledged_at", "contacted_at", "resolved_at")}
    for name, when in stages.items():
        if when is not None and when < created:
            raise RecordError(f"{name} is before created_at")
    text = {
        name: record.get(name) if isinstance(record.get(name), str) else None
        for name in ("address", "department", "status")
    }
    return Ticket(
        record["id"],
        record["channel"],
        record["category"],
        float(lon),
        float(lat),
        created,
        acknowledged_at=stages["acknowledged_at"],
        contacted_at=stages["contacted_at"],
        resolved_at=stages["resolved_at"],
        address=text["address"],
        department=text["department"],
        status=text["status"],
    )
