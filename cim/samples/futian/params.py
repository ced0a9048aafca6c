"""The sample's layer list, boundary file, CRS, constants, scales and seeded random streams."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyproj

LAYERS: tuple[str, ...] = (
    "futian_boundary",
    "streets",
    "communities",
    "grids",
    "buildings",
    "buildings_2026",
    "parcels",
    "farmland",
    "forest",
    "eco_redline",
    "construction_land",
    "sensors",
    "cameras",
    "tickets",
    "components",
)

BOUNDARY_GCJ02: Path = Path(__file__).resolve().parents[3] / "data_samples" / "boundaries" / "440304.geojson"

Scale = Literal["small", "full"]

METRIC_CRS = pyproj.CRS.from_epsg(4547)

DECIMALS = 7  # output lon/lat precision, ~1 cm
NODE_GRID_M = 1e-3  # snap-rounding grid for noding the admin coverage (1 mm)
BUILDING_MARGIN_M = 1.5  # each building keeps this far inside its lattice cell: gaps >= 3 m
COMMUNITY_COUNT = 92
GRID_COUNT = 1646
SMALL_OVERSHOOT = 1.05  # the small sample may exceed its building count by this factor
CBD_LONLAT = (114.055, 22.537)
CBD_RADIUS_M = 1400.0  # towers (100-300 m) only within this distance of the CBD
#: where ``cim demo`` stands its BIM model (cim.demo.DEMO_BIM_ANCHOR; the FZK-Haus reaches 3 m
#: west/south and 15/13 m east/north of it): the street block holding it is a vacant
#: residential parcel (待开工), so that the model stands whole on it, clear of buildings
DEMO_SITE_LONLAT = (114.05503, 22.53071)
TZ = "Asia/Shanghai"
NOW = pd.Timestamp("2026-11-01 00:00:00", tz=TZ)  # the sample's "today"


@dataclass(frozen=True)
class ScaleSpec:
    """Feature counts of one scale (``buildings=None``: every building the lattices hold).

    ``cbd_focus``: buildings and parcels are the ones nearest the CBD (a dense,
    contiguous piece of the district) rather than spread over all of it."""

    buildings: int | None
    parcels: int
    sensors: int
    cameras: int
    tickets: int
    cbd_focus: bool
    components: int


SCALES: dict[str, ScaleSpec] = {
    "small": ScaleSpec(
        buildings=2_000, parcels=200, sensors=5_000, cameras=500, tickets=3_000, cbd_focus=True, components=10_000
    ),
    "full": ScaleSpec(
        buildings=None,
        parcels=2_000,
        sensors=270_000,
        cameras=20_000,
        tickets=150_000,
        cbd_focus=False,
        components=500_000,
    ),
}


def rng(seed: int, stream: str) -> np.random.Generator:
    """An independent generator per named stream, so layers don't shift each other's draws."""
    return np.random.default_rng([int(seed), zlib.crc32(stream.encode("utf-8"))])
