"""``/search``: one search over places and objects (the viewer's search box): streets,
communities, grids, buildings, parcels, city components, tickets and BIM elements
(layers.search says what each kind searches and what a caller may find)."""

from __future__ import annotations

import asyncio

import psycopg
from fastapi import APIRouter, Depends, Query, Request
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from cim.server.deps import get_catalogue, get_pool
from layers.catalogue import LayerInfo
from layers.components.queries import layers_query
from layers.search import (
    DEFAULT_LIMIT,
    KINDS,
    MAX_LIMIT,
    MAX_QUERY,
    STATEMENT_TIMEOUT_MS,
    parse_request,
    search,
    targets,
)

router = APIRouter(tags=["search"])

#: queries of one search run side by side on at most this many of the pool's connections
_PARALLEL = 3


async def _component_layers(pool: AsyncConnectionPool) -> list[str]:
    async with pool.connection() as conn:
        try:
            return [r[0] for r in await (await conn.execute(layers_query())).fetchall()]
        except psycopg.errors.UndefinedTable:  # no component was ever imported
            return []


@router.get(
    "/search",
    summary="Places and objects by name or id: streets, communities, grids, buildings, parcels, "
    "components, tickets (operators and admins), BIM elements",
    description=f"`q`: at most {MAX_QUERY} characters (an exact id or name first, then those that start with "
    f"it, then those that contain it; `%` and `_` are literal); `kinds`: some of {', '.join(KINDS)}, "
    f"comma-separated (empty: all); `limit`: 1 to {MAX_LIMIT}. Each hit: kind, layer (and its title), "
    "id (the value of `key` in the layer: `GET /layers/{layer}/items?{key}={id}` gives the feature), "
    "label, detail, match, bbox [w, s, e, n] and a point on the feature (WGS84).",
)
async def search_route(
    request: Request,
    q: str = Query("", description="the text"),
    kinds: str | None = Query(None, description="comma-separated kinds (empty: all)"),
    limit: int = Query(DEFAULT_LIMIT, description=f"at most this many hits (1 to {MAX_LIMIT})"),
    catalogue: dict[str, LayerInfo] = Depends(get_catalogue),
    pool: AsyncConnectionPool = Depends(get_pool),
) -> list[dict]:
    wanted = parse_request(q, kinds, limit)  # InputError: a 400 naming the parameter
    if not wanted.text:
        return []
    who = getattr(request.state, "identity", None)
    roles = who.roles if who is not None else frozenset()
    readable = {n: layer for n, layer in catalogue.items() if who is None or who.may_read_layer(n)}
    found = targets(readable, roles, component_layers=await _component_layers(pool), kinds=wanted.kinds)
    slots = asyncio.Semaphore(_PARALLEL)

    async def execute(query: sql.Composed, params: dict) -> list[tuple]:
        async with slots, pool.connection() as conn, conn.transaction():
            await conn.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(STATEMENT_TIMEOUT_MS)))
            return await (await conn.execute(query, params)).fetchall()

    return [hit.to_json() for hit in await search(found, wanted, execute)]
