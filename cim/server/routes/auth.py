"""``/auth``: signing in with a password (a session cookie), out, and who am I;
``/audit``: the audit, for admins."""

from __future__ import annotations

import datetime as dt
import html

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from psycopg_pool import AsyncConnectionPool

from cim.auth.passwords import MAX_LENGTH
from cim.auth.roles import TITLES
from cim.auth.store import AUDIT_INSERT, AUDIT_QUERY, USER_CHECK_SQL, audit_params, check_password
from cim.config import Settings
from cim.errors import InputError, Unauthenticated
from cim.server.access import SESSION_COOKIE, SESSION_MAX_AGE_S, Authenticator
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
maxlength="{max}"></label><input type="hidden" name="next" value="{next}"><button>登录 Sign in</button></form>
</body></html>"""


def _safe_next(value: str) -> str:
    """Only a path of this server (no //host or scheme: no open redirect)."""
    return value if value.startswith("/") and not value.startswith("//") and "\\" not in value else "/viewer"


@router.get("/auth/login", response_class=HTMLResponse, summary="The sign-in page")
async def login_page(next: str = Query("/viewer", max_length=500), error: bool = False) -> HTMLResponse:
    message = '<p class="err">用户名或密码不正确 · wrong user or password</p>' if error else ""
    return HTMLResponse(_PAGE.format(error=message, max=MAX_LENGTH, next=html.escape(_safe_next(next))))


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
        await conn.execute(AUDIT_INSERT, audit_params(username, action, address=client_address(request), ok=bool(who)))
    wants_page = "text/html" in request.headers.get("accept", "")
    if who is None:
        if wants_page:
            return RedirectResponse(f"/auth/login?error=1&next={_safe_next(next)}", status_code=303)
        raise Unauthenticated("wrong user or password")
    auth: Authenticator = request.app.state.authenticator
    response: Response = (
        RedirectResponse(_safe_next(next), status_code=303)
        if wants_page
        else Response(content=f'{{"user": "{who.name}"}}', media_type="application/json")
    )
    response.set_cookie(
        SESSION_COOKIE,
        auth.session_cookie(who.name),
        max_age=SESSION_MAX_AGE_S,
        httponly=True,
        samesite="strict",
        secure=settings.cookie_secure,
        path="/",
    )
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
