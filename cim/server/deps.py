"""Dependencies the routes ask for: the connection pool, the settings, a layer."""

from __future__ import annotations

import time

import psycopg
from fastapi import Request
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from starlette.requests import HTTPConnection

from cim.config import Settings
from cim.errors import Forbidden, NotFoundError
from layers.catalogue import COLUMNS, LayerInfo, row_to_info
from layers.schema import META_SCHEMA

_CATALOGUE_TTL = 1.0  # seconds a catalogue read is reused: a new import shows within a second


# Every tile asks for these. They are coroutines, even where they do not wait: FastAPI runs a
# plain function in its thread pool (two thread hand-offs a tile took most of a 304's time); and
# they ask for no dependencies of their own: each costs FastAPI a resolution on every request,
# cached or not (the app's state holds the settings, the pool and the catalogue's cache).


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_pool(request: Request) -> AsyncConnectionPool:
    return request.app.state.pool


class CatalogueCache:
    """The catalogue, read at most once a second: every tile request needs its
    layer's row, and a round trip per tile would cost more than the cache."""

    def __init__(self) -> None:
        self._layers: dict[str, LayerInfo] = {}
        self._read_at = 0.0

    async def layers(self, pool: AsyncConnectionPool) -> dict[str, LayerInfo]:
        if time.monotonic() - self._read_at > _CATALOGUE_TTL:
            async with pool.connection() as conn:
                try:
                    async with conn.cursor(row_factory=dict_row) as cur:
                        await cur.execute(f"SELECT {COLUMNS} FROM {META_SCHEMA}.layers ORDER BY name")
                        rows = await cur.fetchall()
                except psycopg.errors.UndefinedTable:
                    rows = []  # nothing imported yet
            self._layers = {r["name"]: row_to_info(r) for r in rows}
            self._read_at = time.monotonic()
        return self._layers


_CATALOGUE = "cim.catalogue"  # the request's scope holds the catalogue it read


async def _catalogue(conn: HTTPConnection) -> dict[str, LayerInfo]:
    """The catalogue, read from its cache once per request: the layer and the grid layer of a
    request come from the same read."""
    layers = conn.scope.get(_CATALOGUE)
    if layers is None:
        layers = conn.scope[_CATALOGUE] = await conn.app.state.catalogue.layers(conn.app.state.pool)
    return layers


async def get_catalogue(request: Request) -> dict[str, LayerInfo]:
    return await _catalogue(request)


async def get_grid_layer(request: Request) -> LayerInfo | None:
    """The layer that places features in street/community/grid (``CIM_GRID_LAYER``), if imported:
    where a masked ticket is snapped to (layers.sensitive)."""
    settings: Settings = request.app.state.settings
    return (await _catalogue(request)).get(settings.grid_layer)


async def get_layer(name: str, request: Request) -> LayerInfo:
    layer = (await _catalogue(request)).get(name)
    if layer is None:
        raise NotFoundError(f"no layer named {name!r}", hint="GET /layers lists the layers")
    who = getattr(request.state, "identity", None)
    if who is not None and not who.may_read_layer(name):  # a token scoped to other layers
        raise Forbidden(f"{who.name} may read only the layers {', '.join(sorted(who.layers or ()))}")
    return layer
