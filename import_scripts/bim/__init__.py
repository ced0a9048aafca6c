"""``cim import bim``: an IFC model (IFC2X3, IFC4, IFC4.3) -> a 3D Tiles 1.1
tileset with one feature per element, an element layer in PostGIS, and the
building outline layer.

check (a cut or gutted file is refused before ifcopenshell, which would
open it and silently yield fewer elements: :func:`reader.check_step_file`)
-> read (ifcopenshell, all cores) -> georeference -> element layer, with the
tileset written inside its transaction -> commit -> tileset swap -> outline.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa
import shapely

from cim.errors import CimError, InputError
from cim.geoid import VerticalDatum
from import_scripts.bim.georef import Anchor, georeference, with_vertical_datum
from import_scripts.bim.reader import Model, properties_json, read_model
from import_scripts.contract import Importer
from import_scripts.report import ImportReport
from layers.catalogue import LayerInfo
from layers.elements import NO_STOREY
from layers.load import FeatureTable, LoadResult, load_layer
from layers.schema import LAYER_SCHEMA
from tiles.bim import BimModel, Part, write_bim_tileset
from tiles.geodesy import ecef_to_lonlath
from tiles.metadata import Column
from tiles.output import TilesetVersion
from tiles.tileset import TilesetReport

_MIN_SIZE_DEG = 1e-7  # about a centimetre: a flat element's footprint gets at least this width


@dataclass(frozen=True)
class BimOptions:
    title: str | None = None
    anchor: Anchor | None = None
    jobs: int | None = None
    grid_join: bool = True
    vertical_datum: VerticalDatum = VerticalDatum.egm96  # what the file's (or the anchor's) heights are measured from


def _footprints(model: Model, ecef: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each element's 2D footprint (convex hull of its vertices, lon/lat) and its height range."""
    hulls, z_min, z_max = [], [], []
    for points in ecef:
        llh = ecef_to_lonlath(points)
        hull = shapely.convex_hull(shapely.multipoints(llh[:, :2]))
        assert isinstance(hull, shapely.Geometry)  # of one (n, 2) array of points: one geometry
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


class BimImporter(Importer[BimOptions]):
    kind = "bim"
    writes_tileset = True

    @property
    def outline_name(self) -> str:
        return f"{self.name}_outline"

    def layer_names(self) -> list[str]:
        return [self.name, self.outline_name]

    def read(self) -> None:
        try:
            self.model = read_model(self.source, jobs=self.options.jobs)
            found = georeference(self.model.file, str(self.source), self.options.anchor)
            self.georef = with_vertical_datum(found, self.options.vertical_datum)
        except CimError:
            raise
        except Exception as exc:  # ifcopenshell's own failures on odd files: still one line naming the file
            raise InputError(str(self.source), f"cannot be read as IFC ({type(exc).__name__}: {exc})") from exc
        self.report.crs = self.georef.method
        self.progress("place", 0, 0)
        elements = self.model.elements
        ecef = [self.georef.to_ecef(e.vertices) for e in elements]
        self.footprints, z_min, z_max = _footprints(self.model, ecef)
        self.storeys = [e.storey or NO_STOREY for e in elements]
        values = {  # each element's attributes, once: for its row in PostGIS and its feature in the tiles
            "global_id": [e.global_id for e in elements],
            "ifc_class": [e.ifc_class for e in elements],
            "name": [e.name for e in elements],
            "storey": [e.storey for e in elements],
            "type_name": [e.type_name for e in elements],
            "material": [e.material for e in elements],
            "properties": [properties_json(e) for e in elements],
        }
        attributes = pa.table({**values, "z_min": z_min, "z_max": z_max})
        self.table = FeatureTable(attributes, self.footprints, "MultiPolygon", column_types={"properties": "jsonb"})
        titles = {
            "global_id": "GlobalId",
            "ifc_class": "IFC 类型",
            "name": "名称",
            "storey": "楼层",
            "type_name": "类型",
            "material": "材质",
            "properties": "属性集",
        }
        columns = [
            Column("fid", np.arange(1, len(elements) + 1), "UINT32", title="要素号"),
            *(
                Column(key, np.array(self.storeys if key == "storey" else values[key], dtype=object), title=title)
                for key, title in titles.items()
            ),
        ]
        self.bim = BimModel(
            [
                Part(p, e.faces, e.face_rgba, s, local=e.local_vertices, prototype=_prototype(e))
                for p, e, s in zip(ecef, elements, self.storeys)
            ],
            columns,
        )
        project = self.model.file.by_type("IfcProject")
        self.title = self.options.title or (project[0].Name if project else self.name)

    def write(self, version: TilesetVersion | None) -> LoadResult:
        assert version is not None
        outline = shapely.union_all(shapely.make_valid(self.footprints))
        # the union of the elements' footprints, each a MultiPolygon with an area (read_model refuses no elements)
        assert isinstance(outline, (shapely.Polygon, shapely.MultiPolygon))
        outline_table = FeatureTable(
            pa.table({"name": [self.title], "elements": [len(self.model.elements)], "schema": [self.model.schema]}),
            np.array(
                [outline if isinstance(outline, shapely.MultiPolygon) else shapely.MultiPolygon([outline])],
                dtype=object,
            ),
            "MultiPolygon",
        )
        tiles: list[TilesetReport] = []

        def before_commit(conn: psycopg.Connection, layer: LayerInfo) -> None:
            """The tiles and the outline land with the elements, or nothing does."""
            tiles.append(write_bim_tileset(self.bim, version.folder))
            load_layer(
                conn,
                self.outline_name,
                outline_table,
                title=f"{self.title} 轮廓",
                source=str(self.source.resolve()),
                source_crs=self.georef.method,
                grid_layer=self.grid_layer(self.options.grid_join),
                within_transaction=True,
            )

        result = self.load(
            self.table,
            title=self.title,
            source_crs=self.georef.method,
            grid_join=self.options.grid_join,
            before_commit=before_commit,
        )
        self.tiles = tiles[0]
        return result

    def summary(self, result: LoadResult, tileset: Path | None) -> ImportReport:
        ts, model = self.tiles, self.model
        self.report.notes += [
            f"placed by {self.georef.method}",
            *self.georef.notes,
            *result.notes,
            f"storeys: {', '.join(dict.fromkeys(self.storeys))}",
            f"tileset: {ts.tiles} tiles, {ts.triangles:,} triangles, {ts.bytes:,} bytes, written in {ts.seconds:.2f} s",
        ]
        self.report.note_named(f"{len(model.failed)} elements failed to triangulate and were skipped", model.failed)
        self.report.skip(model.failed)
        return self.report.build(
            result,
            feature_count=len(model.elements),
            geometry_type=f"elements ({model.schema})",
            output=f"{LAYER_SCHEMA}.{self.name}, {LAYER_SCHEMA}.{self.outline_name} + {tileset}",
        )
