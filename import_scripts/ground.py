"""The ground under what is imported: heights sampled from the newest DEM
(``cim import raster --kind dem``), already ellipsoidal, so that white-model
buildings stand on the terrain the viewer draws and oblique photography and
BIM (made ellipsoidal with the geoid) meet them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyproj
import shapely

from cim.config import Settings
from cim.db import connect
from layers.rasters import RasterInfo, list_rasters

MAX_CELLS = 64_000_000  # a window larger than this is read from an overview


@dataclass(frozen=True)
class Ground:
    heights: np.ndarray  # one per footprint; NaN where the DEM does not reach (or holds no data)
    dem: RasterInfo

    @property
    def covered(self) -> int:
        return int(np.isfinite(self.heights).sum())


def newest_dem(settings: Settings, bbox: tuple[float, float, float, float]) -> RasterInfo | None:
    """The newest epoch of the DEMs that reach into ``bbox`` (WGS 84)."""
    w, s, e, n = bbox
    with connect(settings) as conn:
        dems = [
            r
            for r in list_rasters(conn)
            if r.kind == "dem" and r.bbox[0] <= e and r.bbox[2] >= w and r.bbox[1] <= n and r.bbox[3] >= s
        ]
    return max(dems, key=lambda r: r.epoch, default=None)


def sample(path: Path, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """The DEM's values at lon/lat (nearest cell), NaN outside it or on no data. One read of
    the window holding every point (from an overview when it is very large)."""
    import rasterio
    from rasterio.windows import Window

    out = np.full(len(lon), np.nan)
    if len(lon) == 0:
        return out
    with rasterio.open(path) as src:
        to_src = pyproj.Transformer.from_crs(4326, pyproj.CRS.from_wkt(src.crs.to_wkt()), always_xy=True)
        x, y = to_src.transform(lon, lat)
        rows, cols = rasterio.transform.rowcol(src.transform, x, y)
        rows, cols = np.asarray(rows), np.asarray(cols)
        inside = (rows >= 0) & (rows < src.height) & (cols >= 0) & (cols < src.width)
        if not inside.any():
            return out
        r0, r1 = int(rows[inside].min()), int(rows[inside].max()) + 1
        c0, c1 = int(cols[inside].min()), int(cols[inside].max()) + 1
        step = max(1, int(np.ceil(np.sqrt((r1 - r0) * (c1 - c0) / MAX_CELLS))))
        shape = (max(1, (r1 - r0) // step), max(1, (c1 - c0) // step))
        data = src.read(1, window=Window(c0, r0, c1 - c0, r1 - r0), out_shape=shape, masked=True, out_dtype="float64")
        rr = np.clip((rows[inside] - r0) // step, 0, shape[0] - 1)
        cc = np.clip((cols[inside] - c0) // step, 0, shape[1] - 1)
        values = np.ma.filled(data[rr, cc], np.nan)
    out[inside] = values
    return out


def ground_under(settings: Settings, footprints: np.ndarray) -> Ground | None:
    """The terrain under each footprint (lon/lat polygons): the lowest of the DEM's
    values at its vertices and its centroid (a building stands on its lowest corner,
    as a white model must not float); None without a DEM."""
    w, s, e, n = (float(v) for v in shapely.total_bounds(footprints))
    dem = newest_dem(settings, (w, s, e, n))
    if dem is None:
        return None
    rings = shapely.get_coordinates(footprints, return_index=True)
    coords, owner = rings[0], rings[1]
    centroids = shapely.get_coordinates(shapely.centroid(footprints))
    xy = np.vstack([coords, centroids])
    who = np.concatenate([owner, np.arange(len(footprints))])
    values = sample(settings.rasters_dir / dem.name / dem.file, xy[:, 0], xy[:, 1])
    heights = np.full(len(footprints), np.inf)
    np.minimum.at(heights, who, np.where(np.isfinite(values), values, np.inf))
    heights[~np.isfinite(heights)] = np.nan
    return Ground(heights, dem)
