"""``cim import bim``: an IFC model (IFC2X3, IFC4, IFC4.3) -> a 3D Tiles 1.1
tileset with one feature per element, an element layer in PostGIS, and the
building outline layer.

read (ifcopenshell, all cores) -> georeference -> element layer, with the
tileset written inside its transaction -> commit -> tileset swap -> outline.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import shapely

from cim.config import Settings
from cim.db import connect
from cim.errors import CimError, InputError
from import_scripts.bim.georef import Anchor, georeference
from import_scripts.bim.reader import Model, properties_json, read_model
from import_scripts.layer import database_errors
from import_scripts.report import ImportReport, Progress
from layers.elements import NO_STOREY
from layers.load import FeatureTable, load_layer
from layers.schema import LAYER_SCHEMA, validate_layer_name
from tiles.bim import BimModel, Part, write_bim_tileset
from tiles.tileset import TilesetReport
from tiles.geodesy import ecef_to_lonlath
from tiles.metadata import Column
from tiles.output import TilesetVersion

_NAMED = 20
_MIN_SIZE_DEG = 1e-7  # about a centimetre: a flat element's footprint gets at least this width


@dataclass(frozen=True)
class BimOptions:
    title: str | None = None
    anchor: Anchor | None = None
    jobs: int | None = None
    grid_join: bool = True


def _footprints(model: Model, ecef: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each element's 2D footprint (convex hull of its vertices, lon/lat) and its height range."""
    hulls, z_min, z_max = [], [], []
    for points in ecef:
        llh = ecef_to_lonlath(points)
        hull = shapely.convex_hull(shapely.multipoints(llh[:, :2]))
        if not isinstance(hull, shapely.Polygon) or hull.area == 0:
            hull = hull.buffer(_MIN_SIZE_DEG, quad_segs=1)  # a wall seen edge-on, a line-like rail
        hulls.append(shapely.MultiPolygon([hull]))
        z_min.append(float(llh[:, 2].min()))
        z_max.append(float(llh[:, 2].max()))
    return np.array(hulls, dtype=object), np.array(z_min), np.array(z_max)


def _prototype(element) -> str:
    """Elements with the same key draw the same triangles in the same colours
    (ifcopenshell shares the geometry id of a repeated representation)."""
    return f"{element.geometry_id}:{hashlib.sha1(element.face_rgba.tobytes()).hexdigest()[:12]}"


def run(settings: Settings, source: Path, name: str, options: BimOptions = BimOptions(),
        progress: Progress | None = None) -> ImportReport:
    t0 = time.perf_counter()
    validate_layer_name(name)
    outline_name = f"{name}_outline"
    validate_layer_name(outline_name)
    if progress:
        progress("read", 0, 0)
    try:
        model = read_model(source, jobs=options.jobs)
        georef = georeference(model.file, str(source), options.anchor)
    except CimError:
        raise
    except Exception as exc:  # ifcopenshell's own failures on odd files: still one line naming the file
        raise InputError(str(source), f"cannot be read as IFC ({type(exc).__name__}: {exc})") from exc
    if progress:
        progress("place", 0, 0)
    elements = model.elements
    ecef = [georef.to_ecef(e.vertices) for e in elements]
    footprints, z_min, z_max = _footprints(model, ecef)
    storeys = [e.storey or NO_STOREY for e in elements]
    values = {  # each element's attributes, once: for its row in PostGIS and its feature in the tiles
        "global_id": [e.global_id for e in elements], "ifc_class": [e.ifc_class for e in elements],
        "name": [e.name for e in elements], "storey": [e.storey for e in elements],
        "type_name": [e.type_name for e in elements], "material": [e.material for e in elements],
        "properties": [properties_json(e) for e in elements],
    }
    attributes = pa.table({**values, "z_min": z_min, "z_max": z_max})
    features = FeatureTable(attributes, footprints, "MultiPolygon", column_types={"properties": "jsonb"})
    titles = {"global_id": "GlobalId", "ifc_class": "IFC 类型", "name": "名称", "storey": "楼层", "type_name": "类型",
              "material": "材质", "properties": "属性集"}
    columns = [Column("fid", np.arange(1, len(elements) + 1), "UINT32", title="要素号"),
               *(Column(key, np.array(storeys if key == "storey" else values[key], dtype=object), title=title)
                 for key, title in titles.items())]
    bim = BimModel([Part(p, e.faces, e.face_rgba, s, local=e.local_vertices, prototype=_prototype(e))
                    for p, e, s in zip(ecef, elements, storeys)], columns)

    outline = shapely.union_all(shapely.make_valid(footprints))
    title = options.title or (model.file.by_type("IfcProject")[0].Name if model.file.by_type("IfcProject") else name)
    outline_table = FeatureTable(pa.table({"name": [title], "elements": [len(elements)], "schema": [model.schema]}),
                                 np.array([outline if isinstance(outline, shapely.MultiPolygon)
                                           else shapely.MultiPolygon([outline])], dtype=object), "MultiPolygon")
    grid_layer = settings.grid_layer if options.grid_join else None
    version = TilesetVersion.create(settings.tilesets_dir, name)
    tiles: list[TilesetReport] = []

    def before_commit(conn, layer) -> None:
        """The tiles and the outline land with the elements, or nothing does."""
        tiles.append(write_bim_tileset(bim, version.folder))
        load_layer(conn, outline_name, outline_table, title=f"{title} 轮廓", source=str(Path(source).resolve()),
                   source_crs=georef.method, grid_layer=grid_layer, within_transaction=True)

    try:
        with database_errors(source, name), connect(settings, autocommit=True) as conn:
            result = load_layer(conn, name, features, title=title, source=str(Path(source).resolve()),
                                source_crs=georef.method, grid_layer=grid_layer, progress=progress,
                                before_commit=before_commit)
    except BaseException:
        version.discard()
        raise
    tileset_path = version.commit()
    ts = tiles[0]
    notes = [f"placed by {georef.method}", *georef.notes, *result.notes,
             f"storeys: {', '.join(dict.fromkeys(storeys))}",
             f"tileset: {ts.tiles} tiles, {ts.triangles:,} triangles, {ts.bytes:,} bytes, written in {ts.seconds:.2f} s"]
    if model.failed:
        notes.append(f"{len(model.failed)} elements failed to triangulate and were skipped: "
                     + "; ".join(model.failed[:_NAMED]) + (" ..." if len(model.failed) > _NAMED else ""))
    return ImportReport(kind="bim", name=name, source=str(source), feature_count=len(elements),
                        geometry_type=f"elements ({model.schema})", bbox=result.layer.bbox,
                        output=f"{LAYER_SCHEMA}.{name}, {LAYER_SCHEMA}.{outline_name} + {tileset_path}",
                        crs=georef.method, version=result.layer.version, skipped_count=len(model.failed),
                        skipped=model.failed[:_NAMED], notes=notes, seconds=time.perf_counter() - t0)
