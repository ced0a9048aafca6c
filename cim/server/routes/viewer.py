"""``/viewer``: the viewer page."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from cim.server.deps import get_catalogue
from layers.catalogue import LayerInfo
from viewer.page import layer_list_page

router = APIRouter(tags=["viewer"])


@router.get("/viewer", response_class=HTMLResponse, summary="The viewer page")
async def viewer_page(catalogue: dict[str, LayerInfo] = Depends(get_catalogue)) -> HTMLResponse:
    return HTMLResponse(layer_list_page(catalogue.values()))
