"""Connections to PostgreSQL/PostGIS: the configured server, or the local cluster."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import psycopg

from cim.cluster import LocalCluster
from cim.config import Settings, get_settings
from cim.errors import ConfigError, DatabaseError


def database_url(settings: Settings | None = None, *, start: bool = True) -> str:
    """The URL to connect to: ``CIM_DATABASE_URL``, or the local cluster's
    (started first when ``start``; ``cim db up`` is then never needed by hand)."""
    settings = settings or get_settings()
    if settings.database_url:
        return settings.database_url
    if not start:
        return LocalCluster(settings).url()
    return _local_url(settings.data_dir, settings.db_listen)


def reader_url(settings: Settings | None = None) -> str:
    """The URL of the local cluster's read-only role (``cim_reader``: the
    layers and the catalogue, for QGIS), the cluster started first. With
    ``CIM_DATABASE_URL`` the project makes no roles: a ConfigError says so."""
    settings = settings or get_settings()
    if settings.database_url:
        raise ConfigError(
            "CIM_DATABASE_URL is set: the project makes no roles on that server, so it has no read-only URL",
            hint="create a read-only role there (README: 'A read-only role for QGIS') and give QGIS its URL",
        )
    database_url(settings)  # started, its roles made
    return LocalCluster(settings).reader_url()


@cache
def _local_url(data_dir: Path, db_listen: str) -> str:
    """The local cluster started (once per process and data directory)."""
    return LocalCluster(Settings(data_dir=data_dir, db_listen=db_listen)).up()


def connect(settings: Settings | None = None, *, autocommit: bool = False) -> psycopg.Connection:
    url = database_url(settings)
    try:
        return psycopg.connect(url, autocommit=autocommit)
    except psycopg.OperationalError as exc:
        where = "CIM_DATABASE_URL" if (settings or get_settings()).database_url else "the local cluster"
        raise DatabaseError(
            f"cannot connect to the database ({where}): {str(exc).strip().splitlines()[0]}",
            hint="check `cim db status`",
        ) from exc


@dataclass(frozen=True)
class ServerVersions:
    postgresql: str
    postgis: str | None


def server_versions(conn: psycopg.Connection) -> ServerVersions:
    shown = conn.execute("SHOW server_version").fetchone()
    assert shown is not None  # SHOW returns one row
    pg = shown[0]
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'postgis'").fetchone()
    return ServerVersions(postgresql=pg, postgis=row[0] if row else None)
