"""``/docs`` (Swagger UI) and ``/redoc`` with their JavaScript, CSS and icon
served from the project's node_modules (npm packages ``swagger-ui-dist`` and
``redoc``), never from a CDN: the docs work on an intranet without internet.

FastAPI's own docs pages load from jsDelivr (and ReDoc's from Google Fonts),
so the app is made with ``docs_url=None, redoc_url=None`` and these routes
replace them, as in FastAPI's "Custom Docs UI Static Assets (Self-Hosting)".
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse, Response

from cim.config import Settings
from cim.errors import NotFoundError
from cim.server.deps import get_settings_dep

router = APIRouter(include_in_schema=False)

#: where the files below are served
ASSETS_PREFIX = "/docs/assets"
#: FastAPI's default path of Swagger UI's OAuth2 redirect page (app.swagger_ui_oauth2_redirect_url)
OAUTH2_REDIRECT = "/docs/oauth2-redirect"

#: URL name -> file under node_modules; nothing else there is served
DOCS_ASSETS: dict[str, str] = {
    "swagger-ui-bundle.js": "swagger-ui-dist/swagger-ui-bundle.js",
    "swagger-ui.css": "swagger-ui-dist/swagger-ui.css",
    "favicon.png": "swagger-ui-dist/favicon-32x32.png",
    # one file with React and everything else ReDoc needs
    "redoc.standalone.js": "redoc/bundles/redoc.standalone.js",
}


#: URL name -> (text, replacement), applied as the file is served: what a bundle would fetch from the internet
REWRITES: dict[str, tuple[tuple[bytes, bytes], ...]] = {
    # the "API docs by Redocly" link in ReDoc's menu shows a logo from cdn.redoc.ly (no option turns it
    # off): an empty image instead, so that the page asks nothing of any other host
    "redoc.standalone.js": (
        (
            b"https://cdn.redoc.ly/redoc/logo-mini.svg",
            b"data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E",
        ),
    ),
}

#: the rewritten files, per path: (mtime, size and inode of the file read; the bytes served)
_rewritten: dict[Path, tuple[tuple[int, int, int], bytes]] = {}


def docs_asset(name: str, node_modules: Path) -> Path | None:
    """The file served as ``/docs/assets/NAME`` from ``node_modules`` (``CIM_NODE_MODULES``), if installed."""
    relative = DOCS_ASSETS.get(name)
    if relative is None:
        return None
    path = node_modules / relative
    return path if path.is_file() else None


def rewritten(name: str, path: Path) -> bytes:
    """The bytes of ``path`` with ``REWRITES[name]`` applied (read again only when the file changes)."""
    st = path.stat()
    stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
    cached = _rewritten.get(path)
    if cached is None or cached[0] != stamp:
        data = path.read_bytes()
        for old, new in REWRITES[name]:
            data = data.replace(old, new)
        cached = _rewritten[path] = (stamp, data)
    return cached[1]


def _root_path(request: Request) -> str:
    """The prefix the app is mounted under (behind a proxy), as FastAPI's own docs pages use it."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _openapi_url(request: Request) -> str:
    openapi_url = request.app.openapi_url
    if not openapi_url:
        raise NotFoundError("the OpenAPI schema is switched off (openapi_url=None)")
    return _root_path(request) + openapi_url


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    app = request.app
    root, assets = _root_path(request), _root_path(request) + ASSETS_PREFIX
    return get_swagger_ui_html(
        openapi_url=_openapi_url(request),
        title=f"{app.title} - Swagger UI",
        swagger_js_url=f"{assets}/swagger-ui-bundle.js",
        swagger_css_url=f"{assets}/swagger-ui.css",
        swagger_favicon_url=f"{assets}/favicon.png",
        oauth2_redirect_url=root + OAUTH2_REDIRECT,
        init_oauth=app.swagger_ui_init_oauth,
        # no "validator" badge: it would send the schema to validator.swagger.io
        swagger_ui_parameters={"validatorUrl": None, **(app.swagger_ui_parameters or {})},
    )


@router.get(OAUTH2_REDIRECT)
async def swagger_ui_oauth2_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    assets = _root_path(request) + ASSETS_PREFIX
    return get_redoc_html(
        openapi_url=_openapi_url(request),
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{assets}/redoc.standalone.js",
        redoc_favicon_url=f"{assets}/favicon.png",
        with_google_fonts=False,  # the system's fonts: nothing from fonts.googleapis.com
    )


@router.get(ASSETS_PREFIX + "/{name}")
def docs_assets(name: str, settings: Settings = Depends(get_settings_dep)) -> Response:
    """One file of DOCS_ASSETS (a plain ``def``: a rewritten file is read in the thread pool)."""
    path = docs_asset(name, settings.node_modules)
    if path is None:
        raise NotFoundError(f"no docs file {name!r}", hint="run scripts/bootstrap.sh to install them")
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    headers = {"Cache-Control": "public, max-age=86400"}
    if name in REWRITES:
        return Response(rewritten(name, path), media_type=media_type, headers=headers)
    return FileResponse(path, media_type=media_type, headers=headers)
