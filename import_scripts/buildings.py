"""``cim import buildings``: footprints with heights -> a PostGIS layer and a
3D Tiles 1.1 tileset (the LOD1 white model, 白模).

read -> normalise CRS -> heights -> layer (placed in streets/communities/grids)
-> tileset written inside the layer's transaction -> commit -> tileset swap.
Either both the layer and the tileset are replaced, or neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa

from cim.errors import InputError
from import_scripts.ground import ground_under
from import_scripts.layer import LayerOptions, VectorImporter, grid_placement
from import_scripts.report import ImportReport
from import_scripts.vector import find_field, numbers
from layers.catalogue import LayerInfo
from layers.gridjoin import GRID_COLUMNS
from layers.load import LoadResult
from tiles.buildings import Buildings, write_buildings_tileset
from tiles.metadata import Column
from tiles.output import TilesetVersion
from tiles.tileset import TilesetReport

HEIGHT_NAMES = ("height", "高度", "建筑高度", "bldg_height", "building_height", "h")
FLOORS_NAMES = ("floors", "层数", "楼层数", "floor", "storeys", "stories", "levels", "building:levels")
ID_NAMES = ("id", "编号", "bldg_id", "building_id", "code")
NAME_NAMES = ("name", "名称", "建筑名称")
USE_NAMES = ("use", "用途", "usage", "function", "type")
MAX_PLAUSIBLE_HEIGHT = 1000.0  # metres: the tallest building stands 828 m


@dataclass(frozen=True)
class BuildingOptions:
    layer: LayerOptions = field(default_factory=LayerOptions)
    height_field: str | None = None
    floors_field: str | None = None
    floor_height: float = 3.0
    base_height_field: str | None = None
    default_height: float = 9.0  # three storeys, for a footprint without a usable height


@dataclass
class Heights:
    height: np.ndarray
    base: np.ndarray
    rule: str  # how heights were found, for the summary
    defaulted: list[int] = field(default_factory=list)  # rows given the default height


def resolve_heights(table: pa.Table, options: BuildingOptions, source: str) -> Heights:
    """Heights from a height field, or floors x floor height; unusable values
    (missing, not a number, <= 0, over 1,000 m) get the default."""
    columns = table.column_names
    n = table.num_rows
    candidates = () if options.floors_field else HEIGHT_NAMES
    height_field = find_field(columns, options.height_field, candidates, "height", source)
    floors_field = None if height_field else find_field(columns, options.floors_field, FLOORS_NAMES, "floors", source)
    if height_field:
        height, rule = numbers(table, height_field), f"height from field {height_field!r}"
    elif floors_field:
        height = numbers(table, floors_field) * options.floor_height
        rule = f"height = field {floors_field!r} x {options.floor_height:g} m"
    else:
        height, rule = np.full(n, np.nan), "no height or floors field"
    bad = ~np.isfinite(height) | (height <= 0) | (height > MAX_PLAUSIBLE_HEIGHT)
    height = np.where(bad, options.default_height, height)
    base_field = find_field(columns, options.base_height_field, (), "base height", source)
    base = np.nan_to_num(numbers(table, base_field), nan=0.0) if base_field else np.zeros(n)
    return Heights(height=height, base=base, rule=rule, defaulted=np.flatnonzero(bad).tolist())


def _metadata(table: pa.Table, heights: Heights, placed: dict[str, np.ndarray], fids: np.ndarray) -> list[Column]:
    """The tile metadata: fid (the row in PostGIS), id, name, height, floors, use, street, community, grid."""
    columns = table.column_names
    out = [Column("fid", fids, "UINT32", title="要素号")]

    def text(candidates: tuple[str, ...], name: str, title: str) -> None:
        found = find_field(columns, None, candidates, name, "")
        if found:
            values = table.column(found).to_pandas().astype(object).where(lambda s: s.notna(), None)
            out.append(Column(name, values.map(lambda v: v if v is None else str(v)).to_numpy(object), title=title))

    text(ID_NAMES, "id", "编号")
    text(NAME_NAMES, "name", "名称")
    out.append(Column("height", heights.height, "FLOAT32", title="高度"))
    floors = find_field(columns, None, FLOORS_NAMES, "floors", "")
    if floors:
        values = numbers(table, floors)
        plausible = np.isfinite(values) & (values >= 0) & (values <= 300)  # INT16; the tallest tower has 163
        out.append(
            Column("floors", np.where(plausible, values, -1).astype(np.int64), "INT16", no_data=-1, title="层数")
        )
    text(USE_NAMES, "use", "用途")
    for column, title in zip(GRID_COLUMNS, ("街道", "社区", "网格")):
        if column in placed:
            out.append(Column(column, placed[column], title=title))
    return out


class BuildingsImporter(VectorImporter[BuildingOptions]):
    kind = "buildings"
    writes_tileset = True

    def layer_options(self) -> LayerOptions:
        return self.options.layer

    def read(self) -> None:
        super().read()
        table = self.features.table
        if table.geometry_type != "MultiPolygon":
            raise InputError(
                str(self.source), f"holds {table.geometry_type} geometries; buildings need polygon footprints"
            )
        self.heights = resolve_heights(table.attributes, self.options, str(self.source))
        attributes = table.attributes
        if "height" in attributes.column_names:
            attributes = attributes.drop_columns(["height"])
        table.attributes = attributes.append_column("height", pa.array(self.heights.height))
        self.ground = None if self.options.base_height_field else ground_under(self.settings, table.geometry)
        if self.ground is not None:  # on the terrain: the DEM's (ellipsoidal) height under each footprint
            found = np.isfinite(self.ground.heights)
            self.heights.base = np.where(found, self.ground.heights, self.heights.base)
            attributes = table.attributes
            if "base_height" in attributes.column_names:
                attributes = attributes.drop_columns(["base_height"])
            table.attributes = attributes.append_column("base_height", pa.array(np.round(self.heights.base, 2)))

    def write(self, version: TilesetVersion | None) -> LoadResult:
        assert version is not None
        table, heights = self.features.table, self.heights
        tiles: list[TilesetReport] = []

        def write_tiles(conn: psycopg.Connection, layer: LayerInfo) -> None:
            placed = grid_placement(conn, layer)
            buildings = Buildings(
                footprints=table.geometry,
                base=heights.base,
                height=heights.height,
                columns=_metadata(table.attributes, heights, placed, np.arange(1, len(table) + 1)),
            )
            tiles.append(
                write_buildings_tileset(
                    buildings, version.folder, progress=lambda done, total: self.progress("tiles", done, total)
                )
            )

        result = self.load_features(before_commit=write_tiles)
        self.tiles = tiles[0]
        return result

    def summary(self, result: LoadResult, tileset: Path | None) -> ImportReport:
        self.summary_notes(result)
        heights, ts = self.heights, self.tiles
        self.report.note(heights.rule)
        if self.ground is not None:
            dem = self.ground.dem
            self.report.note(
                f"base heights (base_height, ellipsoidal) from DEM {dem.name!r} of {dem.epoch.isoformat()}: "
                f"{self.ground.covered:,} of {len(heights.base):,} buildings stand on it (the others at 0 m)"
            )
        self.report.note_named(
            f"{len(heights.defaulted)} buildings had no usable height and got the default "
            f"{self.options.default_height:g} m",
            [f"record {i + 1}" for i in heights.defaulted],
        )
        self.report.note(
            f"tileset: {ts.tiles} tiles, {ts.depth} levels, {ts.triangles:,} triangles, "
            f"{ts.bytes / max(ts.buildings, 1):,.0f} bytes per building, written in {ts.seconds:.2f} s"
        )
        return self.report.build(result, output=f"{result.layer.table_schema}.{self.name} + {tileset}")
