"""``/screen``: what the big screen (一屏统览) reads: one topic's indicators
per district, street, community or grid, with the areas' outlines to colour.
Counts only (layers.indicators): no ticket's place, no person's data."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request, Response
from psycopg_pool import AsyncConnectionPool

from cim.config import Settings
from cim.server.deps import get_catalogue, get_pool, get_settings_dep
from layers.catalogue import LayerInfo
from layers.indicators import LEVELS, MAX_WITHIN, TOPICS, Ask, Deadlines, indicators

router = APIRouter(prefix="/screen", tags=["screen"])


@router.get(
    "/indicators",
    summary="One topic's figures per area (street, community, grid or the district), with the areas' outlines",
    response_class=Response,
    responses={
        200: {"content": {"application/json": {}}},
        400: {"description": "an unknown topic or level, or within where the level has no parent"},
        404: {"description": "within names no area"},
    },
)
async def screen_indicators(
    request: Request,
    topic: str = Query(..., max_length=40, description=", ".join(TOPICS)),
    level: str = Query("street", max_length=40, description=", ".join(LEVELS)),
    within: str | None = Query(
        None,
        max_length=MAX_WITHIN,
        description="the parent area's name or code: a street for level=community, a community for level=grid",
    ),
    pool: AsyncConnectionPool = Depends(get_pool),
    catalogue: dict[str, LayerInfo] = Depends(get_catalogue),
    settings: Settings = Depends(get_settings_dep),
) -> Response:
    """``{topic, level, within, measure, labels, totals, missing, areas}``: ``areas`` a GeoJSON
    FeatureCollection, one Feature per area of the level (within the parent), 0s where nothing is
    counted; ``totals`` the figures over those areas (the tallest building: the largest; the
    online rate: recomputed) and the breakdowns (``by_channel``, ...); ``missing`` the sources not
    there (or not readable with the caller's token): their figures are 0s."""
    who = getattr(request.state, "identity", None)
    readable = {n: layer for n, layer in catalogue.items() if who is None or who.may_read_layer(n)}
    hidden = frozenset(catalogue) - frozenset(readable)
    hub = getattr(request.app.state, "hub", None)
    sla = getattr(hub, "sla", None)
    deadlines = Deadlines(sla.acknowledge, sla.contact, sla.resolve) if sla is not None else Deadlines()
    answer = await indicators(
        pool.connection, Ask(topic, level, within), readable, settings.grid_layer, deadlines, hidden
    )
    return Response(answer.to_text(), media_type="application/json")
