"""``cim import components``: a point layer of city components (城市部件) ->
a PostGIS layer (class code and name, status, department, placed in
street/community/grid) and an instanced 3D Tiles 1.1 tileset (one model per
class, one feature per component).

read -> normalise CRS -> classes -> models -> layer (placed in grids) ->
tileset written inside the layer's transaction -> commit -> tileset swap.

Classes come from the built-in catalogue (GB/T 30428.2, :mod:`cim.components.catalogue`)
and the user classes (``components.classes``); a model file in ``--models DIR``
named after a code that is in neither becomes a user class. A class's model is
its file in ``--models DIR`` (``0101.glb``, ``0101.obj`` ...) or else its
built-in procedural model. A component of an unknown class is left out and
named (or imported as 未分类 with ``--unclassified``); one without a geometry
is left out and named; a model file that cannot be read fails the import in
one line; any failure leaves the previous layer and tileset as they were.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import shapely
from psycopg.types.json import Jsonb

from cim.components import shapes
from cim.components.catalogue import UNCLASSIFIED, ComponentClass, major_of, user_class
from cim.db import connect
from cim.errors import InputError
from import_scripts.layer import LayerOptions, VectorImporter, grid_placement
from import_scripts.report import ImportReport, named
from import_scripts.vector import find_field, numbers
from layers.catalogue import LayerInfo
from layers.components.classes import catalogue, save_user_class
from layers.components.schema import SCHEMA, ensure_components_schema
from layers.load import LoadResult
from tiles.instances import InstancedReport, Instances, write_instanced_tileset
from tiles.metadata import Column
from tiles.models import MODEL_SUFFIXES, Model, model_from_scene, read_model
from tiles.output import TilesetVersion

CLASS_NAMES = ("class_code", "class", "bjdm", "部件代码", "小类代码", "类别代码", "部件小类", "小类", "部件类别")
ID_NAMES = ("id", "bsm", "部件标识码", "标识码", "编号", "objectid")
HEADING_NAMES = ("heading", "朝向", "方向", "azimuth", "rotation")
STATUS_NAMES = ("status", "状态", "部件状态")
DEPARTMENT_NAMES = ("department", "主管部门", "dept")
MAX_SCALE = 100.0  # a scale beyond this (or <= 0) is an error in the data: the model keeps its size
HEIGHT_RANGE = (-500.0, 9000.0)  # metres: a base height outside this is an error in the data
DEFAULT_STATUS = "完好"


@dataclass(frozen=True)
class ComponentOptions:
    layer: LayerOptions = field(default_factory=LayerOptions)
    class_field: str | None = None  # default: the first of CLASS_NAMES the source has
    models: Path | None = None  # one model per class, named after its code
    heading_field: str | None = None  # degrees clockwise from north; default: the first of HEADING_NAMES
    scale_field: str | None = None  # a uniform scale of the class's model
    height_field: str | None = None  # the base's height in metres (ellipsoidal)
    unclassified: bool = False  # import unknown class codes as 未分类 (0000) instead of leaving them out
    actor: str = "cli"  # who imports (recorded with the user classes a model folder adds)


def _texts(table: pa.Table, column: str) -> np.ndarray:
    """A column as stripped strings (None where missing)."""
    return per_value(table.column(column).to_pandas().to_numpy(object), lambda v: None if v is None else str(v).strip())


def per_value(values: np.ndarray, fn: Callable[[Any], object]) -> np.ndarray:
    """``fn`` of every value (as text; None where missing), computed once per
    distinct value: a component column holds a few hundred distinct values in 500,000 rows."""
    series = pd.Series(values, dtype=object)
    missing = series.isna().to_numpy()
    index, uniques = pd.factorize(series.where(~missing, ""))
    mapped = np.empty(len(uniques) + 1, dtype=object)
    mapped[:-1] = [fn(u) for u in uniques]
    mapped[-1] = fn(None) if missing.any() else None
    index[missing] = len(uniques)
    return mapped[index]


def _code_of(value: str | None, by_name: dict[str, str]) -> str:
    text = "" if value is None else str(value).strip()
    if re.fullmatch(r"[0-9]{1,4}(\.0+)?", text):
        text = text.split(".")[0].zfill(4)
    return by_name.get(text, by_name.get(text.lower(), text))


def normalise_codes(raw: np.ndarray, classes: dict[str, ComponentClass]) -> np.ndarray:
    """Class codes as four-digit strings: ``101``, ``"0101"``, ``101.0`` and a
    class's Chinese or English name all give ``"0101"``; anything else stays as it is."""
    by_name = {c.name_zh: c.code for c in classes.values()} | {c.name_en.lower(): c.code for c in classes.values()}
    return per_value(raw, lambda v: _code_of(v, by_name))


class ComponentsImporter(VectorImporter[ComponentOptions]):
    kind = "components"
    writes_tileset = True

    def layer_options(self) -> LayerOptions:
        return self.options.layer

    # --- read: points, classes, placements, models --------------------------------------------

    def read(self) -> None:
        super().read()
        where = str(self.source)
        table = self.features.table
        if table.geometry_type == "MultiPoint":
            parts = shapely.get_num_geometries(table.geometry)
            if (parts > 1).any():
                i = int(np.flatnonzero(parts > 1)[0])
                raise InputError(where, "is a multi-point: a component is one point", record=f"record {i + 1}")
            table.geometry = shapely.get_geometry(table.geometry, 0)
            table.geometry_type = "Point"
        elif table.geometry_type != "Point":
            raise InputError(where, f"holds {table.geometry_type} geometries; components are points")
        self.progress("classes", 0, 0)
        with connect(self.settings, autocommit=True) as conn:
            self.classes = catalogue(conn)
        self.new_classes = self._model_classes()
        codes = self._codes()
        self._placements(codes)
        self.models = self._models(sorted(set(codes.tolist())))

    def _model_files(self) -> dict[str, Path]:
        """code -> its model file in ``--models DIR`` (checked: a folder, one file per code)."""
        folder = self.options.models
        if folder is None:
            return {}
        if not folder.is_dir():
            raise InputError(str(folder), "is not a folder of models", hint="--models DIR holds 0101.glb, 0102.obj ...")
        files: dict[str, Path] = {}
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in MODEL_SUFFIXES or not re.fullmatch(r"[0-9]{4}", path.stem):
                continue
            if path.stem in files:
                raise InputError(str(path), f"is a second model of class {path.stem} (also {files[path.stem].name})")
            files[path.stem] = path
        return files

    def _model_classes(self) -> list[ComponentClass]:
        """User classes made from model files whose code is in no catalogue."""
        self.model_files = self._model_files()
        new = [user_class(code) for code in self.model_files if code not in self.classes]
        for cls in new:
            self.classes[cls.code] = cls
        return new

    def _codes(self) -> np.ndarray:
        """Every row's class code; rows of unknown classes are left out (named) or
        become 未分类; the attribute table gets class_code, class_name, status, department."""
        table, where = self.features.table, str(self.source)
        attributes = table.attributes
        columns = attributes.column_names
        field_ = find_field(columns, self.options.class_field, CLASS_NAMES, "class", where)
        if field_ is None:
            raise InputError(
                where,
                "has no class field (the component's class code, e.g. 0101)",
                hint=f"name it with --class-field; its fields: {', '.join(columns)}",
            )
        self.class_field = field_
        codes = normalise_codes(_texts(attributes, field_), self.classes)
        known = per_value(codes, lambda c: c in self.classes).astype(bool)
        unknown = Counter(str(c) for c in codes[~known])
        self.unknown = unknown
        if unknown and self.options.unclassified:
            codes[~known] = UNCLASSIFIED.code
            self.classes[UNCLASSIFIED.code] = UNCLASSIFIED
        elif unknown:
            rows = np.flatnonzero(~known)
            self.report.skip([f"record {i + 1}: unknown class {codes[i]!r}" for i in rows[:20]], len(rows))
            if not known.any():
                raise InputError(
                    where,
                    f"no component has a known class (field {field_!r}: {named([f'{c!r}' for c in unknown])})",
                    hint="check --class-field, or import them as 未分类 with --unclassified",
                )
            keep = np.flatnonzero(known)
            table.attributes = attributes.take(pa.array(keep))
            table.geometry = table.geometry[keep]
            codes = codes[keep]
        attributes = table.attributes
        replaced = {"class_code", "class_name"}
        status_field = find_field(attributes.column_names, None, STATUS_NAMES, "status", where)
        department_field = find_field(attributes.column_names, None, DEPARTMENT_NAMES, "department", where)
        status = _texts(attributes, status_field) if status_field else np.full(len(codes), None, dtype=object)
        status = np.where(pd.isna(status), DEFAULT_STATUS, status)
        department = _texts(attributes, department_field) if department_field else np.full(len(codes), None, object)
        default = per_value(codes, lambda c: self.classes[c].department)
        department = np.where(pd.isna(department) | (department == ""), default, department)
        self.class_names = per_value(codes, lambda c: self.classes[c].name_zh)
        self.status = status
        replaced |= {"status", "department"}
        attributes = attributes.drop_columns([c for c in attributes.column_names if c in replaced])
        table.attributes = (
            attributes.append_column("class_code", pa.array(codes.tolist(), pa.string()))
            .append_column("class_name", pa.array(self.class_names.tolist(), pa.string()))
            .append_column("status", pa.array(status.tolist(), pa.string()))
            .append_column("department", pa.array(department.tolist(), pa.string()))
        )
        return codes

    def _placements(self, codes: np.ndarray) -> None:
        """Heading, scale and base height of every row (bad values named and defaulted)."""
        attributes, where = self.features.table.attributes, str(self.source)
        columns, n = attributes.column_names, len(codes)
        self.defaulted: list[str] = []

        def read(wanted: str | None, candidates: tuple[str, ...], what: str, default: float, ok) -> np.ndarray:
            found = find_field(columns, wanted, candidates, what, where)
            if found is None:
                return np.full(n, default)
            values = numbers(attributes, found)
            bad = ~np.isfinite(values) | ~ok(values)
            self.defaulted += [
                f"record {i + 1}: {what} {attributes.column(found)[int(i)]}" for i in np.flatnonzero(bad)
            ]
            return np.where(bad, default, values)

        self.heading = (
            read(self.options.heading_field, HEADING_NAMES, "heading", 0.0, lambda v: np.abs(v) <= 3600) % 360
        )
        self.scale = read(self.options.scale_field, (), "scale", 1.0, lambda v: (v > 0) & (v <= MAX_SCALE))
        lo, hi = HEIGHT_RANGE
        self.height = read(self.options.height_field, (), "height", 0.0, lambda v: (v >= lo) & (v <= hi))
        table = self.features.table
        attributes = table.attributes.drop_columns([c for c in ("heading",) if c in table.attributes.column_names])
        table.attributes = attributes.append_column("heading", pa.array(np.round(self.heading, 2)))
        self.codes = codes

    def _models(self, codes: list[str]) -> dict[str, Model]:
        """One model per class present: its file, else its built-in shape."""
        out: dict[str, Model] = {}
        for k, code in enumerate(codes):
            self.progress("models", k, len(codes))
            path = self.model_files.get(code)
            out[code] = read_model(path) if path else model_from_scene(shapes.build(self.classes[code]), "built-in")
        return out

    # --- write: the layer, then the tileset in its transaction --------------------------------

    def write(self, version: TilesetVersion | None) -> LoadResult:
        assert version is not None
        with connect(self.settings, autocommit=True) as conn:
            ensure_components_schema(conn)
        tiles: list[InstancedReport] = []

        def write_tiles(conn: psycopg.Connection, layer: LayerInfo) -> None:
            for cls in self.new_classes:
                save_user_class(conn, cls, self.options.actor)
            tiles.append(self._write_tileset(conn, layer, version))
            counts = Counter(self.codes.tolist())
            conn.execute(
                f"""INSERT INTO {SCHEMA}.layers (name, tileset, classes, groups) VALUES (%s, %s, %s, %s)
                    ON CONFLICT (name) DO UPDATE SET tileset = excluded.tileset, classes = excluded.classes,
                        groups = excluded.groups, imported_at = now()""",
                (
                    self.name,
                    f"{self.name}/tileset.json",
                    Jsonb(dict(sorted(counts.items()))),
                    Jsonb([g.__dict__ for g in tiles[0].groups]),
                ),
            )

        result = self.load_features(before_commit=write_tiles)
        self.tiles = tiles[0]
        return result

    def _write_tileset(self, conn: psycopg.Connection, layer: LayerInfo, version: TilesetVersion) -> InstancedReport:
        table = self.features.table
        placed = grid_placement(conn, layer, ("grid",))
        attributes = table.attributes
        n = len(table)
        order = sorted(self.models)
        index = {code: i for i, code in enumerate(order)}
        xy = shapely.get_coordinates(table.geometry)
        id_field = find_field(attributes.column_names, None, ID_NAMES, "id", "")
        columns = [Column("fid", np.arange(1, n + 1), "UINT32", title="要素号")]
        if id_field:
            columns.append(Column("id", _texts(attributes, id_field), title="部件标识码"))
        columns += [
            Column("class_code", self.codes, title="小类代码"),
            Column("class_name", self.class_names, title="部件名称"),
            Column("status", self.status, title="状态"),
        ]
        if "grid" in placed:
            columns.append(Column("grid", placed["grid"], title="网格"))
        data = Instances(
            lon=xy[:, 0],
            lat=xy[:, 1],
            height=self.height,
            heading=self.heading,
            scale=self.scale,
            model=per_value(self.codes, index.__getitem__).astype(np.int64),
            group=per_value(self.codes, lambda c: major_of(c).code),
            columns=columns,
        )
        titles = {major_of(c).code: major_of(c).name_zh for c in order}
        return write_instanced_tileset(
            data,
            [self.models[c] for c in order],
            version.folder,
            group_titles=titles,
            progress=lambda done, total: self.progress("tiles", done, total),
        )

    def summary(self, result: LoadResult, tileset: Path | None) -> ImportReport:
        self.summary_notes(result)
        counts = Counter(self.codes.tolist())
        majors: Counter[str] = Counter()
        for code, count in counts.items():
            majors[major_of(code).name_zh] += count
        self.report.note(
            f"{len(counts)} classes in {len(majors)} groups: "
            + ", ".join(f"{name} {count:,}" for name, count in sorted(majors.items(), key=lambda kv: -kv[1]))
            + f" (class field {self.class_field!r})"
        )
        if self.unknown:
            described = named([f"{code!r} ({count})" for code, count in self.unknown.most_common()])
            if self.options.unclassified:
                self.report.note(
                    f"{sum(self.unknown.values())} components of unknown classes imported as 未分类: {described}"
                )
            else:
                self.report.note(
                    f"{sum(self.unknown.values())} components of unknown classes left out: {described}"
                    " (--unclassified imports them as 未分类)"
                )
        if self.new_classes:
            self.report.note("user classes added from model files: " + named([f"{c.code}" for c in self.new_classes]))
        from_files = [c for c in self.models if c in self.model_files]
        self.report.note(
            f"models: {len(from_files)} from {self.options.models} , {len(self.models) - len(from_files)} built-in"
            if self.options.models
            else f"models: the {len(self.models)} classes' built-in models"
        )
        for code, model in sorted(self.models.items()):
            for text in model.notes:
                self.report.note(f"model {code} ({model.source}): {text}")
        self.report.note_named(f"{len(self.defaulted)} values defaulted (heading 0, scale 1, height 0)", self.defaulted)
        ts = self.tiles
        self.report.note(
            f"tileset: {ts.buildings:,} instances in {ts.tiles} tiles over {len(ts.groups)} groups, "
            f"{ts.bytes / max(ts.buildings, 1):,.0f} bytes per instance, written in {ts.seconds:.2f} s"
        )
        return self.report.build(result, output=f"{result.layer.table_schema}.{self.name} + {tileset}")


__all__ = ["ComponentOptions", "ComponentsImporter", "normalise_codes"]
