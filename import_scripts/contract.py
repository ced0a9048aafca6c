"""The contract every importer fills (as py3dtiles' ``Tiler`` does for its
converters): one class per source kind, run the same way.

    read -> normalise CRS -> write tiles and/or a layer -> report

:meth:`Importer.run` is that sequence; a source kind fills in :meth:`read`
(read the source and normalise its CRS, changing nothing anywhere: a bad
source fails here), :meth:`write` (the layer, in one database transaction,
and the tiles into the tileset version it is handed) and :meth:`summary`.
The tileset version is committed after the layer's transaction commits,
discarded if anything fails (or kept to be resumed, for an importer that
gives a :meth:`resume_key`), so a failure leaves the previous layer and
tileset as they were.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar, Generic, TypeVar

import psycopg

from cim.config import Settings
from cim.db import connect
from cim.errors import DatabaseError
from import_scripts.report import ImportReport, Progress, ReportBuilder, silent
from layers.catalogue import LayerInfo
from layers.load import FeatureTable, LoadResult, load_layer
from layers.schema import validate_layer_name
from tiles.output import TilesetVersion

OptionsT = TypeVar("OptionsT")


@contextmanager
def database_errors(source: Path | str, name: str) -> Iterator[None]:
    """A refusal by the database, as one line naming the file; the load's
    transaction was rolled back, so the previous version stands."""
    try:
        yield
    except psycopg.Error as exc:
        primary = exc.diag.message_primary if exc.diag and exc.diag.message_primary else str(exc).splitlines()[0]
        raise DatabaseError(
            f"{source}: the database refused the import: {primary}",
            hint=f"nothing was changed: the previous version of layer {name!r} is intact",
        ) from exc


class Importer(ABC, Generic[OptionsT]):
    """One import of ``source`` as ``name``: construct, then :meth:`run`."""

    #: the source kind, as in ``cim import KIND``
    kind: ClassVar[str]
    #: whether the importer writes a tileset named like its layer
    writes_tileset: ClassVar[bool] = False

    def __init__(
        self, settings: Settings, source: Path | str, name: str, options: OptionsT, progress: Progress | None = None
    ) -> None:
        self.settings = settings
        self.source = Path(source)
        self.name = name
        self.options = options
        self.progress: Progress = progress or silent
        self.report = ReportBuilder(self.kind, name, str(source))

    # --- what a source kind fills in -------------------------------------------------------

    def layer_names(self) -> list[str]:
        """The layers the import writes (checked before anything is read)."""
        return [self.name]

    @abstractmethod
    def read(self) -> None:
        """Read the source and normalise its CRS; nothing is written yet."""

    @abstractmethod
    def write(self, version: TilesetVersion | None) -> LoadResult:
        """Write the layer(s) in one transaction, and the tiles into ``version``
        (``None`` unless :attr:`writes_tileset`); returns the main layer's load."""

    @abstractmethod
    def summary(self, result: LoadResult, tileset: Path | None) -> ImportReport:
        """The report, once the layer and the tileset (at ``tileset``) are current."""

    def resume_key(self) -> str | None:
        """The key an interrupted import is resumed under (same source, same
        options); ``None``: the importer starts afresh every time."""
        return None

    # --- the sequence ---------------------------------------------------------------------

    def run(self) -> ImportReport:
        for name in self.layer_names():
            validate_layer_name(name)
        self.progress("read", 0, 0)
        self.read()
        if not self.writes_tileset:
            return self.summary(self.write(None), None)
        with TilesetVersion.writing(self.settings.tilesets_dir, self.name, resume_key=self.resume_key()) as version:
            result = self.write(version)
        return self.summary(result, version.tileset)

    # --- shared helpers -------------------------------------------------------------------

    def grid_layer(self, join: bool) -> str | None:
        """The layer that places features in street/community/grid, unless ``join`` is off."""
        return self.settings.grid_layer if join else None

    def load(
        self,
        table: FeatureTable,
        *,
        title: str | None,
        source_crs: str,
        grid_join: bool,
        source: Path | None = None,
        repaired: int = 0,
        skipped: int = 0,
        before_commit: Callable[[psycopg.Connection, LayerInfo], None] | None = None,
    ) -> LoadResult:
        """Load ``table`` as the layer ``self.name`` in one transaction (see
        :func:`layers.load.load_layer`); a database refusal fails in one line naming the source."""
        with database_errors(self.source, self.name), connect(self.settings, autocommit=True) as conn:
            return load_layer(
                conn,
                self.name,
                table,
                title=title,
                source=str((source or self.source).resolve()),
                source_crs=source_crs,
                repaired=repaired,
                skipped=skipped,
                grid_layer=self.grid_layer(grid_join),
                progress=self.progress,
                before_commit=before_commit,
            )
