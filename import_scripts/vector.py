"""Reading vector sources and normalising them to valid EPSG:4326 features.

Shared by the importers that take footprints or features (``layer``,
``buildings``): read with pyogrio (Shapefile, GeoPackage, GeoJSON,
FlatGeobuf, CSV with lon/lat or WKT columns, and anything else GDAL reads),
resolve the CRS, transform, undo GCJ-02/BD-09, repair invalid geometries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyogrio
import pyogrio.errors
import pyproj
import shapely

from cim.crs import WGS84, Datum, geometries_to_wgs84, resolve_crs
from cim.errors import CrsError, InputError
from import_scripts.report import NAMED
from layers.load import FeatureTable

#: column names GDAL's CSV driver takes as coordinates or geometry
_CSV_OPTIONS = {
    "X_POSSIBLE_NAMES": "lon,lng,long,longitude,x,经度",
    "Y_POSSIBLE_NAMES": "lat,latitude,y,纬度",
    "GEOM_POSSIBLE_NAMES": "wkt,geometry,geom,the_geom,shape",
    "KEEP_GEOM_COLUMNS": "NO",
    "AUTODETECT_TYPE": "YES",
}
_LONLAT_NAMES = {"lon", "lng", "long", "longitude", "经度"}
_FAMILIES = {
    "Point": "point",
    "MultiPoint": "point",
    "LineString": "line",
    "MultiLineString": "line",
    "LinearRing": "line",
    "Polygon": "polygon",
    "MultiPolygon": "polygon",
}
_LAYER_TYPE = {"line": "MultiLineString", "polygon": "MultiPolygon"}


@dataclass(frozen=True)
class LayerOptions:
    """What every vector import takes (``cim import layer`` and the importers built on it)."""

    title: str | None = None
    layer: str | None = None  # the layer inside a multi-layer file
    src_crs: str | None = None
    datum: Datum = Datum.wgs84
    grid_join: bool = True


@dataclass
class VectorSource:
    """A source as read: attributes and geometries in the source CRS."""

    path: Path
    layer: str
    attributes: pa.Table
    geometry: np.ndarray
    crs: pyproj.CRS
    crs_note: str


@dataclass
class NormaliseReport:
    repaired: int = 0
    skipped_count: int = 0
    skipped: list[str] = field(default_factory=list)  # the first few, as "record 12: no geometry"
    notes: list[str] = field(default_factory=list)


def _choose_layer(path: Path, layer: str | None, name_hint: str | None) -> str:
    try:
        layers = [str(row[0]) for row in pyogrio.list_layers(path)]
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise InputError(
            str(path),
            f"not a vector file GDAL can read ({_first_line(exc)})",
            hint="use Shapefile, GeoPackage, GeoJSON, FlatGeobuf or CSV",
        ) from exc
    if not layers:
        raise InputError(str(path), "holds no layers")
    if layer is not None:
        if layer not in layers:
            raise InputError(str(path), f"has no layer {layer!r}", hint=f"its layers: {', '.join(layers)}")
        return layer
    if len(layers) == 1:
        return layers[0]
    if name_hint in layers:
        return name_hint
    raise InputError(str(path), f"holds {len(layers)} layers", hint=f"choose one with --layer: {', '.join(layers)}")


def _first_line(exc: Exception) -> str:
    """GDAL's message, without its advice on driver prefixes."""
    text = str(exc).strip()
    return text.splitlines()[0].split("; It might help")[0].rstrip(".") if text else type(exc).__name__


def read_vector(
    path: Path | str, *, layer: str | None = None, src_crs: str | None = None, name_hint: str | None = None
) -> VectorSource:
    """Read a vector source whole. ``src_crs`` overrides the file's CRS (and
    is required when the file has none)."""
    path = Path(path)
    if not path.exists():
        raise InputError(str(path), "no such file or folder")
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(str(path), "is empty (0 bytes)")
    layer_name = _choose_layer(path, layer, name_hint)
    is_csv = path.suffix.lower() in (".csv", ".tsv", ".txt")
    options = _CSV_OPTIONS if is_csv else {}
    try:
        meta, table = pyogrio.read_arrow(path, layer=layer_name, **options)
    except (
        pyogrio.errors.DataSourceError,
        pyogrio.errors.DataLayerError,
        pyogrio.errors.FieldError,
        pyogrio.errors.GeometryError,
        pyogrio.errors.CRSError,
    ) as exc:
        raise InputError(str(path), f"cannot be read ({_first_line(exc)})") from exc
    geom_col = next(
        (
            c
            for c in ("wkb_geometry", meta.get("geometry_name") or "", "geometry", "geom")
            if c and c in table.column_names
        ),
        None,
    )
    if geom_col is None:
        hint = "CSV needs lon/lat columns or a WKT column named wkt/geometry" if is_csv else None
        raise InputError(str(path), "has no geometry column", hint=hint)
    if table.num_rows == 0:
        raise InputError(str(path), f"layer {layer_name!r} has no features")
    try:
        geometry = shapely.from_wkb(table.column(geom_col).to_numpy(zero_copy_only=False), on_invalid="raise")
    except shapely.errors.GEOSException as exc:
        raise InputError(str(path), f"holds a geometry that cannot be decoded ({exc})") from exc
    attributes = table.drop_columns([geom_col])

    if src_crs:
        crs = resolve_crs(src_crs, source=f"{path}: --src-crs")
        crs_note = f"{crs.name} (--src-crs)"
    elif meta.get("crs"):
        crs = resolve_crs(meta["crs"], source=str(path))
        crs_note = crs.name
    elif is_csv and _LONLAT_NAMES & {c.lower() for c in _csv_header(path)}:
        crs = WGS84
        crs_note = "EPSG:4326, assumed from the lon/lat column names"
    else:
        raise CrsError(
            str(path),
            "has no coordinate reference system and none was given",
            hint="pass --src-crs, e.g. --src-crs 4547 or --src-crs file.prj",
        )
    return VectorSource(
        path=path, layer=layer_name, attributes=attributes, geometry=geometry, crs=crs, crs_note=crs_note
    )


def _csv_header(path: Path) -> list[str]:
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        first = fh.readline()
    sep = "\t" if first.count("\t") > first.count(",") else ","
    return [c.strip().strip('"') for c in first.split(sep)]


_TYPE_NAMES = np.array(
    [
        "Point",
        "LineString",
        "LinearRing",
        "Polygon",
        "MultiPoint",
        "MultiLineString",
        "MultiPolygon",
        "GeometryCollection",
    ]
)
_FAMILY_OF_TYPE = np.array([_FAMILIES.get(n, "other") for n in _TYPE_NAMES])


def normalise(source: VectorSource, datum: Datum = Datum.wgs84) -> tuple[FeatureTable, NormaliseReport]:
    """Valid EPSG:4326 features of one geometry type, with a report of what
    was repaired or skipped. Fails, naming the record, where the data cannot
    be right (coordinates that are not lon/lat, mixed geometry kinds)."""
    report = NormaliseReport()
    where = str(source.path)
    if shapely.has_z(source.geometry).any():
        report.notes.append("Z coordinates dropped: layers are 2D (heights belong in attributes)")
    geoms = shapely.force_2d(source.geometry)
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    report.skipped_count = int(missing.sum())
    report.skipped += [f"record {i + 1}: no geometry" for i in np.flatnonzero(missing)[:NAMED]]
    keep = ~missing
    if not keep.any():
        raise InputError(where, "no record has a geometry")

    types = np.clip(shapely.get_type_id(geoms), 0, 7)
    fam_of_row = _FAMILY_OF_TYPE[types]
    present, counts = np.unique(fam_of_row[keep], return_counts=True)
    family = str(present[np.argmax(counts)])  # the layer's kind: what most records are
    if family == "other":
        raise InputError(where, "holds only geometry collections", hint="split them into points, lines or polygons")
    odd = np.flatnonzero(keep & (fam_of_row != family))
    if len(odd):
        i = odd[0]
        raise InputError(
            where,
            f"is a {_TYPE_NAMES[types[i]]} in a layer of {family}s ({len(odd)} such records)",
            record=f"record {i + 1}",
            hint="split the file by geometry type",
        )

    idx = np.flatnonzero(keep)
    geoms = geometries_to_wgs84(geoms[idx], source.crs, datum)
    bounds = shapely.bounds(geoms)
    bad = (
        ~np.isfinite(bounds).all(axis=1)
        | (np.abs(bounds[:, [0, 2]]) > 180).any(axis=1)
        | (np.abs(bounds[:, [1, 3]]) > 90).any(axis=1)
    )
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raw = shapely.bounds(source.geometry[idx[i]])
        raise CrsError(
            where,
            f"coordinates ({raw[0]:.6g}, {raw[1]:.6g}) do not fit {source.crs_note}",
            record=f"record {idx[i] + 1}",
            hint="give the right CRS with --src-crs",
        )

    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        fixed = shapely.make_valid(geoms[invalid])
        geoms[invalid] = _keep_family(fixed, family)
        still_bad = shapely.is_empty(geoms) | shapely.is_missing(geoms)
        report.repaired = int(invalid.sum()) - int(still_bad.sum())
        if still_bad.any():
            report.skipped_count += int(still_bad.sum())
            report.skipped += [
                f"record {idx[j] + 1}: invalid geometry that cannot be repaired"
                for j in np.flatnonzero(still_bad)[:NAMED]
            ]
            geoms, idx = geoms[~still_bad], idx[~still_bad]
            if len(idx) == 0:
                raise InputError(where, "no record has a usable geometry (all are invalid and cannot be repaired)")

    if family == "point" and not (shapely.get_type_id(geoms) == 4).any():
        layer_type = "Point"
    else:
        layer_type = "MultiPoint" if family == "point" else _LAYER_TYPE[family]
        geoms = _to_multi(geoms, family)
    attributes = source.attributes.take(pa.array(idx)) if source.attributes.num_columns else source.attributes
    return FeatureTable(attributes=attributes, geometry=geoms, geometry_type=layer_type), report


def _keep_family(geoms: np.ndarray, family: str) -> np.ndarray:
    """From make_valid's output keep only the parts of the layer's kind
    (a repaired bow-tie polygon may come back with a stray line)."""
    wanted = {"point": (0, 4), "line": (1, 2, 5), "polygon": (3, 6)}[family]
    out = np.empty(len(geoms), dtype=object)
    for k, g in enumerate(geoms):
        if shapely.get_type_id(g) in wanted:
            out[k] = g
            continue
        parts = [p for p in shapely.get_parts(g) if shapely.get_type_id(p) in wanted and not p.is_empty]
        flat = [q for p in parts for q in shapely.get_parts(p)]
        out[k] = shapely.union_all(flat) if flat else shapely.Polygon() if family == "polygon" else None
    return out


def _to_multi(geoms: np.ndarray, family: str) -> np.ndarray:
    """Promote single geometries to their Multi type (vectorised: a (n, 1)
    array of parts makes n one-part Multi geometries)."""
    single_ids = {"point": (0,), "line": (1, 2), "polygon": (3,)}[family]
    makers: dict[str, Callable[[np.ndarray], shapely.Geometry | np.ndarray]] = {
        "point": shapely.multipoints,
        "line": shapely.multilinestrings,
        "polygon": shapely.multipolygons,
    }
    maker = makers[family]
    out = geoms.copy()
    is_single = np.isin(shapely.get_type_id(out), single_ids)
    if is_single.any():
        out[is_single] = maker(out[is_single].reshape(-1, 1))
    return out


@dataclass
class Features:
    """A source read and normalised: what every vector importer loads."""

    source: Path
    vector: VectorSource
    table: FeatureTable
    checks: NormaliseReport
