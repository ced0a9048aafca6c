"""``/viewer``: the viewer page, its own files and the vendor JavaScript (all local)."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse, HTMLResponse

from cim.config import Settings
from cim.server.deps import get_catalogue, get_settings_dep
from layers.catalogue import LayerInfo
from viewer.assets import vendor_file
from viewer.deck import TilesetRef
from viewer.page import viewer_config, viewer_page

router = APIRouter(tags=["viewer"])


def tileset_refs(settings: Settings, catalogue: dict[str, LayerInfo]) -> list[TilesetRef]:
    """The current tilesets; a tileset named like a layer belongs to it (cim import buildings makes both)."""
    root = settings.tilesets_dir
    refs = []
    for link in sorted(root.iterdir()) if root.is_dir() else []:
        path = link / "tileset.json"
        if link.name.startswith(".") or not path.is_file():
            continue
        extras = json.loads(path.read_text(encoding="utf-8")).get("asset", {}).get("extras", {})
        storeys = tuple((s["name"], f"/tilesets/{link.name}/{s['url']}") for s in extras.get("storeys", [])
                        if isinstance(s, dict))  # older tilesets listed names only: drawn whole
        refs.append(TilesetRef(link.name, f"/tilesets/{link.name}/tileset.json",
                               layer=link.name if link.name in catalogue else None, storeys=storeys))
    return refs


@router.get("/viewer", response_class=HTMLResponse, summary="The viewer page")
async def viewer(catalogue: dict[str, LayerInfo] = Depends(get_catalogue),
                 settings: Settings = Depends(get_settings_dep)) -> HTMLResponse:
    config = viewer_config(catalogue.values(), tileset_refs(settings, catalogue))
    return HTMLResponse(viewer_page(config), headers={"Cache-Control": "no-cache"})


@router.get("/viewer/config.json", summary="What the viewer page is built from: the deck JSON, layers, labels")
async def viewer_config_json(catalogue: dict[str, LayerInfo] = Depends(get_catalogue),
                             settings: Settings = Depends(get_settings_dep)) -> dict:
    return json.loads(json.dumps(viewer_config(catalogue.values(), tileset_refs(settings, catalogue))))


@router.get("/viewer/vendor/{name}", include_in_schema=False)
async def vendor(name: str) -> FileResponse:
    path = vendor_file(name)
    if path is None:
        raise HTTPException(404, detail=f"no vendor file {name!r} (run scripts/bootstrap.sh to install them)")
    return FileResponse(path, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})
