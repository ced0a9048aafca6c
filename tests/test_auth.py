"""Who may do what: every route x every role against the table in
cim/server/access.py, tokens, sessions, the audit, and the headers."""

from __future__ import annotations

import re

import psycopg
import pytest
from fastapi.testclient import TestClient

from cim.auth.roles import Role
from cim.auth.store import ANONYMOUS, Identity
from cim.server.access import PUBLIC, READ, ROUTES, allowed, every_route
from tests.conftest import client_of, run_cim

#: a value for every path parameter the app's routes have
_PARAMS = {
    "name": "buildings",
    "fid": "1",
    "z": "0",
    "x": "0",
    "y": "0",
    "tms": "WebMercatorQuad",
    "tile_matrix": "0",
    "tile_row": "0",
    "tile_col": "0",
    "sensor_id": "nope",
    "ticket_id": "nope",
    "parcel_id": "nope",
    "finding_id": "999999999",
    "component_id": "nope",
    "fmt": "png",
    "path:path": "buildings/tileset.json",
    "path": "buildings/tileset.json",
}
ROLES = [None, *(r.value for r in Role)]  # None: nobody signed in


def _concrete(template: str) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: _PARAMS[m.group(1)], template)


def test_every_route_is_in_the_access_table_and_every_entry_is_a_route(in_process):
    routes = set(every_route(in_process.app))
    missing = routes - set(ROUTES)
    assert not missing, f"routes without an entry in cim/server/access.py ROUTES: {sorted(missing)}"
    stale = set(ROUTES) - routes
    assert not stale, f"entries for routes that do not exist: {sorted(stale)}"


@pytest.mark.parametrize("role", ROLES)
def test_every_route_answers_each_role_as_the_table_says(in_process, tokens, role):
    client = client_of(in_process, tokens[role] if role else None)
    who = ANONYMOUS if role is None else Identity(role, frozenset({Role(role)}), "token")
    checked = 0
    for method, template in every_route(in_process.app):
        if method == "WS":
            continue  # below
        url = _concrete(template)
        r = client.request(method, url, json=[] if method == "POST" else None, follow_redirects=False)
        may = allowed(ROUTES[(method, template)], who, anonymous_read=True)
        if may:
            assert r.status_code not in (401, 403), (role, method, url, r.status_code, r.text[:200])
        else:
            assert r.status_code == (401 if role is None else 403), (role, method, url, r.status_code)
            assert isinstance(r.json()["detail"], str)
        checked += 1
    assert checked > 40


def test_without_anonymous_reads_nobody_signed_in_reads_nothing(settings, in_process):
    from cim.server.app import create_app

    closed = create_app(settings.model_copy(update={"anonymous_read": False}))
    client = TestClient(closed, base_url=in_process.base)  # no lifespan: nothing here reaches the database
    for method, template in every_route(closed):
        if method != "GET" or ROUTES[(method, template)] == PUBLIC:
            continue
        r = client.get(_concrete(template), follow_redirects=False)
        assert r.status_code == 401, (template, r.status_code)
        assert r.headers.get("www-authenticate", "").startswith("Bearer")


def test_the_websocket_stream_needs_a_reader(in_process, tokens):
    from starlette.testclient import WebSocketDenialResponse
    from starlette.websockets import WebSocketDisconnect

    url = in_process.base.replace("http://", "ws://") + "/live/stream"
    with client_of(in_process, tokens["viewer"]).websocket_connect(url) as ws:
        assert ws.receive_json()["type"] == "hello"
    denied = client_of(in_process, tokens["device"])
    with pytest.raises((WebSocketDisconnect, WebSocketDenialResponse)), denied.websocket_connect(url) as ws:
        ws.receive_json()


def test_a_forged_reading_or_ticket_without_a_token_is_refused_and_nothing_is_stored(in_process, conn):
    anonymous = client_of(in_process)
    sensor = conn.execute("SELECT id FROM live.sensor_registry ORDER BY id LIMIT 1").fetchone()[0]
    before = conn.execute("SELECT count(*) FROM live.readings WHERE sensor_id = %s", (sensor,)).fetchone()[0]
    r = anonymous.post(
        "/live/sensors/readings",
        json=[{"sensor_id": sensor, "ts": "2026-11-29T08:00:00+08:00", "value": 1.0, "status": "normal"}],
    )
    assert r.status_code == 401
    ticket = {
        "id": "T-FORGED",
        "channel": "app",
        "category": "x",
        "lon": 0,
        "lat": 0,
        "created_at": "2026-11-29T08:00:00+08:00",
        "resolved_at": "2026-11-29T08:01:00+08:00",
    }
    assert anonymous.post("/live/tickets", json=ticket).status_code == 401
    bad = client_of(in_process, "cim_not-a-real-token")
    assert bad.post("/live/tickets", json=ticket).status_code == 401
    assert conn.execute("SELECT count(*) FROM live.readings WHERE sensor_id = %s", (sensor,)).fetchone()[0] == before
    assert conn.execute("SELECT count(*) FROM live.ticket_records WHERE id = 'T-FORGED'").fetchone()[0] == 0
    refused = "SELECT count(*) FROM cim.audit WHERE action = %s AND object LIKE 'POST /live/%%'"
    assert conn.execute(refused, ("denied",)).fetchone()[0] >= 2  # no token
    assert conn.execute(refused, ("token.refused",)).fetchone()[0] >= 1  # a token nobody issued


def test_a_viewer_gets_no_ticket_details(in_process, tokens, conn):
    ticket_id = conn.execute("SELECT id FROM live.ticket_records ORDER BY id LIMIT 1").fetchone()[0]
    assert client_of(in_process, tokens["viewer"]).get(f"/live/tickets/{ticket_id}").status_code == 403
    detail = client_of(in_process, tokens["operator"]).get(f"/live/tickets/{ticket_id}")
    assert detail.status_code == 200 and "address" in detail.json()


def test_sign_in_sets_a_strict_cookie_and_wrong_passwords_are_audited(in_process, settings, conn):
    out = run_cim(
        settings,
        "users",
        "add",
        "zhang.san",
        "--role",
        "land_supervisor",
        "--display-name",
        "张三",
        input="correct-horse-9\ncorrect-horse-9\n",
    )
    assert out.returncode == 0, out.stderr
    client = client_of(in_process)
    wrong = client.post("/auth/login", data={"username": "zhang.san", "password": "wrong-password-1"})
    assert wrong.status_code == 401 and "cim_session" not in wrong.cookies
    ok = client.post("/auth/login", data={"username": "zhang.san", "password": "correct-horse-9"})
    assert ok.status_code == 200
    cookie = ok.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    me = client.get("/auth/me").json()
    assert me["name"] == "zhang.san" and me["roles"] == ["land_supervisor"] and me["via"] == "session"
    # a change with the session cookie from another site's page is refused (CSRF)
    forged = client.post("/live/tickets", json={}, headers={"Origin": "http://evil.example"})
    assert forged.status_code == 403
    rows = conn.execute("SELECT action, ok FROM cim.audit WHERE actor = 'zhang.san' ORDER BY id").fetchall()
    assert ("signin.failed", False) in rows and ("signin", True) in rows
    run_cim(settings, "users", "disable", "zhang.san", check=True)
    in_process.app.state.authenticator.forget()
    assert client.get("/auth/me").json()["via"] == "anonymous"


def test_tokens_are_printed_once_stored_hashed_and_revoked(in_process, settings, conn):
    out = run_cim(settings, "tokens", "create", "--name", "dashboard", "--role", "viewer", check=True)
    secret = out.stdout.strip().splitlines()[-1]
    assert secret.startswith("cim_") and len(secret) > 40
    assert conn.execute("SELECT count(*) FROM cim.tokens WHERE token_sha256 = %s", (secret,)).fetchone()[0] == 0
    client = client_of(in_process, secret)
    assert client.get("/auth/me").json()["name"] == "token:dashboard"
    token_id = conn.execute("SELECT id FROM cim.tokens WHERE name = 'dashboard'").fetchone()[0]
    listing = run_cim(settings, "tokens", "list", check=True).stdout
    assert "dashboard" in listing and secret not in listing
    run_cim(settings, "tokens", "revoke", str(token_id), check=True)
    in_process.app.state.authenticator.forget()
    assert client.get("/auth/me").status_code == 401


def test_the_audit_is_for_admins_and_append_only(http, in_process, tokens, db_url):
    rows = http.get("/audit", params={"limit": 50}).json()["rows"]
    assert rows and {"at", "actor", "via", "action", "object", "address", "ok"} <= set(rows[0])
    assert client_of(in_process, tokens["operator"]).get("/audit").status_code == 403
    with psycopg.connect(db_url, autocommit=True) as conn:  # the application's own role
        for statement in ("UPDATE cim.audit SET actor = 'x'", "DELETE FROM cim.audit", "TRUNCATE cim.audit"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_pages_carry_the_embedding_and_sniffing_headers(http):
    r = http.get("/viewer")
    assert "frame-ancestors 'self' http://localhost:" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["referrer-policy"] == "same-origin"


def test_an_unknown_host_is_refused(http):
    assert http.get("/healthz", headers={"Host": "evil.example"}).status_code == 400
    assert http.get("/healthz").status_code == 200


def test_the_table_reads_as_the_roles_say():
    viewer = Identity("v", frozenset({Role.viewer}), "token")
    device = Identity("d", frozenset({Role.device}), "token")
    assert allowed(READ, viewer, False) and not allowed(READ, device, False) and not allowed(READ, ANONYMOUS, False)
    assert allowed(READ, ANONYMOUS, True) and allowed(PUBLIC, ANONYMOUS, False)
    assert allowed(ROUTES[("POST", "/live/sensors/readings")], device, False)
    assert not allowed(ROUTES[("POST", "/live/tickets")], device, False)


@pytest.mark.browser
def test_only_a_configured_dashboard_can_frame_and_drive_the_viewer(server):
    from tests.browser import browse
    from tests.conftest import EMBED_PORT, REPO
    from tests.static_server import serve

    page = {"/embed.html": REPO / "tests" / "pages" / "embed.html"}
    with serve(page, host="localhost", port=EMBED_PORT) as base:  # in CIM_FRAME_ANCESTORS
        allowed_page = browse(f"{base}/embed.html?viewer={server}/viewer", timeout_ms=60_000)
    assert allowed_page["result"]["ready"] and allowed_page["result"]["viewChanged"], allowed_page
    with serve(page) as base:  # 127.0.0.1 at another port: not configured
        refused = browse(f"{base}/embed.html?viewer={server}/viewer", timeout_ms=60_000)
    assert not refused["result"]["ready"] and not refused["result"]["viewChanged"], refused


def test_a_token_scoped_to_layers_reads_only_those(in_process, settings):
    out = run_cim(
        settings, "tokens", "create", "--name", "streets-only", "--role", "viewer", "--layers", "streets", check=True
    )
    client = client_of(in_process, out.stdout.strip().splitlines()[-1])
    assert client.get("/collections/streets/items?limit=1").status_code == 200
    assert client.get("/collections/buildings/items?limit=1").status_code == 403
    assert client.get("/layers/buildings/tiles/15/0/0.mvt").status_code == 403


def test_a_websocket_from_another_sites_page_is_refused(in_process, tokens):
    from starlette.testclient import WebSocketDenialResponse
    from starlette.websockets import WebSocketDisconnect

    url = in_process.base.replace("http://", "ws://") + "/live/stream"
    client = client_of(in_process, tokens["viewer"])
    foreign = {"Origin": "http://evil.example"}
    with pytest.raises((WebSocketDisconnect, WebSocketDenialResponse)), client.websocket_connect(url, headers=foreign):
        pass
    with client.websocket_connect(url, headers={"Origin": in_process.base}) as ws:
        assert ws.receive_json()["type"] == "hello"


def test_ticket_changes_are_in_the_audit(http, conn):
    ticket = {
        "id": "T-AUDIT-1",
        "channel": "12345",
        "category": "市容",
        "lon": 114.05,
        "lat": 22.54,
        "created_at": "2026-11-29T08:00:00+08:00",
    }
    assert http.post("/live/tickets", json=ticket).status_code == 200
    row = conn.execute(
        "SELECT actor, action, ok FROM cim.audit WHERE object = 'T-AUDIT-1' ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert row == ("token:test-admin", "ticket.create", True)


def test_a_refused_change_is_in_the_audit(http, conn):
    bad = {
        "id": "T-AUDIT-9999",
        "channel": "12345",
        "category": "x",
        "lon": 114.05,
        "lat": 22.54,
        "created_at": "9999-12-31T00:00:00+08:00",
    }
    assert http.post("/live/tickets", json=bad).status_code == 400
    row = conn.execute(
        "SELECT actor, action, object, ok, detail->>'status' FROM cim.audit WHERE action = 'refused' "
        "ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert row == ("token:test-admin", "refused", "POST /live/tickets", False, "400")
