"""The FastAPI application: ``create_app(settings)``."""

from __future__ import annotations

import mimetypes
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from psycopg_pool import AsyncConnectionPool

from cim import __version__
from cim.auth.store import ensure_auth_schema
from cim.config import Settings, get_settings
from cim.db import connect, database_url
from cim.live.hub import LiveHub
from cim.live.stream import Broadcaster
from cim.server.access import Authenticator, Guarded, authorize
from cim.server.deps import CatalogueCache
from cim.server.errors import add_exception_handlers
from cim.server.headers import SecurityHeaders, TrustedHosts
from cim.server.limits import BodyLimit
from cim.server.openapi import install_openapi_30
from cim.server.routes import auth, bim, components, docs, health, land, layers, live, ogc, rasters, tilesets, viewer
from cim.server.routes import screen as screen_routes
from cim.server.routes import search as search_routes
from cim.server.routes.tileset_files import TilesetFiles
from import_scripts.contract import reconcile_tilesets
from viewer.assets import STATIC_DIR

mimetypes.add_type("model/gltf-binary", ".glb")
mimetypes.add_type("video/mp2t", ".ts")  # HLS segments (not Qt translations)


def _ensure_auth_schema(settings: Settings) -> None:
    with connect(settings, autocommit=True) as conn:
        ensure_auth_schema(conn)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        pool = AsyncConnectionPool(
            database_url(settings), min_size=2, max_size=settings.db_pool_size, open=False, kwargs={"autocommit": True}
        )
        await pool.open(wait=True, timeout=30)
        await run_in_threadpool(reconcile_tilesets, settings)  # an import killed between its commit and its swap
        await run_in_threadpool(_ensure_auth_schema, settings)
        app.state.pool = pool
        hub = LiveHub(settings)
        await run_in_threadpool(hub.start)
        app.state.hub = hub
        app.state.broadcaster = Broadcaster(hub)
        app.state.broadcaster.start()
        try:
            yield
        finally:
            await app.state.broadcaster.stop()
            await run_in_threadpool(hub.stop)
            await pool.close()

    app = FastAPI(
        title="CIM twin",
        version=__version__,
        lifespan=lifespan,
        dependencies=[Depends(authorize)],  # who may call each route: cim.server.access.ROUTES
        docs_url=None,  # /docs and /redoc: cim.server.routes.docs, with local assets
        redoc_url=None,
        description="3D Tiles, PostGIS layers (catalogue, vector tiles, GeoJSON), live sensors and "
        "tickets, and the viewer.",
    )
    app.state.settings = settings
    app.state.catalogue = CatalogueCache()
    app.state.authenticator = Authenticator(settings)
    add_exception_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)  # 413 for a body over the limit, at once
    app.include_router(health.router)
    app.include_router(layers.router)
    app.include_router(viewer.router)
    app.include_router(tilesets.router)
    app.include_router(bim.router)
    app.include_router(live.router)
    app.include_router(land.router)
    app.include_router(components.router)
    app.include_router(rasters.router)
    app.include_router(search_routes.router)
    app.include_router(screen_routes.router)
    app.include_router(docs.router)
    app.include_router(ogc.router)  # the landing page at / among them
    app.include_router(auth.router)
    install_openapi_30(app)
    if settings.cors_origins:  # other origins (a dashboard, a notebook's page) may fetch tiles and features
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "HEAD"],
            allow_headers=["*"],
            expose_headers=["ETag", "Content-Crs"],
            max_age=3600,
        )
    settings.tilesets_dir.mkdir(parents=True, exist_ok=True)
    # tileset.json and GLBs as files: the published version of each NAME only (cim.server.routes.tileset_files)
    # (a mount is no route: Guarded applies the access table's entry for it)
    app.mount("/tilesets", Guarded(TilesetFiles(settings.tilesets_dir), "/tilesets/{path:path}"), name="tilesets")
    app.mount(
        "/viewer/static", Guarded(StaticFiles(directory=STATIC_DIR), "/viewer/static/{path:path}"), name="viewer-static"
    )
    settings.streams_dir.mkdir(parents=True, exist_ok=True)
    app.mount(
        "/live/cameras",
        Guarded(StaticFiles(directory=settings.streams_dir), "/live/cameras/{path:path}"),
        name="camera-streams",
    )
    # outermost last: a request for another Host is refused before anything else runs (no DNS rebinding)
    app.add_middleware(SecurityHeaders, frame_ancestors=settings.frame_ancestors)
    app.add_middleware(TrustedHosts, allowed_hosts=settings.trusted_hosts())

    return app
