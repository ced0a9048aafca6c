"""The viewer's files: its own (viewer/static/) and the vendor JavaScript,
served from the project's node_modules (installed by npm ci; never a CDN)."""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"

#: URL name -> file under node_modules; nothing else there is served
VENDOR: dict[str, str] = {
    "deck.gl.js": "deck.gl/dist.min.js",
    "deck-json.js": "@deck.gl/json/dist.min.js",
    "loaders-3d-tiles.js": "@loaders.gl/3d-tiles/dist/dist.min.js",
    # vector tiles are parsed in a web worker; deck.gl's bundle only knows the worker half of the loader
    "mvt-worker.js": "@loaders.gl/mvt/dist/mvt-worker.js",
    # terrain meshes (deck.gl's TerrainLayer) likewise: its bundle has only the worker half of TerrainLoader
    "terrain-worker.js": "@loaders.gl/terrain/dist/terrain-worker.js",
    # camera streams (HLS) in browsers without native HLS (Chromium)
    "hls.js": "hls.js/dist/hls.min.js",
}


def vendor_file(name: str, node_modules: Path) -> Path | None:
    """The file served as ``/viewer/vendor/NAME`` from ``node_modules`` (``CIM_NODE_MODULES``), if installed."""
    relative = VENDOR.get(name)
    if relative is None:
        return None
    path = node_modules / relative
    return path if path.is_file() else None
