"""Parcels: approved land parcels with planning indicators and deadlines."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from cim.samples import names
from cim.samples.futian.admin import Admin
from cim.samples.futian.geometry import lonlat_to_metric
from cim.samples.futian.landcover import LandCover
from cim.samples.futian.lattice import lattice_cells
from cim.samples.futian.params import CBD_LONLAT, CBD_RADIUS_M, NOW, ScaleSpec

# imported as _rng: the functions here name their generators "rng"
from cim.samples.futian.params import rng as _rng

_PARCEL_USE_WEIGHTS_CBD = np.array([15, 40, 15, 0, 5, 20, 3, 2], dtype=float)
_PARCEL_USE_WEIGHTS = np.array([40, 12, 20, 8, 8, 8, 2, 2], dtype=float)
_FAR_RANGE = {
    "R2": (2.5, 6.0),
    "C1": (4.0, 8.0),
    "GIC": (1.0, 3.0),
    "M1": (2.0, 4.0),
    "M0": (4.0, 6.0),
    "C1/R2": (4.0, 8.0),
    "U": (0.5, 2.0),
    "S4": (0.5, 2.0),
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
PARCEL_APPROVAL_RANGE = (pd.Timestamp("2015-01-01"), pd.Timestamp("2026-06-30"))


@dataclass
class Parcels:
    geometry: np.ndarray  # metric
    columns: dict[str, np.ndarray | list]


def build_parcels(admin: Admin, land: LandCover, spec: ScaleSpec, seed: int) -> Parcels:
    """Approved land parcels: lattice blocks (50-300 m) inset by a road margin, so parcels
    never overlap; they may overlap buildings (land supervision looks for exactly that)."""
    rng = _rng(seed, "parcels")
    region = shapely.buffer(admin.boundary, -5.0)
    cells = lattice_cells(region, float(rng.normal(0.0, 0.04)), (60.0, 260.0), rng, land.no_build_zone())
    cbd = lonlat_to_metric(*CBD_LONLAT)[0]
    dist_cbd = np.hypot(*(cells.centre - cbd).T)
    if spec.parcels < len(cells) and spec.cbd_focus:
        chosen = np.sort(np.argsort(dist_cbd, kind="stable")[: spec.parcels])
    elif spec.parcels < len(cells):
        chosen = np.sort(rng.choice(len(cells), spec.parcels, replace=False))
    else:
        chosen = np.arange(len(cells))
    cells, dist_cbd = cells.take(chosen), dist_cbd[chosen]
    n = len(cells)

    inset = rng.uniform(4.0, 12.0, (n, 4))  # west, east, south, north road margins
    x0, x1 = -cells.size[:, 0] / 2 + inset[:, 0], cells.size[:, 0] / 2 - inset[:, 1]
    y0, y1 = -cells.size[:, 1] / 2 + inset[:, 2], cells.size[:, 1] / 2 - inset[:, 3]
    cut = rng.random(n) < 0.25  # some lose a corner (a road bend, a plaza)
    cx, cy = (x1 - x0) * rng.uniform(0.2, 0.4, n) * cut, (y1 - y0) * rng.uniform(0.2, 0.4, n) * cut
    local = np.stack(
        [
            np.column_stack([x0, y0]),
            np.column_stack([x1, y0]),
            np.column_stack([x1, y1 - cy]),
            np.column_stack([x1 - cx, y1]),
            np.column_stack([x0, y1]),
        ],
        axis=1,
    )
    geometry = shapely.remove_repeated_points(shapely.polygons(cells.local_to_metric(local)), 0.0)
    assert isinstance(geometry, np.ndarray)  # (n, 5, 2) coordinates: n polygons

    near_cbd = dist_cbd < CBD_RADIUS_M
    use_idx = np.where(
        near_cbd,
        rng.choice(len(names.PARCEL_USES), n, p=_PARCEL_USE_WEIGHTS_CBD / _PARCEL_USE_WEIGHTS_CBD.sum()),
        rng.choice(len(names.PARCEL_USES), n, p=_PARCEL_USE_WEIGHTS / _PARCEL_USE_WEIGHTS.sum()),
    )
    use = [names.PARCEL_USES[i][0] for i in use_idx]
    code = [names.PARCEL_USES[i][1] for i in use_idx]
    lo = np.array([_FAR_RANGE[c][0] for c in code])
    hi = np.array([_FAR_RANGE[c][1] for c in code])
    far = rng.uniform(lo, hi)
    far = np.where(near_cbd & np.isin(code, ["C1", "C1/R2"]), far * 1.6, far)
    coverage = np.where(np.isin(code, ["M1", "U", "S4"]), rng.uniform(0.4, 0.6, n), rng.uniform(0.2, 0.45, n))
    limits = [_HEIGHT_LIMITS[c][int(rng.integers(len(_HEIGHT_LIMITS[c])))] for c in code]
    height_limit = np.where(near_cbd & np.isin(code, ["C1", "C1/R2"]), rng.choice([200, 250, 300], n), limits)

    first, last = PARCEL_APPROVAL_RANGE
    approval = first + pd.to_timedelta(rng.integers(0, (last - first).days + 1, n), unit="D")
    start_deadline = approval + pd.DateOffset(years=1)
    completion_deadline = approval + pd.DateOffset(years=3)
    today = NOW.tz_localize(None)
    started = rng.random(n) < np.where(start_deadline < today, 0.88, 0.4)
    finished = rng.random(n) < 0.85
    status = np.where(
        ~started,
        np.where(start_deadline < today, "逾期未开工", "待开工"),
        np.where(completion_deadline >= today, "在建", np.where(finished, "已竣工", "逾期未竣工")),
    )
    street = admin.street_of_xy(cells.centre)
    seq = pd.Series(street).groupby(street).cumcount().to_numpy() + 1
    parcel_id = [f"B{101 + s}-{k:04d}" for s, k in zip(street, seq)]
    columns: dict[str, np.ndarray | list] = {
        "parcel_id": parcel_id,
        "use": use,
        "use_code": code,
        "approved_far": np.round(far, 2),
        "coverage": np.round(coverage, 2),
        "height_limit": height_limit.astype(float),
        "approval_date": as_dates(approval),
        "start_deadline": as_dates(start_deadline),
        "completion_deadline": as_dates(completion_deadline),
        "status": status,
    }
    return Parcels(geometry, columns)


def as_dates(values) -> np.ndarray:
    """datetime.date objects (written as GeoPackage DATE fields)."""
    return pd.DatetimeIndex(values).date
