"""The project-local PostgreSQL + PostGIS cluster under the data directory.

Used when ``CIM_DATABASE_URL`` is not set. The cluster lives in
``$CIM_DATA_DIR/pg/`` (``data/`` is PGDATA, ``run/`` the Unix socket, ``port``
and ``password`` the connection facts, ``server.log`` the server log), listens
on that socket and on 127.0.0.1 at a free port, and has a database ``cim``
with the ``postgis`` extension.

PostgreSQL refuses to run as root; as root (CI) the server runs as the
Debian ``postgres`` system user. Every operation holds an exclusive file lock,
so two ``cim db up`` at once are safe: the second waits and finds it running.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from cim.config import Settings
from cim.errors import DatabaseError
from cim.net import free_port

DB_NAME = "cim"
DB_USER = "cim"
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; ".s.PGSQL.NNNNN" must fit too


@dataclass(frozen=True)
class ClusterStatus:
    running: bool
    initialised: bool
    port: int | None
    data_dir: Path
    url: str | None


def _find_bindir() -> Path:
    """The newest PostgreSQL server binaries on this machine that have PostGIS
    (Debian keeps each major version in /usr/lib/postgresql/N)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    with_postgis = [
        c
        for c in candidates
        if Path(f"/usr/share/postgresql/{c.parent.parent.name}/extension/postgis.control").exists()
    ]
    if with_postgis or candidates:
        return (with_postgis or candidates)[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise DatabaseError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found",
        hint="install them with: apt-get install postgresql-15-postgis-3, "
        "or set CIM_DATABASE_URL to an existing PostGIS server",
    )


def _port_in_use(port: int) -> bool:
    """Whether another process listens on the port. SO_REUSEADDR as the
    server sets it: a port in TIME_WAIT after our own restart is free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


class LocalCluster:
    """Start, stop and describe the local cluster of one data directory."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        #: ``$CIM_DATA_DIR/pg``: the cluster folder, or a link to it (see _prepare_home)
        self.link = settings.cluster_dir
        self._bindir: Path | None = None
        self._run_as = self._server_user()

    # --- paths -------------------------------------------------------------------

    @property
    def home(self) -> Path:
        """The cluster folder, links resolved: the server is only ever given
        real paths, which it can reach even when the link's folder is private."""
        return self.link.resolve()

    @property
    def pgdata(self) -> Path:
        return self.home / "data"

    @property
    def socket_dir(self) -> Path:
        run = self.home / "run"
        if len(str(run)) + 16 <= _SOCKET_PATH_MAX:
            return run
        # A deep data directory would overflow the socket path limit.
        digest = hashlib.sha1(str(self.home).encode()).hexdigest()[:12]
        return Path("/tmp") / f"cim-pg-{digest}"

    @property
    def bindir(self) -> Path:
        if self._bindir is None:
            self._bindir = _find_bindir()
        return self._bindir

    # --- facts ---------------------------------------------------------------------

    @property
    def initialised(self) -> bool:
        return (self.pgdata / "PG_VERSION").is_file() and (self.home / "port").is_file()

    def port(self) -> int | None:
        try:
            return int((self.home / "port").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def password(self) -> str:
        return (self.home / "password").read_text().strip()

    def url(self) -> str:
        """The TCP connection URL (for the app, QGIS, psql)."""
        port = self.port()
        if port is None:
            raise DatabaseError(f"the local database under {self.home} is not initialised", hint="run: cim db up")
        return f"postgresql://{DB_USER}:{self.password()}@127.0.0.1:{port}/{DB_NAME}"

    def is_running(self) -> bool:
        if not (self.pgdata / "PG_VERSION").is_file():
            return False
        result = self._run([str(self.bindir / "pg_ctl"), "status", "-D", str(self.pgdata)], check=False)
        return result.returncode == 0

    def status(self) -> ClusterStatus:
        running = self.is_running()
        return ClusterStatus(
            running=running,
            initialised=self.initialised,
            port=self.port(),
            data_dir=self.home,
            url=self.url() if self.initialised else None,
        )

    # --- operations ---------------------------------------------------------------

    def up(self, timeout: float = 60.0) -> str:
        """Initialise if needed, start if not running, make sure the database and
        PostGIS exist. Idempotent. Returns the connection URL."""
        with self._locked():
            if not self.initialised:
                self._initdb()
            if not self.is_running():
                self._start(timeout)
            self._ensure_database()
            return self.url()

    def down(self) -> bool:
        """Stop the server (fast shutdown). Returns whether it was running."""
        with self._locked():
            if not self.is_running():
                return False
            self._run([str(self.bindir / "pg_ctl"), "stop", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "60"])
            return True

    def destroy(self) -> None:
        """Stop the server and delete the cluster with all its data (tests)."""
        self.down()
        with self._locked():
            real = self.home
            if self.link.is_symlink():
                self.link.unlink()
            shutil.rmtree(real, ignore_errors=True)
            if self.socket_dir.parent == Path("/tmp"):
                shutil.rmtree(self.socket_dir, ignore_errors=True)

    # --- internals -------------------------------------------------------------------

    @staticmethod
    def _server_user() -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam("postgres")
        except KeyError as exc:
            raise DatabaseError(
                "running as root, and there is no 'postgres' system user to run the server as",
                hint="install Debian's postgresql-15 package, or run as an ordinary user",
            ) from exc

    def _run(self, args: list[str], *, check: bool = True, **kw) -> subprocess.CompletedProcess:
        run_as = self._run_as  # None: as ourselves (subprocess's defaults for user, group, extra_groups)
        env = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8")
        if run_as is not None:
            env["HOME"] = run_as.pw_dir
        result = subprocess.run(
            args,
            capture_output=True,
            text=True,
            env=env,
            cwd="/",
            user=None if run_as is None else run_as.pw_uid,
            group=None if run_as is None else run_as.pw_gid,
            extra_groups=None if run_as is None else [],
            **kw,
        )
        if check and result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise DatabaseError(
                f"{Path(args[0]).name} failed: {detail[-1] if detail else 'exit ' + str(result.returncode)}",
                hint=f"see {self.home / 'server.log'}",
            )
        return result

    def _own(self, path: Path) -> None:
        if self._run_as is not None:
            os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)

    def _prepare_home(self) -> None:
        """Create the cluster folder; as root, make sure 'postgres' can reach it.

        When the data directory sits below a folder 'postgres' cannot enter
        (a 0700 temp dir, a home directory), the cluster goes to
        /var/lib/cim-pg/<hash> and ``pg`` becomes a link to it.
        """
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        if self._run_as is None:
            self.home.mkdir(parents=True, exist_ok=True)
            return
        if not self.link.exists() and not self._reachable(self.settings.data_dir):
            digest = hashlib.sha1(str(self.settings.data_dir).encode()).hexdigest()[:12]
            real = Path("/var/lib/cim-pg") / digest
            real.mkdir(parents=True, exist_ok=True)
            Path("/var/lib/cim-pg").chmod(0o755)
            self.link.symlink_to(real, target_is_directory=True)
        self.home.mkdir(parents=True, exist_ok=True)
        self._own(self.home)

    def _reachable(self, path: Path) -> bool:
        return self._run(["test", "-x", str(path)], check=False).returncode == 0

    def _initdb(self) -> None:
        self._prepare_home()
        if self.pgdata.exists() and not (self.pgdata / "PG_VERSION").is_file():
            shutil.rmtree(self.pgdata)  # a half-made cluster from an interrupted initdb
        password = secrets.token_hex(16)
        pwfile = self.home / "password"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        self._own(pwfile)
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                DB_USER,
                "--pwfile",
                str(pwfile),
                "-E",
                "UTF8",
                "--no-locale",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-instructions",
            ]
        )
        self._write_conf(free_port())

    def _write_conf(self, port: int) -> None:
        """The server settings (``cim.conf``, included by postgresql.conf);
        written at every start so that changes here reach existing clusters."""
        socket_dir = self.socket_dir
        socket_dir.mkdir(parents=True, exist_ok=True)
        socket_dir.chmod(0o700)
        self._own(socket_dir)
        conf = self.pgdata / "cim.conf"
        conf.write_text(
            "# written by cim (cim/cluster.py); edits here are overwritten\n"
            f"port = {port}\n"
            "listen_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{socket_dir}'\n"
            "shared_buffers = 512MB\n"
            "work_mem = 64MB\n"
            "maintenance_work_mem = 512MB\n"
            "max_wal_size = 4GB\n"
            "max_connections = 200\n"
            "max_parallel_workers_per_gather = 2\n"
            "# a local cluster has no replicas: tables made and filled in one transaction\n"
            "# (every import) then skip the WAL and are synced once at commit\n"
            "wal_level = minimal\n"
            "max_wal_senders = 0\n"
            "random_page_cost = 1.1\n"
            "jit = off\n"
            "logging_collector = off\n"
        )
        self._own(conf)
        main_conf = self.pgdata / "postgresql.conf"
        text = main_conf.read_text()
        if "include_if_exists = 'cim.conf'" not in text:
            main_conf.write_text(text + "\ninclude_if_exists = 'cim.conf'\n")
        (self.home / "port").write_text(f"{port}\n")

    def _start(self, timeout: float) -> None:
        log = self.home / "server.log"
        if not log.exists():
            log.touch()
        self._own(log)
        for attempt in range(3):
            port = self.port()
            self._write_conf(free_port() if port is None or _port_in_use(port) else port)
            self.socket_dir.mkdir(parents=True, exist_ok=True)
            self._own(self.socket_dir)
            result = self._run(
                [
                    str(self.bindir / "pg_ctl"),
                    "start",
                    "-D",
                    str(self.pgdata),
                    "-l",
                    str(log),
                    "-w",
                    "-t",
                    str(int(timeout)),
                ],
                check=False,
            )
            if result.returncode == 0:
                return
            if attempt == 2 or not _port_in_use(self.port() or 0):
                tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                raise DatabaseError(
                    f"the local PostgreSQL server under {self.pgdata} did not start: " + " | ".join(tail),
                    hint=f"see {log}",
                )
            time.sleep(0.2)

    def _ensure_database(self) -> None:
        conninfo = dict(host=str(self.socket_dir), port=self.port(), user=DB_USER)
        try:
            self._create_database(conninfo)
        except psycopg.OperationalError as exc:
            raise DatabaseError(
                f"the local PostgreSQL server under {self.pgdata} does not answer: {str(exc).strip().splitlines()[0]}",
                hint=f"see {self.home / 'server.log'}",
            ) from exc

    def _create_database(self, conninfo: dict) -> None:
        with psycopg.connect(dbname="postgres", autocommit=True, **conninfo) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone() is None:
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                    conn.execute(f"CREATE DATABASE {DB_NAME}")
        with psycopg.connect(dbname=DB_NAME, autocommit=True, **conninfo) as conn:
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            except psycopg.errors.FeatureNotSupported as exc:
                raise DatabaseError(
                    "the PostGIS extension is not installed for this PostgreSQL",
                    hint="apt-get install postgresql-15-postgis-3",
                ) from exc
            except psycopg.errors.UniqueViolation:
                pass  # created at the same moment by another process

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        lock_path = self.settings.data_dir / "pg.lock"
        with open(lock_path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
