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

A kill between the layer's commit and the tileset's swap is repaired, not
prevented (nothing can make a rename part of a database transaction): the
layer's transaction records the sealed tileset version it goes with
(``cim.tileset_versions``), and :func:`reconcile_tilesets` makes any
recorded version that is on disk but not current the current one. It runs
when the server starts and at the start of every import's write. Why this
order and not "swap, then commit, swap back on failure": see
:mod:`tiles.output`.

Test hook: with ``CIM_TEST_KILL_AFTER_COMMIT=1`` in its environment an import
SIGKILLs itself right after its layer's commit, before the swap (read in
:func:`_kill_after_commit_for_tests` only; tests/test_tileset_files.py).
"""

from __future__ import annotations

import functools
import logging
import os
import signal
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
from layers.catalogue import LayerInfo, record_tileset_version, recorded_tileset_version, tileset_version_names
from layers.load import FeatureTable, LoadResult, load_layer
from layers.schema import validate_layer_name
from tiles.output import TilesetVersion, reconcile

OptionsT = TypeVar("OptionsT")
log = logging.getLogger(__name__)

#: the test hook's variable (see the module's docstring)
KILL_AFTER_COMMIT = "CIM_TEST_KILL_AFTER_COMMIT"


def _kill_after_commit_for_tests() -> None:
    """Die as a power cut would, between the layer's commit and the tileset's
    swap, when the tests ask for it. The only place the variable is read."""
    if os.environ.get(KILL_AFTER_COMMIT) == "1":
        os.kill(os.getpid(), signal.SIGKILL)


def reconcile_tilesets(settings: Settings, names: list[str] | None = None) -> list[str]:
    """Make every tileset the database records (for ``names``, or all) current
    where an import was killed between its layer's commit and its tileset's
    swap; returns the names put back in step. Run by the server at start and
    by every import. A name whose import is running is left to that import."""
    fixed: list[str] = []
    root = settings.tilesets_dir
    if not (root / ".versions").is_dir():
        return fixed
    with connect(settings, autocommit=True) as conn:
        for name in tileset_version_names(conn) if names is None else names:
            try:
                folder = reconcile(root, name, functools.partial(recorded_tileset_version, conn, name))
            except OSError as exc:  # e.g. a server whose user may not write the tilesets: say so, serve on
                log.warning("tileset %r could not be checked against its layer: %s", name, exc)
                continue
            if folder is not None:
                log.warning("tileset %r was behind its layer (an import was interrupted): now %s", name, folder)
                fixed.append(name)
    return fixed


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
        #: the tileset version being written (while :meth:`write` runs), and
        #: whether the layer's transaction that recorded it has committed
        self._version: TilesetVersion | None = None
        self._landed = False

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
        with database_errors(self.source, self.name):
            reconcile_tilesets(self.settings)  # an earlier import killed before its swap: put it in step first
        if not self.writes_tileset:
            return self.summary(self.write(None), None)
        with TilesetVersion.writing(self.settings.tilesets_dir, self.name, resume_key=self.resume_key()) as version:
            self._version, self._landed = version, False
            try:
                result = self.write(version)
            except BaseException:
                if self._landed:  # the layer is in: its tileset goes with it, whatever failed afterwards
                    version.commit()
                raise
            finally:
                self._version = None
            _kill_after_commit_for_tests()
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
        :func:`layers.load.load_layer`); a database refusal fails in one line naming the source.
        For an importer that writes a tileset, the transaction also records
        the (sealed) tileset version, after ``before_commit`` has written it."""
        version = self._version

        def record(conn: psycopg.Connection, layer: LayerInfo) -> None:
            if before_commit is not None:
                before_commit(conn, layer)
            if version is not None:
                record_tileset_version(conn, self.name, version.seal(), layer.version)

        with database_errors(self.source, self.name), connect(self.settings, autocommit=True) as conn:
            result = load_layer(
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
                before_commit=record,
            )
        if version is not None:
            self._landed = True
        return result
