"""``cim import layer``: a vector file (Shapefile, GeoPackage, GeoJSON,
FlatGeobuf, CSV) into a PostGIS layer, placed in streets/communities/grids."""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path

import numpy as np
import psycopg
from psycopg import sql

from cim.crs import Datum
from import_scripts.contract import Importer, OptionsT
from import_scripts.report import ImportReport
from import_scripts.vector import Features, LayerOptions, normalise, read_vector
from layers.catalogue import LayerInfo
from layers.gridjoin import GRID_COLUMNS
from layers.load import LoadResult
from layers.schema import LAYER_SCHEMA
from tiles.output import TilesetVersion

__all__ = ["LayerImporter", "LayerOptions", "VectorImporter", "grid_placement"]


class VectorImporter(Importer[OptionsT]):
    """The base of the importers of vector files: reads and normalises the
    features, loads them, and reports what was repaired or skipped. Its
    options are of any type that holds the :class:`LayerOptions` it reads
    with (see :meth:`layer_options`)."""

    features: Features

    @abstractmethod
    def layer_options(self) -> LayerOptions:
        """The vector-reading options, from within :attr:`options`."""

    def read(self) -> None:
        options = self.layer_options()
        vector = read_vector(
            self.source, layer=options.layer, src_crs=options.src_crs, name_hint=self.name, encoding=options.encoding
        )
        self.progress("normalise", 0, 0)
        table, checks = normalise(vector, options.datum)
        self.features = Features(self.source, vector, table, checks)
        self.report.crs = vector.crs_note
        self.report.repaired = checks.repaired
        self.report.skip(checks.skipped, checks.skipped_count)

    def load_features(self, **kwargs) -> LoadResult:
        options, checks = self.layer_options(), self.features.checks
        return self.load(
            self.features.table,
            title=options.title,
            source_crs=self.features.vector.crs.to_wkt(),
            grid_join=options.grid_join,
            repaired=checks.repaired,
            skipped=checks.skipped_count,
            **kwargs,
        )

    def summary_notes(self, result: LoadResult) -> None:
        """The notes every vector import starts with: text encoding, normalisation, loading, datum."""
        self.report.notes += [*self.features.vector.notes, *self.features.checks.notes, *result.notes]
        if self.layer_options().datum != Datum.wgs84:
            self.report.note(f"converted from {self.layer_options().datum.value.upper()} to WGS84")


class LayerImporter(VectorImporter[LayerOptions]):
    kind = "layer"

    def layer_options(self) -> LayerOptions:
        return self.options

    def write(self, version: TilesetVersion | None) -> LoadResult:
        return self.load_features()

    def summary(self, result: LoadResult, tileset: Path | None) -> ImportReport:
        self.summary_notes(result)
        return self.report.build(result, output=f"{LAYER_SCHEMA}.{self.name}")


def grid_placement(
    conn: psycopg.Connection, layer: LayerInfo, columns: tuple[str, ...] = GRID_COLUMNS
) -> dict[str, np.ndarray]:
    """Street/community/grid (or those of ``columns``) of every row, in fid order, from the new table."""
    present = [c for c in columns if c in layer.columns]
    if not present:
        return {}
    rows = conn.execute(
        sql.SQL("SELECT {} FROM {} ORDER BY fid").format(
            sql.SQL(", ").join(map(sql.Identifier, present)), sql.Identifier(layer.table_schema, layer.table_name)
        )
    ).fetchall()
    values = np.array(rows, dtype=object).reshape(len(rows), len(present))
    return {c: values[:, i] for i, c in enumerate(present)}
