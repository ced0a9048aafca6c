"""``cim import layer``: a vector file (Shapefile, GeoPackage, GeoJSON,
FlatGeobuf, CSV) into a PostGIS layer, placed in streets/communities/grids."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import psycopg

from cim.config import Settings
from cim.crs import Datum
from cim.db import connect
from cim.errors import DatabaseError
from import_scripts.report import ImportReport, Progress
from import_scripts.vector import normalise, read_vector
from layers.load import load_layer
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


def run(settings: Settings, source: Path, name: str, options: LayerOptions = LayerOptions(),
        progress: Progress | None = None) -> ImportReport:
    t0 = time.perf_counter()
    validate_layer_name(name)
    if progress:
        progress("read", 0, 0)
    src = read_vector(source, layer=options.layer, src_crs=options.src_crs, name_hint=name)
    if progress:
        progress("normalise", 0, 0)
    features, norm = normalise(src, options.datum)
    with database_errors(source, name), connect(settings, autocommit=True) as conn:
        result = load_layer(conn, name, features, title=options.title, source=str(Path(source).resolve()),
                            source_crs=src.crs.to_wkt() if src.crs else None, repaired=norm.repaired,
                            skipped=norm.skipped_count,
                            grid_layer=settings.grid_layer if options.grid_join else None, progress=progress)
    notes = [*norm.notes, *result.notes]
    if options.datum != Datum.wgs84:
        notes.append(f"converted from {options.datum.value.upper()} to WGS84")
    return ImportReport(kind="layer", name=name, source=str(source), feature_count=result.layer.feature_count,
                        geometry_type=result.layer.geometry_type, bbox=result.layer.bbox,
                        output=f"{LAYER_SCHEMA}.{name}", crs=src.crs_note, version=result.layer.version,
                        repaired=norm.repaired, skipped_count=norm.skipped_count,
                        skipped=norm.skipped, notes=notes,
                        seconds=time.perf_counter() - t0)
