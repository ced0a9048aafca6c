"""``/viewer``: the viewer page, its own files and the vendor JavaScript (all local)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, HTMLResponse

from cim.config import Settings
from cim.errors import NotFoundError
from cim.server.deps import get_catalogue, get_settings_dep
from layers.catalogue import LayerInfo
from tiles.output import current_tilesets, storey_tilesets
from viewer.assets import vendor_file
from viewer.deck import TilesetRef
from viewer.page import viewer_config, viewer_page
from viewer.styles import ViewerStyles

router = APIRouter(tags=["viewer"])


def tileset_refs(settings: Settings, catalogue: dict[str, LayerInfo]) -> list[TilesetRef]:
    """The current tilesets; a tileset named like a layer belongs to it (the importers make both)."""
    return [
        TilesetRef(
            name,
            f"/tilesets/{name}/tileset.json",
            layer=name if name in catalogue else None,
            storeys=tuple((st["name"], f"/tilesets/{name}/{st['url']}") for st in storey_tilesets(extras)),
            kind=str(extras.get("kind", "")),
        )
        for name, extras in current_tilesets(settings.tilesets_dir).items()
    ]


#: the last viewer file read, per path: (its mtime, size and inode, or None when absent; what it held)
_styles_cache: dict[Path, tuple[tuple[int, int, int] | None, ViewerStyles]] = {}


def viewer_styles(settings: Settings) -> ViewerStyles:
    """The data directory's viewer file (``cim demo`` puts the sample's there),
    read again only when it changes; absent or malformed: the defaults."""
    path = settings.viewer_config_file
    try:
        st = path.stat()
        stamp: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        stamp = None
    cached = _styles_cache.get(path)
    if cached is None or cached[0] != stamp:
        cached = _styles_cache[path] = (stamp, ViewerStyles.load(path))
    return cached[1]


@router.get("/viewer", response_class=HTMLResponse, summary="The viewer page")
async def viewer(
    catalogue: dict[str, LayerInfo] = Depends(get_catalogue), settings: Settings = Depends(get_settings_dep)
) -> HTMLResponse:
    config = viewer_config(
        catalogue.values(),
        tileset_refs(settings, catalogue),
        styles=viewer_styles(settings),
        embed_origins=settings.frame_ancestors,
        ground=settings.viewer_ground,
    )
    return HTMLResponse(viewer_page(config), headers={"Cache-Control": "no-cache"})


@router.get("/viewer/styles.json", summary="The styles of named layers the viewer uses (its viewer.json)")
async def viewer_styles_json(settings: Settings = Depends(get_settings_dep)) -> dict:
    return viewer_styles(settings).to_dict()


@router.get("/viewer/config.json", summary="What the viewer page is built from: the deck JSON, layers, labels")
async def viewer_config_json(
    catalogue: dict[str, LayerInfo] = Depends(get_catalogue), settings: Settings = Depends(get_settings_dep)
) -> dict:
    return viewer_config(
        catalogue.values(),
        tileset_refs(settings, catalogue),
        styles=viewer_styles(settings),
        embed_origins=settings.frame_ancestors,
        ground=settings.viewer_ground,
    )


@router.get("/viewer/vendor/{name}", include_in_schema=False)
async def vendor(name: str, settings: Settings = Depends(get_settings_dep)) -> FileResponse:
    path = vendor_file(name, settings.node_modules)
    if path is None:
        raise NotFoundError(f"no vendor file {name!r}", hint="run scripts/bootstrap.sh to install them")
    return FileResponse(path, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})
