"""The land-supervision rules (土地批后监管): every finding kind, what triggers
it, how grave it is, and the thresholds (one table, documented in README).

=======================  ===========  =====================================================================
kind                     severity     triggered when (thresholds in :class:`Thresholds`)
=======================  ===========  =====================================================================
``far_exceeded``         违规          FAR (floor area / parcel area) > ``approved_far`` + ``far_tolerance``
``coverage_exceeded``    违规          density (footprint / parcel area) > ``coverage`` + ``coverage_tolerance``
``height_exceeded``      违规          the tallest building on the parcel > ``height_limit`` + ``height_tolerance_m``
``outside_parcel``       违规          a building of the parcel (most of its footprint is on it) crosses its
                                      line by more than ``outside_min_m2`` (1 m2)
``on_farmland``          违规          a building of the parcel covers more than ``overlap_min_m2`` of farmland
``on_forest``            违规          ... of forest land
``on_eco_redline``       违规          ... of the ecological protection red line
``idle``                 违规          no building on the parcel ``idle_after_days`` (365) after ``start_deadline``
                                      (and ``status`` not a completed one)
``overdue_completion``   预警          past ``completion_deadline`` and ``status`` is not a completed one
``unapproved_building``  违规          a building on no approved parcel (less than ``overlap_min_m2`` on all of
                                      them) and not on an exempt layer (roads, public land: named by the user)
=======================  ===========  =====================================================================

A parcel's verdict: 违规 when one of its open findings is 违规, else 预警 when one is
预警, else 合规. A finding that a user marked 误报 (false positive) no longer
counts for the verdict.

Figures are in metres on a local projection (the CGCS2000 3-degree
Gauss-Krüger zone of the parcels' centre: EPSG:4547 for Shenzhen).
Floors: the buildings layer's ``floors`` where it is a positive number, else
round(height / ``floor_height_m``). A building on two parcels counts on each
with its part there.

Two epochs: a building of this check matches one of the previous epoch when
their footprints overlap by half of the smaller one; unmatched new ones are
``new``, unmatched old ones ``demolished``; matched ones ``raised`` when
``raised_min_m`` (3 m) taller, ``grown`` when their footprint grew by more
than ``grown_min_m2``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum

from cim.config import Settings


class Severity(StrEnum):
    warning = "预警"
    violation = "违规"


class Verdict(StrEnum):
    compliant = "合规"
    warning = "预警"
    violation = "违规"


class State(StrEnum):
    """A finding's follow-up (督促) state."""

    pending = "待核查"
    confirmed = "核查属实"
    rectified = "已整改"
    false_positive = "误报"


#: the finding kinds, their severity and their Chinese title
KINDS: dict[str, tuple[Severity, str]] = {
    "far_exceeded": (Severity.violation, "容积率超标"),
    "coverage_exceeded": (Severity.violation, "建筑密度超标"),
    "height_exceeded": (Severity.violation, "建筑限高超标"),
    "outside_parcel": (Severity.violation, "建筑越出宗地红线"),
    "on_farmland": (Severity.violation, "占用耕地"),
    "on_forest": (Severity.violation, "占用林地"),
    "on_eco_redline": (Severity.violation, "占用生态保护红线"),
    "idle": (Severity.violation, "闲置土地"),
    "overdue_completion": (Severity.warning, "逾期未竣工"),
    "unapproved_building": (Severity.violation, "未批先建"),
}

#: the protected layers' findings: kind -> the option that names the layer (and its default name)
PROTECTED = {"on_farmland": "farmland", "on_forest": "forest", "on_eco_redline": "eco_redline"}

#: the roles that change findings' states and re-check parcels (plain names: layers does not import the server;
#: cim/server/access.py's table is built from them)
EDITORS = frozenset({"land_supervisor", "admin"})

#: parcel statuses that mean "completed" (竣工)
COMPLETED = frozenset({"已竣工", "竣工", "已完成", "completed", "complete", "done"})

#: change kinds between two epochs, and their Chinese titles
CHANGES = {"new": "新增", "demolished": "拆除", "raised": "加高", "grown": "扩建"}


@dataclass(frozen=True)
class Thresholds:
    """The rules' numbers (``CIM_LAND_*`` settings)."""

    far_tolerance: float = 0.0
    coverage_tolerance: float = 0.0
    height_tolerance_m: float = 0.0
    outside_min_m2: float = 1.0
    overlap_min_m2: float = 1.0
    idle_after_days: int = 365
    floor_height_m: float = 3.0
    raised_min_m: float = 3.0
    grown_min_m2: float = 10.0


def thresholds_of(settings: Settings) -> Thresholds:
    """The thresholds of the ``land_*`` settings (``CIM_LAND_FAR_TOLERANCE``, ...)."""
    return Thresholds(**{f.name: getattr(settings, f"land_{f.name}") for f in dataclasses.fields(Thresholds)})
