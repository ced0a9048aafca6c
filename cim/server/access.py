"""Who may call which route: one table, one dependency, one middleware.

:data:`ROUTES` maps every route of the app (method and path template) to who
may call it: ``PUBLIC`` (anyone), ``READ`` (every reading role, and nobody
signed in when ``CIM_ANONYMOUS_READ`` is on), or a set of roles. The
dependency :func:`authorize` is installed on the whole app: a route that is
not in the table answers 403 to everyone (and a test that walks every route
fails), so a new route cannot be forgotten.

Callers are identified by an API token (``Authorization: Bearer cim_...``),
or by the session cookie that ``POST /auth/login`` sets (signed, HttpOnly,
SameSite=Strict; a state-changing request with it must come from this
server's own origin: no cross-site request forgery). Token checks are cached
for a few seconds, so vector tiles pay a dictionary lookup, not a query.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fastapi.routing import APIWebSocketRoute, iter_route_contexts
from itsdangerous import BadSignature, URLSafeTimedSerializer
from psycopg_pool import AsyncConnectionPool
from starlette.requests import HTTPConnection
from starlette.routing import Mount, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from cim.auth.roles import READERS, Role
from cim.auth.store import (
    ANONYMOUS,
    AUDIT_INSERT,
    SCHEMA,
    TOKEN_PREFIX,
    Identity,
    audit_params,
    roles_of,
    token_digest,
)
from cim.config import Settings
from cim.errors import Forbidden, Unauthenticated
from layers.land.rules import EDITORS

SESSION_COOKIE = "cim_session"
SESSION_MAX_AGE_S = 12 * 3600  # a working day
_CACHE_S = 5.0  # how long a token's or a user's check is reused
TOKEN_USE_SQL = f"""UPDATE {SCHEMA}.tokens SET last_used_at = now()
    WHERE token_sha256 = %s AND revoked_at IS NULL RETURNING name, roles, layers"""
USER_SQL = f"SELECT roles, disabled FROM {SCHEMA}.users WHERE name = %s"

PUBLIC = "public"
READ = "read"
ADMIN = frozenset({Role.admin})
OPERATORS = frozenset({Role.operator, Role.admin})
LAND_SUPERVISORS = frozenset(Role(r) for r in EDITORS)
WRITERS_OF_READINGS = frozenset({Role.device, Role.operator, Role.admin})

Rule = str | frozenset[Role]

#: (method, path template) -> who may call it. "WS" is a WebSocket; every route of the app is here.
ROUTES: dict[tuple[str, str], Rule] = {
    # sign-in, health, the API's own documentation
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/auth/login"): PUBLIC,
    ("POST", "/auth/login"): PUBLIC,
    ("POST", "/auth/logout"): PUBLIC,
    ("GET", "/auth/me"): PUBLIC,
    ("GET", "/auth/oidc/login"): PUBLIC,
    ("GET", "/auth/oidc/callback"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/docs/assets/{name}"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/viewer/vendor/{name}"): PUBLIC,
    ("GET", "/viewer/static/{path:path}"): PUBLIC,
    # the map: layers, tiles, features, models
    ("GET", "/"): READ,
    ("GET", "/conformance"): READ,
    ("GET", "/collections"): READ,
    ("GET", "/collections/{name}"): READ,
    ("GET", "/collections/{name}/items"): READ,
    ("GET", "/collections/{name}/items/{fid}"): READ,
    ("GET", "/collections/{name}/tiles"): READ,
    ("GET", "/collections/{name}/tiles/{tms}"): READ,
    ("GET", "/collections/{name}/tiles/{tms}/{tile_matrix}/{tile_row}/{tile_col}"): READ,
    ("GET", "/tileMatrixSets"): READ,
    ("GET", "/tileMatrixSets/{tms}"): READ,
    ("GET", "/tiles/tilejson.json"): READ,
    ("GET", "/tiles/{z}/{x}/{y}.mvt"): READ,
    ("GET", "/layers"): READ,
    ("GET", "/layers/{name}"): READ,
    ("GET", "/layers/{name}/tiles/{z}/{x}/{y}.mvt"): READ,
    ("GET", "/layers/{name}/tilejson.json"): READ,
    ("GET", "/layers/{name}/items"): READ,
    ("GET", "/tilesets"): READ,
    ("GET", "/tilesets/{path:path}"): READ,
    ("GET", "/bim"): READ,
    ("GET", "/bim/{name}"): READ,
    ("GET", "/bim/{name}/search"): READ,
    # one search box for places and objects (tickets only for the roles that may see where they are)
    ("GET", "/search"): READ,
    # city components: the layers, classes, counts and one file per object, for every reader
    ("GET", "/components"): READ,
    ("GET", "/components/classes"): READ,
    ("GET", "/components/{name}/counts"): READ,
    ("GET", "/components/{name}/{component_id}"): READ,
    # imagery and terrain: for every reader
    ("GET", "/rasters"): READ,
    ("GET", "/rasters/{name}"): READ,
    ("GET", "/rasters/{name}/tiles/{z}/{x}/{y}.{fmt}"): READ,
    ("GET", "/rasters/{name}/terrain-rgb/{z}/{x}/{y}.png"): READ,
    ("GET", "/rasters/{name}/terrain/layer.json"): READ,
    ("GET", "/rasters/{name}/terrain/{z}/{x}/{y}.terrain"): READ,
    ("GET", "/rasters/{name}/WMTSCapabilities.xml"): READ,
    ("GET", "/viewer"): READ,
    ("GET", "/viewer/config.json"): READ,
    ("GET", "/viewer/styles.json"): READ,
    # live: the picture is for every reader; citizens' details for operators
    ("GET", "/live/status"): READ,
    ("GET", "/live/sensors/{sensor_id}"): READ,
    ("GET", "/live/sensors/{sensor_id}/readings"): READ,
    ("GET", "/live/snapshot/sensors"): READ,
    ("GET", "/live/snapshot/cameras"): READ,
    ("GET", "/live/snapshot/tickets"): READ,
    ("GET", "/live/alarms"): READ,
    ("GET", "/live/counts"): READ,
    ("WS", "/live/stream"): READ,
    ("GET", "/live/cameras/{path:path}"): READ,
    ("GET", "/live/tickets/{ticket_id}"): OPERATORS,
    ("POST", "/live/sensors/readings"): WRITERS_OF_READINGS,
    ("POST", "/live/tickets"): OPERATORS,
    # land supervision: the results for every reader; follow-up and re-checks for land supervisors
    ("GET", "/land/parcels"): READ,
    ("GET", "/land/parcels/{parcel_id}"): READ,
    ("GET", "/land/parcels/{parcel_id}/report.pdf"): READ,
    ("GET", "/land/unapproved"): READ,
    ("GET", "/land/stats"): READ,
    # the big screen: counts per area (no ticket's place), for every reader
    ("GET", "/screen/indicators"): READ,
    ("POST", "/land/findings/{finding_id}"): LAND_SUPERVISORS,
    ("POST", "/land/parcels/{parcel_id}/check"): LAND_SUPERVISORS,
    # administration
    ("GET", "/audit"): ADMIN,
}


def rule_of(method: str, path: str) -> Rule | None:
    return ROUTES.get((method, path))


def allowed(rule: Rule, who: Identity, anonymous_read: bool) -> bool:
    if rule == PUBLIC:
        return True
    if rule == READ:
        return bool(who.roles & READERS) or (who.anonymous and anonymous_read)
    return bool(who.roles & rule)  # type: ignore[operator]  # a frozenset of roles


@dataclass
class _Cached:
    identity: Identity | None
    until: float


class Authenticator:
    """Identities from tokens and session cookies (one per app)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sessions = URLSafeTimedSerializer(settings.secret(), salt="cim-session")
        self._tokens: dict[str, _Cached] = {}
        self._users: dict[str, _Cached] = {}

    async def identify(self, conn: HTTPConnection, pool: AsyncConnectionPool | None) -> Identity:
        """Who sends ``conn`` (``pool``: where tokens and users are; None: nobody is known). Read on
        every request, tiles included: the headers are looked up, not copied, and the cookies
        parsed only when no token is sent."""
        auth = conn.headers.get("authorization", "")
        if auth:
            scheme, _, secret = auth.partition(" ")
            if scheme.lower() != "bearer" or not secret.strip().startswith(TOKEN_PREFIX):
                raise Unauthenticated("Authorization must be 'Bearer cim_...' (a token from `cim tokens create`)")
            who = await self._token(secret.strip(), pool) if pool is not None else None
            if who is None:
                raise Unauthenticated("the token is unknown or revoked", hint="ask an admin for a new one")
            return who
        cookie = conn.cookies.get(SESSION_COOKIE)
        if cookie and pool is not None:
            who = await self._session(cookie, pool)
            if who is not None:
                return who
        return ANONYMOUS

    async def _cached(
        self, cache: dict[str, _Cached], key: str, load: Callable[[], Awaitable[Identity | None]]
    ) -> Identity | None:
        """``cache[key]`` while fresh, else ``load()`` kept for a few seconds (a revoked token or a
        disabled user stops within them)."""
        now = time.monotonic()
        hit = cache.get(key)
        if hit is not None and hit.until > now:
            return hit.identity
        who = await load()
        if len(cache) > 10_000:
            cache.clear()
        cache[key] = _Cached(who, now + _CACHE_S)
        return who

    async def _token(self, secret: str, pool: AsyncConnectionPool) -> Identity | None:
        async def load() -> Identity | None:
            async with pool.connection() as conn:
                row = await (await conn.execute(TOKEN_USE_SQL, (digest,))).fetchone()
                if row is None:
                    return None
                name, roles, layers = row
                who = Identity(f"token:{name}", roles_of(roles), "token", frozenset(layers) if layers else None)
                await conn.execute(AUDIT_INSERT, audit_params(who, "token.use", who.name))  # once a cache period
                return who

        digest = token_digest(secret)
        return await self._cached(self._tokens, digest, load)

    async def _session(self, cookie: str, pool: AsyncConnectionPool) -> Identity | None:
        try:
            name = self.sessions.loads(cookie, max_age=SESSION_MAX_AGE_S)
        except BadSignature:
            return None
        if isinstance(name, dict):  # signed in through OIDC: the session carries name and roles
            return _carried(name)
        if not isinstance(name, str):
            return None

        async def load() -> Identity | None:
            async with pool.connection() as conn:
                row = await (await conn.execute(USER_SQL, (name,))).fetchone()
            return None if row is None or row[1] else Identity(name, roles_of(row[0]), "session")

        return await self._cached(self._users, name, load)

    def session_cookie(self, name: str, roles: Iterable[str] | None = None) -> str:
        """A user of cim.users (checked again on every use), or, with ``roles``, a person the OIDC provider
        vouched for (no row in cim.users: the roles it gave are kept in the signed cookie)."""
        return self.sessions.dumps(name if roles is None else {"name": name, "roles": sorted(roles)})

    def forget(self) -> None:
        """Drop the caches (a token revoked or a user disabled through the HTTP API)."""
        self._tokens.clear()
        self._users.clear()


def _carried(session: dict) -> Identity | None:
    """The identity a session made by :meth:`Authenticator.session_cookie` with roles carries."""
    name, roles = session.get("name"), session.get("roles")
    if not isinstance(name, str) or not isinstance(roles, list):
        return None
    return Identity(name, roles_of(r for r in roles if isinstance(r, str)), "session")


async def check(conn: HTTPConnection, method: str, template: str) -> Identity:
    """Who asks for ``method template``, if the table lets them (else 401 or 403)."""
    rule = rule_of(method, template)
    auth: Authenticator = conn.app.state.authenticator
    try:
        who = await auth.identify(conn, getattr(conn.app.state, "pool", None))
    except Unauthenticated:  # a malformed, unknown or revoked token: a failed sign-in
        await audit(conn, ANONYMOUS, "token.refused", f"{method} {conn.url.path}"[:500], ok=False)
        raise
    conn.state.identity = who
    if rule is None:
        raise Forbidden(f"{method} {template} has no entry in the access table (cim/server/access.py)")
    settings: Settings = conn.app.state.settings
    if allowed(rule, who, settings.anonymous_read):
        if method == "WS" and not (_same_origin(conn) or conn.headers.get("origin") in _trusted_origins(settings)):
            raise Forbidden("a WebSocket from another site's page (Origin) is not accepted")
        if who.via == "session" and method not in ("GET", "WS", "OPTIONS") and not _same_origin(conn):
            raise Forbidden("a signed-in change must come from this server's own pages (Origin differs)")
        return who
    await audit(conn, who, "denied", f"{method} {conn.url.path}"[:500], ok=False)
    if who.anonymous:
        raise Unauthenticated("sign in (/auth/login) or send a token (Authorization: Bearer ...)")
    raise Forbidden(f"{who.name} ({', '.join(sorted(who.roles)) or 'no role'}) may not {method} {template}")


async def audit(
    conn: HTTPConnection,
    who: Identity | str,
    action: str,
    object_: str = "",
    *,
    ok: bool = True,
    detail: dict | None = None,
) -> None:
    """One audit row for what ``who`` did through ``conn`` (its address recorded)."""
    address = conn.client.host if conn.client else ""
    pool = getattr(conn.app.state, "pool", None)
    if pool is None:  # an app not started (a test of the table alone): nothing to write to
        return
    async with pool.connection() as db:
        await db.execute(AUDIT_INSERT, audit_params(who, action, object_, address=address, ok=ok, detail=detail))


async def authorize(conn: HTTPConnection) -> Identity:
    """The app-wide dependency (HTTP and WebSocket routes alike)."""
    method = "WS" if conn.scope["type"] == "websocket" else conn.scope["method"]
    template = getattr(conn.scope.get("route"), "path", "") or ""
    return await check(conn, "GET" if method == "HEAD" else method, template)


def _trusted_origins(settings: Settings) -> set[str]:
    return {*settings.cors_origins, *settings.frame_ancestors}


def _same_origin(conn: HTTPConnection) -> bool:
    origin = conn.headers.get("origin")
    if origin is None:  # not a browser's cross-site request (browsers send Origin on unsafe methods)
        return True
    scheme = {"ws": "http", "wss": "https"}.get(conn.url.scheme, conn.url.scheme)  # a WebSocket's page is http(s)
    return origin.rstrip("/") == f"{scheme}://{conn.headers.get('host', '')}"


class Guarded:
    """An app mounted under a path (static files, tilesets), served to whoever the access
    table lets in: a mount is no route, so the app-wide dependency does not run for it."""

    def __init__(self, app: ASGIApp, template: str) -> None:
        self.app = app
        self.template = template

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await check(HTTPConnection(scope, receive), "GET", self.template)
        await self.app(scope, receive, send)


def every_route(app: Any) -> list[tuple[str, str]]:
    """(method, path template) of every route of ``app``, HEAD folded into GET ("WS": a WebSocket)."""
    out = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, Mount):
            out.append(("GET", route.path + "/{path:path}"))  # the mounted app is Guarded with this entry
        elif isinstance(route, (WebSocketRoute, APIWebSocketRoute)):
            out.append(("WS", context.path or ""))
        else:
            out += [(m, context.path or "") for m in sorted((context.methods or set()) - {"HEAD"})]
    return out
