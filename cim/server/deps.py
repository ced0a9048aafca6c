"""Dependencies the routes ask for: the connection pool, the settings, a layer."""

from __future__ import annotations

import time

import psycopg
from fastapi import Depends, Request
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from cim.config import Settings
from cim.errors import Forbidden, NotFoundError
from layers.catalogue import COLUMNS, LayerInfo, row_to_info
from layers.schema import META_SCHEMA

_CATALOGUE_TTL = 1.0  # seconds a catalogue read is reused: a new import shows within a second


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_pool(request: Request) -> AsyncConnectionPool:
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


async def get_catalogue(request: Request, pool: AsyncConnectionPool = Depends(get_pool)) -> dict[str, LayerInfo]:
    return await request.app.state.catalogue.layers(pool)


async def get_grid_layer(
    catalogue: dict[str, LayerInfo] = Depends(get_catalogue), settings: Settings = Depends(get_settings_dep)
) -> LayerInfo | None:
    """The layer that places features in street/community/grid (``CIM_GRID_LAYER``), if imported:
    where a masked ticket is snapped to (layers.sensitive)."""
    return catalogue.get(settings.grid_layer)


async def get_layer(name: str, request: Request, catalogue: dict[str, LayerInfo] = Depends(get_catalogue)) -> LayerInfo:
    layer = catalogue.get(name)
    if layer is None:
        raise NotFoundError(f"no layer named {name!r}", hint="GET /layers lists the layers")
    who = getattr(request.state, "identity", None)
    if who is not None and not who.may_read_layer(name):  # a token scoped to other layers
        raise Forbidden(f"{who.name} may read only the layers {', '.join(sorted(who.layers or ()))}")
    return layer
