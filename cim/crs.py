"""Coordinate reference systems: resolving user input, and China's offset datums.

Layers are stored in EPSG:4326. Inputs come as EPSG codes, whole WKT (read
whole: see :func:`resolve_crs`), CGCS2000 (EPSG:4490, within centimetres of
WGS84) or Gauss-Krüger zones (EPSG:4547 …), and sometimes in GCJ-02 ("Mars"
coordinates used by Amap/Tencent) or BD-09 (Baidu), which are obfuscated
WGS84 and are converted here.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pyproj
import shapely

from cim.errors import CrsError

WGS84 = pyproj.CRS.from_epsg(4326)
ECEF = pyproj.CRS.from_epsg(4978)


class Datum(str, enum.Enum):
    """The datum a source's lon/lat are in (after CRS transformation)."""

    wgs84 = "wgs84"
    gcj02 = "gcj02"
    bd09 = "bd09"


# --- CRS input -------------------------------------------------------------

_ROOT_ID = re.compile(r',\s*(AUTHORITY|ID)\s*\[\s*"[^"]*"\s*,\s*"?[^"\]]*"?\s*\]\s*\]\s*$', re.S)


def strip_root_authority(wkt: str) -> str:
    """Drop the AUTHORITY/ID of the outermost WKT object, keeping the nested ones.

    Real productions ship WKT whose parameters were edited but whose root
    AUTHORITY still names the original code (the shared oblique sample says
    EPSG:4547 with central meridian 113.37 and false northing 90). PROJ may
    then prefer the code to the parameters; without the root id it can only
    use the parameters, which are the truth.
    """
    wkt = wkt.strip()
    return _ROOT_ID.sub("]", wkt)


def resolve_crs(value: str | int | pyproj.CRS, *, source: str = "--src-crs") -> pyproj.CRS:
    """A CRS from an EPSG code (``4547``, ``EPSG:4547``), a WKT string, a PROJ
    string, or the path of a ``.prj``/``.wkt`` file. WKT is read whole."""
    if isinstance(value, pyproj.CRS):
        return value
    text = str(value).strip()
    if not text:
        raise CrsError(source, "empty CRS")
    path = Path(text)
    if len(text) < 4096 and path.suffix.lower() in {".prj", ".wkt"} and path.is_file():
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    if text.isdigit():
        text = f"EPSG:{text}"
    try:
        if (
            text.lstrip()
            .upper()
            .startswith(("PROJCS", "GEOGCS", "PROJCRS", "GEOGCRS", "GEODCRS", "COMPD", "COMPOUNDCRS", "BOUNDCRS"))
        ):
            return pyproj.CRS.from_wkt(strip_root_authority(text))
        return pyproj.CRS.from_user_input(text)
    except pyproj.exceptions.CRSError as exc:
        shown = text if len(text) < 60 else text[:57] + "..."
        found = re.search(r"proj_create: ([^:)]+)", str(exc))  # PROJ's own words, without its nesting
        reason = found.group(1).strip() if found else str(exc).splitlines()[0]
        raise CrsError(
            source,
            f"not a coordinate reference system I can read: {shown!r} ({reason})",
            hint="give an EPSG code such as 4547, or the whole WKT",
        ) from exc


def is_wgs84_like(crs: pyproj.CRS) -> bool:
    """True for geographic WGS84 and CGCS2000 (EPSG:4490), which are within
    centimetres of each other and stored without transformation."""
    if not crs.is_geographic:
        return False
    epsg = crs.to_epsg(min_confidence=70)
    if epsg in (4326, 4490, 4610, 4479):  # WGS84, CGCS2000 (geographic 2D/3D)
        return True
    ellps, meridian = crs.ellipsoid, crs.prime_meridian
    return (
        ellps is not None
        and abs(ellps.semi_major_metre - 6378137.0) < 1e-3
        and meridian is not None
        and meridian.longitude == 0
    )


# --- GCJ-02 / BD-09 ----------------------------------------------------------
# Written by hand: the PyPI packages that do this (eviltransform, prcoords,
# coordtransform) work one point at a time in pure Python; imports need
# millions of vertices per second, so this is the same published formula
# vectorised with numpy, plus an iterative inverse accurate to millimetres.

_A = 6378245.0  # Krasovsky 1940 semi-major axis used by the GCJ-02 formula
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0


def _outside_china(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    return (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


def _delta(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = lon - 105.0
    y = lat - 35.0
    common = (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x)) + common
    dlat += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x)) + common
    dlon += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    radlat = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrtmagic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * np.cos(radlat) * np.pi)
    outside = _outside_china(lon, lat)
    return np.where(outside, 0.0, dlon), np.where(outside, 0.0, dlat)


def wgs84_to_gcj02(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """The published GCJ-02 forward formula (identity outside China)."""
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    dlon, dlat = _delta(lon, lat)
    return lon + dlon, lat + dlat


def gcj02_to_bd09(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(lon, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def wgs84_to_bd09(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def _invert(forward, lon, lat, *, tol_deg: float = 1e-10, max_iter: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Solve forward(x) = target by fixed-point iteration; forward is
    identity plus a slowly varying offset, so each step gains ~3 digits."""
    tx = np.asarray(lon, dtype=np.float64)
    ty = np.asarray(lat, dtype=np.float64)
    x, y = tx.copy(), ty.copy()
    for _ in range(max_iter):
        fx, fy = forward(x, y)
        ex, ey = fx - tx, fy - ty
        x = x - ex
        y = y - ey
        if ex.size == 0 or max(np.abs(ex).max(), np.abs(ey).max()) < tol_deg:
            break
    return x, y


def gcj02_to_wgs84(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`wgs84_to_gcj02`, to about a millimetre."""
    return _invert(wgs84_to_gcj02, lon, lat)


def bd09_to_wgs84(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`wgs84_to_bd09`, to about a millimetre."""
    return _invert(wgs84_to_bd09, lon, lat)


_TO_WGS84 = {Datum.gcj02: gcj02_to_wgs84, Datum.bd09: bd09_to_wgs84}


def transform_arrays(transformer: pyproj.Transformer, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """``transformer.transform`` over coordinate arrays of any length.

    pyproj 3.7 takes a one-element array for a scalar (a NumPy deprecation,
    soon an error); a single point is therefore transformed as two."""
    # cast: pyproj's overloads take two to four arrays by position, which mypy cannot match to *arrays
    transform = cast(Callable[..., tuple[Any, ...]], transformer.transform)
    arrays = tuple(np.atleast_1d(np.asarray(a, dtype=np.float64)) for a in arrays)
    if arrays[0].size == 1:
        out = transform(*(np.repeat(a, 2) for a in arrays), errcheck=False)
        return tuple(np.asarray(o)[:1] for o in out)
    return tuple(np.asarray(o) for o in transform(*arrays, errcheck=False))


# --- geometry arrays ------------------------------------------------------------


def geometries_to_wgs84(geoms: np.ndarray, crs: pyproj.CRS, datum: Datum = Datum.wgs84) -> np.ndarray:
    """Transform an array of shapely geometries from ``crs`` (and ``datum``)
    to EPSG:4326 lon/lat, vectorised over all vertices at once."""
    geoms = np.asarray(geoms, dtype=object)
    if not is_wgs84_like(crs):
        transformer = pyproj.Transformer.from_crs(crs, WGS84, always_xy=True)

        def project(coords: np.ndarray) -> np.ndarray:
            return np.column_stack(transform_arrays(transformer, coords[:, 0], coords[:, 1]))

        geoms = shapely.transform(geoms, project)
    if datum != Datum.wgs84:
        inverse = _TO_WGS84[Datum(datum)]

        def undo_offset(coords: np.ndarray) -> np.ndarray:
            x, y = inverse(coords[:, 0], coords[:, 1])
            return np.column_stack([x, y])

        geoms = shapely.transform(geoms, undo_offset)
    return geoms


# --- CRS by reference (OGC API - Features Part 2) ----------------------------------

CRS84_URI = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


@dataclass(frozen=True)
class OutputCrs:
    """A CRS a client may ask features in (``crs=``) or give a bbox in (``bbox-crs=``)."""

    uri: str
    srid: int  # PostGIS SRID (spatial_ref_sys)
    northing_first: bool  # the CRS's first axis is latitude/northing: coordinates are flipped from PostGIS order
    decimals: int  # GeoJSON precision: 7 decimals of a degree (1 cm), 3 of a metre (1 mm)


def _epsg(code: int) -> OutputCrs:
    crs = pyproj.CRS.from_epsg(code)
    first_axis = crs.axis_info[0].direction.lower() if crs.axis_info else "east"
    return OutputCrs(
        f"http://www.opengis.net/def/crs/EPSG/0/{code}",
        code,
        first_axis == "north",
        7 if crs.is_geographic else 3,
    )


#: the CRSs features are offered in: CRS84 (lon/lat, the storage CRS), WGS84 and CGCS2000 in their
#: EPSG axis order (lat/lon), and CGCS2000 / 3-degree Gauss-Krüger zone 38 (CM 114E: Shenzhen), northing first
OUTPUT_CRS: tuple[OutputCrs, ...] = (
    OutputCrs(CRS84_URI, 4326, False, 7),
    _epsg(4326),
    _epsg(4490),
    _epsg(4547),
)
_BY_URI = {c.uri: c for c in OUTPUT_CRS}
_BY_URI["[OGC:CRS84]"] = _BY_URI["OGC:CRS84"] = OUTPUT_CRS[0]
for _c in OUTPUT_CRS[1:]:
    _BY_URI[f"[EPSG:{_c.srid}]"] = _BY_URI[f"EPSG:{_c.srid}"] = _c


def output_crs(uri: str | None, parameter: str = "crs") -> OutputCrs:
    """The CRS a ``crs``/``bbox-crs`` parameter names (default CRS84); an
    :class:`~cim.errors.InputError` names the parameter and lists the offered URIs."""
    if uri is None or not uri.strip():
        return OUTPUT_CRS[0]
    found = _BY_URI.get(uri.strip())
    if found is None:
        from cim.errors import InputError

        raise InputError(
            parameter, f"{uri!r} is not offered", hint=f"use one of: {', '.join(c.uri for c in OUTPUT_CRS)}"
        )
    return found


def bbox_to_crs84(bbox: tuple[float, float, float, float], crs: OutputCrs) -> tuple[float, float, float, float]:
    """A bbox given in ``crs`` (in its axis order) as lon/lat (densified edges: a projected box's curved sides)."""
    a, b, c, d = bbox
    if crs.srid == 4326 and not crs.northing_first:
        return bbox
    if crs.northing_first:  # (lat, lon) or (northing, easting) -> (x, y)
        a, b, c, d = b, a, d, c
    if crs.srid in (4326, 4490):  # within centimetres of WGS84 (DESIGN.md): the same numbers
        return (a, b, c, d)
    to_wgs84 = pyproj.Transformer.from_crs(crs.srid, "OGC:CRS84", always_xy=True)
    w, s, e, n = to_wgs84.transform_bounds(a, b, c, d, densify_pts=21)
    return (w, s, e, n)
