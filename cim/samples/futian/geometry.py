"""Coordinates (metric <-> output lon/lat, the district boundary) and small geometry helpers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyproj
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from cim.crs import gcj02_to_wgs84, geometries_to_wgs84
from cim.samples.futian.params import BOUNDARY_GCJ02, DECIMALS, METRIC_CRS

_LONLAT_TO_METRIC = pyproj.Transformer.from_crs(4326, METRIC_CRS, always_xy=True)


# --- coordinates -------------------------------------------------------------------


def lonlat_to_metric(lon, lat) -> np.ndarray:
    """WGS84 lon/lat -> EPSG:4547 metres, as an (n, 2) array."""
    x, y = _LONLAT_TO_METRIC.transform(np.asarray(lon, float), np.asarray(lat, float))
    return np.column_stack([np.atleast_1d(x), np.atleast_1d(y)])


def _project_coords(coords: np.ndarray) -> np.ndarray:
    return lonlat_to_metric(coords[:, 0], coords[:, 1])


def _round_coords(coords: np.ndarray) -> np.ndarray:
    return np.round(coords, DECIMALS)


def to_output(geoms) -> np.ndarray:
    """Metric geometries -> EPSG:4326 rounded to :data:`DECIMALS`.

    Vertex by vertex, so equal metric vertices give equal output vertices."""
    geoms = np.asarray(geoms, dtype=object)
    wgs = geometries_to_wgs84(geoms, METRIC_CRS)
    return shapely.remove_repeated_points(shapely.transform(wgs, _round_coords), 0.0)


def as_multipolygons(geoms) -> np.ndarray:
    """Polygons become one-part MultiPolygons; MultiPolygons stay."""
    geoms = np.asarray(geoms, dtype=object)
    out = geoms.copy()
    single = shapely.get_type_id(geoms) == shapely.GeometryType.POLYGON
    out[single] = shapely.multipolygons(geoms[single][:, None])
    return out


def load_boundary_metric(path: Path = BOUNDARY_GCJ02) -> BaseGeometry:
    """The real district outline: GCJ-02 GeoJSON -> WGS84 -> EPSG:4547."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("type") == "FeatureCollection":
        data = data["features"][0]
    if data.get("type") == "Feature":
        data = data["geometry"]
    gcj = shape(data)

    def undo_gcj02(coords: np.ndarray) -> np.ndarray:
        return np.column_stack(gcj02_to_wgs84(coords[:, 0], coords[:, 1]))

    metric = shapely.transform(shapely.transform(gcj, undo_gcj02), _project_coords)
    return shapely.make_valid(metric)


# --- small geometry helpers ----------------------------------------------------------


def rotate_xy(xy: np.ndarray, angle) -> np.ndarray:
    """Rotate (..., 2) coordinates counter-clockwise by angle (radians, scalar or per row)."""
    angle = np.asarray(angle, dtype=float)
    c, s = np.cos(angle), np.sin(angle)
    while c.ndim < xy.ndim - 1:
        c, s = c[..., None], s[..., None]
    x, y = xy[..., 0], xy[..., 1]
    return np.stack([c * x - s * y, s * x + c * y], axis=-1)


def scale_about(geom: BaseGeometry, origin: np.ndarray, factor: float) -> BaseGeometry:
    """geom scaled by factor about origin (metric)."""

    def scale(xy: np.ndarray) -> np.ndarray:
        return origin + (xy - origin) * factor

    return shapely.transform(geom, scale)


def to_local(geom: BaseGeometry, origin: np.ndarray, angle: float) -> BaseGeometry:
    """A geometry in a lattice's frame: origin at 0, x axis along angle."""
    return shapely.transform(geom, lambda c: rotate_xy(c - origin, -angle))


def lonlat_box(lon0: float, lat0: float, lon1: float, lat1: float) -> BaseGeometry:
    corners = lonlat_to_metric([lon0, lon1, lon1, lon0], [lat0, lat0, lat1, lat1])
    return shapely.Polygon(corners)


def smooth_blob(
    centre: np.ndarray, radius: float, aspect: float, angle: float, rng: np.random.Generator, vertices: int = 72
) -> BaseGeometry:
    """A wobbly star-shaped polygon (hill, park) around centre."""
    theta = np.linspace(0.0, 2.0 * np.pi, vertices, endpoint=False)
    r = np.ones(vertices)
    for k in range(2, 6):
        r += rng.uniform(0.0, 0.12) * np.cos(k * theta + rng.uniform(0.0, 2.0 * np.pi))
    xy = np.column_stack([radius * r * np.cos(theta), radius * aspect * r * np.sin(theta)])
    return shapely.Polygon(centre + rotate_xy(xy, angle))


def polygons_only(geom: BaseGeometry) -> BaseGeometry:
    """The polygon parts (over 1 m²) of an overlay result, as a MultiPolygon;
    drops the points and lines an overlay can leave behind."""
    parts = shapely.get_parts(geom)
    parts = parts[np.isin(shapely.get_type_id(parts), [shapely.GeometryType.POLYGON])]
    parts = parts[shapely.area(parts) > 1.0]
    if not len(parts):
        return shapely.Polygon()
    out = shapely.multipolygons(parts)
    assert isinstance(out, shapely.MultiPolygon)  # of a 1-D array of polygons: one MultiPolygon
    return out
