"""``/tilesets/NAME/...``: the files of each tileset's published version, and nothing else.

The tilesets folder also holds what must not be served: old and unfinished
versions (``.versions/``), the names' locks, resume markers, folders set
aside (``.replaced-*``), and whatever link someone may plant. A request is
served only if it names a file inside the folder NAME's link points to
(:func:`tiles.output.published_folder`: a committed version, directly inside
``.versions``), after every symbolic link on the way is resolved. Refused,
all as a plain 404 (which says nothing of what is there):

- a path with a dot-part (``.versions``, ``.NAME.lock``, ``.resume-key``,
  ``..``, whether sent plain or percent-encoded: the server decodes first);
- a NAME whose link is missing, is a plain folder, or leads anywhere but to
  one of its own versions;
- a file whose real path leaves the version's folder (a link inside a
  version pointing to ``/etc``, or to another version);
- a folder (no listings) and the NAME itself.

Files are served as Starlette's StaticFiles serves them: ETag,
Last-Modified, conditional requests (304) and byte ranges; media types from
:mod:`mimetypes` (``.glb`` is registered by the app as model/gltf-binary,
``.json`` is application/json).
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi.staticfiles import StaticFiles
from starlette._utils import get_route_path  # what StaticFiles.get_path itself reads
from starlette.types import Scope

from tiles.output import published_folder


def _refused(part: str) -> bool:
    return part.startswith(".") or "\\" in part or "\0" in part


class TilesetFiles(StaticFiles):
    """StaticFiles over the tilesets folder that serves published versions only."""

    def __init__(self, root: Path) -> None:
        super().__init__(directory=root, follow_symlink=False)
        self.root = Path(root)

    def get_path(self, scope: Scope) -> str:
        # judged before StaticFiles normalises it: a/../.versions/x must not become a harmless-looking path
        if any(_refused(part) for part in get_route_path(scope).split("/")):
            return ""
        return super().get_path(scope)

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        parts = [p for p in path.split(os.sep) if p]
        if len(parts) < 2 or any(_refused(p) for p in parts):
            return "", None
        version = published_folder(self.root, parts[0])
        if version is None:
            return "", None
        full = os.path.realpath(os.path.join(version, *parts[1:]))
        if os.path.commonpath([full, str(version)]) != str(version) or full == str(version):
            return "", None  # a link that leads out of the published version
        try:
            return full, os.stat(full)
        except (FileNotFoundError, NotADirectoryError):
            return "", None
