"""The one settings object, read from the environment (``CIM_*`` variables)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Everything configurable, in one place.

    ``database_url`` is ``None`` when the project runs its own local PostGIS
    cluster under ``data_dir``; set ``CIM_DATABASE_URL`` to use an existing
    PostgreSQL/PostGIS server instead (the project then never starts one).
    """

    data_dir: Path = field(default_factory=lambda: Path(".cim").resolve())
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    #: the layer whose polygons place every feature in its street/community/grid
    grid_layer: str = "grids"
    #: most features one vector tile carries (the densest layers at low zoom)
    mvt_feature_limit: int = 50_000
    #: pool size of the HTTP server's database connections
    db_pool_size: int = 8
    #: the MQTT broker of live readings (mqtt://host:port); None: `cim serve` runs a local mosquitto
    mqtt_url: str | None = None
    #: days of readings kept (older daily partitions are dropped)
    live_retention_days: int = 90
    #: the 10-30-24 rule of citizen tickets: minutes to acknowledge, minutes to contact, hours to resolve
    sla_acknowledge_minutes: int = 10
    sla_contact_minutes: int = 30
    sla_resolve_hours: int = 24

    @property
    def cluster_dir(self) -> Path:
        return self.data_dir / "pg"

    @property
    def tilesets_dir(self) -> Path:
        return self.data_dir / "tilesets"

    @property
    def streams_dir(self) -> Path:
        """Camera streams served as /live/cameras/<id>/index.m3u8 (HLS), for cameras without a video platform URL."""
        return self.data_dir / "streams"

    @property
    def uses_local_cluster(self) -> bool:
        return self.database_url is None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        kwargs: dict = {}
        if env.get("CIM_DATA_DIR"):
            kwargs["data_dir"] = Path(env["CIM_DATA_DIR"]).expanduser().resolve()
        for name in ("database_url", "host", "grid_layer", "mqtt_url"):  # CIM_DATABASE_URL, ...
            if env.get(f"CIM_{name.upper()}"):
                kwargs[name] = env[f"CIM_{name.upper()}"]
        for name in ("port", "mvt_feature_limit", "live_retention_days", "sla_acknowledge_minutes",
                     "sla_contact_minutes", "sla_resolve_hours"):
            if env.get(f"CIM_{name.upper()}"):
                kwargs[name] = _int(env, f"CIM_{name.upper()}")
        return cls(**kwargs)


def _int(env: dict[str, str], name: str) -> int:
    try:
        return int(env[name])
    except ValueError:
        from cim.errors import ConfigError

        raise ConfigError(f"{name}={env[name]!r} is not a whole number") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once from the environment)."""
    return Settings.from_env()
