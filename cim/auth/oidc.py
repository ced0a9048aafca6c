"""Signing in through an OpenID Connect provider (a government SSO), with authlib.

Settings in, a person out: :class:`OidcClient` starts the authorization-code flow
(PKCE S256, ``state`` and ``nonce``) and finishes it: the code is exchanged at the
provider's token endpoint and the ID token checked by authlib (signature against
the provider's JWKS, ``iss``, ``aud``, ``exp``, ``nonce``). What the callback needs
of the request that started the flow travels in a signed cookie that lives ten
minutes (:data:`FLOW_COOKIE`), so the server keeps no state between the two.

Roles come from one claim of the ID token (``CIM_OIDC_ROLES_CLAIM``) through
``CIM_OIDC_ROLE_MAP``; see :func:`map_roles`. The HTTP side is in
:mod:`cim.server.routes.auth`.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import httpx2
from authlib.integrations.base_client import OAuthError  # type: ignore[import-untyped]
from authlib.integrations.starlette_client import OAuth  # type: ignore[import-untyped]
from itsdangerous import BadSignature, URLSafeTimedSerializer
from joserfc.errors import JoseError

from cim.auth.roles import Role
from cim.auth.store import Identity
from cim.config import OIDC_ROLES, Settings
from cim.errors import ConfigError, Forbidden, InputError, Unauthenticated

#: the cookie that carries state, nonce and PKCE verifier from the start of a sign-in to its callback
FLOW_COOKIE = "cim_oidc_flow"
FLOW_PATH = "/auth/oidc"
FLOW_MAX_AGE_S = 600  # ten minutes to sign in at the provider
CALLBACK_PATH = "/auth/oidc/callback"
NAME_PREFIX = "oidc:"  # a person from the provider, never confused with a local user (cim.users)
_TIMEOUT_S = 10.0
_LEEWAY_S = 120  # clock skew tolerated on exp / iat


@dataclass(frozen=True)
class Pending:
    """A sign-in started and not finished: what its callback is checked against."""

    state: str
    nonce: str
    verifier: str
    redirect_uri: str
    next: str


@dataclass(frozen=True)
class OidcUser:
    """A person the provider vouched for, with the roles the claim gives them here."""

    name: str  # NAME_PREFIX + preferred_username (or sub)
    subject: str
    roles: frozenset[Role]
    claimed: tuple[str, ...]  # the roles claim's values, for the audit

    @property
    def identity(self) -> Identity:
        return Identity(self.name, self.roles, "oidc")

    def audit_detail(self, issuer: str) -> dict[str, Any]:
        return {"issuer": issuer, "sub": self.subject, "claimed": list(self.claimed[:50]), "roles": sorted(self.roles)}


#: who an audit row names when the provider has not said who is signing in
NOBODY = Identity("anonymous", frozenset(), "oidc")


class SigninRefused(Unauthenticated):
    """The provider's answer (or the callback) is not acceptable: 401, and an audit row."""


class NoRole(Forbidden):
    """A person the provider vouched for, to whom no role maps (and ``CIM_OIDC_DEFAULT_ROLE=none``)."""

    def __init__(self, user: OidcUser) -> None:
        self.user = user
        super().__init__(
            f"{user.name} has no role here (claim values: {', '.join(user.claimed) or 'none'})",
            hint="an admin maps the provider's groups to roles with CIM_OIDC_ROLE_MAP",
        )


# --- roles ------------------------------------------------------------------------------------


def claim_values(claims: Mapping[str, Any], path: str) -> tuple[str, ...]:
    """The strings of claim ``path`` (``a.b``: claim ``a``'s member ``b``); a single string counts as one."""
    value: Any = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence):
        return tuple(v for v in value if isinstance(v, str))
    return ()


def map_roles(values: Sequence[str], role_map: Sequence[tuple[str, str]], default: str | None) -> frozenset[Role]:
    """The roles ``values`` give: each through ``role_map`` (a value may map to several roles), else a value
    that is a reading role's id counts as itself; nothing: ``default`` (None: no role)."""
    mapped = {role for value in values for claimed, role in role_map if claimed == value}
    mapped |= {value for value in values if value in OIDC_ROLES and not any(c == value for c, _ in role_map)}
    if not mapped and default:
        mapped = {default}
    return frozenset(Role(r) for r in mapped)


def user_of(claims: Mapping[str, Any], settings: Settings) -> OidcUser:
    """The person an ID token's (already checked) claims describe."""
    subject = str(claims["sub"])
    shown = claims.get("preferred_username")
    name = NAME_PREFIX + (shown if isinstance(shown, str) and shown.strip() else subject).strip()[:120]
    claimed = claim_values(claims, settings.oidc_roles_claim)
    roles = map_roles(claimed, settings.oidc_role_map, settings.oidc_default_role)
    return OidcUser(name, subject, roles, claimed)


# --- the flow ---------------------------------------------------------------------------------


@contextmanager
def _provider_answers(step: str) -> Iterator[None]:
    """authlib's, httpx2's and joserfc's failures during ``step`` as one typed error (401)."""
    try:
        yield
    except OAuthError as exc:  # the provider refused (invalid_grant, ...)
        said = f"{exc.error} {exc.description or ''}".strip()
        raise SigninRefused(f"the sign-in service refused the {step}: {said}") from None
    except JoseError as exc:  # a bad signature, an expired token, a wrong nonce or audience...
        raise SigninRefused(f"the ID token is not valid: {exc.error} {exc.description or ''}".strip()) from None
    except httpx2.HTTPError as exc:
        raise SigninRefused(f"the sign-in service could not be reached ({step}): {exc}") from None
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:  # not JSON, no jwks_uri...
        raise SigninRefused(f"the sign-in service's {step} is not usable: {exc}") from None


class OidcClient:
    """The client of ``settings``' provider (one per app; the provider's metadata and keys are kept)."""

    def __init__(self, settings: Settings) -> None:
        if not settings.oidc_issuer or not settings.oidc_client_id:
            raise ConfigError("OIDC sign-in needs CIM_OIDC_ISSUER and CIM_OIDC_CLIENT_ID")
        self.settings = settings
        self.issuer = settings.oidc_issuer
        secret = settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else None
        self._app = OAuth().register(
            "sso",
            client_id=settings.oidc_client_id,
            client_secret=secret,
            server_metadata_url=self.issuer.rstrip("/") + "/.well-known/openid-configuration",
            client_kwargs={"scope": settings.oidc_scope, "code_challenge_method": "S256", "timeout": _TIMEOUT_S},
        )
        self._flows = URLSafeTimedSerializer(settings.secret(), salt="cim-oidc-flow")

    async def _metadata(self) -> dict[str, Any]:
        """The provider's discovery document; its issuer must be the configured one (OIDC Discovery 4.3)."""
        with _provider_answers("discovery document"):
            metadata: dict[str, Any] = await self._app.load_server_metadata()
        if str(metadata.get("issuer", "")).rstrip("/") != self.issuer.rstrip("/"):
            self._app.server_metadata.pop("_loaded_at", None)  # read again next time
            raise ConfigError(
                f"the provider at {self.issuer} names itself {metadata.get('issuer')!r}",
                hint="CIM_OIDC_ISSUER must be the provider's issuer exactly",
            )
        return metadata

    async def begin(self, redirect_uri: str, next_: str) -> tuple[str, str]:
        """The provider's authorization URL to send the browser to, and the value of :data:`FLOW_COOKIE`."""
        await self._metadata()
        with _provider_answers("authorization request"):
            started: dict[str, str] = await self._app.create_authorization_url(redirect_uri)
        pending = Pending(started["state"], started["nonce"], started["code_verifier"], redirect_uri, next_)
        return started["url"], self._flows.dumps(asdict(pending))

    def pending(self, cookie: str | None) -> Pending:
        """The sign-in that :data:`FLOW_COOKIE` says was started here less than ten minutes ago."""
        if not cookie:
            raise SigninRefused("no sign-in was started from this browser", hint="start again at /auth/login")
        try:
            return Pending(**self._flows.loads(cookie, max_age=FLOW_MAX_AGE_S))
        except (BadSignature, TypeError):
            raise SigninRefused("the sign-in took too long or was not started here", hint="start again") from None

    async def finish(self, cookie: str | None, params: Mapping[str, str]) -> tuple[OidcUser, str]:
        """The person the provider's callback (``params``: its query) vouches for, and where they were going."""
        if "error" in params:
            said = f"{params['error']} {params.get('error_description', '')}".strip()[:300]
            raise SigninRefused(f"the sign-in service said: {said}")
        code, state = params.get("code"), params.get("state")
        if not code or not state:
            raise InputError("callback", "code and state are both needed")
        pending = self.pending(cookie)
        if not hmac.compare_digest(state.encode(), pending.state.encode()):  # bytes: any text compares
            raise SigninRefused("state does not match the sign-in started from this browser")
        metadata = await self._metadata()
        with _provider_answers("code"):
            token = await self._app.fetch_access_token(
                redirect_uri=pending.redirect_uri, code=code, code_verifier=pending.verifier
            )
        with _provider_answers("ID token"):
            claims = await self._app.parse_id_token(
                token,
                nonce=pending.nonce,
                claims_options={
                    "iss": {"essential": True, "value": metadata["issuer"]},
                    "aud": {"essential": True, "value": self.settings.oidc_client_id},
                },
                leeway=_LEEWAY_S,
            )
        if claims is None:
            raise SigninRefused("the sign-in service sent no ID token (is `openid` among the scopes?)")
        return user_of(claims, self.settings), pending.next


def signed_in(user: OidcUser) -> Identity:
    """``user``'s identity when they have a role here, else :class:`NoRole`."""
    if not user.roles:
        raise NoRole(user)
    return user.identity
