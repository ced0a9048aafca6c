"""PostGIS as a desktop GIS user (QGIS) sees it: tables and columns described
in Chinese, no two tables of one name, a read-only role that can read the
layers (those imported later too) and change nothing, an application that is
not a superuser, and a cluster that can listen on the LAN with passwords."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from cim.cluster import LocalCluster
from cim.config import Settings
from cim.live.store import LIVE_COMMENTS, ensure_live_schema
from tests.conftest import run_cim

PSQL = "/usr/bin/psql"

local_only = pytest.mark.skipif(
    bool(os.environ.get("CIM_TEST_DATABASE_URL")),
    reason="roles are the local cluster's: with CIM_TEST_DATABASE_URL the project makes none",
)


def psql(url: str, command: str) -> subprocess.CompletedProcess:
    """Debian's psql, as QGIS would connect: over TCP with the URL's role and password."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return subprocess.run(
        [PSQL, url, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose", "-c", command],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.fixture(scope="module")
def reader_url(settings, sample) -> str:
    out = run_cim(settings, "db", "url", "--read-only")
    assert out.returncode == 0, out.stderr
    url = out.stdout.strip()
    assert url.startswith("postgresql://cim_reader:") and url.endswith("/cim")
    return url


# --- comments -------------------------------------------------------------------------


def test_a_layer_table_and_its_columns_are_described_in_chinese(conn, sample):
    title = conn.execute("SELECT title FROM cim.layers WHERE name = 'buildings'").fetchone()[0]
    assert title == "建筑"
    described = conn.execute(
        "SELECT obj_description('layers.buildings'::regclass, 'pg_class'), "
        "col_description('layers.buildings'::regclass, attnum) FROM pg_attribute "
        "WHERE attrelid = 'layers.buildings'::regclass AND attname = %s",
        ("height",),
    ).fetchone()
    assert described == ("建筑", "高度 (米)")
    columns = dict(
        conn.execute(
            "SELECT attname, col_description(attrelid, attnum) FROM pg_attribute "
            "WHERE attrelid = 'layers.sensors'::regclass AND attnum > 0 AND NOT attisdropped"
        ).fetchall()
    )
    assert columns["fid"] == "要素编号 (主键)" and columns["geom"].startswith("几何")
    assert columns["street"] == "街道" and columns["category_name"] == "类别"
    assert (
        conn.execute("SELECT obj_description('layers.sensors'::regclass, 'pg_class')").fetchone()[0] == "物联感知设备"
    )
    assert (
        conn.execute("SELECT obj_description('cim.layers'::regclass, 'pg_class')").fetchone()[0].startswith("图层目录")
    )


def test_the_live_tables_are_described_in_chinese(conn, sample):
    ensure_live_schema(conn)
    for table, (title, columns) in LIVE_COMMENTS.items():
        regclass = f"live.{table}"
        assert conn.execute("SELECT obj_description(%s::regclass, 'pg_class')", (regclass,)).fetchone()[0] == title
        got = dict(
            conn.execute(
                "SELECT attname, col_description(attrelid, attnum) FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                (regclass,),
            ).fetchall()
        )
        assert all(got[c] == text for c, text in columns.items()), table
        assert all(got[c] for c in got), f"{table}: a column without a comment"


def test_no_table_name_is_in_two_schemas(conn, sample):
    ensure_live_schema(conn)
    repeated = conn.execute(
        """SELECT c.relname, array_agg(n.nspname ORDER BY n.nspname) FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname IN ('layers', 'live', 'cim') AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
           GROUP BY c.relname HAVING count(*) > 1"""
    ).fetchall()
    assert repeated == []
    registries = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'live'").fetchall()}
    assert {"sensor_registry", "camera_registry", "ticket_records"} <= registries


def test_live_tables_of_an_earlier_version_are_renamed_with_their_rows(db_url):
    """A database whose live registries still have the layers' names: the hub's schema setup renames them."""
    name = "cim_live_rename"
    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(psycopg.conninfo.make_conninfo(db_url, dbname=name), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")  # there already: template1 has it
            conn.execute(
                """CREATE SCHEMA live;
                CREATE TABLE live.sensors (id text PRIMARY KEY, category text NOT NULL, category_name text,
                    vendor text, install_date date, street text, community text, grid text,
                    geom geometry(Point, 4326) NOT NULL);
                CREATE INDEX sensors_geom ON live.sensors USING gist (geom);
                CREATE TABLE live.cameras (id text PRIMARY KEY, name text, heading double precision,
                    fov double precision, range_m double precision, stream_url text, status text, street text,
                    community text, grid text, geom geometry(Point, 4326) NOT NULL);
                CREATE TABLE live.tickets (id text PRIMARY KEY, channel text NOT NULL, category text NOT NULL,
                    address text, department text, status text, created_at timestamptz NOT NULL,
                    acknowledged_at timestamptz, contacted_at timestamptz, resolved_at timestamptz, street text,
                    community text, grid text, updated_at timestamptz NOT NULL DEFAULT now(),
                    geom geometry(Point, 4326) NOT NULL);
                CREATE INDEX tickets_geom ON live.tickets USING gist (geom);
                INSERT INTO live.sensors (id, category, geom) VALUES ('S-1', 'noise', 'SRID=4326;POINT(114 22.5)');
                INSERT INTO live.tickets (id, channel, category, created_at, geom)
                    VALUES ('T-1', '12345', '噪音', now(), 'SRID=4326;POINT(114 22.5)');"""
            )
            ensure_live_schema(conn)
            ensure_live_schema(conn)  # the second time finds nothing to rename
            tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'live'")}
            assert not tables & {"sensors", "cameras", "tickets"}
            assert conn.execute("SELECT id FROM live.sensor_registry").fetchall() == [("S-1",)]
            assert conn.execute("SELECT id FROM live.ticket_records").fetchall() == [("T-1",)]
            indexes = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'live'")}
            assert {"sensor_registry_pkey", "sensor_registry_geom", "ticket_records_geom"} <= indexes
            assert not {i for i in indexes if i.startswith(("sensors_", "cameras_", "tickets_"))}
    finally:
        with psycopg.connect(db_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# --- roles ------------------------------------------------------------------------------


@local_only
def test_the_application_is_not_a_superuser(conn):
    row = conn.execute(
        "SELECT current_user, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    assert row == ("cim", False, False)
    owners = conn.execute(
        "SELECT DISTINCT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname IN ('layers', 'cim', 'live')"
    ).fetchall()
    assert owners == [("cim",)]


@local_only
def test_the_reader_reads_the_layers_and_changes_nothing(conn, reader_url):
    from cim.auth.store import ensure_auth_schema

    ensure_auth_schema(conn)  # made after the reader's default grants, as a server's first start makes it
    conn.commit()
    count = conn.execute("SELECT count(*) FROM layers.buildings").fetchone()[0]
    got = psql(reader_url, "SELECT count(*) FROM layers.buildings")
    assert got.returncode == 0, got.stderr
    assert int(got.stdout.strip()) == count > 1000
    got = psql(reader_url, "SELECT count(*) FROM cim.layers WHERE name = 'buildings'")
    assert got.stdout.strip() == "1", got.stderr
    # what QGIS lists: the layer tables through PostGIS's geometry_columns
    got = psql(reader_url, "SELECT count(*) FROM geometry_columns WHERE f_table_schema = 'layers'")
    assert int(got.stdout.strip()) >= 10, got.stderr
    refused = {
        "INSERT INTO layers.buildings SELECT * FROM layers.buildings LIMIT 1": "permission denied",
        "UPDATE layers.buildings SET height = 1": "permission denied",
        "DELETE FROM layers.buildings": "permission denied",
        "CREATE TABLE layers.mine (v int)": "permission denied",
        "CREATE TABLE public.mine (v int)": "permission denied",
        "CREATE SCHEMA mine": "permission denied",
        # PostgreSQL words this refusal "must be owner of table" (SQLSTATE 42501, insufficient_privilege)
        "DROP TABLE layers.buildings": "must be owner",
        "SELECT count(*) FROM cim_staging.nothing": "permission denied",
        # no password or token hashes, no audit for a desktop reader
        "SELECT password_hash FROM cim.users": "permission denied",
        "SELECT token_sha256 FROM cim.tokens": "permission denied",
        "SELECT count(*) FROM cim.audit": "permission denied",
    }
    for command, said in refused.items():
        got = psql(reader_url, command)
        assert got.returncode != 0, command
        assert "ERROR:  42501: " in got.stderr and said in got.stderr, (command, got.stderr)
    assert conn.execute("SELECT count(*) FROM layers.buildings").fetchone()[0] == count


@local_only
def test_a_layer_imported_after_the_grants_is_readable_by_the_reader(settings, conn, reader_url, tmp_path):
    source = tmp_path / "qgis_probe.geojson"
    features = [
        {
            "type": "Feature",
            "properties": {"name": f"探针{i}", "height": 10.0 + i, "mystery": i},
            "geometry": {"type": "Point", "coordinates": [114.05 + i / 1000, 22.54]},
        }
        for i in range(3)
    ]
    source.write_text(json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False))
    name = "qgis_probe"
    try:
        for version in (1, 2):  # new, then replaced: the new table keeps the grants of the old
            out = run_cim(
                settings, "import", "layer", str(source), "--name", name, "--title", "探针图层", "--no-grid-join"
            )
            assert out.returncode == 0, out.stderr
            got = psql(reader_url, f"SELECT count(*), max(height) FROM layers.{name}")
            assert got.returncode == 0 and got.stdout.strip() == "3|12", (version, got.stderr)
        comments = conn.execute(
            "SELECT obj_description(attrelid, 'pg_class'), attname, col_description(attrelid, attnum) "
            "FROM pg_attribute WHERE attrelid = 'layers.qgis_probe'::regclass AND attnum > 0 ORDER BY attnum"
        ).fetchall()
        assert {c[0] for c in comments} == {"探针图层"}
        assert {c[1]: c[2] for c in comments} == {
            "fid": "要素编号 (主键)",
            "name": "名称",
            "height": "高度 (米)",
            "mystery": None,
            "geom": "几何 (WGS 84 经纬度, EPSG:4326)",
        }
        acl = conn.execute("SELECT relacl::text[] FROM pg_class WHERE oid = 'layers.qgis_probe'::regclass").fetchone()
        assert [a for a in acl[0] if a.startswith("cim_reader=")] == ["cim_reader=r/cim"]
    finally:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier("layers", name)))
        conn.execute("DELETE FROM cim.layers WHERE name = %s", (name,))


def test_an_external_server_has_no_read_only_url(db_url, tmp_path):
    external = Settings(data_dir=tmp_path / "unused", database_url=db_url)
    out = run_cim(external, "db", "url", "--read-only")
    assert out.returncode != 0 and out.stdout == ""
    message = out.stderr.strip()
    assert "\n" not in message and "CIM_DATABASE_URL" in message and "create a read-only role" in message
    assert not (tmp_path / "unused" / "pg").exists()


# --- the LAN -------------------------------------------------------------------------------


def _listening(port: int) -> set[str]:
    """The IPv4 addresses a TCP port is listened on (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def _lan_address() -> str | None:
    """An address of this machine other than loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent, the route picks the interface
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_listening_on_every_address_asks_every_tcp_connection_for_a_password(tmp_path):
    fresh = Settings.from_env({"CIM_DATA_DIR": str(tmp_path / "cim"), "CIM_DB_LISTEN": "0.0.0.0"})
    assert fresh.db_listen == "0.0.0.0" and fresh.uses_local_cluster
    cluster = LocalCluster(fresh)
    try:
        url = cluster.up()
        port = cluster.port()
        assert port is not None
        with psycopg.connect(url) as conn:
            assert conn.execute("SHOW listen_addresses").fetchone()[0] == "0.0.0.0"
        assert _listening(port) == {"0.0.0.0"}
        password = cluster.password()
        # 127.0.0.2 answers only through the wildcard address; a LAN address where the machine has one
        for host in ("127.0.0.2", *filter(None, [_lan_address()])):
            common = dict(host=host, port=port, dbname="cim", passfile="/dev/null", connect_timeout=10)
            with psycopg.connect(user="cim", password=password, **common) as conn:
                assert conn.execute("SELECT host(inet_server_addr())").fetchone()[0] == host
            for user in ("cim", "cim_reader", "postgres"):
                with pytest.raises(psycopg.OperationalError, match=r"no password supplied|rejects connection"):
                    psycopg.connect(user=user, **common)
            with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
                psycopg.connect(user="cim", password="wrong", **common)
        # the superuser has no password and no TCP at all; the Unix socket still serves the application
        with pytest.raises(psycopg.OperationalError, match="rejects connection"):
            psycopg.connect(host="127.0.0.1", port=port, user="postgres", password=password, dbname="cim")
        with psycopg.connect(host=str(cluster.socket_dir), port=port, user="cim", dbname="cim") as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert cluster.reader_url().split("@")[1] == f"127.0.0.1:{port}/cim"
    finally:
        cluster.destroy()


def test_a_named_lan_address_is_listened_on_besides_loopback(tmp_path):
    cluster = LocalCluster(Settings(data_dir=tmp_path / "cim", database_url=None, db_listen="192.168.1.10"))
    assert cluster.listen_addresses() == "127.0.0.1, 192.168.1.10"
    assert LocalCluster(Settings(data_dir=tmp_path, db_listen="0.0.0.0, ::")).listen_addresses() == "0.0.0.0, ::"
    assert LocalCluster(Settings(data_dir=tmp_path, db_listen="*")).listen_addresses() == "*"
    (tmp_path / "cim" / "pg").mkdir(parents=True)
    (tmp_path / "cim" / "pg" / "port").write_text("5999\n")
    (tmp_path / "cim" / "pg" / "reader_password").write_text("secret\n")
    assert cluster.reader_url() == "postgresql://cim_reader:secret@192.168.1.10:5999/cim"


@pytest.mark.parametrize("bad", [" , ", "127.0.0.1'; x", "host name"])
def test_a_bad_listen_address_is_refused_at_once(bad):
    from cim.errors import ConfigError

    with pytest.raises(ConfigError, match="CIM_DB_LISTEN"):
        Settings.from_env({"CIM_DB_LISTEN": bad})
