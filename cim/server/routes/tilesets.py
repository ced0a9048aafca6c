"""``/tilesets``: the 3D Tiles on disk (``$CIM_DATA_DIR/tilesets/NAME/``).

What each tileset's ``asset.extras`` says is listed, without a path of the
server: a ``source`` (the oblique importer records the production folder) is
cut to its last part, as the layer catalogue's is."""

from __future__ import annotations

import os

from fastapi import APIRouter, Depends

from cim.config import Settings
from cim.server.deps import get_settings_dep
from layers.catalogue import file_name
from tiles.output import current_tilesets

router = APIRouter(tags=["tilesets"])


def public_extras(extras: dict) -> dict:
    """``extras`` with every top-level path (``source``, or any absolute path) cut to its last part."""
    return {
        key: file_name(value) if isinstance(value, str) and (key == "source" or os.path.isabs(value)) else value
        for key, value in extras.items()
    }


@router.get("/tilesets", summary="The tilesets: name, URL of tileset.json, what they hold")
async def list_tilesets(settings: Settings = Depends(get_settings_dep)) -> list[dict]:
    return [
        {"name": name, "url": f"/tilesets/{name}/tileset.json", **public_extras(extras)}
        for name, extras in current_tilesets(settings.tilesets_dir).items()
    ]
