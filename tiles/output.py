"""Tileset folders on disk, replaced atomically.

``tilesets/NAME`` is a symbolic link to ``tilesets/.versions/NAME-<stamp>``.
A new version is written beside the old one and the link is swapped with
one rename, so readers see the old tileset or the new one, never half of
one; a discarded version leaves nothing behind. The previous version is kept
until the next swap, so that a viewer that opened it just before can still
fetch its tiles. One import of a name at a time: a version holds the name's
lock from ``create`` to ``commit`` or ``discard``, so two imports cannot
delete or overtake each other's folder.

Importers use one lifecycle, :meth:`TilesetVersion.writing`::

    with TilesetVersion.writing(tilesets_dir, name) as version:
        ...  # write into version.folder
    version.tileset  # committed: the path of tileset.json

committed when the block ends, discarded if it raises (or kept to be resumed,
for an import that can resume).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


@dataclass
class TilesetVersion:
    root: Path  # the tilesets folder
    name: str
    folder: Path  # where this version is written
    _lock: IO | None = field(default=None, repr=False)
    #: the committed tileset.json (set by :meth:`commit`)
    tileset: Path | None = None

    @classmethod
    @contextmanager
    def writing(cls, root: Path, name: str, *, resume_key: str | None = None) -> Iterator[TilesetVersion]:
        """A new version of ``name``, committed when the block ends without an
        error. On an error it is discarded; with a ``resume_key`` (see
        :meth:`resume`) it is kept instead, for the next run to finish."""
        version = cls.resume(root, name, resume_key) if resume_key is not None else cls.create(root, name)
        try:
            yield version
        except BaseException:
            if resume_key is not None:
                version.keep_for_resume()  # finished files are reused by the next run of the same import
            else:
                version.discard()
            raise
        version.commit()

    @staticmethod
    def _take_name(root: Path, name: str) -> tuple[Path, IO]:
        """The versions folder, and the name's lock (another import of this name finishes first)."""
        versions = root / ".versions"
        versions.mkdir(parents=True, exist_ok=True)
        lock = open(root / f".{name}.lock", "a+")  # noqa: SIM115 - held open (locked) until commit or discard
        fcntl.flock(lock, fcntl.LOCK_EX)
        return versions, lock

    @staticmethod
    def _stamped(versions: Path, name: str) -> Path:
        """A new version's folder: the name, the time, the process and a tick (two in one second differ)."""
        return versions / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**6}"

    @classmethod
    def create(cls, root: Path, name: str) -> TilesetVersion:
        versions, lock = cls._take_name(root, name)
        folder = cls._stamped(versions, name)
        folder.mkdir()
        return cls(root, name, folder, lock)

    @classmethod
    def resume(cls, root: Path, name: str, key: str) -> TilesetVersion:
        """A version that survives an interrupted import: ``.versions/NAME-partial``,
        reused by the next import of the same ``key`` (same source, same
        options), which then skips what is already written; started afresh
        for another key."""
        versions, lock = cls._take_name(root, name)
        folder = versions / f"{name}-partial"
        marker = folder / ".resume-key"
        if folder.exists() and (not marker.is_file() or marker.read_text() != key):
            shutil.rmtree(folder)
        if not folder.exists():
            folder.mkdir()
            marker.write_text(key)
        return cls(root, name, folder, lock)

    def _release(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def commit(self) -> Path:
        """Make this version current; returns the path of its tileset.json."""
        link = self.root / self.name
        versions = self.root / ".versions"
        if self.folder.name.endswith("-partial"):  # a resumable version gets its stamp when it is complete
            final = self._stamped(versions, self.name)
            (self.folder / ".resume-key").unlink(missing_ok=True)
            self.folder.rename(final)
            self.folder = final
        if link.exists() and not link.is_symlink():  # a plain folder from elsewhere: kept aside, never deleted
            link.rename(versions / f".replaced-{self.name}-{time.strftime('%Y%m%dT%H%M%S')}")
        tmp = self.root / f".{self.name}.link-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(self.folder.relative_to(self.root))
        previous = link.resolve() if link.is_symlink() else None
        os.replace(tmp, link)  # the swap: one atomic rename
        for old in versions.glob(f"{self.name}-*"):
            if old.resolve() not in (self.folder.resolve(), previous):
                shutil.rmtree(old, ignore_errors=True)
        self._release()
        self.tileset = link / "tileset.json"
        return self.tileset

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self._release()

    def keep_for_resume(self) -> None:
        """Leave a resumable version as it is (an interrupted import's work), and let go of the name."""
        self._release()


def current_tilesets(root: Path) -> dict[str, dict]:
    """The current tilesets under ``root``: name -> the ``asset.extras`` of its tileset.json."""
    out: dict[str, dict] = {}
    for link in sorted(root.iterdir()) if root.is_dir() else []:
        path = link / "tileset.json"
        if link.name.startswith(".") or not path.is_file():
            continue
        with open(path, encoding="utf-8") as fh:
            out[link.name] = json.load(fh).get("asset", {}).get("extras", {})
    return out


def storey_tilesets(extras: dict) -> list[dict]:
    """A BIM tileset's storeys: [{"name", "url"}] (url relative to the tileset's folder)."""
    return [s for s in extras.get("storeys", []) if isinstance(s, dict)]  # older tilesets listed names only
