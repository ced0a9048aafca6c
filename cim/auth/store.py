"""Users, API tokens and the audit, in PostGIS (schema ``cim``).

- ``cim.users``: name, display name, roles, Argon2id password hash, disabled.
- ``cim.tokens``: API tokens for services, devices and dashboards. Only a
  SHA-256 of each token is kept (tokens are 256 random bits: a slow hash adds
  nothing but a cost on every request); roles, optionally layers, revocation.
- ``cim.audit``: who did what, when, from where, to which object. Append-only
  for the application's role: UPDATE, DELETE and TRUNCATE are revoked and a
  trigger refuses them (even for the table's owner).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.rows import dict_row

from cim.auth.passwords import check_strength, hash_password, verify_password
from cim.auth.roles import Role
from cim.cluster import READER, READER_PRIVATE
from cim.errors import InputError, NotFoundError

SCHEMA = "cim"
TOKEN_PREFIX = "cim_"
_NAME = re.compile(r"^[a-z][a-z0-9_.-]{1,62}$")

_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.users (
    name          text PRIMARY KEY,
    display_name  text NOT NULL DEFAULT '',
    roles         text[] NOT NULL,
    password_hash text NOT NULL,
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE {SCHEMA}.users IS '用户与角色';
CREATE TABLE IF NOT EXISTS {SCHEMA}.tokens (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL,
    token_sha256 text NOT NULL UNIQUE,
    roles        text[] NOT NULL,
    layers       text[],
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
COMMENT ON TABLE {SCHEMA}.tokens IS '接口令牌 (只存哈希)';
CREATE TABLE IF NOT EXISTS {SCHEMA}.audit (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,
    via     text NOT NULL,
    action  text NOT NULL,
    object  text NOT NULL DEFAULT '',
    address text NOT NULL DEFAULT '',
    ok      boolean NOT NULL DEFAULT true,
    detail  jsonb NOT NULL DEFAULT '{{}}'
);
COMMENT ON TABLE {SCHEMA}.audit IS '审计日志 (只可追加)';
CREATE INDEX IF NOT EXISTS audit_at ON {SCHEMA}.audit (at DESC);
CREATE OR REPLACE FUNCTION {SCHEMA}.audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'cim.audit is append-only: % is not allowed', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
DROP TRIGGER IF EXISTS audit_append_only ON {SCHEMA}.audit;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON {SCHEMA}.audit
    FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.audit_append_only();
DROP TRIGGER IF EXISTS audit_no_truncate ON {SCHEMA}.audit;
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON {SCHEMA}.audit
    FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.audit_append_only();
REVOKE UPDATE, DELETE, TRUNCATE ON {SCHEMA}.audit FROM CURRENT_USER;
-- the desktop GIS reader (the local cluster's) reads the catalogue, never hashes or the audit
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{READER}') THEN
    REVOKE ALL ON {", ".join(READER_PRIVATE)} FROM {READER};
  END IF;
END $$;
"""


@dataclass(frozen=True)
class Identity:
    """Who is asking: a user (by session or password), a token, or nobody."""

    name: str
    roles: frozenset[Role]
    via: str  # "session", "token", "anonymous", "cli"
    layers: frozenset[str] | None = None  # a token scoped to these layers; None: every layer

    @property
    def anonymous(self) -> bool:
        return self.via == "anonymous"

    def may_read_layer(self, layer: str) -> bool:
        return self.layers is None or layer in self.layers


ANONYMOUS = Identity("anonymous", frozenset(), "anonymous")


@dataclass
class User:
    name: str
    display_name: str
    roles: list[str]
    disabled: bool
    created_at: datetime


@dataclass
class Token:
    id: int
    name: str
    roles: list[str]
    layers: list[str] | None
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    secret: str | None = field(default=None, repr=False)  # only when just created


#: true when the schema is all there (the last objects _DDL makes: the audit's two triggers)
_PRESENT = f"""SELECT count(*) = 2 FROM pg_trigger
    WHERE tgrelid = to_regclass('{SCHEMA}.audit') AND tgname IN ('audit_append_only', 'audit_no_truncate')"""


def ensure_auth_schema(conn: psycopg.Connection) -> None:
    """Create what is missing (idempotent; serialised like the layers' schema). Run by the server's
    start and by every `cim users|tokens` command and CLI import's audit row: when the schema is
    there it only reads the catalogue (re-running the DDL would drop and re-make the audit's
    triggers, locking the table against the server's inserts)."""
    row = conn.execute(_PRESENT).fetchone()
    if row is not None and row[0]:
        return
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('cim.auth'))")
        conn.execute(_DDL)


def parse_roles(text: str | Iterable[str]) -> list[str]:
    values = [r.strip() for r in (text.split(",") if isinstance(text, str) else text) if r.strip()]
    known = {r.value for r in Role}
    unknown = [r for r in values if r not in known]
    if unknown or not values:
        raise InputError(
            "--role", f"{', '.join(unknown) or 'nothing'} is not a role", hint=f"roles: {', '.join(known)}"
        )
    return sorted(set(values))


def _check_name(name: str, what: str) -> str:
    if not _NAME.match(name or ""):
        raise InputError(what, f"{name!r} is not usable: lower-case letters, digits, '.', '_' or '-', 2 to 63")
    return name


# --- users ----------------------------------------------------------------------------


def add_user(conn: psycopg.Connection, name: str, password: str, roles: Sequence[str], display_name: str = "") -> None:
    _check_name(name, "user")
    check_strength(password)
    roles = parse_roles(roles)
    try:
        conn.execute(
            f"INSERT INTO {SCHEMA}.users (name, display_name, roles, password_hash) VALUES (%s, %s, %s, %s)",
            (name, display_name[:200], roles, hash_password(password)),
        )
    except psycopg.errors.UniqueViolation:
        raise InputError("user", f"{name!r} exists already", hint="cim users passwd changes a password") from None


def list_users(conn: psycopg.Connection) -> list[User]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT name, display_name, roles, disabled, created_at FROM {SCHEMA}.users ORDER BY name")
        return [User(**row) for row in cur.fetchall()]


def set_password(conn: psycopg.Connection, name: str, password: str) -> None:
    check_strength(password)
    cur = conn.execute(
        f"UPDATE {SCHEMA}.users SET password_hash = %s, updated_at = now() WHERE name = %s",
        (hash_password(password), name),
    )
    if cur.rowcount == 0:
        raise NotFoundError(f"no user {name!r}", hint="cim users list")


def set_disabled(conn: psycopg.Connection, name: str, disabled: bool = True) -> None:
    cur = conn.execute(f"UPDATE {SCHEMA}.users SET disabled = %s, updated_at = now() WHERE name = %s", (disabled, name))
    if cur.rowcount == 0:
        raise NotFoundError(f"no user {name!r}", hint="cim users list")


#: what signing in reads of a user
USER_CHECK_SQL = f"SELECT roles, password_hash, disabled FROM {SCHEMA}.users WHERE name = %s"


def check_password(name: str, password: str, row: tuple | None) -> Identity | None:
    """The user's identity when ``password`` matches ``row`` (from :data:`USER_CHECK_SQL`) and the
    user is not disabled. As slow when there is no such user: no user enumeration by timing."""
    if row is None:
        verify_password(password, _dummy_hash())
        return None
    roles, hashed, disabled = row
    if disabled or not verify_password(password, hashed):
        return None
    return Identity(name, roles_of(roles), "session")


def roles_of(values: Iterable[str]) -> frozenset[Role]:
    return frozenset(Role(r) for r in values if r in Role.__members__)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password(secrets.token_hex(16))


# --- tokens ---------------------------------------------------------------------------


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def create_token(
    conn: psycopg.Connection, name: str, roles: Sequence[str], created_by: str, layers: Sequence[str] | None = None
) -> Token:
    """A new token; its secret is in the returned object only (never stored)."""
    _check_name(name, "--name")
    roles = parse_roles(roles)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"""INSERT INTO {SCHEMA}.tokens (name, token_sha256, roles, layers, created_by) VALUES (%s, %s, %s, %s, %s)
                RETURNING id, name, roles, layers, created_by, created_at, last_used_at, revoked_at""",
            (name, token_digest(secret), roles, sorted(set(layers)) if layers else None, created_by),
        )
        row = cur.fetchone()
    assert row is not None  # INSERT ... RETURNING
    return Token(**row, secret=secret)


def list_tokens(conn: psycopg.Connection) -> list[Token]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"""SELECT id, name, roles, layers, created_by, created_at, last_used_at, revoked_at
                FROM {SCHEMA}.tokens ORDER BY id"""
        )
        return [Token(**row) for row in cur.fetchall()]


def revoke_token(conn: psycopg.Connection, token_id: int) -> None:
    cur = conn.execute(
        f"UPDATE {SCHEMA}.tokens SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL", (token_id,)
    )
    if cur.rowcount == 0:
        raise NotFoundError(f"no active token {token_id}", hint="cim tokens list")


# --- audit ----------------------------------------------------------------------------


AUDIT_INSERT = (
    f"INSERT INTO {SCHEMA}.audit (actor, via, action, object, address, ok, detail) VALUES (%s, %s, %s, %s, %s, %s, %s)"
)
AUDIT_QUERY = f"""SELECT id, at, actor, via, action, object, address, ok, detail FROM {SCHEMA}.audit
    WHERE (%(since)s::timestamptz IS NULL OR at >= %(since)s)
      AND (%(actor)s::text IS NULL OR actor = %(actor)s)
      AND (%(action)s::text IS NULL OR action = %(action)s)
    ORDER BY id DESC LIMIT %(limit)s"""


def audit_params(
    actor: Identity | str,
    action: str,
    object_: str = "",
    *,
    address: str = "",
    ok: bool = True,
    detail: dict[str, Any] | None = None,
    via: str | None = None,
) -> tuple:
    """The parameters of :data:`AUDIT_INSERT` (bounded: an audit row cannot be made huge); a plain
    name acts through the CLI unless ``via`` says otherwise (a password sign-in: ``password``)."""
    name, via = (actor.name, actor.via) if isinstance(actor, Identity) else (actor, via or "cli")
    text = json.dumps(detail or {}, ensure_ascii=False, default=str)
    return (name[:200], via, action[:100], object_[:500], address[:100], ok, text if len(text) < 20_000 else "{}")


def record(conn: psycopg.Connection, actor: Identity | str, action: str, object_: str = "", **kw: Any) -> None:
    """One audit row (its own statement: an audited failure is kept even when the work is rolled back)."""
    conn.execute(AUDIT_INSERT, audit_params(actor, action, object_, **kw))
