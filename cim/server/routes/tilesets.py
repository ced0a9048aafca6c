"""``/tilesets``: the 3D Tiles on disk (``$CIM_DATA_DIR/tilesets/NAME/``)."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends

from cim.config import Settings
from cim.server.deps import get_settings_dep

router = APIRouter(tags=["tilesets"])


@router.get("/tilesets", summary="The tilesets: name, URL of tileset.json, what they hold")
async def list_tilesets(settings: Settings = Depends(get_settings_dep)) -> list[dict]:
    out = []
    root = settings.tilesets_dir
    for link in sorted(root.iterdir()) if root.is_dir() else []:
        tileset = link / "tileset.json"
        if link.name.startswith(".") or not tileset.is_file():
            continue
        with open(tileset, encoding="utf-8") as fh:
            doc = json.load(fh)
        extras = doc.get("asset", {}).get("extras", {})
        out.append({"name": link.name, "url": f"/tilesets/{link.name}/tileset.json",
                    "version": doc.get("asset", {}).get("version"), **extras})
    return out
