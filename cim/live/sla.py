"""The "10-30-24" rule of 民意速办: a ticket is acknowledged within 10
minutes of its creation, the citizen contacted (or the site reached) within
30 minutes, and the case resolved within 24 hours. The limits are settings."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cim.live.store import Ticket


@dataclass(frozen=True)
class SlaRule:
    acknowledge: dt.timedelta = dt.timedelta(minutes=10)
    contact: dt.timedelta = dt.timedelta(minutes=30)
    resolve: dt.timedelta = dt.timedelta(hours=24)


@dataclass(frozen=True)
class SlaState:
    stage: str  # acknowledge | contact | resolve | closed: the step the ticket waits for
    due_at: dt.datetime  # when that step is due (closed: when resolving was due)
    overdue: bool  # the step is late now (closed: it was resolved late)

    def to_json(self) -> dict:
        return {"stage": self.stage, "due_at": self.due_at.isoformat(), "overdue": self.overdue}


#: a due time past the last one Python holds (a ticket stored with a created_at in 9999) is this one
LATEST = dt.datetime.max.replace(tzinfo=dt.UTC)


def _due(created: dt.datetime, limit: dt.timedelta) -> dt.datetime:
    try:
        return created + limit
    except OverflowError:  # a row stored before the intake checked dates: never a 500 for it
        return LATEST


def sla_of(t: Ticket, now: dt.datetime, rule: SlaRule = SlaRule()) -> SlaState:
    """The stage a ticket is in and whether it is late. A step done exactly at
    its limit is on time; a step still open at its limit becomes overdue the
    moment after. Any stored times are taken: a due time past year 9999 is
    :data:`LATEST`."""
    if t.resolved_at is not None:
        due = _due(t.created_at, rule.resolve)
        return SlaState("closed", due, t.resolved_at > due)
    if t.contacted_at is not None:
        stage, due = "resolve", _due(t.created_at, rule.resolve)
    elif t.acknowledged_at is not None:
        stage, due = "contact", _due(t.created_at, rule.contact)
    else:
        stage, due = "acknowledge", _due(t.created_at, rule.acknowledge)
    return SlaState(stage, due, now > due)
