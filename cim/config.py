"""The one settings object, read from the environment (``CIM_*`` variables).

Every field below is a setting: ``CIM_`` + its name in capitals
(``CIM_DATA_DIR``, ``CIM_DATABASE_URL``, ...). Values are validated when the
object is made, so a bad variable fails at start with its name, not on the
first request. README's configuration table is written from this class
(``python -m cim.config`` prints it; a test keeps the two in step).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import AfterValidator, Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_REPO = Path(__file__).resolve().parent.parent


def _resolved(path: Path) -> Path:
    return path.expanduser().resolve()


ResolvedPath = Annotated[Path, AfterValidator(_resolved)]

#: the roles a person signing in through OIDC may get: cim.auth.roles.READERS (this module sits below cim.auth)
OIDC_ROLES = ("viewer", "land_supervisor", "operator", "admin")
#: ``https://...``, or ``http://`` on this machine only (a provider for tests or a local trial)
_OIDC_URL = re.compile(r"https://[^\s?#]+|http://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?(/[^\s?#]*)?")


def _oidc_role(value: str) -> str:
    if value not in OIDC_ROLES:
        raise ValueError(f"{value!r} is not a role ({', '.join(OIDC_ROLES)})")
    return value


class Settings(BaseSettings):
    """Everything configurable, in one place.

    ``database_url`` is ``None`` when the project runs its own local PostGIS
    cluster under ``data_dir``; set ``CIM_DATABASE_URL`` to use an existing
    PostgreSQL/PostGIS server instead (the project then never starts one).
    """

    model_config = SettingsConfigDict(
        env_prefix="CIM_", frozen=True, extra="ignore", env_ignore_empty=True, validate_default=True
    )

    data_dir: ResolvedPath = Field(Path(".cim"), description="local cluster (`pg/`), tilesets, caches")
    database_url: str | None = Field(
        None, description="use this PostgreSQL/PostGIS server; no local cluster is started"
    )
    db_listen: str = Field(
        "127.0.0.1",
        description="where the local cluster listens on TCP, besides 127.0.0.1 and its Unix socket "
        "(comma-separated addresses, e.g. `0.0.0.0` or `192.168.1.10` for QGIS on the LAN; "
        "every TCP connection needs a password); applied when the cluster starts",
    )
    host: str = Field("127.0.0.1", description="where `cim serve` listens")
    port: int = Field(8000, ge=1, le=65535, description="the port `cim serve` listens on")
    grid_layer: str = Field("grids", description="the layer that places features in street/community/grid")
    components_radius_m: float = Field(
        30.0, ge=1.0, le=500.0, description="a component's file lists the sensors and tickets within this distance"
    )
    mvt_feature_limit: int = Field(50_000, ge=1, le=10_000_000, description="most features in one vector tile")
    db_pool_size: int = Field(8, ge=2, le=1000, description="database connections of the HTTP server")
    max_body_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1024,
        le=1 << 40,
        description="largest request body the HTTP server takes (8 MiB); a larger one is answered 413 at once, "
        "from its Content-Length or, when it has none, as soon as more has arrived",
    )
    node_modules: ResolvedPath = Field(
        _REPO / "node_modules", description="where the viewer's and the API docs' JavaScript is served from"
    )
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="other origins whose pages may fetch tiles and features (comma-separated, e.g. "
        "`http://dashboard.example:8080`); unset: this server's own pages only",
    )
    anonymous_read: bool = Field(
        False,
        description="let visitors who are not signed in read the map (layers, tiles, models, the live picture "
        "without citizens' details); writes always need a role. `cim demo` turns it on for 127.0.0.1",
    )
    viewer_ground: bool = Field(
        True,
        description="the viewer opens on the ground: the newest orthophoto as its basemap and the newest DEM as "
        "its terrain, under the models (when there are any; a link's `layers=` still decides); false: both "
        "listed, off until switched on (a flat, dark stage)",
    )
    frame_ancestors: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="origins of the dashboards that may embed the viewer in an iframe and drive it by "
        "postMessage (comma-separated); unset: this server's own pages only",
    )
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="host names the server answers to (comma-separated; a request for another Host gets 400: "
        "no DNS rebinding); unset: localhost, 127.0.0.1 and `CIM_HOST`, or any when `CIM_HOST` is 0.0.0.0",
    )
    cookie_secure: bool = Field(
        False, description="send the session cookie over HTTPS only (set it behind a TLS proxy)"
    )
    secret_key: str | None = Field(
        None,
        description="the key that signs session cookies (32+ characters); unset: one made once and kept in "
        "`$CIM_DATA_DIR/secret_key`",
    )
    mqtt_url: str | None = Field(
        None,
        description="the MQTT broker of live readings (`mqtt://user:password@host:1883`, or "
        "`mqtts://user:password@host:8883` over TLS); unset: a local mosquitto",
    )
    mqtt_ca_file: ResolvedPath | None = Field(
        None, description="the CA certificate(s) (PEM) of an `mqtts://` broker; unset: the system's CAs"
    )
    live_retention_days: int = Field(90, ge=1, le=36_500, description="days of readings kept")
    live_batch_max: int = Field(
        10_000, ge=1, le=10_000_000, description="most readings in one `POST /live/sensors/readings` (more: 413)"
    )
    sla_acknowledge_minutes: int = Field(
        10, ge=1, le=100_000, description="the 10-30-24 rule: minutes to acknowledge a ticket"
    )
    sla_contact_minutes: int = Field(30, ge=1, le=100_000, description="minutes to contact the citizen")
    sla_resolve_hours: int = Field(24, ge=1, le=100_000, description="hours to resolve the ticket")
    land_far_tolerance: float = Field(0.0, ge=0, le=10, description="land checks: FAR above the limit by more is 违规")
    land_coverage_tolerance: float = Field(
        0.0, ge=0, le=1, description="land checks: building density (0-1) above the limit by more is 违规"
    )
    land_height_tolerance_m: float = Field(
        0.0, ge=0, le=100, description="land checks: metres above the height limit tolerated"
    )
    land_outside_min_m2: float = Field(
        1.0, ge=0, le=10_000, description="land checks: m2 of a building outside its parcel that make a finding"
    )
    land_overlap_min_m2: float = Field(
        1.0, ge=0, le=10_000, description="land checks: m2 on a parcel or protected land that count"
    )
    land_idle_after_days: int = Field(
        365, ge=1, le=36_500, description="land checks: days after the start deadline without a building: idle"
    )
    land_floor_height_m: float = Field(
        3.0, gt=0, le=20, description="land checks: floors = round(height / this) where a building has none"
    )
    land_raised_min_m: float = Field(3.0, gt=0, le=1000, description="land checks: metres taller that is `raised`")
    land_grown_min_m2: float = Field(
        10.0, gt=0, le=100_000, description="land checks: m2 more footprint that is `grown`"
    )
    oidc_issuer: str | None = Field(
        None,
        description="the OpenID Connect provider (a government SSO) people may also sign in with, e.g. "
        "`https://sso.example.gov.cn/realms/cim` (its `/.well-known/openid-configuration` is read); "
        "unset: no SSO sign-in",
    )
    oidc_client_id: str | None = Field(
        None, description="this server's client id at that provider (needed with `CIM_OIDC_ISSUER`)"
    )
    oidc_client_secret: SecretStr | None = Field(
        None, description="the client's secret at the provider; unset: a public client (PKCE only)"
    )
    oidc_scope: str = Field("openid profile", description="the scopes asked for (`openid` is added if missing)")
    oidc_roles_claim: str = Field(
        "roles",
        description="the ID token's claim that holds the person's groups or roles, a list of strings "
        "(`a.b` for a nested one, e.g. `realm_access.roles`)",
    )
    oidc_role_map: Annotated[tuple[tuple[str, str], ...], NoDecode] = Field(
        (),
        description="claim values to roles, comma-separated `value=role` (e.g. "
        "`gis-admins=admin,land=land_supervisor`; a value may be listed more than once); a value not in the map "
        "that is a role id (viewer, land_supervisor, operator, admin) counts as that role",
    )
    oidc_default_role: str | None = Field(
        "viewer",
        description="the role of a person none of whose claim values gives a role; `none`: such people are refused",
    )
    oidc_redirect_uri: str | None = Field(
        None,
        description="the callback registered at the provider, `https://HOST/auth/oidc/callback`; unset: "
        "`/auth/oidc/callback` on the address the browser used (set it behind a proxy)",
    )

    @field_validator("database_url")
    @classmethod
    def _conninfo(cls, value: str | None) -> str | None:
        """A libpq URL (postgresql://...) or key=value string, as psycopg takes it."""
        if value is not None:
            try:
                conninfo_to_dict(value)
            except psycopg.ProgrammingError:  # its message may quote the password: not repeated
                raise ValueError("not a PostgreSQL connection URL or key=value string") from None
        return value

    @field_validator("cors_origins", "frame_ancestors", mode="before")
    @classmethod
    def _origins(cls, value: object) -> object:
        """Comma-separated scheme://host[:port] origins, without a path."""
        if isinstance(value, str):
            value = tuple(v.strip().rstrip("/") for v in value.split(",") if v.strip())
        for origin in value if isinstance(value, (tuple, list)) else ():
            if not re.fullmatch(r"https?://[^/\s]+", str(origin)) and origin != "*":
                raise ValueError(f"{origin!r} is not an origin (scheme://host[:port])")
        return value

    @field_validator("db_listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        """IP addresses, host names or ``*``, comma-separated (PostgreSQL's listen_addresses)."""
        entries = [v.strip() for v in value.split(",") if v.strip()]
        if not entries:
            raise ValueError("no address (e.g. 127.0.0.1, 0.0.0.0 or 192.168.1.10)")
        for entry in entries:
            if not re.fullmatch(r"\*|[0-9A-Za-z.:\-]+", entry):
                raise ValueError(f"{entry!r} is not an IP address, a host name or *")
        return ", ".join(entries)

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _hosts(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(v.strip().lower() for v in value.split(",") if v.strip())
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 32:
            raise ValueError("must be at least 32 characters")
        return value

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("mqtt://", "tcp://", "mqtts://", "ssl://")):
            raise ValueError("not an mqtt://host:port URL (mqtts://host:port over TLS)")
        return value

    @field_validator("oidc_issuer", "oidc_redirect_uri")
    @classmethod
    def _oidc_url(cls, value: str | None) -> str | None:
        if value is not None and not _OIDC_URL.fullmatch(value):
            raise ValueError("not an https:// URL without query or fragment (http:// only on localhost)")
        return value

    @field_validator("oidc_redirect_uri")
    @classmethod
    def _oidc_callback(cls, value: str | None) -> str | None:
        if value is not None and not value.endswith("/auth/oidc/callback"):
            raise ValueError("must end with /auth/oidc/callback (this server's callback)")
        return value

    @field_validator("oidc_client_id")
    @classmethod
    def _oidc_client(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("oidc_issuer"):
            raise ValueError("needed when CIM_OIDC_ISSUER is set (the client registered at the provider)")
        return value

    @field_validator("oidc_scope")
    @classmethod
    def _oidc_scope(cls, value: str) -> str:
        scopes = value.replace(",", " ").split()
        return " ".join(scopes if "openid" in scopes else ["openid", *scopes])

    @field_validator("oidc_role_map", mode="before")
    @classmethod
    def _oidc_role_map(cls, value: object) -> object:
        """``value=role,value=role`` (each role one of :data:`OIDC_ROLES`)."""
        if isinstance(value, str):
            pairs = []
            for entry in (e.strip() for e in value.split(",") if e.strip()):
                claimed, sep, role = (p.strip() for p in entry.partition("="))
                if not sep or not claimed:
                    raise ValueError(f"{entry!r} is not value=role")
                pairs.append((claimed, _oidc_role(role)))
            return tuple(pairs)
        for _, role in value if isinstance(value, (tuple, list)) else ():
            _oidc_role(role)
        return value

    @field_validator("oidc_default_role")
    @classmethod
    def _oidc_default_role(cls, value: str | None) -> str | None:
        if value is None or value.strip().lower() in ("", "none"):
            return None
        return _oidc_role(value.strip())

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer)

    @property
    def cluster_dir(self) -> Path:
        return self.data_dir / "pg"

    @property
    def tilesets_dir(self) -> Path:
        return self.data_dir / "tilesets"

    @property
    def rasters_dir(self) -> Path:
        """Imported rasters (DOM, DEM): ``<name>/<epoch>-<stamp>.tif``, Cloud-Optimized GeoTIFFs."""
        return self.data_dir / "rasters"

    @property
    def streams_dir(self) -> Path:
        """Camera streams served as /live/cameras/<id>/index.m3u8 (HLS), for cameras without a video platform URL."""
        return self.data_dir / "streams"

    @property
    def viewer_config_file(self) -> Path:
        """The viewer's styles for named layers (``cim demo`` puts the sample's there)."""
        return self.data_dir / "viewer.json"

    def secret(self) -> str:
        """The key that signs session cookies: ``CIM_SECRET_KEY``, or one made once under the data directory."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if not path.is_file():
            import secrets

            self.data_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
            os.replace(tmp, path)
        return path.read_text().strip()

    def trusted_hosts(self) -> list[str]:
        """The Host names answered (``*``: any)."""
        if self.allowed_hosts:
            return list(self.allowed_hosts)
        if self.host in ("0.0.0.0", "::", ""):
            return ["*"]
        return sorted({"localhost", "127.0.0.1", "[::1]", self.host})

    @property
    def uses_local_cluster(self) -> bool:
        return self.database_url is None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """The settings from ``env`` (default: the process environment), or a
        :class:`~cim.errors.ConfigError` naming the variable and what is wrong."""
        from cim.errors import ConfigError

        try:
            if env is None:
                return cls()
            values = {k[len("CIM_") :].lower(): v for k, v in env.items() if k.startswith("CIM_") and v != ""}
            return cls.model_validate({k: v for k, v in values.items() if k in cls.model_fields})
        except ValidationError as exc:
            first = exc.errors()[0]
            name = "CIM_" + str(first["loc"][0]).upper() if first["loc"] else "CIM_*"
            problem = " ".join(str(first["msg"]).removeprefix("Value error, ").split())
            # these may hold a password
            secret = name in ("CIM_DATABASE_URL", "CIM_MQTT_URL", "CIM_SECRET_KEY", "CIM_OIDC_CLIENT_SECRET")
            shown = "(value not shown)" if secret else repr(first.get("input"))
            raise ConfigError(
                f"{name}={shown}: {problem}", hint="fix or unset the variable; README lists the settings"
            ) from None


def settings_table() -> str:
    """README's configuration table, written from :class:`Settings`."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, Path):
            default = f"./{default}" if not default.is_absolute() else f"./{default.relative_to(_REPO)}"
        shown = "unset" if default in (None, ()) else f"`{default}`"
        rows.append(f"| `CIM_{name.upper()}` | {shown} | {field.description} |")
    return "\n".join(rows)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once from the environment)."""
    return Settings.from_env()


if __name__ == "__main__":  # pragma: no cover
    print(settings_table())
