"""``cim import layer``: a vector file (Shapefile, GeoPackage, GeoJSON,
FlatGeobuf, CSV) into a PostGIS layer, placed in streets/communities/grids."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import psycopg

from cim.config import Settings
from cim.crs import Datum
from cim.db import connect
from cim.errors import DatabaseError
from import_scripts.report import ImportReport, Progress
from import_scripts.vector import NormaliseReport, VectorSource, normalise, read_vector
from layers.catalogue import LayerInfo
from layers.load import FeatureTable, LoadResult, load_layer
from layers.schema import LAYER_SCHEMA, validate_layer_name


@dataclass(frozen=True)
class LayerOptions:
    title: str | None = None
    layer: str | None = None  # the layer inside a multi-layer file
    src_crs: str | None = None
    datum: Datum = Datum.wgs84
    grid_join: bool = True


@contextmanager
def database_errors(source: Path | str, name: str) -> Iterator[None]:
    """A refusal by the database, as one line naming the file; the load's
    transaction was rolled back, so the previous version stands."""
    try:
        yield
    except psycopg.Error as exc:
        primary = exc.diag.message_primary if exc.diag and exc.diag.message_primary else str(exc).splitlines()[0]
        raise DatabaseError(f"{source}: the database refused the import: {primary}",
                            hint=f"nothing was changed: the previous version of layer {name!r} is intact") from exc


@dataclass
class Features:
    """A source read and normalised: what every vector importer loads."""

    source: Path
    vector: VectorSource
    table: FeatureTable
    checks: NormaliseReport


def read_features(source: Path, name: str, options: LayerOptions, progress: Progress | None = None) -> Features:
    """The first half of every vector importer: check the name, read, normalise CRS and geometry."""
    validate_layer_name(name)
    if progress:
        progress("read", 0, 0)
    vector = read_vector(source, layer=options.layer, src_crs=options.src_crs, name_hint=name)
    if progress:
        progress("normalise", 0, 0)
    table, checks = normalise(vector, options.datum)
    return Features(Path(source), vector, table, checks)


def load(settings: Settings, name: str, features: Features, options: LayerOptions, progress: Progress | None = None,
         before_commit: Callable[[psycopg.Connection, LayerInfo], None] | None = None) -> LoadResult:
    """Load as layer ``name`` in one transaction (see :func:`layers.load.load_layer`)."""
    with database_errors(features.source, name), connect(settings, autocommit=True) as conn:
        return load_layer(conn, name, features.table, title=options.title, source=str(features.source.resolve()),
                          source_crs=features.vector.crs.to_wkt(), repaired=features.checks.repaired,
                          skipped=features.checks.skipped_count,
                          grid_layer=settings.grid_layer if options.grid_join else None, progress=progress,
                          before_commit=before_commit)


def report(kind: str, name: str, features: Features, result: LoadResult, options: LayerOptions, *, t0: float,
           output: str, notes: list[str] = ()) -> ImportReport:
    """The summary every vector importer ends with."""
    all_notes = [*features.checks.notes, *result.notes]
    if options.datum != Datum.wgs84:
        all_notes.append(f"converted from {options.datum.value.upper()} to WGS84")
    checks = features.checks
    return ImportReport(kind=kind, name=name, source=str(features.source), feature_count=result.layer.feature_count,
                        geometry_type=result.layer.geometry_type, bbox=result.layer.bbox, output=output,
                        crs=features.vector.crs_note, version=result.layer.version, repaired=checks.repaired,
                        skipped_count=checks.skipped_count, skipped=checks.skipped, notes=[*all_notes, *notes],
                        seconds=time.perf_counter() - t0)


def run(settings: Settings, source: Path, name: str, options: LayerOptions = LayerOptions(),
        progress: Progress | None = None) -> ImportReport:
    t0 = time.perf_counter()
    features = read_features(source, name, options, progress)
    result = load(settings, name, features, options, progress)
    return report("layer", name, features, result, options, t0=t0, output=f"{LAYER_SCHEMA}.{name}")
