"""Tileset folders on disk, replaced atomically.

``tilesets/NAME`` is a symbolic link to ``tilesets/.versions/NAME-<stamp>``.
A new version is written beside the old one and the link is swapped with
one rename, so readers see the old tileset or the new one, never half of
one; a discarded version leaves nothing behind. The previous version is kept
until the next swap, so that a viewer that opened it just before can still
fetch its tiles.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class TilesetVersion:
    root: Path  # the tilesets folder
    name: str
    folder: Path  # where this version is written

    @classmethod
    def create(cls, root: Path, name: str) -> "TilesetVersion":
        versions = root / ".versions"
        versions.mkdir(parents=True, exist_ok=True)
        folder = versions / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**6}"
        folder.mkdir()
        return cls(root, name, folder)

    def commit(self) -> Path:
        """Make this version current; returns the path of its tileset.json."""
        link = self.root / self.name
        versions = self.root / ".versions"
        if link.exists() and not link.is_symlink():  # a plain folder from elsewhere: keep it aside
            link.rename(versions / f"{self.name}-replaced-{time.strftime('%Y%m%dT%H%M%S')}")
        tmp = self.root / f".{self.name}.link-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(self.folder.relative_to(self.root))
        previous = link.resolve() if link.is_symlink() else None
        os.replace(tmp, link)  # the swap: one atomic rename
        for old in versions.glob(f"{self.name}-*"):
            if old.resolve() not in (self.folder.resolve(), previous):
                shutil.rmtree(old, ignore_errors=True)
        return link / "tileset.json"

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
