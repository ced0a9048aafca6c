"""Tileset folders on disk, replaced atomically.

``tilesets/NAME`` is a symbolic link to ``tilesets/.versions/NAME-<stamp>``.
A new version is written beside the old one and the link is swapped with
one rename, so readers see the old tileset or the new one, never half of
one; a failed import leaves only an unreferenced folder, removed at once.
The previous version is kept until the next swap, so that a viewer that
opened it just before can still fetch its tiles.
"""

from __future__ import annotations

import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _versions(root: Path) -> Path:
    return root / ".versions"


@contextmanager
def new_version(root: Path, name: str) -> Iterator[Path]:
    """Yield an empty folder for the new version of tileset ``name``; on
    success make it current, on error delete it and leave the old one."""
    versions = _versions(root)
    versions.mkdir(parents=True, exist_ok=True)
    folder = versions / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    folder.mkdir()
    try:
        yield folder
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    link = root / name
    if link.exists() and not link.is_symlink():  # a plain folder from elsewhere: keep it aside
        link.rename(versions / f"{name}-replaced-{time.strftime('%Y%m%dT%H%M%S')}")
    tmp = root / f".{name}.link-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(folder.relative_to(root))
    previous = link.resolve() if link.is_symlink() else None
    os.replace(tmp, link)  # the swap: one atomic rename
    for old in versions.glob(f"{name}-*"):
        if old.resolve() not in (folder.resolve(), previous):
            shutil.rmtree(old, ignore_errors=True)
