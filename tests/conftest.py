"""Shared fixtures: a real PostgreSQL/PostGIS server, the imported Futian
sample, and the app served over real HTTP from this process (routes are
called in-process through FastAPI's TestClient).

By default a throw-away local cluster is initialised under a temporary data
directory (as root, the server runs as the ``postgres`` user). Set
``CIM_TEST_DATABASE_URL`` to run against an existing server instead.
"""

from __future__ import annotations

import asyncio
import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import anyio.from_thread
import psycopg
import pytest

from cim.cluster import LocalCluster
from cim.config import Settings
from cim.net import free_port

REPO = Path(__file__).resolve().parent.parent
#: the sample data shipped with the project (provenance and licences: data_samples/NOTICE.md)
DATA = REPO / "data_samples"
CIM = str(Path(sys.executable).parent / "cim")
#: a page served at this origin may fetch the test server's tiles (CIM_CORS_ORIGINS); 127.0.0.1 at another port may not
CORS_PORT = free_port()
CORS_ORIGIN = f"http://localhost:{CORS_PORT}"
#: a dashboard at this origin may embed and drive the viewer (CIM_FRAME_ANCESTORS); no other may
EMBED_PORT = free_port()
EMBED_ORIGIN = f"http://localhost:{EMBED_PORT}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that reaches the database (through the ``settings`` fixture,
    which every database fixture builds on) is marked ``db``."""
    for item in items:
        if "settings" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.db)


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory):
    data_dir = tmp_path_factory.mktemp("cim-data")
    s = Settings(
        data_dir=data_dir,
        database_url=os.environ.get("CIM_TEST_DATABASE_URL") or None,
        cors_origins=(CORS_ORIGIN,),
        frame_ancestors=(EMBED_ORIGIN,),
        anonymous_read=True,  # as `cim demo` runs: the browser tests read the map without signing in
        # the viewer's default pages on the flat, dark stage the viewer tests check their pixels and picks on (the
        # imagery and terrain of the sample under them otherwise); test_viewer_rasters opens one on the ground
        viewer_ground=False,
    )
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


@pytest.fixture
def own_settings(settings: Settings, db_url: str, tmp_path: Path):
    """Settings of a database and data folder of the test's own, on the session's server: for a
    test whose imports must not become layers of the session's map (the viewer tests open it with
    every layer it has)."""
    name = f"cim_own_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = psycopg.conninfo.make_conninfo(db_url, dbname=name)
    yield Settings(data_dir=tmp_path / "own-data", database_url=url)
    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cli_env(settings: Settings) -> dict[str, str]:
    """The environment a `cim` subprocess needs to use the test database."""
    env = dict(os.environ, CIM_DATA_DIR=str(settings.data_dir), COLUMNS="200", NO_COLOR="1")
    env.pop("CIM_DATABASE_URL", None)
    if settings.database_url:
        env["CIM_DATABASE_URL"] = settings.database_url
    # a `cim serve` of the tests answers as the in-process one does
    env.update(
        CIM_ANONYMOUS_READ="true" if settings.anonymous_read else "false",
        CIM_VIEWER_GROUND="true" if settings.viewer_ground else "false",
        CIM_CORS_ORIGINS=",".join(settings.cors_origins),
        CIM_FRAME_ANCESTORS=",".join(settings.frame_ancestors),
    )
    return env


@dataclass
class CimResult:
    returncode: int
    stdout: str
    stderr: str


def run_cim(
    settings: Settings,
    *args: str,
    check: bool = False,
    timeout: float = 600,
    subprocess_: bool = False,
    input: str | None = None,
) -> CimResult:
    """Run ``cim ARGS`` against the test database: in this process through
    typer's CliRunner (the CLI's own code: option parsing, progress, the
    one-line errors and exit codes; breakpoints and coverage reach it), or,
    with ``subprocess_``, as the installed console script (the smoke tests)."""
    if subprocess_:
        done = subprocess.run(
            [CIM, *args], capture_output=True, text=True, env=cli_env(settings), timeout=timeout, input=input
        )
        result = CimResult(done.returncode, done.stdout, done.stderr)
    else:
        result = _run_in_process(settings, list(args), input)
    if check and result.returncode != 0:
        raise AssertionError(f"cim {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def _run_in_process(settings: Settings, args: list[str], input: str | None = None) -> CimResult:
    from typer.testing import CliRunner

    import cim.cli
    from cim.config import get_settings

    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("CIM_")}  # the CLI reads only these
    env.update(CIM_DATA_DIR=str(settings.data_dir), CIM_DATABASE_URL=settings.database_url)
    widths = cim.cli.console.width, cim.cli.err_console.width
    cim.cli.console.width = cim.cli.err_console.width = 200  # as a terminal of 200 columns: summaries unwrapped
    get_settings.cache_clear()
    try:
        out = CliRunner().invoke(cim.cli.app, args, env=env, catch_exceptions=False, input=input)
    finally:
        get_settings.cache_clear()
        cim.cli.console.width, cim.cli.err_console.width = widths
    return CimResult(out.exit_code, out.stdout, out.stderr)


@pytest.fixture(scope="session")
def sample(settings: Settings):
    """The Futian sample imported once, as `cim demo` does it, without the demo's
    BIM and oblique models (tests/test_cli.py imports those with the whole demo)."""
    from cim.demo import import_sample

    return {r.name: r for r in import_sample(settings, models=False)}


class InProcessServer:
    """The app, served by uvicorn on a loopback port from a thread of the test
    process, so that breakpoints and coverage reach the server code. The
    thread's event loop also runs a blocking portal: a TestClient given it
    calls the same app instance (the same pool, the same live hub) in-process."""

    def __init__(self, settings: Settings) -> None:
        import uvicorn

        from cim.server.app import create_app

        self.app = create_app(settings)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        )
        self._portal: queue.Queue[anyio.from_thread.BlockingPortal | BaseException] = queue.Queue()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), name="cim-test-server", daemon=True)

    async def _main(self) -> None:
        try:
            async with anyio.from_thread.BlockingPortal() as portal:
                self._portal.put(portal)
                await self._server.serve()
        except BaseException as exc:
            self._portal.put(exc)
            raise

    def __enter__(self) -> InProcessServer:
        self._thread.start()
        got = self._portal.get(timeout=30)
        if isinstance(got, BaseException):
            raise got
        self.portal = got
        deadline = time.monotonic() + 60
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the in-process server did not start (see the log above)")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=60)


@pytest.fixture(scope="session")
def in_process(settings: Settings, sample):
    with InProcessServer(settings) as srv:
        yield srv


@pytest.fixture(scope="session")
def server(in_process: InProcessServer) -> str:
    """The base URL of the app over real HTTP (for browsers, WebSockets, MQTT publishers)."""
    return in_process.base


@pytest.fixture(scope="session")
def tokens(settings: Settings, db_url: str) -> dict[str, str]:
    """An API token for every role (role -> the token's secret)."""
    from cim.auth.roles import Role
    from cim.auth.store import create_token, ensure_auth_schema

    with psycopg.connect(db_url, autocommit=True) as conn:
        ensure_auth_schema(conn)
        return {
            role.value: create_token(conn, f"test-{role.value}", [role.value], "tests").secret or "" for role in Role
        }


def client_of(in_process: InProcessServer, token: str | None = None):
    """FastAPI's TestClient calling the served app in-process (on the server's own event loop), with a token."""
    from fastapi.testclient import TestClient

    client = TestClient(in_process.app, base_url=in_process.base, raise_server_exceptions=True)
    client.portal = in_process.portal  # the server's loop: no second app, no second lifespan
    if token:
        client.headers["Authorization"] = f"Bearer {token}"
    return client


@pytest.fixture(scope="session")
def http(in_process: InProcessServer, tokens: dict[str, str]):
    """The in-process client as an admin (writes need a role); see ``client_of`` for the others."""
    yield client_of(in_process, tokens["admin"])
