"""What every importer returns (the summary the CLI prints), and the builder
that every importer fills while it works."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from layers.load import LoadResult, Progress  # importers take the loader's progress callback

__all__ = ["NAMED", "ImportReport", "Progress", "ReportBuilder", "named", "silent"]

#: skipped records, missing files, defaulted heights...: how many are named one by one
NAMED = 20


def named(items: Sequence[str], limit: int = NAMED) -> str:
    """The first ``limit`` items, comma-separated, with `` ...`` when there are more."""
    return ", ".join(items[:limit]) + (" ..." if len(items) > limit else "")


def silent(stage: str, done: int, total: int) -> None:
    """The progress callback of an import nobody watches."""


@dataclass
class ImportReport:
    kind: str
    name: str
    source: str
    feature_count: int
    geometry_type: str
    bbox: tuple[float, float, float, float]
    output: str  # table name and/or tileset path
    crs: str
    version: int = 1
    repaired: int = 0
    skipped_count: int = 0
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.feature_count / self.seconds if self.seconds > 0 else 0.0


@dataclass
class ReportBuilder:
    """Collects an import's notes and skipped records as it goes; :meth:`build`
    makes the :class:`ImportReport` from the layer that was written."""

    kind: str
    name: str
    source: str
    crs: str = ""
    repaired: int = 0
    skipped_count: int = 0
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def note_named(self, head: str, items: Sequence[str]) -> None:
        """A note about some records, naming the first few: ``"{head}: a, b, c ..."``; none when empty."""
        if items:
            self.notes.append(f"{head}: {named(items)}")

    def skip(self, items: Sequence[str], count: int | None = None) -> None:
        """Records left out (``count`` of them when more were left out than are listed)."""
        self.skipped_count += len(items) if count is None else count
        self.skipped += list(items[: max(0, NAMED - len(self.skipped))])

    def build(
        self, result: LoadResult, *, output: str, feature_count: int | None = None, geometry_type: str | None = None
    ) -> ImportReport:
        layer = result.layer
        return ImportReport(
            kind=self.kind,
            name=self.name,
            source=self.source,
            feature_count=layer.feature_count if feature_count is None else feature_count,
            geometry_type=geometry_type or layer.geometry_type,
            bbox=layer.bbox,
            output=output,
            crs=self.crs,
            version=layer.version,
            repaired=self.repaired,
            skipped_count=self.skipped_count,
            skipped=self.skipped,
            notes=self.notes,
            seconds=time.perf_counter() - self.started,
        )
