"""``/tilesets``: the 3D Tiles on disk (``$CIM_DATA_DIR/tilesets/NAME/``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from cim.config import Settings
from cim.server.deps import get_settings_dep
from tiles.output import current_tilesets

router = APIRouter(tags=["tilesets"])


@router.get("/tilesets", summary="The tilesets: name, URL of tileset.json, what they hold")
async def list_tilesets(settings: Settings = Depends(get_settings_dep)) -> list[dict]:
    return [
        {"name": name, "url": f"/tilesets/{name}/tileset.json", **extras}
        for name, extras in current_tilesets(settings.tilesets_dir).items()
    ]
