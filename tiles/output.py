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

The layer and its tileset stay in step across a kill. The swap cannot be in
the layer's database transaction, so one of the two lands first, and a kill
(SIGKILL, power loss) between them is always possible. Committing first and
swapping second is the order that can be repaired: the importer seals the
version (:meth:`TilesetVersion.seal`: its folder gets its final name) and
records that name in the database *inside* the layer's transaction
(``cim.tileset_versions``, see :mod:`import_scripts.contract`). The database
then says which version belongs with the layer it holds; a kill between the
commit and the swap leaves a sealed folder the link does not point to yet,
and :func:`reconcile` (run when the server starts and by every ``cim
import``) makes it current. Swapping first and committing second (swapping
back on a database failure) would not be: a kill between the two leaves the
new tileset over the old layer with nothing on disk or in the database that
says so. Nothing is lost by waiting: a committed version is never deleted
before it has been made current, as only a later commit of the same name
(which reconciles first) removes versions.

What is published: :func:`published_folder`, the one definition the server
(``/tilesets``) and the lists (:func:`current_tilesets`) share: the folder
NAME's link points to, inside ``.versions``, and nothing else.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
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
    #: the key a resumable version is kept under (see :meth:`resume`)
    resume_key: str | None = None

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
            if version.tileset is not None:  # committed inside the block (its layer had landed): it stays
                raise
            if resume_key is not None:
                version.keep_for_resume()  # finished files are reused by the next run of the same import
            else:
                version.discard()
            raise
        if version.tileset is None:
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
        return cls(root, name, folder, lock, resume_key=key)

    def _release(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def seal(self) -> str:
        """Give the version its final folder (a resumable one is stamped when it
        is complete; a fresh one has its name from the start) and return the
        folder's name: what the layer's transaction records, for
        :func:`reconcile` to make current should the process die before
        :meth:`commit` does."""
        if self.folder.name.endswith("-partial"):
            final = self._stamped(self.root / ".versions", self.name)
            (self.folder / ".resume-key").unlink(missing_ok=True)
            self.folder.rename(final)
            self.folder = final
        return self.folder.name

    def commit(self) -> Path:
        """Make this version current; returns the path of its tileset.json."""
        self.seal()
        _publish(self.root, self.name, self.folder)
        self._release()
        self.tileset = self.root / self.name / "tileset.json"
        return self.tileset

    def discard(self) -> None:
        if self.tileset is None:  # never a committed version
            shutil.rmtree(self.folder, ignore_errors=True)
        self._release()

    def keep_for_resume(self) -> None:
        """Leave a resumable version as it is (an interrupted import's work), and let go of the name.
        One sealed by a transaction that then failed goes back to ``NAME-partial``, for the next run."""
        partial = self.root / ".versions" / f"{self.name}-partial"
        key = self.resume_key
        if key is not None and self.tileset is None and self.folder != partial and self.folder.is_dir():
            if partial.exists():
                shutil.rmtree(partial)  # cannot be: the name was held since this one was made from it
            self.folder.rename(partial)
            (partial / ".resume-key").write_text(key)
            self.folder = partial
        self._release()


def _publish(root: Path, name: str, folder: Path) -> None:
    """Point ``root/name`` at ``folder`` (one atomic rename), keep the version it
    pointed at (a viewer may still be fetching its tiles), delete the older
    ones. The caller holds the name's lock."""
    link = root / name
    versions = root / ".versions"
    if link.exists() and not link.is_symlink():  # a plain folder from elsewhere: kept aside, never deleted
        link.rename(versions / f".replaced-{name}-{time.strftime('%Y%m%dT%H%M%S')}")
    tmp = root / f".{name}.link-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(folder.relative_to(root))
    previous = link.resolve() if link.is_symlink() else None
    os.replace(tmp, link)  # the swap: one atomic rename
    for old in versions.glob(f"{name}-*"):
        if old.resolve() not in (folder.resolve(), previous):
            shutil.rmtree(old, ignore_errors=True)


def _plain_name(name: str) -> bool:
    """A tileset or version name that is one path component of ours (not a dot-file, no separator)."""
    return bool(name) and not name.startswith(".") and "/" not in name and "\\" not in name and "\0" not in name


def published_folder(root: Path, name: str) -> Path | None:
    """The folder tileset ``name`` is served from: the real path its link points
    to, if that is a committed version of it (``.versions/NAME-<stamp>``,
    directly inside the versions folder); ``None`` for anything else: no such
    link, a dot-name, a plain folder, a link that leads elsewhere."""
    if not _plain_name(name):
        return None
    link = root / name
    if not link.is_symlink():
        return None
    target = Path(os.path.realpath(link))
    versions = Path(os.path.realpath(root / ".versions"))
    if target.parent != versions or not target.name.startswith(f"{name}-") or target.name.endswith("-partial"):
        return None
    return target if target.is_dir() else None


def reconcile(root: Path, name: str, recorded: Callable[[], str | None]) -> str | None:
    """Make the version the database records for ``name`` current, if an import
    was killed after its layer's commit and before its swap. ``recorded()``
    gives that version's folder name (read once the name's lock is held, so
    no import of the name is between its commit and its swap). A name another
    import holds is left to it; a recorded folder that is not on disk is left
    alone. Returns the folder name made current, or ``None``."""
    versions = root / ".versions"
    if not _plain_name(name) or not versions.is_dir():
        return None
    with open(root / f".{name}.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released when the file closes
        except BlockingIOError:
            return None  # an import of this name is running: it swaps its own version
        folder_name = recorded()
        if not folder_name or not _plain_name(folder_name) or not folder_name.startswith(f"{name}-"):
            return None
        folder = versions / folder_name
        if folder_name.endswith("-partial") or folder.is_symlink() or not folder.is_dir():
            return None
        current = published_folder(root, name)
        if current is not None and current.name == folder_name:
            return None
        _publish(root, name, folder)
        return folder_name


def current_tilesets(root: Path) -> dict[str, dict]:
    """The current tilesets under ``root``: name -> the ``asset.extras`` of its tileset.json."""
    out: dict[str, dict] = {}
    for link in sorted(root.iterdir()) if root.is_dir() else []:
        folder = published_folder(root, link.name)  # what /tilesets serves, and nothing else
        path = folder / "tileset.json" if folder is not None else None
        if path is None or not path.is_file():
            continue
        with open(path, encoding="utf-8") as fh:
            out[link.name] = json.load(fh).get("asset", {}).get("extras", {})
    return out


def storey_tilesets(extras: dict) -> list[dict]:
    """A BIM tileset's storeys: [{"name", "url"}] (url relative to the tileset's folder)."""
    return [s for s in extras.get("storeys", []) if isinstance(s, dict)]  # older tilesets listed names only
