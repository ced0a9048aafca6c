"""Signing in through an OIDC provider (a government SSO): the whole authorization-code
flow against a small real provider served in this process (discovery, JWKS, /authorize,
/token with PKCE), through the app's own HTTP server; forged, replayed and expired
answers refused and audited; the settings; OIDC off."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import RSAKey
from pydantic import SecretStr

from cim.auth.oidc import FLOW_COOKIE, claim_values, map_roles
from cim.auth.roles import READERS, Role
from cim.config import OIDC_ROLES, Settings
from cim.errors import ConfigError
from cim.net import free_port
from tests.conftest import REPO, InProcessServer

CLIENT_ID = "cim-twin"
CLIENT_SECRET = "provider-issued-secret-0123456789"


class Provider:
    """A small OpenID Connect provider: it signs in whoever :attr:`user` is, at once. :attr:`tamper`
    makes its next answers wrong in one way (``key``: signed with another key of the same kid,
    ``nonce``, ``state``, ``aud``, ``exp``: seconds from now). ``host``: where it is (``localhost``:
    another site than the app's 127.0.0.1, for a browser); ``interactive``: /authorize shows a page
    whose link the person follows, as after typing a password there."""

    def __init__(self, host: str = "127.0.0.1", interactive: bool = False) -> None:
        self.port = free_port()
        self.issuer = f"http://{host}:{self.port}"
        self.interactive = interactive
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS256"})
        self.forger = RSAKey.generate_key(2048, parameters={"kid": "k1"})  # the same kid, not the provider's key
        self.user: dict[str, Any] = {}
        self.tamper: dict[str, Any] = {}
        self.codes: dict[str, dict[str, str]] = {}
        self.token_requests = 0
        self.app = FastAPI()
        self.app.get("/.well-known/openid-configuration")(self.discovery)
        self.app.get("/jwks")(self.jwks)
        self.app.get("/authorize")(self.authorize)
        self.app.post("/token")(self.token)

    async def discovery(self) -> dict:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        }

    async def jwks(self) -> dict:
        return {"keys": [self.key.as_dict(private=False)]}

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        assert q["response_type"] == "code" and q["client_id"] == CLIENT_ID, dict(q)
        assert q["code_challenge_method"] == "S256" and q["code_challenge"] and q["nonce"], dict(q)
        assert "openid" in q["scope"].split(), dict(q)
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"challenge": q["code_challenge"], "nonce": q["nonce"], "redirect_uri": q["redirect_uri"]}
        state = self.tamper.get("state", q["state"])
        back = f"{q['redirect_uri']}?{urlencode({'code': code, 'state': state})}"
        if self.interactive:
            return HTMLResponse(f'<a id="signin" href="{html.escape(back)}">登录</a>')
        return RedirectResponse(back, status_code=302)

    async def token(self, request: Request) -> JSONResponse:
        self.token_requests += 1
        form = await request.form()
        given = self.codes.pop(str(form.get("code")), None)  # a code works once
        expected_auth = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if given is None or form.get("grant_type") != "authorization_code":
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if request.headers.get("authorization") != expected_auth:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        verifier = str(form.get("code_verifier", ""))
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if challenge != given["challenge"] or form.get("redirect_uri") != given["redirect_uri"]:
            return JSONResponse({"error": "invalid_grant", "error_description": "PKCE or redirect_uri"}, 400)
        return JSONResponse({"access_token": secrets.token_urlsafe(24), "token_type": "Bearer", "expires_in": 300,
                             "id_token": self.id_token(given["nonce"])})  # fmt: skip

    def id_token(self, nonce: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.tamper.get("aud", CLIENT_ID),
            "iat": now,
            "exp": now + self.tamper.get("exp", 300),
            "nonce": self.tamper.get("nonce", nonce),
            **self.user,
        }
        key = self.forger if self.tamper.get("key") == "forged" else self.key
        return jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)


@contextmanager
def serving(app: FastAPI, port: int) -> Iterator[None]:
    """``app`` on 127.0.0.1:``port`` by uvicorn, from a thread of this process."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="oidc-provider", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the test provider did not start"
        time.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    p = Provider()
    with serving(p.app, p.port):
        yield p


@pytest.fixture(scope="module")
def sso(settings: Settings, db_url: str, provider: Provider, tmp_path_factory: pytest.TempPathFactory):
    """The app with OIDC on, served over HTTP (its own data directory: its own live hub and broker)."""
    oidc_settings = settings.model_copy(
        update={
            "data_dir": tmp_path_factory.mktemp("cim-oidc"),
            "database_url": db_url,
            "oidc_issuer": provider.issuer,
            "oidc_client_id": CLIENT_ID,
            "oidc_client_secret": SecretStr(CLIENT_SECRET),
            "oidc_role_map": (("gis-admins", "admin"), ("land", "land_supervisor"), ("duty", "operator")),
            "oidc_default_role": None,  # nobody without a mapped role gets in
        }
    )
    with InProcessServer(oidc_settings) as srv:
        yield srv


@pytest.fixture
def provider_reset(provider: Provider) -> Iterator[Provider]:
    provider.tamper = {}
    yield provider
    provider.tamper = {}


def sign_in(sso: InProcessServer, provider: Provider, user: dict[str, Any], **tamper: Any):
    """The browser's part: /auth/oidc/login, the provider, back to the callback (redirects followed)."""
    provider.user, provider.tamper = user, tamper
    client = httpx.Client(base_url=sso.base, follow_redirects=True, timeout=30)
    return client, client.get("/auth/oidc/login", params={"next": "/viewer?layer=buildings"})


def audit_rows(conn, after: int, action: str) -> list[tuple]:
    return conn.execute(
        "SELECT actor, via, ok, detail FROM cim.audit WHERE id > %s AND action = %s ORDER BY id", (after, action)
    ).fetchall()


def last_audit_id(conn) -> int:
    return conn.execute("SELECT coalesce(max(id), 0) FROM cim.audit").fetchone()[0]


def test_a_person_signs_in_through_the_provider_with_mapped_roles(sso, provider_reset, conn):
    before = last_audit_id(conn)
    user = {"sub": "u-1001", "preferred_username": "li.si", "roles": ["land", "staff"]}
    client, done = sign_in(sso, provider_reset, user)
    assert done.status_code == 200, done.text
    assert str(done.url).startswith(f"{sso.base}/auth/oidc/callback?")
    login, authorize = done.history  # ours, then the provider's redirect
    assert str(authorize.url).startswith(f"{provider_reset.issuer}/authorize?")
    flow = login.headers["set-cookie"].lower()
    assert flow.startswith(FLOW_COOKIE) and "httponly" in flow and "samesite=lax" in flow and "path=/auth/oidc" in flow
    session = next(c for c in done.headers.get_list("set-cookie") if c.startswith("cim_session=")).lower()
    assert "httponly" in session and "samesite=strict" in session
    assert 'content="0;url=/viewer?layer=buildings"' in done.text  # onwards, from a page of this site
    me = client.get("/auth/me").json()
    assert me == {"name": "oidc:li.si", "via": "session", "roles": ["land_supervisor"], "titles": ["土地监管"],
                  "layers": None}  # fmt: skip
    assert client.get("/audit").status_code == 403  # a land supervisor is no admin
    rows = audit_rows(conn, before, "signin.oidc")
    assert len(rows) == 1 and rows[0][:3] == ("oidc:li.si", "oidc", True)
    assert rows[0][3]["sub"] == "u-1001" and rows[0][3]["roles"] == ["land_supervisor"]
    assert rows[0][3]["claimed"] == ["land", "staff"]


def test_an_admin_claimed_person_reads_the_audit(sso, provider_reset):
    client, done = sign_in(sso, provider_reset, {"sub": "u-1", "roles": ["gis-admins", "viewer"]})
    assert done.status_code == 200, done.text
    me = client.get("/auth/me").json()
    assert me["name"] == "oidc:u-1" and me["roles"] == ["admin", "viewer"]  # no preferred_username: the sub
    audit = client.get("/audit", params={"action": "signin.oidc", "limit": 5})
    assert audit.status_code == 200 and audit.json()["rows"][0]["actor"] == "oidc:u-1"
    client.post("/auth/logout")
    assert client.get("/auth/me").json()["via"] == "anonymous"


@pytest.mark.parametrize(
    "tamper, status, reason",
    [
        ({"key": "forged"}, 401, "not valid"),  # signed with a key that is not in the provider's JWKS
        ({"nonce": "replayed-nonce"}, 401, "nonce"),
        ({"state": "another-state"}, 401, "state does not match"),
        ({"state": "另一个"}, 401, "state does not match"),  # not ASCII: still a 401, not a 500
        ({"exp": -600}, 401, "expired"),
        ({"aud": "another-client"}, 401, "aud"),
    ],
)
def test_a_forged_replayed_or_expired_answer_is_refused_and_audited(sso, provider_reset, conn, tamper, status, reason):
    before = last_audit_id(conn)
    client, done = sign_in(sso, provider_reset, {"sub": "u-2", "roles": ["gis-admins"]}, **tamper)
    assert done.status_code == status, done.text
    assert reason in done.json()["detail"]
    assert "cim_session" not in client.cookies
    assert client.get("/auth/me").json()["via"] == "anonymous"
    rows = audit_rows(conn, before, "signin.oidc.failed")
    assert len(rows) == 1 and rows[0][2] is False and reason in rows[0][3]["reason"]
    assert audit_rows(conn, before, "signin.oidc") == []


def test_a_callback_not_started_here_is_refused_before_the_provider_is_asked(sso, provider_reset, conn):
    before, asked = last_audit_id(conn), provider_reset.token_requests
    stranger = httpx.Client(base_url=sso.base, timeout=30)  # no flow cookie: someone else's code and state
    r = stranger.get("/auth/oidc/callback", params={"code": "stolen", "state": "x"})
    assert r.status_code == 401 and "no sign-in was started" in r.json()["detail"]
    stranger.cookies.set(FLOW_COOKIE, "x.y.z", path="/auth/oidc")  # not signed by this server
    tampered = stranger.get("/auth/oidc/callback", params={"code": "c", "state": "x"})
    assert tampered.status_code == 401 and "not started here" in tampered.json()["detail"]
    stranger.cookies.clear()
    assert stranger.get("/auth/oidc/callback", params={"state": "x"}).status_code == 400
    denied = stranger.get("/auth/oidc/callback", params={"error": "access_denied", "error_description": "user said no"})
    assert denied.status_code == 401 and "access_denied" in denied.json()["detail"]
    assert provider_reset.token_requests == asked
    assert len(audit_rows(conn, before, "signin.oidc.failed")) == 4


def test_a_person_to_whom_no_role_maps_is_refused(sso, provider_reset, conn):
    before = last_audit_id(conn)
    client, done = sign_in(sso, provider_reset, {"sub": "u-3", "preferred_username": "wang.wu", "roles": ["x"]})
    assert done.status_code == 403 and "no role" in done.json()["detail"]
    assert client.get("/auth/me").json()["via"] == "anonymous"
    rows = audit_rows(conn, before, "signin.oidc.failed")
    assert [r[:3] for r in rows] == [("oidc:wang.wu", "oidc", False)]


def test_the_sign_in_page_offers_the_sso_only_when_it_is_configured(sso, settings):
    with httpx.Client(base_url=sso.base, timeout=30) as client:
        page = client.get("/auth/login", params={"next": "/viewer?a=1&b=2"}).text
    assert "统一身份认证登录 · Sign in with SSO" in page
    assert 'href="/auth/oidc/login?next=/viewer%3Fa%3D1%26b%3D2"' in page
    from cim.server.app import create_app

    off = TestClient(create_app(settings), base_url="http://127.0.0.1")  # no lifespan: no database needed here
    assert "Sign in with SSO" not in off.get("/auth/login").text


def test_a_provider_that_does_not_answer_is_a_401_not_a_500(settings):
    from cim.server.app import create_app

    gone = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    app = create_app(settings.model_copy(update={"oidc_issuer": gone, "oidc_client_id": CLIENT_ID}))
    r = TestClient(app, base_url="http://127.0.0.1").get("/auth/oidc/login", follow_redirects=False)
    assert r.status_code == 401 and "could not be reached" in r.json()["detail"], r.text


def test_with_oidc_off_its_routes_answer_404(settings):
    from cim.server.app import create_app

    assert not settings.oidc_enabled
    off = TestClient(create_app(settings), base_url="http://127.0.0.1")
    for path in ("/auth/oidc/login", "/auth/oidc/callback?code=c&state=s"):
        r = off.get(path, follow_redirects=False)
        assert r.status_code == 404 and "not configured" in r.json()["detail"], (path, r.text)


#: a person in Chromium: the sign-in page's SSO link, the provider's page, back; then where ``next`` said
_BROWSER = """import { chromium } from "%s";
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
                                        args: ["--no-sandbox", "--disable-gpu"] });
try {
  const page = await browser.newPage();
  await page.goto(process.argv[2]);
  await page.getByText("Sign in with SSO").click();
  await page.locator("#signin").click();  // on the provider's page (another site)
  await page.waitForURL(/\\/auth\\/me$/, { timeout: 30000 });
  console.log(JSON.stringify({ me: JSON.parse(await page.locator("body").textContent()) }));
} finally {
  await browser.close();
}
"""


@pytest.mark.browser
def test_a_person_signs_in_with_the_sso_in_a_browser(settings, db_url, tmp_path):
    """In Chromium, with the provider on another site: its page's link back to the callback is a cross-site
    navigation, after which the SameSite=Strict session cookie is sent only on this server's own navigation
    (the signed-in page's refresh), not on a redirect; so the person lands signed in."""
    provider = Provider(host="localhost", interactive=True)
    provider.user = {"sub": "u-7", "preferred_username": "chen.liu", "roles": ["duty"]}
    script = tmp_path / "sso.mjs"
    script.write_text(_BROWSER % (REPO / "node_modules" / "playwright-core" / "index.mjs").as_uri())
    update = {"data_dir": tmp_path / "data", "database_url": db_url, "oidc_issuer": provider.issuer,
              "oidc_client_id": CLIENT_ID, "oidc_client_secret": SecretStr(CLIENT_SECRET),
              "oidc_role_map": (("duty", "operator"),)}  # fmt: skip
    with serving(provider.app, provider.port), InProcessServer(settings.model_copy(update=update)) as app:
        out = subprocess.run(
            ["node", str(script), f"{app.base}/auth/login?next=/auth/me"], capture_output=True, text=True, timeout=120
        )
    assert out.returncode == 0, out.stderr
    me = json.loads(out.stdout.strip().splitlines()[-1])["me"]
    assert me["name"] == "oidc:chen.liu" and me["via"] == "session" and me["roles"] == ["operator"], me


# --- roles and settings ---------------------------------------------------------------------------


def test_claim_values_map_to_roles():
    role_map = (("gis-admins", "admin"), ("land", "land_supervisor"), ("land", "viewer"), ("admin", "viewer"))
    assert map_roles(["gis-admins", "x"], role_map, "viewer") == {Role.admin}
    assert map_roles(["land"], role_map, None) == {Role.land_supervisor, Role.viewer}  # a value, several roles
    assert map_roles(["operator", "device"], role_map, None) == {Role.operator}  # a role id counts as itself...
    assert map_roles(["admin"], role_map, None) == {Role.viewer}  # ...unless the map says otherwise
    assert map_roles(["x"], role_map, "viewer") == {Role.viewer} and map_roles([], role_map, None) == frozenset()
    claims = {"realm_access": {"roles": ["a", 3, "b"]}, "group": "g"}
    assert claim_values(claims, "realm_access.roles") == ("a", "b") and claim_values(claims, "group") == ("g",)
    assert claim_values(claims, "missing.roles") == ()
    assert set(OIDC_ROLES) == {r.value for r in READERS}  # a device is never a person signing in


def test_oidc_settings_are_read_and_checked():
    s = Settings.from_env(
        {
            "CIM_OIDC_ISSUER": "https://sso.example.gov.cn/realms/cim",
            "CIM_OIDC_CLIENT_ID": "cim",
            "CIM_OIDC_CLIENT_SECRET": "s3cret-value",
            "CIM_OIDC_ROLE_MAP": "gis-admins=admin, land=land_supervisor",
            "CIM_OIDC_DEFAULT_ROLE": "none",
            "CIM_OIDC_SCOPE": "profile email",
        }
    )
    assert s.oidc_enabled and s.oidc_role_map == (("gis-admins", "admin"), ("land", "land_supervisor"))
    assert s.oidc_default_role is None and s.oidc_scope == "openid profile email"
    assert "s3cret" not in repr(s)
    defaults = Settings.from_env({})
    assert not defaults.oidc_enabled and defaults.oidc_default_role == "viewer" and defaults.oidc_roles_claim == "roles"


@pytest.mark.parametrize(
    "env, problem",
    [
        ({"CIM_OIDC_ROLE_MAP": "gis-admins=root"}, "CIM_OIDC_ROLE_MAP='gis-admins=root': 'root' is not a role"),
        ({"CIM_OIDC_ROLE_MAP": "gis-admins"}, "CIM_OIDC_ROLE_MAP='gis-admins': 'gis-admins' is not value=role"),
        ({"CIM_OIDC_DEFAULT_ROLE": "device"}, "CIM_OIDC_DEFAULT_ROLE='device': 'device' is not a role"),
        ({"CIM_OIDC_ISSUER": "https://sso.example"}, "CIM_OIDC_CLIENT_ID=None: needed when CIM_OIDC_ISSUER is set"),
        ({"CIM_OIDC_ISSUER": "http://sso.example", "CIM_OIDC_CLIENT_ID": "c"}, "CIM_OIDC_ISSUER='http://sso.example'"),
        ({"CIM_OIDC_REDIRECT_URI": "https://cim.example/cb"}, "must end with /auth/oidc/callback"),
    ],
)
def test_a_bad_oidc_setting_is_named(env, problem):
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert problem in str(info.value) and "\n" not in str(info.value)
