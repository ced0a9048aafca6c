"""The FastAPI application: ``create_app(settings)``."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from psycopg_pool import AsyncConnectionPool

from cim import __version__
from cim.config import Settings, get_settings
from cim.db import database_url
from cim.server.deps import CatalogueCache
from cim.server.routes import health, layers, viewer


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        pool = AsyncConnectionPool(database_url(settings), min_size=2, max_size=settings.db_pool_size,
                                   open=False, kwargs={"autocommit": True})
        await pool.open(wait=True, timeout=30)
        app.state.pool = pool
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(title="CIM twin", version=__version__, lifespan=lifespan,
                  description="3D Tiles, PostGIS layers (catalogue, vector tiles, GeoJSON) and the viewer.")
    app.state.settings = settings
    app.state.catalogue = CatalogueCache()
    app.include_router(health.router)
    app.include_router(layers.router)
    app.include_router(viewer.router)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/viewer")

    return app
