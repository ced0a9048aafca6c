"""The project-local PostgreSQL + PostGIS cluster under the data directory.

Used when ``CIM_DATABASE_URL`` is not set. The cluster lives in
``$CIM_DATA_DIR/pg/`` (``data/`` is PGDATA, ``run/`` the Unix socket, ``port``,
``password`` and ``reader_password`` the connection facts, ``server.log`` the
server log), listens on that socket and on 127.0.0.1 at a free port (and on
the addresses of ``CIM_DB_LISTEN``), and has a database ``cim`` with the
``postgis`` extension.

Roles: ``postgres``, the superuser, reached only over the Unix socket (whose
folder is private to the server's system user) and without a password; it
creates PostGIS and the roles. ``cim``, the application's role: owns the
database, its schemas and everything in them, may create databases, is not a
superuser. ``cim_reader``, for desktop GIS (QGIS): may read the ``layers`` and
``cim`` schemas, now and later, and nothing else. Every TCP connection needs
a password (scram-sha-256). A cluster made by an earlier version, whose only
role ``cim`` was the superuser, is upgraded in place when it is next brought
up (see :meth:`LocalCluster._upgrade_legacy_superuser`).

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
from psycopg import sql

from cim.config import Settings
from cim.errors import DatabaseError
from cim.net import free_port

DB_NAME = "cim"
#: the application's role: owns the database and what is in it, may create databases, is not a superuser
DB_USER = "cim"
#: the cluster's superuser: the Unix socket only, no password
SUPERUSER = "postgres"
#: the read-only role for desktop GIS (``cim db url --read-only``)
READER = "cim_reader"
#: the schemas the reader may read: layers.schema's LAYER_SCHEMA and META_SCHEMA (the cluster
#: sits below the layers package and does not import it)
READER_SCHEMAS = ("layers", "cim", "land", "components", "rasters")
#: tables of those schemas the reader may not read: password and token hashes, the audit
READER_PRIVATE = ("cim.users", "cim.tokens", "cim.audit")
#: a superuser that exists only while a cluster made by an earlier version is upgraded
_UPGRADER = "cim_upgrade"
#: every address of one family: no need to listen on 127.0.0.1 besides it
_WILDCARDS = ("*", "0.0.0.0")
_LOOPBACK = ("127.0.0.1", "::1", "localhost")
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
        """The application role's password."""
        return (self.home / "password").read_text().strip()

    def reader_password(self) -> str:
        """The read-only role's password."""
        return (self.home / "reader_password").read_text().strip()

    def url(self) -> str:
        """The application's TCP connection URL (for the app, psql, QGIS with write access)."""
        return f"postgresql://{DB_USER}:{self.password()}@127.0.0.1:{self._port()}/{DB_NAME}"

    def reader_url(self) -> str:
        """The read-only role's URL, for QGIS: at the first address of ``CIM_DB_LISTEN`` other
        computers can reach, if it names one, else at 127.0.0.1."""
        port = self._port()
        try:
            password = self.reader_password()
        except FileNotFoundError:
            raise DatabaseError(
                f"the local database under {self.home} has no read-only role yet", hint="run: cim db up"
            ) from None
        return f"postgresql://{READER}:{password}@{self._lan_host()}:{port}/{DB_NAME}"

    def _port(self) -> int:
        port = self.port()
        if port is None:
            raise DatabaseError(f"the local database under {self.home} is not initialised", hint="run: cim db up")
        return port

    def listen_addresses(self) -> str:
        """PostgreSQL's ``listen_addresses``: 127.0.0.1 (the application's URL) and ``CIM_DB_LISTEN``."""
        wanted = [a.strip() for a in self.settings.db_listen.split(",") if a.strip()]
        if "*" in wanted:
            return "*"
        if not any(a in _WILDCARDS for a in wanted):
            wanted.insert(0, "127.0.0.1")
        return ", ".join(dict.fromkeys(wanted))

    def _lan_host(self) -> str:
        for address in (a.strip() for a in self.settings.db_listen.split(",")):
            if address and address not in (*_WILDCARDS, "::", *_LOOPBACK):
                return f"[{address}]" if ":" in address else address
        return "127.0.0.1"

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
        """Initialise if needed, start if not running, make sure the roles, the
        database and PostGIS are as they should be (upgrading a cluster made by
        an earlier version). Idempotent. Returns the application's URL."""
        with self._locked():
            if not self.initialised:
                self._initdb()
            if not self.is_running():
                self._start(timeout)
            elif self._write_hba():  # a server started by an earlier version: its rules now
                self._run([str(self.bindir / "pg_ctl"), "reload", "-D", str(self.pgdata)])
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

    def _secret(self, name: str) -> str:
        """A password kept in the cluster folder (mode 0600), made the first time it is asked for."""
        path = self.home / name
        with contextlib.suppress(FileNotFoundError):
            value = path.read_text().strip()
            if value:
                return value
            path.unlink()
        value = secrets.token_hex(16)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(value + "\n")
        self._own(path)
        return value

    def _initdb(self) -> None:
        self._prepare_home()
        if self.pgdata.exists() and not (self.pgdata / "PG_VERSION").is_file():
            shutil.rmtree(self.pgdata)  # a half-made cluster from an interrupted initdb
        self._secret("password")  # the roles' passwords: the roles themselves are made by _provision
        self._secret("reader_password")
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                SUPERUSER,
                "-E",
                "UTF8",
                "--no-locale",
                "--auth=trust",  # pg_hba.conf is ours (_write_hba), written before the first start
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
            f"listen_addresses = '{self.listen_addresses()}'\n"
            "password_encryption = 'scram-sha-256'\n"
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
        self._write_hba()
        (self.home / "port").write_text(f"{port}\n")

    def _write_hba(self) -> bool:
        """Who may connect, how (``pg_hba.conf``): the Unix socket as any role
        (its folder is private to the server's system user), TCP with a
        password only, never as the superuser. Returns whether it changed."""
        hba = self.pgdata / "pg_hba.conf"
        text = (
            "# written by cim (cim/cluster.py) at every start; edits here are overwritten\n"
            "# TYPE  DATABASE  USER      ADDRESS  METHOD\n"
            "local   all       all                trust\n"
            f"host    all       {SUPERUSER:<9} all      reject\n"
            "host    all       all       all      scram-sha-256\n"
        )
        with contextlib.suppress(FileNotFoundError):
            if hba.read_text() == text:
                return False
        hba.write_text(text)
        self._own(hba)
        return True

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
        try:
            self._provision()
        except psycopg.OperationalError as exc:
            raise DatabaseError(
                f"the local PostgreSQL server under {self.pgdata} does not answer: {str(exc).strip().splitlines()[0]}",
                hint=f"see {self.home / 'server.log'}",
            ) from exc

    def _connect(self, dbname: str, user: str = SUPERUSER) -> psycopg.Connection:
        """A connection over the Unix socket (trusted: only the server's system user and root reach it)."""
        return psycopg.connect(host=str(self.socket_dir), port=self.port(), user=user, dbname=dbname, autocommit=True)

    def _provision(self) -> None:
        """As the superuser: the roles, the database, PostGIS, who owns what, what
        the reader may read. Every step is idempotent; run at every ``up``."""
        try:
            admin = self._connect("postgres")
        except psycopg.OperationalError:
            self._upgrade_legacy_superuser()  # or the server does not answer: that error, from here
            admin = self._connect("postgres")
        with admin:
            if not _role_exists(admin, DB_USER):
                # first, so that a database the application creates has PostGIS: only a
                # superuser can create it. Once, before the role: template1 in use would
                # make another process's CREATE DATABASE fail.
                with self._connect("template1") as conn:
                    _create_postgis(conn)
            self._ensure_roles(admin)
            self._ensure_db(admin)
        with self._connect(DB_NAME) as conn:
            _create_postgis(conn)
            if conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis_sfcgal'").fetchone():
                # 3D functions (ST_Extrude) for bench/bench_buildings.py, which the application cannot create
                conn.execute("CREATE EXTENSION IF NOT EXISTS postgis_sfcgal")
            conn.execute(_HAND_OVER)
            self._grant_reader(conn)

    @staticmethod
    def _grant_reader(conn: psycopg.Connection) -> None:
        """The reader may use the schemas and read their tables, those made
        later too; each grant only where it is missing (no catalog rewrite, so
        no clash with an import's DDL, when there is nothing to do)."""
        app, reader = sql.Identifier(DB_USER), sql.Identifier(READER)
        for schema in READER_SCHEMAS:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(sql.Identifier(schema), app))
        facts = {"schemas": list(READER_SCHEMAS), "app": DB_USER, "reader": READER, "private": list(READER_PRIVATE)}
        missing = conn.execute(
            """SELECT n.nspname,
                      NOT has_schema_privilege(%(reader)s, n.oid, 'USAGE'),
                      coalesce((SELECT array_agg(c.relname::text) FROM pg_class c WHERE c.relnamespace = n.oid
                              AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
                              AND NOT has_table_privilege(%(reader)s, c.oid, 'SELECT')
                              AND n.nspname || '.' || c.relname <> ALL(%(private)s)), '{}'),
                      NOT EXISTS (SELECT 1 FROM pg_default_acl d, aclexplode(d.defaclacl) a
                                  WHERE d.defaclnamespace = n.oid AND d.defaclobjtype = 'r'
                                    AND d.defaclrole = %(app)s::regrole AND a.grantee = %(reader)s::regrole
                                    AND a.privilege_type = 'SELECT')
               FROM pg_namespace n WHERE n.nspname = ANY(%(schemas)s)""",
            facts,
        ).fetchall()
        for name, usage, tables, defaults in missing:
            where = sql.Identifier(name)
            if usage:
                conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(where, reader))
            for table in tables:
                conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(sql.Identifier(name, table), reader))
            if defaults:
                conn.execute(
                    sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(
                        app, where, reader
                    )
                )

        # made after the default privileges, the private tables were granted by them: taken back
        for qualified in READER_PRIVATE:
            granted = conn.execute(
                "SELECT to_regclass(%s) IS NOT NULL AND has_table_privilege(%s, to_regclass(%s), 'SELECT')",
                (qualified, READER, qualified),
            ).fetchone()
            if granted and granted[0]:
                conn.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(sql.Identifier(*qualified.split(".")), reader))

    def _ensure_roles(self, admin: psycopg.Connection) -> None:
        """The application's role and the reader, with the passwords of their files."""
        row = admin.execute("SELECT oid = 10, rolsuper FROM pg_roles WHERE rolname = %s", (DB_USER,)).fetchone()
        if row is not None and row[0]:
            raise DatabaseError(
                f"the role {DB_USER!r} of the local cluster is its bootstrap superuser, and a role "
                f"{SUPERUSER!r} exists too: it cannot be made an ordinary role",
                hint=f"drop or rename the role {SUPERUSER!r} (psql -h {self.socket_dir} -U {DB_USER} postgres), "
                "then run: cim db up",
            )
        for role, createdb, file in ((DB_USER, True, "password"), (READER, False, "reader_password")):
            before = admin.execute(
                "SELECT rolsuper, rolcreaterole, rolcreatedb, rolcanlogin, rolpassword IS NULL FROM pg_authid "
                "WHERE rolname = %s",
                (role,),
            ).fetchone()
            kept = self.home / file
            password_is_new = not (kept.is_file() and kept.read_text().strip())
            password = self._secret(file)
            name = sql.Identifier(role)
            if before is None:
                admin.execute(sql.SQL("CREATE ROLE {}").format(name))
            if before is None or tuple(before[:4]) != (False, False, createdb, True):
                options = f"NOSUPERUSER NOCREATEROLE {'CREATEDB' if createdb else 'NOCREATEDB'} LOGIN"
                admin.execute(sql.SQL("ALTER ROLE {} {}").format(name, sql.SQL(options)))
            if before is None or before[4] or password_is_new:  # the file is the password
                admin.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(name, sql.Literal(password)))
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(_UPGRADER)))

    def _ensure_db(self, admin: psycopg.Connection) -> None:
        app = sql.Identifier(DB_USER)
        row = admin.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone()
        if row is None:
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(DB_NAME), app))
        elif row[0] != DB_USER:
            admin.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(DB_NAME), app))
        connect = admin.execute("SELECT has_database_privilege(%s, %s, 'CONNECT')", (READER, DB_NAME)).fetchone()
        if not (connect and connect[0]):  # PUBLIC may connect, unless an administrator revoked it
            admin.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(DB_NAME), sql.Identifier(READER))
            )

    def _upgrade_legacy_superuser(self) -> None:
        """A cluster made by an earlier version has one role of its own, ``cim``:
        the superuser initdb made, which the application connected as. That role
        (the bootstrap superuser, which cannot stop being one) is renamed
        ``postgres`` and loses its password; provisioning then makes ``cim``
        anew, an ordinary role with the same password, and hands it the
        database and everything the old role made in it. A temporary superuser
        does the rename (a session cannot rename its own role)."""
        with self._connect("postgres", user=DB_USER) as conn:
            row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
            if not (row and row[0]):
                raise DatabaseError(
                    f"the local cluster under {self.pgdata} has no superuser {SUPERUSER!r} and {DB_USER!r} is not one",
                    hint=f"see {self.home / 'server.log'}",
                )
            if not _role_exists(conn, _UPGRADER):
                conn.execute(sql.SQL("CREATE ROLE {} SUPERUSER LOGIN").format(sql.Identifier(_UPGRADER)))
        with self._connect("postgres", user=_UPGRADER) as conn:
            conn.execute(
                sql.SQL("ALTER ROLE {} RENAME TO {}").format(sql.Identifier(DB_USER), sql.Identifier(SUPERUSER))
            )
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD NULL").format(sql.Identifier(SUPERUSER)))

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


def _role_exists(conn: psycopg.Connection, role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


def _create_postgis(conn: psycopg.Connection) -> None:
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    except psycopg.errors.FeatureNotSupported as exc:
        raise DatabaseError(
            "the PostGIS extension is not installed for this PostgreSQL",
            hint="apt-get install postgresql-15-postgis-3",
        ) from exc
    except psycopg.errors.UniqueViolation:
        pass  # created at the same moment by another process


#: run as the superuser in the application's database: the application's role
#: gets every schema, table, view, sequence and function the superuser owns
#: there, except PostgreSQL's own and the extensions' (a cluster made by an
#: earlier version made them all as the superuser). Nothing to do the second time.
_HAND_OVER = f"""
DO $hand_over$
DECLARE
    su oid := (SELECT oid FROM pg_roles WHERE rolname = current_user);
    r record;
BEGIN
    FOR r IN
        SELECT n.nspname FROM pg_namespace n
        WHERE n.nspowner = su AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass
                          AND d.objid = n.oid AND d.deptype = 'e')
    LOOP
        EXECUTE format('ALTER SCHEMA %I OWNER TO %I', r.nspname, '{DB_USER}');
    END LOOP;
    FOR r IN
        SELECT c.oid::regclass AS rel FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relowner = su AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
          AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                          AND (d.deptype = 'e' OR (c.relkind = 'S' AND d.deptype IN ('a', 'i'))))
    LOOP  -- a sequence of a serial or identity column goes with its table
        EXECUTE format('ALTER TABLE %s OWNER TO %I', r.rel, '{DB_USER}');
    END LOOP;
    FOR r IN
        SELECT p.oid::regprocedure AS fn FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE p.proowner = su AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                          AND d.objid = p.oid AND d.deptype = 'e')
    LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO %I', r.fn, '{DB_USER}');
    END LOOP;
END
$hand_over$
"""
