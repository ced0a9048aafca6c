"""Parcels: approved land parcels on street blocks, with planning indicators and deadlines.

Each parcel is a whole street block (inset by 0.2-0.6 m, so neighbours never overlap),
and its indicators are set from what stands on it, so that the land-supervision checks
(``layers/land/rules.py``) find what the sample means them to: most parcels are
compliant, and a few per finding kind are made to trigger it (their *role*). Every
date-bound finding holds for any check date from 2026-01-01 on: idle and overdue
parcels' deadlines are in 2024 or before, compliant parcels are completed or have
their deadlines in 2030 or after.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from cim.samples import names
from cim.samples.futian.admin import Admin
from cim.samples.futian.blocks import Blocks, buildings_by_block, local_bounds, rectangles
from cim.samples.futian.buildings import Buildings
from cim.samples.futian.geometry import lonlat_to_metric
from cim.samples.futian.landcover import Patches
from cim.samples.futian.lattice import Cells
from cim.samples.futian.params import CBD_LONLAT, CBD_RADIUS_M, DEMO_SITE_LONLAT, ScaleSpec

# imported as _rng: the functions here name their generators "rng"
from cim.samples.futian.params import rng as _rng

#: roles that trigger one finding kind each (the kinds of layers/land/rules.py)
PROTECTED_ROLES = ("on_farmland", "on_forest", "on_eco_redline")
FINDING_ROLES = (
    "far_exceeded",
    "coverage_exceeded",
    "height_exceeded",
    "outside_parcel",
    *PROTECTED_ROLES,
    "idle",
    "overdue_completion",
)
#: compliant roles: completed, not started yet (vacant land, deadlines in 2030 and after), and
#: completed with a building that the next survey finds raised over the height limit
COMPLIANT_ROLES = ("completed", "vacant", "raise")
#: role: (share of the parcels, minimum count); "completed" takes the rest
_QUOTAS: dict[str, tuple[float, int]] = {
    "idle": (0.03, 6),
    "vacant": (0.03, 6),
    "outside_parcel": (0.02, 4),
    "on_farmland": (0.01, 3),
    "on_forest": (0.01, 3),
    "on_eco_redline": (0.01, 3),
    "height_exceeded": (0.02, 4),
    "far_exceeded": (0.025, 5),
    "coverage_exceeded": (0.025, 5),
    "raise": (0.01, 3),
    "overdue_completion": (0.02, 4),
}
_PARCEL_USE_WEIGHTS_CBD = np.array([15, 40, 15, 0, 5, 20, 3, 2], dtype=float)
_PARCEL_USE_WEIGHTS = np.array([40, 12, 20, 8, 8, 8, 2, 2], dtype=float)
#: the parcel use (land-use code) of a building use
_USE_CODE = {
    "住宅": "R2",
    "商业": "C1",
    "办公": "C1",
    "酒店": "C1",
    "商住混合": "C1/R2",
    "工业": "M1",
    "教育": "GIC",
    "医疗": "GIC",
    "公共服务": "GIC",
}
_FAR_RANGE = {
    "R2": (2.5, 6.0),
    "C1": (4.0, 8.0),
    "GIC": (1.0, 3.0),
    "M1": (2.0, 4.0),
    "M0": (4.0, 6.0),
    "C1/R2": (4.0, 8.0),
    "U": (1.0, 2.0),
    "S4": (1.0, 2.0),
}
_HEIGHT_LIMITS = {
    "R2": (80, 100, 120, 150),
    "C1": (60, 80, 100, 150),
    "GIC": (24, 36, 50),
    "M1": (24, 36, 50),
    "M0": (80, 100, 120),
    "C1/R2": (100, 120, 150),
    "U": (24, 36),
    "S4": (24, 36),
}
#: height limits (m) that planning conditions use
_LIMIT_STEPS = np.array([24, 36, 50, 60, 80, 100, 120, 150, 180, 200, 250, 300, 350, 400], dtype=float)
#: the plausible range of indicators (Futian): FAR 1-12, coverage 0.2-0.6, height to 400 m;
#: a block can carry a compliant parcel when its figures leave room under them
_MAX_FAR, _MAX_COVERAGE = 12.0, 0.6
_COMPLIANT_FAR, _COMPLIANT_DENSITY, _COMPLIANT_TALLEST = 11.4, 0.57, 380.0
_FLOOR_HEIGHT_M = 3.0  # the rules' floor height, for a building without floors


@dataclass
class Figures:
    """What stands on each parcel: areas in m2, heights in m."""

    area: np.ndarray
    footprint: np.ndarray  # built footprint inside the parcel
    floor_area: np.ndarray  # footprint inside x floors
    tallest: np.ndarray  # 0 where nothing stands
    count: np.ndarray  # buildings with a part on the parcel

    @property
    def far(self) -> np.ndarray:
        return self.floor_area / self.area

    @property
    def density(self) -> np.ndarray:
        return self.footprint / self.area

    def plausible(self) -> np.ndarray:
        """Parcels whose figures a compliant parcel's indicators can cover."""
        return (
            (self.far <= _COMPLIANT_FAR) & (self.density <= _COMPLIANT_DENSITY) & (self.tallest <= _COMPLIANT_TALLEST)
        )


@dataclass
class Parcels:
    geometry: np.ndarray  # metric
    columns: dict[str, np.ndarray | list]
    role: np.ndarray  # each parcel's role (FINDING_ROLES, COMPLIANT_ROLES)
    block: np.ndarray  # each parcel's block
    cleared: np.ndarray  # bool per building: not in the survey (it stood on a parcel that is vacant land)
    encroached: dict[str, Patches]  # protected layer -> patches inside parcels that their buildings cover
    raises: dict[int, int]  # building -> floors the next survey finds added (its parcel then exceeds its limit)
    year_built: np.ndarray  # per building: built two or three years after its parcel's approval


def floors_of(buildings: Buildings) -> np.ndarray:
    """Floors as the rules count them: ``floors`` where positive, else height / 3 m."""
    return np.where(buildings.floors > 0, buildings.floors, np.rint(buildings.height / _FLOOR_HEIGHT_M))


def parcel_figures(parcels: np.ndarray, buildings: Buildings, keep: np.ndarray | None = None) -> Figures:
    """Figures of each parcel from the buildings (those in keep) that have a part on it."""
    idx = np.arange(len(buildings.geometry)) if keep is None else np.flatnonzero(keep)
    geoms = buildings.geometry[idx]
    p_idx, b_idx = shapely.STRtree(geoms).query(parcels, predicate="intersects")
    inside = shapely.area(shapely.intersection(parcels[p_idx], geoms[b_idx]))
    on = inside > 0.0
    p_idx, b_idx, inside = p_idx[on], b_idx[on], inside[on]
    n = len(parcels)
    tallest = np.zeros(n)
    np.maximum.at(tallest, p_idx, buildings.height[idx][b_idx])
    return Figures(
        area=shapely.area(parcels),
        footprint=np.bincount(p_idx, inside, minlength=n),
        floor_area=np.bincount(p_idx, inside * floors_of(buildings)[idx][b_idx], minlength=n),
        tallest=tallest,
        count=np.bincount(p_idx, minlength=n),
    )


def _candidate_blocks(blocks: Blocks, plots: Cells, area: BaseGeometry | None) -> np.ndarray:
    """Complete blocks, all of whose plots are in the sample's area (when it has one)."""
    ok = blocks.complete.copy()
    if area is not None:
        shapely.prepare(area)
        plot_in = shapely.contains_xy(area, plots.centre[:, 0], plots.centre[:, 1])
        outside = np.bincount(blocks.plot_block, ~plot_in, minlength=len(blocks))
        ok &= outside == 0
    return np.flatnonzero(ok)


def _demo_site_block(blocks: Blocks, cands: np.ndarray) -> int:
    """The candidate block holding DEMO_SITE_LONLAT, or -1."""
    site = lonlat_to_metric(*DEMO_SITE_LONLAT)[0]
    holding = shapely.contains_xy(blocks.outline(cands), site[0], site[1])
    return int(cands[np.argmax(holding)]) if holding.any() else -1


def _quotas(n: int) -> dict[str, int]:
    return {role: max(minimum, round(share * n)) for role, (share, minimum) in _QUOTAS.items()}


class _Planner:
    """Roles for the chosen blocks: picks, for each role, parcels that can play it,
    and keeps the geometry or the plan that makes each one do so."""

    def __init__(
        self, blocks: Blocks, chosen: np.ndarray, geometry: np.ndarray, buildings: Buildings, rng: np.random.Generator
    ) -> None:
        self.blocks, self.chosen, self.geometry, self.buildings, self.rng = blocks, chosen, geometry, buildings, rng
        self.figures = parcel_figures(geometry, buildings)
        n = len(chosen)
        self.role = np.full(n, "completed", dtype=object)
        self.free = np.ones(n, dtype=bool)
        self.on_block = _members(buildings_by_block(buildings, blocks), chosen, len(blocks))
        self.strips: dict[int, BaseGeometry] = {}
        self.raises: dict[int, tuple[int, int, float]] = {}  # parcel -> (building, floors added, height limit)

    def pick(
        self,
        role: str,
        count: int,
        feasible: np.ndarray,
        plan: Callable[[int], bool] | None = None,
        prefer: np.ndarray | None = None,
    ) -> None:
        """Give role to count free, feasible parcels (fewest ``prefer`` first, else in
        random order) for which plan (if any) succeeds."""
        cands = np.flatnonzero(self.free & feasible)
        tie = self.rng.random(len(cands))
        cands = cands[np.lexsort((tie, prefer[cands]))] if prefer is not None else cands[np.argsort(tie)]
        taken = 0
        for k in cands:
            if taken == count:
                break
            if plan is None or plan(int(k)):
                self.role[k], self.free[k] = role, False
                taken += 1
        if taken < count:
            raise RuntimeError(f"only {taken} of {count} parcels can be made {role!r}")

    def frame(self, k: int) -> tuple[Cells, np.ndarray, np.ndarray, np.ndarray]:
        """Parcel k's block frame, its index, the parcel's local bounds and its buildings'."""
        b = self.chosen[k : k + 1]
        members = self.on_block[k]
        bounds = local_bounds(self.geometry[k : k + 1], self.blocks.rect, b)[0]
        own = local_bounds(self.buildings.geometry[members], self.blocks.rect, np.repeat(b, len(members)))
        return self.blocks.rect, b, bounds, own

    def _sides(self, bounds: np.ndarray, own: np.ndarray) -> list[tuple[int, float]]:
        """The parcel's sides (0-3: west, east, south, north) in random order, with the gap
        from each to the nearest of its buildings."""
        gaps = np.array(
            [
                own[:, 0].min() - bounds[0],
                bounds[1] - own[:, 1].max(),
                own[:, 2].min() - bounds[2],
                bounds[3] - own[:, 3].max(),
            ]
        )
        return [(int(s), float(gaps[s])) for s in self.rng.permutation(4)]

    def plan_outside(self, k: int) -> bool:
        """Move one side of parcel k in, so that a building crosses it by 2-4 m while
        every building keeps at least 60 % of its footprint on the parcel."""
        frame, b, bounds, own = self.frame(k)
        members = self.on_block[k]
        footprints = self.buildings.geometry[members]
        for side, gap in self._sides(bounds, own):
            depth = gap + self.rng.uniform(2.0, 4.0)
            moved = bounds.copy()
            moved[side] += depth if side in (0, 2) else -depth
            if moved[1] - moved[0] < 20.0 or moved[3] - moved[2] < 20.0:
                continue
            parcel = rectangles(frame, b, moved[None, :])[0]
            inside = shapely.area(shapely.intersection(parcel, footprints))
            outside = shapely.area(footprints) - inside
            if (inside / shapely.area(footprints)).min() >= 0.6 and outside.max() > 2.0:
                trial = parcel_figures(np.array([parcel]), self.buildings.take(members))
                if trial.plausible()[0]:
                    self.geometry[k] = parcel
                    return True
        return False

    def plan_strip(self, k: int) -> bool:
        """A protected patch inside parcel k along one side, 3-6 m into a building."""
        frame, b, bounds, own = self.frame(k)
        footprints = self.buildings.geometry[self.on_block[k]]
        for side, gap in self._sides(bounds, own):
            depth = gap + self.rng.uniform(3.0, 6.0)
            band = bounds.copy()
            if side in (0, 2):
                band[side + 1] = bounds[side] + depth
            else:
                band[side - 1] = bounds[side] - depth
            strip = rectangles(frame, b, band[None, :])[0]
            covered = shapely.area(shapely.intersection(strip, footprints)).sum()
            if covered > 5.0 and strip.area < 0.4 * self.geometry[k].area:
                self.strips[k] = strip
                return True
        return False

    def plan_raise(self, k: int) -> bool:
        """A height limit 1-9 m above parcel k's tallest building, which the next survey
        finds raised past it by some floors (while FAR stays compliant)."""
        fig = self.figures
        members = self.on_block[k]
        tallest = fig.tallest[k]
        limit = _LIMIT_STEPS[np.searchsorted(_LIMIT_STEPS, tallest + 1.0)]
        if not 1.0 <= limit - tallest <= 9.0:
            return False
        t = members[np.argmax(self.buildings.height[members])]
        per_floor = self.buildings.height[t] / self.buildings.floors[t]
        added = max(2, int(np.ceil((limit - tallest + 1.0) / per_floor)))
        far = (fig.floor_area[k] + added * shapely.area(self.buildings.geometry[t])) / fig.area[k]
        if far > _COMPLIANT_FAR:
            return False
        self.raises[k] = (int(t), added, float(limit))
        return True


def _members(block_of: np.ndarray, chosen: np.ndarray, n_blocks: int) -> list[np.ndarray]:
    """The buildings of each chosen block."""
    position = np.full(n_blocks + 1, -1)
    position[chosen] = np.arange(len(chosen))
    where = position[block_of]  # block -1 (village houses) maps to position[-1] == -1
    order = np.argsort(where, kind="stable")
    bounds = np.searchsorted(where[order], np.arange(len(chosen) + 1))
    return [order[bounds[i] : bounds[i + 1]] for i in range(len(chosen))]


def _assign_roles(planner: _Planner, n: int, reserved: dict[int, str]) -> None:
    """Roles: the reserved ones, then the most demanding first; every other parcel stays
    "completed"."""
    fig = planner.figures
    quotas = _quotas(n)
    for k, role in reserved.items():
        planner.role[k], planner.free[k] = role, False
        quotas[role] -= 1
    built = fig.count > 0
    everywhere = np.ones(n, dtype=bool)
    planner.pick("idle", quotas["idle"], everywhere, prefer=fig.count)
    planner.pick("vacant", quotas["vacant"], everywhere, prefer=fig.count)
    planner.pick("outside_parcel", quotas["outside_parcel"], built, planner.plan_outside)
    for role in PROTECTED_ROLES:
        planner.pick(role, quotas[role], built, planner.plan_strip)
    lower = _LIMIT_STEPS[np.maximum(np.searchsorted(_LIMIT_STEPS, fig.tallest - 3.0) - 1, 0)]
    planner.pick("height_exceeded", quotas["height_exceeded"], built & (fig.tallest - lower >= 3.0))
    planner.pick("far_exceeded", quotas["far_exceeded"], built & (fig.far >= 1.4))
    planner.pick("coverage_exceeded", quotas["coverage_exceeded"], built & (fig.density >= 0.27))
    planner.pick("raise", quotas["raise"], built, planner.plan_raise)
    planner.pick("overdue_completion", quotas["overdue_completion"], built)


def _ceil(x: np.ndarray, step: float) -> np.ndarray:
    return np.round(np.ceil(np.round(x / step, 6)) * step, 2)


def _floor(x: np.ndarray, step: float) -> np.ndarray:
    return np.round(np.floor(np.round(x / step, 6)) * step, 2)


def _indicators(
    role: np.ndarray, code: list[str], fig: Figures, near_cbd: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """approved_far, coverage, height_limit: above the figures (compliant), or below the
    one figure a violating role exceeds; planning values for parcels with nothing on them."""
    n = len(role)
    far = np.minimum(_MAX_FAR, _ceil(np.maximum(fig.far * rng.uniform(1.05, 1.4, n), 1.0), 0.1))
    coverage = np.minimum(_MAX_COVERAGE, _ceil(np.maximum(fig.density + rng.uniform(0.03, 0.12, n), 0.2), 0.01))
    step = np.minimum(np.searchsorted(_LIMIT_STEPS, fig.tallest + 1.0) + (rng.random(n) < 0.35), len(_LIMIT_STEPS) - 1)
    height = _LIMIT_STEPS[step]

    empty = fig.count == 0
    lo = np.array([_FAR_RANGE[c][0] for c in code])
    hi = np.array([_FAR_RANGE[c][1] for c in code])
    planned = rng.uniform(lo, hi)
    planned = np.where(near_cbd & np.isin(code, ["C1", "C1/R2"]), planned * 1.6, planned)
    far[empty] = np.minimum(_MAX_FAR, np.round(planned[empty], 1))
    coverage[empty] = np.round(rng.uniform(0.3, 0.45, n)[empty], 2)
    limits = np.array([rng.choice(_HEIGHT_LIMITS[c]) for c in code], dtype=float)
    height[empty] = np.where(near_cbd & np.isin(code, ["C1", "C1/R2"]), rng.choice([200, 250, 300], n), limits)[empty]

    over = role == "far_exceeded"
    far[over] = np.maximum(1.0, _floor(fig.far[over] / rng.uniform(1.12, 1.35, int(over.sum())), 0.1))
    over = role == "coverage_exceeded"
    coverage[over] = np.maximum(0.2, _floor(fig.density[over] / rng.uniform(1.12, 1.3, int(over.sum())), 0.01))
    over = role == "height_exceeded"
    height[over] = _LIMIT_STEPS[np.maximum(np.searchsorted(_LIMIT_STEPS, fig.tallest[over] - 3.0) - 1, 0)]
    return {"approved_far": far, "coverage": coverage, "height_limit": height}


def _random_days(first: str, last: str, n: int, rng: np.random.Generator) -> pd.DatetimeIndex:
    start, end = pd.Timestamp(first), pd.Timestamp(last)
    return pd.DatetimeIndex(start + pd.to_timedelta(rng.integers(0, (end - start).days + 1, n), unit="D"))


#: role -> (approval date range, years to start, years to complete, statuses to draw from)
_SCHEDULES: dict[str, tuple[tuple[str, str], int, int, tuple[str, ...]]] = {
    "completed": (("2015-01-01", "2021-06-30"), 1, 3, ("已竣工",)),
    # not started: land delivered in stages, to be started within four years (2030)
    "vacant": (("2026-01-01", "2026-06-30"), 4, 7, ("待开工",)),
    "idle": (("2016-01-01", "2021-06-30"), 1, 3, ("逾期未开工", "逾期未开工", "逾期未开工", "待开工")),
    "overdue_completion": (("2016-01-01", "2021-06-30"), 1, 3, ("在建", "逾期未竣工")),
}


def _schedule(role: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Approval date, start and completion deadlines and status of each parcel."""
    n = len(role)
    approval = np.empty(n, dtype="datetime64[ns]")
    start = np.empty(n, dtype="datetime64[ns]")
    done = np.empty(n, dtype="datetime64[ns]")
    status = np.empty(n, dtype=object)
    kind = np.array([r if r in _SCHEDULES else "completed" for r in role], dtype=object)
    for key, ((first, last), to_start, to_finish, statuses) in _SCHEDULES.items():
        sel = np.flatnonzero(kind == key)
        days = _random_days(first, last, len(sel), rng)
        approval[sel] = days.to_numpy()
        start[sel] = (days + pd.DateOffset(years=to_start)).to_numpy()
        done[sel] = (days + pd.DateOffset(years=to_finish)).to_numpy()
        status[sel] = np.array(statuses, dtype=object)[rng.integers(0, len(statuses), len(sel))]
    return {
        "approval_date": as_dates(approval),
        "start_deadline": as_dates(start),
        "completion_deadline": as_dates(done),
        "status": status,
    }


def _uses(
    chosen_members: list[np.ndarray], buildings: Buildings, near_cbd: np.ndarray, rng: np.random.Generator
) -> list[str]:
    """Each parcel's land-use code: that of its buildings' main use (by floor area);
    drawn for a parcel with nothing on it."""
    n = len(chosen_members)
    drawn = np.where(
        near_cbd,
        rng.choice(len(names.PARCEL_USES), n, p=_PARCEL_USE_WEIGHTS_CBD / _PARCEL_USE_WEIGHTS_CBD.sum()),
        rng.choice(len(names.PARCEL_USES), n, p=_PARCEL_USE_WEIGHTS / _PARCEL_USE_WEIGHTS.sum()),
    )
    codes = [names.PARCEL_USES[i][1] for i in drawn]
    owner = np.repeat(np.arange(n), [len(m) for m in chosen_members])
    members = np.concatenate(chosen_members).astype(np.int64)
    uses, use_idx = np.unique(buildings.use[members], return_inverse=True)
    weight = shapely.area(buildings.geometry[members]) * buildings.floors[members]
    totals = np.bincount(owner * len(uses) + use_idx, weight, minlength=n * len(uses)).reshape(n, len(uses))
    for k in np.flatnonzero(totals.sum(axis=1) > 0):
        codes[k] = _USE_CODE[str(uses[np.argmax(totals[k])])]
    return codes


def _encroachments(planner: _Planner, admin: Admin, role: np.ndarray) -> dict[str, Patches]:
    """The protected patches that the protected roles' buildings stand on."""
    titles = {"on_farmland": "零星耕地", "on_forest": "零星林地", "on_eco_redline": "河道生态保护红线"}
    layers = {"on_farmland": "farmland", "on_forest": "forest", "on_eco_redline": "eco_redline"}
    out: dict[str, Patches] = {}
    for r in PROTECTED_ROLES:
        ks = np.flatnonzero(role == r)
        geoms = np.array([planner.strips[int(k)] for k in ks], dtype=object)
        street = admin.street_of_xy(shapely.get_coordinates(shapely.centroid(geoms)))
        labels = [f"{names.STREETS[s][1]}{titles[r]}{i:02d}" for i, s in enumerate(street, start=1)]
        out[layers[r]] = Patches([], labels, geoms)  # codes are numbered on after the layer's own
    return out


def _choose_blocks(
    blocks: Blocks,
    plots: Cells,
    buildings: Buildings,
    area: BaseGeometry | None,
    inset: np.ndarray,
    count: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, int]:
    """count blocks for parcels, in block order, and the demo site's block among them
    (-1: none): the site, then usable blocks (empty, or with plausible figures) nearest
    the CBD (a scale with an area) or at random (full scale)."""
    cands = _candidate_blocks(blocks, plots, area)
    fig = parcel_figures(blocks.outline(cands, inset[cands]), buildings)
    dist_cbd = np.hypot(*(blocks.rect.centre[cands] - lonlat_to_metric(*CBD_LONLAT)[0]).T)
    order = np.argsort(dist_cbd, kind="stable") if area is not None else rng.permutation(len(cands))
    site = _demo_site_block(blocks, cands)
    usable = order[((fig.count[order] == 0) | fig.plausible()[order]) & (cands[order] != site)]
    if len(usable) < count:
        raise RuntimeError(f"only {len(usable)} blocks can carry a parcel, not {count}")
    picked = cands[usable[:count]] if site < 0 else np.r_[site, cands[usable[: count - 1]]]
    return np.sort(picked), site


def _plan_raises(planner: _Planner, fig: Figures, indicators: dict[str, np.ndarray]) -> dict[int, int]:
    """The "raise" parcels' height limits, and FARs that stay compliant once raised:
    building -> floors the next survey finds added."""
    raises: dict[int, int] = {}
    for k, (building, added, limit) in planner.raises.items():
        indicators["height_limit"][k] = limit
        area = shapely.area(planner.buildings.geometry[building])
        raised_far = (fig.floor_area[k] + added * area) / fig.area[k]
        indicators["approved_far"][k] = max(indicators["approved_far"][k], float(_ceil(raised_far * 1.05, 0.1)))
        raises[building] = added
    return raises


def build_parcels(
    admin: Admin,
    blocks: Blocks,
    plots: Cells,
    buildings: Buildings,
    area: BaseGeometry | None,
    spec: ScaleSpec,
    seed: int,
) -> Parcels:
    """Approved land parcels on street blocks where buildings are: the blocks nearest the
    CBD (a scale with an area: in it) or spread over the district (full scale), among
    those whose figures fit plausible indicators; then roles, indicators and deadlines."""
    rng = _rng(seed, "parcels")
    inset = rng.uniform(0.2, 0.6, (len(blocks), 4))
    chosen, site = _choose_blocks(blocks, plots, buildings, area, inset, spec.parcels, rng)
    n = len(chosen)

    planner = _Planner(blocks, chosen, blocks.outline(chosen, inset[chosen]), buildings, rng)
    reserved = {int(np.searchsorted(chosen, site)): "vacant"} if site >= 0 else {}
    _assign_roles(planner, n, reserved)
    role = planner.role
    cleared = np.zeros(len(buildings.geometry), dtype=bool)
    for k in np.flatnonzero(np.isin(role, ["idle", "vacant"])):
        cleared[planner.on_block[k]] = True
    fig = parcel_figures(planner.geometry, buildings, ~cleared)
    near_cbd = np.hypot(*(blocks.rect.centre[chosen] - lonlat_to_metric(*CBD_LONLAT)[0]).T) < CBD_RADIUS_M
    members = [m if not cleared[m].any() else m[:0] for m in planner.on_block]
    code = _uses(members, buildings, near_cbd, rng)
    for k in reserved:
        code[k] = "R2"  # the demo site: a residential parcel
    indicators = _indicators(role, code, fig, near_cbd, rng)
    raises = _plan_raises(planner, fig, indicators)

    schedule = _schedule(role, rng)
    street = admin.street_of_xy(blocks.rect.centre[chosen])
    seq = pd.Series(street).groupby(street).cumcount().to_numpy() + 1
    use_name = dict((c, u) for u, c in names.PARCEL_USES)
    columns: dict[str, np.ndarray | list] = {
        "parcel_id": [f"B{101 + s}-{k:04d}" for s, k in zip(street, seq)],
        "use": [use_name[c] for c in code],
        "use_code": code,
        **indicators,
        **schedule,
    }
    columns = {k: columns[k] for k in _COLUMNS}
    return Parcels(
        geometry=planner.geometry,
        columns=columns,
        role=role,
        block=chosen,
        cleared=cleared,
        encroached=_encroachments(planner, admin, role),
        raises=raises,
        year_built=_years_built(buildings, planner.on_block, schedule["approval_date"], rng),
    )


def _years_built(
    buildings: Buildings, members: list[np.ndarray], approval: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Buildings' year_built, those on a parcel two or three years after its approval (at
    the latest 2024, the first survey's year)."""
    years = buildings.year_built.copy()
    for own, approved in zip(members, approval):
        years[own] = np.minimum(2024, approved.year + rng.integers(2, 4, len(own)))
    return years


_COLUMNS = (
    "parcel_id",
    "use",
    "use_code",
    "approved_far",
    "coverage",
    "height_limit",
    "approval_date",
    "start_deadline",
    "completion_deadline",
    "status",
)


def as_dates(values) -> np.ndarray:
    """datetime.date objects (written as GeoPackage DATE fields)."""
    return pd.DatetimeIndex(values).date
