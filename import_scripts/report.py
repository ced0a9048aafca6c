"""What every importer returns: the summary the CLI prints."""

from __future__ import annotations

from dataclasses import dataclass, field

from layers.load import Progress  # importers take the loader's progress callback

__all__ = ["ImportReport", "Progress"]


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
