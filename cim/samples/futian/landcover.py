"""Land cover: forest, farmland and the ecological red line."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from cim.samples import names
from cim.samples.futian.geometry import (
    lonlat_box,
    lonlat_to_metric,
    polygons_only,
    rotate_xy,
    smooth_blob,
)

# imported as _rng: the functions here name their generators "rng"
from cim.samples.futian.params import rng as _rng
from cim.samples.futian.partitions import partition, random_points_in


@dataclass
class Patches:
    """Polygons with a code and a name (metric)."""

    codes: list[str]
    names: list[str]
    geometry: np.ndarray


@dataclass
class LandCover:
    forest: Patches
    farmland: Patches
    eco_redline: Patches
    hills: np.ndarray  # whole hill/park outlines (forest compartments sit inside)

    def no_build_zone(self) -> BaseGeometry:
        """Where nothing is built: hills, parks, farmland and the red line."""
        return shapely.union_all(np.concatenate([self.hills, self.farmland.geometry, self.eco_redline.geometry]))


def build_land_cover(district: BaseGeometry, seed: int) -> LandCover:
    rng = _rng(seed, "land")
    inner = shapely.buffer(district, -2.0)
    hills: list[BaseGeometry] = []
    hill_names: list[str] = []
    hill_parts: list[int] = []
    for name, (lon, lat), radius, aspect, parts in names.HILLS:
        centre = lonlat_to_metric(lon, lat)[0] + rng.normal(0.0, 40.0, 2)
        blob = smooth_blob(centre, radius * rng.uniform(0.9, 1.1), aspect, rng.uniform(-0.6, 0.6), rng)
        blob = polygons_only(shapely.intersection(blob, inner))
        if blob.is_empty:
            continue
        hills.append(blob)
        hill_names.append(name)
        hill_parts.append(parts)

    forest_geoms: list[BaseGeometry] = []
    forest_names: list[str] = []
    for blob, name, parts in zip(hills, hill_names, hill_parts):
        pieces = partition(blob, parts, rng, lloyd_steps=4)
        pieces = polygons_only_all(shapely.buffer(pieces, -4.0, join_style="mitre"))
        for k, piece in enumerate(pieces[~shapely.is_empty(pieces)], start=1):
            forest_geoms.append(piece)
            forest_names.append(f"{name}林地{k:02d}")

    eco_geoms, eco_names = _eco_redline(district, inner, hills, hill_names)
    eco_union = shapely.union_all(eco_geoms)
    farm_geoms, farm_names = _farmland(inner, shapely.union_all([*hills, eco_union]), rng)
    return LandCover(
        forest=Patches(
            [f"LD-{i:04d}" for i in range(1, len(forest_geoms) + 1)], forest_names, np.array(forest_geoms, dtype=object)
        ),
        farmland=Patches(
            [f"GD-{i:04d}" for i in range(1, len(farm_geoms) + 1)], farm_names, np.array(farm_geoms, dtype=object)
        ),
        eco_redline=Patches(
            [f"STHX-{i:04d}" for i in range(1, len(eco_geoms) + 1)], eco_names, np.array(eco_geoms, dtype=object)
        ),
        hills=np.array(hills, dtype=object),
    )


def polygons_only_all(geoms: np.ndarray) -> np.ndarray:
    return np.array([polygons_only(g) for g in geoms], dtype=object)


def _eco_redline(
    district: BaseGeometry, inner: BaseGeometry, hills: list[BaseGeometry], hill_names: list[str]
) -> tuple[list[BaseGeometry], list[str]]:
    """The mangrove coast, the Shenzhen River bank and the cores of the big hills."""
    ring = shapely.boundary(district)
    candidates: list[tuple[str, BaseGeometry]] = [
        (
            "福田红树林自然保护区生态保护红线",
            shapely.intersection(shapely.buffer(ring, 240.0), lonlat_box(113.98, 22.49, 114.036, 22.519)),
        ),
        (
            "深圳河湿地生态保护红线",
            shapely.intersection(shapely.buffer(ring, 80.0), lonlat_box(114.036, 22.49, 114.11, 22.534)),
        ),
    ]
    for hill, name in zip(hills, hill_names):
        if name in ("梅林山", "笔架山", "银湖山"):
            candidates.append((f"{name}生态保护红线", shapely.buffer(hill, -40.0)))
    geoms: list[BaseGeometry] = []
    labels: list[str] = []
    taken: BaseGeometry = shapely.Polygon()
    for label, geom in candidates:
        geom = polygons_only(shapely.difference(shapely.intersection(geom, inner), taken))
        if geom.is_empty:
            continue
        geoms.append(geom)
        labels.append(label)
        taken = shapely.union(taken, shapely.buffer(geom, 1.0))
    return geoms, labels


def _farmland(
    inner: BaseGeometry, avoid: BaseGeometry, rng: np.random.Generator
) -> tuple[list[BaseGeometry], list[str]]:
    """A few small vegetable plots in the north (above ~22.568N)."""
    north = shapely.intersection(inner, lonlat_box(113.98, 22.568, 114.11, 22.60))
    blocked: BaseGeometry = shapely.buffer(avoid, 15.0)
    wanted = int(rng.integers(4, 8))
    geoms: list[BaseGeometry] = []
    labels: list[str] = []
    for _ in range(400):
        if len(geoms) == wanted:
            break
        centre = random_points_in(north, 1, rng)[0]
        w, h = rng.uniform(60.0, 180.0), rng.uniform(50.0, 120.0)
        xy = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2.0
        plot = shapely.Polygon(centre + rotate_xy(xy, rng.uniform(-0.4, 0.4)))
        if not shapely.contains(north, plot) or shapely.intersects(blocked, plot):
            continue
        geoms.append(plot)
        place = names.FARMLAND_PLACES[int(rng.integers(len(names.FARMLAND_PLACES)))]
        labels.append(f"{place}耕地{len(geoms):02d}")
        blocked = shapely.union(blocked, shapely.buffer(plot, 20.0))
    return geoms, labels


def with_patches(base: Patches, extra: Patches) -> Patches:
    """base and then extra's polygons, extra's codes numbered on after base's (same prefix)."""
    prefix, _, last = base.codes[-1].rpartition("-")
    width, start = len(last), int(last) + 1
    codes = [f"{prefix}-{i:0{width}d}" for i in range(start, start + len(extra.names))]
    return Patches([*base.codes, *codes], [*base.names, *extra.names], np.concatenate([base.geometry, extra.geometry]))
