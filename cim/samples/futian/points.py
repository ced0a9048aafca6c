"""Point layers: IoT sensors, video cameras and citizen tickets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from cim.samples import names
from cim.samples.futian.admin import Admin
from cim.samples.futian.buildings import Buildings
from cim.samples.futian.lattice import Cells, cell_corners, points_on_cell_edges
from cim.samples.futian.params import NOW

# imported as _rng: the functions here name their generators "rng"
from cim.samples.futian.params import rng as _rng
from cim.samples.futian.parcels import as_dates
from cim.samples.futian.partitions import apportion


def _near_buildings(
    buildings: Buildings, weights: np.ndarray, n: int, jitter_m: float, inside: BaseGeometry, rng: np.random.Generator
) -> np.ndarray:
    """Points at buildings (picked with the given weights) jittered by a few metres;
    a jittered point that leaves the district falls back to the building centroid."""
    centroids = shapely.get_coordinates(shapely.centroid(buildings.geometry))
    idx = rng.choice(len(centroids), size=n, p=weights / weights.sum())
    xy = centroids[idx] + rng.normal(0.0, jitter_m, (n, 2))
    outside = ~shapely.contains_xy(inside, xy[:, 0], xy[:, 1])
    xy[outside] = centroids[idx[outside]]
    return xy


def _southern_points(region: BaseGeometry, n: int, rng: np.random.Generator) -> np.ndarray:
    """Points inside region, denser towards its southern edge (river, coast)."""
    x0, y0, x1, y1 = region.bounds
    found: list[np.ndarray] = []
    count = 0
    while count < n:
        m = max(64, 3 * (n - count))
        xy = np.column_stack([rng.uniform(x0, x1, m), y0 + (y1 - y0) * rng.beta(1.2, 6.0, m)])
        xy = xy[shapely.contains_xy(region, xy[:, 0], xy[:, 1])]
        found.append(xy)
        count += len(xy)
    return np.vstack(found)[:n]


def _shuffled_counts(weights: np.ndarray, n: int, minimum: int, rng: np.random.Generator) -> np.ndarray:
    """Category index per item: exact shares of weights (each >= minimum), in random order."""
    counts = apportion(n, weights, minimum) if n >= minimum * len(weights) else apportion(n, weights, 0)
    return rng.permutation(np.repeat(np.arange(len(weights)), counts))


def _random_dates(first: str, last: str, n: int, rng: np.random.Generator) -> np.ndarray:
    start, end = pd.Timestamp(first), pd.Timestamp(last)
    return as_dates(start + pd.to_timedelta(rng.integers(0, (end - start).days + 1, n), unit="D"))


@dataclass
class PointLayer:
    xy: np.ndarray  # metric (n, 2)
    columns: dict[str, np.ndarray | list | pd.Series]


def build_sensors(buildings: Buildings, road_cells: Cells, district: BaseGeometry, n: int, seed: int) -> PointLayer:
    """IoT sensors: fire/gas/electrical detectors in buildings, manholes, hydrants,
    air and noise monitors on the street lattice, water level gauges towards the south."""
    rng = _rng(seed, "sensors")
    table = names.SENSOR_CATEGORIES
    category = _shuffled_counts(np.array([share for _, _, share, _ in table]), n, 1, rng)
    codes = np.array([c for c, _, _, _ in table], dtype=object)[category]
    xy = np.empty((n, 2))
    inside = shapely.buffer(district, -1.0)
    shapely.prepare(inside)
    in_building = np.isin(codes, ["smoke_detector", "gas_detector", "electrical_fire"])
    weight = shapely.area(buildings.geometry) * buildings.floors
    xy[in_building] = _near_buildings(buildings, weight, int(in_building.sum()), 3.0, inside, rng)
    on_street = np.isin(codes, ["manhole_cover", "hydrant_pressure", "air_quality", "noise"])
    xy[on_street] = points_on_cell_edges(road_cells, int(on_street.sum()), rng)
    water = codes == "water_level"
    xy[water] = _southern_points(shapely.buffer(district, -5.0), int(water.sum()), rng)

    vendor = np.empty(n, dtype=object)
    for i, (_, _, _, vendors) in enumerate(table):
        sel = category == i
        vendor[sel] = np.array(vendors, dtype=object)[rng.integers(0, len(vendors), int(sel.sum()))]
    status = np.array(["normal", "fault", "offline"], dtype=object)[rng.choice(3, n, p=[0.93, 0.04, 0.03])]
    return PointLayer(
        xy,
        {
            "id": [f"SNS{i:07d}" for i in range(1, n + 1)],
            "category": codes,
            "category_name": np.array([name for _, name, _, _ in table], dtype=object)[category],
            "install_date": _random_dates("2018-01-01", "2026-10-31", n, rng),
            "vendor": vendor,
            "status": status,
        },
    )


def _road_names(street: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.empty(len(street), dtype=object)
    for s, (_, name, _) in enumerate(names.STREETS):
        sel = street == s
        roads = np.array(names.ROADS[name], dtype=object)
        out[sel] = roads[rng.integers(0, len(roads), int(sel.sum()))]
    return out


def build_cameras(road_cells: Cells, admin: Admin, n: int, seed: int) -> PointLayer:
    """Video cameras at street crossings and along streets."""
    rng = _rng(seed, "cameras")
    at_corner = rng.random(n) < 0.5
    xy = np.empty((n, 2))
    xy[at_corner] = cell_corners(road_cells, int(at_corner.sum()), rng)
    xy[~at_corner] = points_on_cell_edges(road_cells, int((~at_corner).sum()), rng)
    kinds = np.array([k for k, _ in names.CAMERA_KINDS], dtype=object)
    kind = kinds[rng.choice(len(kinds), n, p=[w for _, w in names.CAMERA_KINDS])]
    fov = np.select(
        [kind == "枪机", kind == "球机"], [rng.uniform(30, 70, n), rng.uniform(45, 90, n)], rng.uniform(90, 100, n)
    )
    range_m = np.select(
        [kind == "枪机", kind == "球机"], [rng.uniform(50, 200, n), rng.uniform(60, 200, n)], rng.uniform(30, 80, n)
    )
    street = admin.street_of_xy(xy)
    street_names = np.array(admin.streets.names, dtype=object)[street]
    road = _road_names(street, rng)
    number = rng.integers(1, 300, n)
    ids = [f"CAM{i:06d}" for i in range(1, n + 1)]
    return PointLayer(
        xy,
        {
            "id": ids,
            "name": [f"{s}{r}{k}号{c}" for s, r, k, c in zip(street_names, road, number, kind)],
            "heading": np.round(rng.uniform(0.0, 360.0, n), 1),
            "fov": np.round(fov, 1),
            "range_m": np.round(range_m, 1),
            "height_m": np.round(rng.uniform(3.0, 12.0, n), 1),
            "stream_url": [f"/live/cameras/{i}/index.m3u8" for i in ids],
            "status": np.where(rng.random(n) < 0.94, "online", "offline"),
            "kind": kind,
        },
    )


# Hour-of-day weights for ticket creation (Asia/Shanghai local time).
_HOURLY = np.array(
    [
        1,
        0.6,
        0.4,
        0.3,
        0.3,
        0.5,
        1.2,
        2.5,
        4.5,
        6.5,
        7.0,
        6.5,
        5.0,
        5.5,
        6.5,
        6.5,
        6.0,
        5.5,
        4.5,
        4.0,
        3.5,
        3.0,
        2.2,
        1.5,
    ]
)
OPEN_SHARE = 0.02  # the newest ~2 % of tickets are still open
LATE_SHARE = 0.10  # ~10 % miss one of the 10 min / 30 min / 24 h targets


def ticket_timeline(n: int, rng: np.random.Generator) -> dict[str, pd.Series]:
    """created/acknowledged/contacted/resolved times following the "10-30-24" rule
    (acknowledge within 10 min, contact within 30 min, resolve within 24 h of creation)."""
    minute = 60
    day = rng.integers(0, 365, n)
    hour = rng.choice(24, n, p=_HOURLY / _HOURLY.sum())
    created = (day * 86_400 + hour * 3_600 + rng.integers(0, 3_600, n)).astype(np.int64)

    ack = np.clip(rng.lognormal(np.log(3 * minute), 0.6, n), 20, 9.5 * minute)
    contact = ack + rng.uniform(0.05, 1.0, n) * (29.5 * minute - ack)
    resolve = np.clip(rng.lognormal(np.log(5 * 3_600), 0.8, n), 40 * minute, 23.8 * 3_600)
    late_stage = np.where(rng.random(n) < LATE_SHARE, rng.choice(3, n, p=[0.3, 0.3, 0.4]), -1)
    ack = np.where(late_stage == 0, rng.uniform(10.5, 90, n) * minute, ack)
    contact = np.where(late_stage == 0, ack + rng.uniform(2, 30, n) * minute, contact)
    contact = np.where(late_stage == 1, rng.uniform(31, 240, n) * minute, contact)
    resolve = np.where(late_stage == 2, rng.uniform(24.5, 120, n) * 3_600, resolve)
    resolve = np.maximum(resolve, contact + rng.uniform(5, 60, n) * minute)

    # seconds since the window start (local midnight a year before NOW)
    stamps = np.column_stack([created, created + ack, created + contact, created + resolve]).astype(np.int64)
    window_start = NOW - pd.Timedelta(days=365)
    now = int((NOW - window_start).total_seconds())
    # stages reached (1 = created only, 2 = acknowledged, 3 = contacted, 4 = resolved):
    # the newest tickets are still open, and nothing happens after NOW
    newest = np.argsort(created, kind="stable")[::-1][: round(OPEN_SHARE * n)]
    reached = np.full(n, 4)
    reached[newest] = rng.choice([1, 2, 3], len(newest), p=[0.35, 0.3, 0.35])
    reached = np.minimum(reached, (stamps <= now).sum(axis=1))
    present = np.arange(4)[None, :] < reached[:, None]
    out: dict[str, pd.Series] = {}
    for j, key in enumerate(("created_at", "acknowledged_at", "contacted_at", "resolved_at")):
        values = pd.Series(window_start + pd.to_timedelta(stamps[:, j], unit="s"))
        out[key] = values.where(present[:, j])
    return out


def build_tickets(buildings: Buildings, road_cells: Cells, admin: Admin, n: int, seed: int) -> PointLayer:
    """Citizen requests (民生诉求) at buildings and on streets, with SLA timestamps."""
    rng = _rng(seed, "tickets")
    inside = shapely.buffer(admin.boundary, -1.0)
    shapely.prepare(inside)
    at_building = rng.random(n) < 0.5
    xy = np.empty((n, 2))
    xy[at_building] = _near_buildings(
        buildings, np.ones(len(buildings.geometry)), int(at_building.sum()), 15.0, inside, rng
    )
    xy[~at_building] = points_on_cell_edges(road_cells, int((~at_building).sum()), rng)

    times = ticket_timeline(n, rng)
    order = np.argsort(times["created_at"].to_numpy(), kind="stable")  # ids follow creation time
    xy = xy[order]
    times = {k: v.iloc[order].reset_index(drop=True) for k, v in times.items()}

    channel = _shuffled_counts(np.array([w for _, w in names.TICKET_CHANNELS]), n, 1, rng)
    cat_weights = np.array([w for _, w, _ in names.TICKET_CATEGORIES])
    category = rng.choice(len(cat_weights), n, p=cat_weights / cat_weights.sum())
    street = admin.street_of_xy(xy)
    street_names = np.array(admin.streets.names, dtype=object)[street]
    departments = np.array([d for _, _, d in names.TICKET_CATEGORIES], dtype=object)[category]
    to_street_office = (departments == "") | (rng.random(n) < 0.12)
    departments = np.where(to_street_office, "福田区" + street_names + "办事处", departments)
    road = _road_names(street, rng)
    number = rng.integers(1, 400, n)
    status = np.where(
        times["resolved_at"].notna(), "已办结", np.where(times["acknowledged_at"].notna(), "处理中", "待受理")
    )
    return PointLayer(
        xy,
        {
            "id": [f"TK{i:08d}" for i in range(1, n + 1)],
            "channel": np.array([c for c, _ in names.TICKET_CHANNELS], dtype=object)[channel],
            "category": np.array([c for c, _, _ in names.TICKET_CATEGORIES], dtype=object)[category],
            "address": [f"{s}{r}{k}号" for s, r, k in zip(street_names, road, number)],
            **times,
            "status": status,
            "department": departments,
        },
    )
