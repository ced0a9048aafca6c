"""Checking live records one by one: what is kept, and for each one refused, why.

A batch is never refused whole: every record is judged on its own, and the
answer names each refused record (its position and id) with the reason.

Nothing a sender puts in a record may raise anything but :class:`RecordError`
here, nor reach PostgreSQL, numpy or a JSON answer in a form they cannot take:
JSON is parsed by :func:`parse_json` / :func:`parse_batch` (nesting too deep,
a number of thousands of digits, bytes that are not UTF-8: refused, never a
RecursionError or ValueError), and every field is checked for its type, its
size and its range (:func:`reading`, :func:`ticket`): text is capped and holds
no NUL character nor lone surrogate (PostgreSQL and UTF-8 take neither),
numbers are finite and fit a float32 (the snapshot's values) or WGS84 degrees,
times have an offset and fall between 2000-01-01 and a few minutes from now.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any

from cim.live.store import STATUSES, Reading, Ticket

log = logging.getLogger("cim.live")

FUTURE_SLACK = dt.timedelta(minutes=5)  # clocks of field devices drift; further ahead is a wrong clock
MIN_TIME = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # nothing the twin holds is older: an earlier time is a wrong clock
ID_MAX = 128  # characters of a sensor or ticket id
TIME_MAX = 64  # characters of an ISO-8601 time ("2026-11-22T09:00:00.123456+08:00" is 32)
VALUE_MAX = 3.4028234663852886e38  # the largest float32: the snapshot carries values as float32
PAYLOAD_MAX = 65_536  # bytes of one MQTT reading (one is about 80)
#: the most characters of each ticket field
TICKET_TEXT = {"id": ID_MAX, "channel": 64, "category": 128, "address": 512, "department": 128, "status": 64}
_INT_DIGITS = 300  # a JSON integer longer than this is read as a float (inf beyond 1e308), refused by the range checks


@dataclass
class Rejection:
    index: int  # position in the batch
    id: str | None  # sensor or ticket id, when the record had one that is valid text (no NUL, no lone surrogate)
    reason: str

    def to_json(self) -> dict:
        return {"index": self.index, "id": self.id, "reason": self.reason}


@dataclass
class Checked:
    accepted: list = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


class RecordError(ValueError):
    """Why one record is refused."""


class BatchTooLarge(RecordError):
    """A batch with more records than the limit (HTTP 413)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"a batch holds at most {limit:,} readings (CIM_LIVE_BATCH_MAX); send it in parts")


# --- JSON ---------------------------------------------------------------------------------------------


def _parse_int(digits: str) -> int | float:
    """A JSON integer; past a few hundred digits a float (huge or inf), which the range checks refuse:
    Python's ``int`` stops at 4,300 digits with a ValueError, and a big int overflows ``float()``."""
    return int(digits) if len(digits) <= _INT_DIGITS else float(digits)


_DECODER = json.JSONDecoder(parse_int=_parse_int)
_SPACE = re.compile(r"[ \t\n\r]*")


def _skip_space(text: str, pos: int) -> int:
    match = _SPACE.match(text, pos)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _decoded(data: bytes | bytearray | str, what: str) -> str:
    if isinstance(data, str):
        return data
    try:
        return bytes(data).decode("utf-8-sig")  # strict: encoded surrogates are refused, not let through
    except UnicodeDecodeError as exc:
        raise RecordError(f"{what} is not UTF-8 (byte {exc.start})") from None


def parse_json(data: bytes | bytearray | str, what: str = "the payload") -> Any:
    """JSON, or a :class:`RecordError` (never a RecursionError, a ValueError of a 5,000-digit number
    or a UnicodeDecodeError)."""
    text = _decoded(data, what)
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise RecordError(f"{what} is nested too deeply") from None
    except ValueError as exc:
        raise RecordError(f"{what} is not JSON ({exc})") from None


@dataclass(frozen=True)
class Unreadable:
    """A record of a batch that JSON cannot hold as an object (nested too deeply): refused alone."""

    reason: str


_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def _end_of_container(text: str, pos: int) -> int:
    """Where the array or object at ``pos`` ends, found without recursion (by its brackets, strings
    skipped); a body whose brackets do not balance is not JSON."""
    depth = 0
    for token in _TOKENS.finditer(text, pos):
        kind = token.group()
        if kind in "[{":
            depth += 1
        elif kind in "]}":
            depth -= 1
            if depth == 0:
                return token.end()
    raise RecordError("the body is not JSON (a bracket is not closed)")


def parse_batch(data: bytes | bytearray | str, limit: int) -> Any:
    """A request's body: a JSON array read record by record, so that a batch of more than ``limit``
    records is refused (:class:`BatchTooLarge`) before the rest is parsed, and that no single C call
    holds the interpreter for the whole body (the event loop's thread waits for it). A body that is
    not an array is returned as it is, for :func:`readings` to refuse."""
    what = "the body"
    text = _decoded(data, what)
    pos = _skip_space(text, 0)
    if not text.startswith("[", pos):
        return parse_json(text, what)
    items: list = []
    pos = _skip_space(text, pos + 1)
    closed = text.startswith("]", pos)
    if closed:
        pos += 1
    while not closed:
        if len(items) >= limit:
            raise BatchTooLarge(limit)
        try:
            item, pos = _DECODER.raw_decode(text, pos)
        except RecursionError:  # this record only is refused: the next one starts after its closing bracket
            item, pos = Unreadable("the record is nested too deeply"), _end_of_container(text, pos)
        except ValueError as exc:
            raise RecordError(f"{what} is not JSON (record {len(items)}: {exc})") from None
        items.append(item)
        pos = _skip_space(text, pos)
        if text.startswith(",", pos):
            pos = _skip_space(text, pos + 1)
        elif text.startswith("]", pos):
            pos, closed = pos + 1, True
        else:
            raise RecordError(f"{what} is not JSON (',' or ']' expected at char {pos})")
    if _skip_space(text, pos) != len(text):
        raise RecordError(f"{what} is not JSON (extra data at char {pos})")
    return items


# --- fields ---------------------------------------------------------------------------------------------


def shown(value: Any, limit: int = 40) -> str:
    """A value as an error message may quote it: escaped (NUL, surrogates) and short. A container is
    named, not printed (it may be large or deep)."""
    if isinstance(value, str):
        return repr(value[:limit]) + ("..." if len(value) > limit else "")
    if value is None or isinstance(value, (bool, float)) or (isinstance(value, int) and value.bit_length() < 200):
        return repr(value)
    return f"a {type(value).__name__}" if not isinstance(value, int) else "a huge integer"


def _text(value: Any, name: str, limit: int) -> str:
    """Text that PostgreSQL and a JSON answer can hold: at most ``limit`` characters, no NUL
    character, no lone surrogate."""
    if not isinstance(value, str):
        raise RecordError(f"{name} must be a string, not {shown(value)}")
    if len(value) > limit:
        raise RecordError(f"{name} is longer than {limit} characters")
    if "\0" in value:
        raise RecordError(f"{name} holds a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RecordError(f"{name} is not valid Unicode (a lone surrogate)") from None
    return value


def safe_id(value: Any) -> str | None:
    """An id as an answer may carry it (None when it is not valid text)."""
    try:
        return _text(value, "id", ID_MAX) if value else None
    except RecordError:
        return None


def parse_time(value: Any, name: str) -> dt.datetime:
    """An ISO-8601 time with its offset (``Z`` or ``+08:00``); a time without
    one is refused rather than guessed."""
    if not isinstance(value, str):
        raise RecordError(f"{name} must be an ISO-8601 string")
    if len(value) > TIME_MAX:
        raise RecordError(f"{name} is longer than {TIME_MAX} characters")
    try:
        parsed = dt.datetime.fromisoformat(value)  # Python 3.11 reads a trailing Z itself
    except ValueError:  # (a NUL or a lone surrogate too: UnicodeEncodeError is a ValueError)
        raise RecordError(f"{name} {shown(value)} is not an ISO-8601 time") from None
    if parsed.tzinfo is None:
        raise RecordError(f"{name} {value!r} has no time zone (add Z or +08:00)")
    return parsed


def _utc(t: dt.datetime, name: str) -> dt.datetime:
    """``t`` in UTC: 9999-12-31T23:00-01:00 is past the last day Python (and psycopg) can hold."""
    try:
        return t.astimezone(dt.UTC)
    except OverflowError:
        raise RecordError(f"{name} {t.isoformat()} is out of range") from None


def _bounded_time(value: Any, name: str, now: dt.datetime) -> dt.datetime:
    """A time between 2000-01-01 and a few minutes from now."""
    t = parse_time(value, name)
    utc = _utc(t, name)
    if utc > now + FUTURE_SLACK:
        raise RecordError(f"{name} {value} is in the future")
    if utc < MIN_TIME:
        raise RecordError(f"{name} {value} is before {MIN_TIME:%Y-%m-%d}")
    return t


def _number(value: Any) -> float | None:
    """A JSON number (not a boolean) as a finite float, or None (an int too big for a float too)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


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
    if isinstance(record, Unreadable):
        raise RecordError(record.reason)
    if not isinstance(record, dict):
        raise RecordError("a reading must be a JSON object")
    sensor_id = sensor_id if sensor_id is not None else record.get("sensor_id")
    if sensor_id is None or sensor_id == "":
        raise RecordError("sensor_id is missing")
    if not isinstance(sensor_id, str) or known is None or sensor_id not in known:  # (a registered id is good text)
        _text(sensor_id, "sensor_id", ID_MAX)
        if known is not None:
            raise RecordError(f"unknown sensor {sensor_id!r} (not in live.sensor_registry)")
    ts = parse_time(record.get("ts"), "ts")
    utc = _utc(ts, "ts")
    if utc > now + FUTURE_SLACK:
        raise RecordError(f"ts {record['ts']} is in the future")
    if utc < MIN_TIME:
        raise RecordError(f"ts {record['ts']} is before {MIN_TIME:%Y-%m-%d}")
    if utc < oldest:
        raise RecordError(f"ts {record['ts']} is older than the retention ({oldest:%Y-%m-%d})")
    value = _number(record.get("value"))
    if value is None:
        raise RecordError("value must be a finite number")
    if abs(value) > VALUE_MAX:
        raise RecordError(f"value {value:g} is out of range (at most {VALUE_MAX:.4g} either way)")
    status = record.get("status", "normal")
    if not isinstance(status, str) or status not in STATUSES:
        raise RecordError(f"status {shown(status)} is not one of {', '.join(STATUSES)}")
    return Reading(sensor_id, ts, value, status)


def readings(records: Any, *, now: dt.datetime, oldest: dt.datetime, known: Container[str]) -> Checked:
    out = Checked()
    if not isinstance(records, list):
        out.rejected.append(Rejection(0, None, "the body must be a JSON array of readings"))
        return out
    for i, record in enumerate(records):
        try:
            out.accepted.append(reading(record, now=now, oldest=oldest, known=known))
        except Exception as exc:  # a RecordError; anything else is a bug, and refuses this record only
            if not isinstance(exc, RecordError):
                log.exception("checking reading %d of a batch failed", i)
            reason = str(exc) if isinstance(exc, RecordError) else f"could not be checked ({type(exc).__name__})"
            out.rejected.append(
                Rejection(i, safe_id(record.get("sensor_id")) if isinstance(record, dict) else None, reason)
            )
    return out


def ticket(record: Any, *, now: dt.datetime | None = None) -> Ticket:
    """One ticket: ``id``, ``channel``, ``category``, ``lon``, ``lat``,
    ``created_at``, optional ``acknowledged_at``, ``contacted_at``,
    ``resolved_at``, ``address``, ``department``, ``status``. Times fall
    between 2000-01-01 and a few minutes from ``now``, a stage not before
    ``created_at``."""
    now = now or dt.datetime.now(dt.UTC)
    if not isinstance(record, dict):
        raise RecordError("a ticket must be a JSON object")
    for name in ("id", "channel", "category"):
        if record.get(name) is None or record.get(name) == "":
            raise RecordError(f"{name} is missing")
    text = {
        name: None if record.get(name) is None else _text(record[name], name, limit)
        for name, limit in TICKET_TEXT.items()
    }
    lon, lat = _number(record.get("lon")), _number(record.get("lat"))
    if lon is None or lat is None or not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise RecordError("lon and lat must be WGS84 degrees")
    created = _bounded_time(record.get("created_at"), "created_at", now)
    stages = {
        name: None if record.get(name) is None else _bounded_time(record[name], name, now)
        for name in ("acknowledged_at", "contacted_at", "resolved_at")
    }
    for name, when in stages.items():
        if when is not None and when < created:
            raise RecordError(f"{name} is before created_at")
    return Ticket(
        record["id"],
        record["channel"],
        record["category"],
        lon,
        lat,
        created,
        acknowledged_at=stages["acknowledged_at"],
        contacted_at=stages["contacted_at"],
        resolved_at=stages["resolved_at"],
        address=text["address"],
        department=text["department"],
        status=text["status"],
    )
