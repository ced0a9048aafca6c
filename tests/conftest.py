"""Shared fixtures: a real PostgreSQL/PostGIS server, the imported Futian
sample, and a real ``cim serve`` over HTTP.

By default a throw-away local cluster is initialised under a temporary data
directory (as root, the server runs as the ``postgres`` user). Set
``CIM_TEST_DATABASE_URL`` to run against an existing server instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import psycopg
import pytest

from cim.cluster import LocalCluster
from cim.config import Settings
from cim.net import free_port, wait_until_healthy

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
CIM = str(Path(sys.executable).parent / "cim")


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory):
    data_dir = tmp_path_factory.mktemp("cim-data")
    s = Settings(data_dir=data_dir, database_url=os.environ.get("CIM_TEST_DATABASE_URL") or None)
    cluster = LocalCluster(s) if s.uses_local_cluster else None
    if cluster:
        cluster.up()
    yield s
    if cluster:
        cluster.destroy()


@pytest.fixture(scope="session")
def db_url(settings: Settings) -> str:
    from cim.db import database_url

    return database_url(settings)


@pytest.fixture
def conn(db_url: str):
    with psycopg.connect(db_url, autocommit=True) as c:
        yield c


def cli_env(settings: Settings) -> dict[str, str]:
    """The environment a `cim` subprocess needs to use the test database."""
    env = dict(os.environ, CIM_DATA_DIR=str(settings.data_dir), COLUMNS="200", NO_COLOR="1")
    env.pop("CIM_DATABASE_URL", None)
    if settings.database_url:
        env["CIM_DATABASE_URL"] = settings.database_url
    return env


def run_cim(settings: Settings, *args: str, check: bool = False, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run([CIM, *args], capture_output=True, text=True, env=cli_env(settings), timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"cim {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def sample(settings: Settings):
    """The Futian sample imported once, as `cim demo` does it."""
    from cim.demo import import_sample

    return {r.name: r for r in import_sample(settings)}


@pytest.fixture(scope="session")
def server(settings: Settings, sample) -> str:
    """A real `cim serve` process over the imported sample; yields its base URL.
    Its log goes to a file (a pipe nobody reads would fill and block it)."""
    port = free_port()
    log = open(settings.data_dir / "serve.log", "w")
    proc = subprocess.Popen([CIM, "serve", "--port", str(port)], env=cli_env(settings), stdout=log,
                            stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(f"{base}/healthz", proc)
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}\n{(settings.data_dir / 'serve.log').read_text()}") from None
    yield base
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


@pytest.fixture(scope="session")
def http(server: str):
    with httpx.Client(base_url=server, timeout=60) as client:
        yield client
