"""``/auth``: signing in with a password or through the OIDC provider (a session cookie),
out, and who am I; ``/audit``: the audit, for admins. The OIDC client itself is
:mod:`cim.auth.oidc`."""

from __future__ import annotations

import datetime as dt
import html
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from psycopg_pool import AsyncConnectionPool

from cim.auth.oidc import CALLBACK_PATH, FLOW_COOKIE, FLOW_MAX_AGE_S, FLOW_PATH, NOBODY, OidcClient, signed_in
from cim.auth.passwords import MAX_LENGTH
from cim.auth.roles import TITLES
from cim.auth.store import AUDIT_INSERT, AUDIT_QUERY, USER_CHECK_SQL, audit_params, check_password
from cim.config import Settings
from cim.errors import CimError, InputError, NotFoundError, Unauthenticated
from cim.server.access import SESSION_COOKIE, SESSION_MAX_AGE_S, Authenticator
from cim.server.access import audit as write_audit
from cim.server.deps import get_pool, get_settings_dep
from layers.features import parse_datetime

router = APIRouter(tags=["auth"])


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


_PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>登录 · Sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<style>body{{font:16px "Noto Sans CJK SC",sans-serif;background:#0b1220;color:#e6edf5;display:grid;place-items:center;
height:100vh;margin:0}}form{{background:#152033;padding:2em;border-radius:8px;min-width:18em}}
input{{display:block;width:100%;margin:.3em 0 1em;padding:.4em;box-sizing:border-box}}.err{{color:#ff8a7a}}</style>
</head><body><form method="post" action="/auth/login"><h1>城市信息模型 · 登录</h1>{error}
<label>用户名 User<input name="username" autocomplete="username" required maxlength="63"></label>
<label>密码 Password<input name="password" type="password" autocomplete="current-password" required
maxlength="{max}"></label><input type="hidden" name="next" value="{next}"><button>登录 Sign in</button>{sso}</form>
</body></html>"""
_SSO_LINK = (
    '<p><a href="/auth/oidc/login?next={next}" style="color:#8ab4ff">统一身份认证登录 · Sign in with SSO</a></p>'
)
#: after the provider's redirect, a page of ours moves on: a SameSite=Strict cookie set in answer to a navigation
#: that another site started is not sent on the redirect that follows it, but it is on this page's own navigation
_SIGNED_IN = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>已登录 · Signed in</title>
<meta http-equiv="refresh" content="0;url={next}"><link rel="icon" href="data:,"></head>
<body><p>已登录 · Signed in as {name}. <a href="{next}">继续 · Continue</a></p></body></html>"""


def _safe_next(value: str) -> str:
    """Only a path of this server (no //host or scheme: no open redirect)."""
    return value if value.startswith("/") and not value.startswith("//") and "\\" not in value else "/viewer"


@router.get("/auth/login", response_class=HTMLResponse, summary="The sign-in page")
async def login_page(
    next: str = Query("/viewer", max_length=500),
    error: bool = False,
    settings: Settings = Depends(get_settings_dep),
) -> HTMLResponse:
    message = '<p class="err">用户名或密码不正确 · wrong user or password</p>' if error else ""
    target = _safe_next(next)
    sso = _SSO_LINK.format(next=html.escape(quote(target, safe="/"))) if settings.oidc_enabled else ""
    return HTMLResponse(_PAGE.format(error=message, max=MAX_LENGTH, next=html.escape(target), sso=sso))


def _set_session(response: Response, request: Request, settings: Settings, name: str, roles: list[str] | None) -> None:
    """The session cookie, as every sign-in sets it (signed, HttpOnly, SameSite=Strict)."""
    auth: Authenticator = request.app.state.authenticator
    response.set_cookie(
        SESSION_COOKIE,
        auth.session_cookie(name, roles),
        max_age=SESSION_MAX_AGE_S,
        httponly=True,
        samesite="strict",
        secure=settings.cookie_secure,
        path="/",
    )


@router.post("/auth/login", summary="Sign in with a password: sets the session cookie", response_model=None)
async def login(
    request: Request,
    username: str = Form(..., max_length=63),
    password: str = Form(..., max_length=MAX_LENGTH),
    next: str = Form("/viewer", max_length=500),
    pool: AsyncConnectionPool = Depends(get_pool),
    settings: Settings = Depends(get_settings_dep),
) -> Response:
    async with pool.connection() as conn:
        row = await (await conn.execute(USER_CHECK_SQL, (username,))).fetchone()
    who = await run_in_threadpool(check_password, username, password, row)  # Argon2: off the event loop
    async with pool.connection() as conn:
        action = "signin" if who else "signin.failed"
        await conn.execute(
            AUDIT_INSERT, audit_params(username, action, address=client_address(request), ok=bool(who), via="password")
        )
    wants_page = "text/html" in request.headers.get("accept", "")
    if who is None:
        if wants_page:
            return RedirectResponse(f"/auth/login?error=1&next={_safe_next(next)}", status_code=303)
        raise Unauthenticated("wrong user or password")
    response: Response = (
        RedirectResponse(_safe_next(next), status_code=303)
        if wants_page
        else Response(content=f'{{"user": "{who.name}"}}', media_type="application/json")
    )
    _set_session(response, request, settings, who.name, None)
    return response


def oidc_client(request: Request, settings: Settings = Depends(get_settings_dep)) -> OidcClient:
    """The app's OIDC client (made on first use), or 404 when ``CIM_OIDC_ISSUER`` is not set."""
    if not settings.oidc_enabled:
        raise NotFoundError(
            "sign-in through an OIDC provider (SSO) is not configured on this server",
            hint="an admin sets CIM_OIDC_ISSUER and CIM_OIDC_CLIENT_ID; /auth/login signs in with a password",
        )
    client: OidcClient | None = getattr(request.app.state, "oidc", None)
    if client is None:
        client = request.app.state.oidc = OidcClient(settings)
    return client


def _redirect_uri(request: Request, settings: Settings) -> str:
    return settings.oidc_redirect_uri or str(request.base_url).rstrip("/") + CALLBACK_PATH


@router.get("/auth/oidc/login", summary="Sign in through the OIDC provider (SSO): redirects to it", response_model=None)
async def oidc_login(
    request: Request,
    next: str = Query("/viewer", max_length=500),
    oidc: OidcClient = Depends(oidc_client),
    settings: Settings = Depends(get_settings_dep),
) -> Response:
    try:
        url, flow = await oidc.begin(_redirect_uri(request, settings), _safe_next(next))
    except CimError as exc:
        await write_audit(request, NOBODY, "signin.oidc.failed", ok=False, detail={"reason": exc.message[:500]})
        raise
    response = RedirectResponse(url, status_code=302)
    response.set_cookie(  # Lax: it must come back with the provider's redirect, a navigation from its site
        FLOW_COOKIE,
        flow,
        max_age=FLOW_MAX_AGE_S,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        path=FLOW_PATH,
    )
    return response


@router.get(CALLBACK_PATH, summary="Where the OIDC provider sends the browser back: sets the session cookie")
async def oidc_callback(
    request: Request,
    oidc: OidcClient = Depends(oidc_client),
    settings: Settings = Depends(get_settings_dep),
) -> HTMLResponse:
    actor = NOBODY
    try:
        user, target = await oidc.finish(request.cookies.get(FLOW_COOKIE), request.query_params)
        actor = user.identity
        who = signed_in(user)
    except CimError as exc:
        await write_audit(request, actor, "signin.oidc.failed", ok=False, detail={"reason": exc.message[:500]})
        raise
    await write_audit(request, who, "signin.oidc", user.subject, detail=user.audit_detail(oidc.issuer))
    shown = html.escape(_safe_next(target))
    response = HTMLResponse(_SIGNED_IN.format(next=shown, name=html.escape(who.name)))
    _set_session(response, request, settings, who.name, sorted(who.roles))
    response.delete_cookie(FLOW_COOKIE, path=FLOW_PATH)
    return response


@router.post("/auth/logout", summary="Sign out: the session cookie is cleared")
async def logout() -> Response:
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/auth/me", summary="Who the server takes you for: name, roles, how")
async def me(request: Request) -> dict:
    who = request.state.identity
    return {
        "name": who.name,
        "via": who.via,
        "roles": sorted(who.roles),
        "titles": [TITLES[r] for r in sorted(who.roles)],
        "layers": sorted(who.layers) if who.layers else None,
    }


@router.get("/audit", summary="The audit: who did what, when, from where (admins)")
async def audit(
    since: str | None = Query(None, description="ISO-8601: rows from then on"),
    actor: str | None = Query(None, max_length=200),
    action: str | None = Query(None, max_length=100),
    limit: int = Query(1000, ge=1, le=100_000),
    pool: AsyncConnectionPool = Depends(get_pool),
) -> dict:
    interval = parse_datetime(since)
    start = interval[0] if interval else None
    if since and start is None:
        raise InputError("since", f"{since!r} is not a time")

    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(AUDIT_QUERY, {"since": start, "actor": actor, "action": action, "limit": limit})
        names = [d.name for d in cur.description or []]
        rows = [dict(zip(names, r)) for r in await cur.fetchall()]
    for row in rows:
        row["at"] = row["at"].astimezone(dt.UTC).isoformat()
    return {"count": len(rows), "rows": rows}
