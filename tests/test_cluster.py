"""`cim db`: the local PostGIS cluster, started for real."""

from __future__ import annotations

import os
import stat
import subprocess

import psycopg
import pytest
from psycopg import sql

from cim.cluster import LocalCluster
from cim.config import Settings
from tests.conftest import CIM, cli_env


@pytest.fixture
def fresh(tmp_path):
    s = Settings(data_dir=tmp_path / "cim", database_url=None)
    yield s
    LocalCluster(s).destroy()


def test_two_db_up_at_once_on_a_fresh_data_dir(fresh):
    env = cli_env(fresh)
    procs = [
        subprocess.Popen([CIM, "db", "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    cluster = LocalCluster(fresh)
    assert cluster.is_running()
    status = subprocess.run([CIM, "db", "status"], env=env, capture_output=True, text=True)
    assert status.returncode == 0, status.stderr
    assert "PostgreSQL 15" in status.stdout and "PostGIS 3" in status.stdout
    url = subprocess.run([CIM, "db", "url"], env=env, capture_output=True, text=True).stdout.strip()
    assert url.startswith("postgresql://cim:") and "@127.0.0.1:" in url
    with psycopg.connect(url) as conn:  # over TCP, with the generated password
        assert conn.execute("SELECT ST_AsText(ST_MakePoint(114.05, 22.54))").fetchone()[0] == "POINT(114.05 22.54)"
    # idempotent: up again changes nothing
    assert subprocess.run([CIM, "db", "up"], env=env, capture_output=True).returncode == 0
    assert LocalCluster(fresh).port() == cluster.port()


def test_down_then_status_then_up_again(fresh):
    cluster = LocalCluster(fresh)
    url = cluster.up()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE keep_me (v int)")
        conn.execute("INSERT INTO keep_me VALUES (42)")
    env = cli_env(fresh)
    assert subprocess.run([CIM, "db", "down"], env=env, capture_output=True).returncode == 0
    status = subprocess.run([CIM, "db", "status"], env=env, capture_output=True, text=True)
    assert status.returncode == 1 and "not running" in status.stdout
    assert cluster.up() == url
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT v FROM keep_me").fetchone()[0] == 42


def test_socket_and_tcp_both_listen(fresh):
    cluster = LocalCluster(fresh)
    cluster.up()
    with psycopg.connect(host=str(cluster.socket_dir), port=cluster.port(), user="cim", dbname="cim") as conn:
        assert conn.execute("SELECT postgis_lib_version()").fetchone()[0].startswith("3.")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another user")
def test_as_root_a_data_dir_postgres_cannot_reach_still_works(tmp_path):
    locked = tmp_path / "private"
    locked.mkdir()
    locked.chmod(stat.S_IRWXU)  # 0700: the postgres user cannot enter
    s = Settings(data_dir=locked / "cim", database_url=None)
    cluster = LocalCluster(s)
    try:
        url = cluster.up()
        assert (s.data_dir / "pg").is_symlink()
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone()[0] == 1
    finally:
        cluster.destroy()
    assert not (s.data_dir / "pg").exists()


def test_an_external_server_is_used_and_never_started(settings, db_url, tmp_path):
    env = dict(cli_env(settings), CIM_DATABASE_URL=db_url, CIM_DATA_DIR=str(tmp_path / "unused"))
    out = subprocess.run([CIM, "db", "up"], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and "CIM_DATABASE_URL is set" in out.stdout
    assert not (tmp_path / "unused" / "pg").exists()
    assert subprocess.run([CIM, "db", "url"], env=env, capture_output=True, text=True).stdout.strip() == db_url


def _make_it_a_cluster_of_an_earlier_version(cluster: LocalCluster) -> None:
    """Turn a cluster made now into one as earlier versions made it: one role of
    its own, ``cim``, the bootstrap superuser (with the password of the file),
    owning everything; no reader; initdb's pg_hba.conf; no PostGIS in template1."""
    sock = dict(host=str(cluster.socket_dir), port=cluster.port())
    with psycopg.connect(dbname="cim", user="postgres", autocommit=True, **sock) as conn:
        conn.execute("REASSIGN OWNED BY cim TO postgres")
        conn.execute("DROP OWNED BY cim_reader")  # one at a time: both in one default ACL trip PostgreSQL up
        conn.execute("DROP OWNED BY cim")
    with psycopg.connect(dbname="template1", user="postgres", autocommit=True, **sock) as conn:
        conn.execute("DROP EXTENSION postgis")
    with psycopg.connect(dbname="postgres", user="postgres", autocommit=True, **sock) as conn:
        conn.execute("DROP OWNED BY cim_reader")
        conn.execute("DROP OWNED BY cim")
        conn.execute("DROP ROLE cim")
        conn.execute("DROP ROLE cim_reader")
        conn.execute("CREATE ROLE old_admin SUPERUSER LOGIN")
    with psycopg.connect(dbname="postgres", user="old_admin", autocommit=True, **sock) as conn:
        conn.execute("ALTER ROLE postgres RENAME TO cim")
        conn.execute(sql.SQL("ALTER ROLE cim PASSWORD {}").format(sql.Literal(cluster.password())))
    with psycopg.connect(dbname="postgres", user="cim", autocommit=True, **sock) as conn:
        conn.execute("DROP ROLE old_admin")
    (cluster.home / "reader_password").unlink()
    (cluster.pgdata / "pg_hba.conf").write_text(
        "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n"
    )
    with psycopg.connect(dbname="postgres", user="cim", autocommit=True, **sock) as conn:
        conn.execute("SELECT pg_reload_conf()")


def test_a_cluster_of_an_earlier_version_is_upgraded_in_place(fresh):
    cluster = LocalCluster(fresh)
    url = cluster.up()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA layers_extra")
        conn.execute("CREATE TABLE layers.old_layer AS SELECT 1 AS fid, 'SRID=4326;POINT(114 22.5)'::geometry AS geom")
        conn.execute("CREATE TABLE public.keep_me (id serial PRIMARY KEY, v int)")
        conn.execute("INSERT INTO keep_me (v) VALUES (42)")
        conn.execute("CREATE FUNCTION public.answer() RETURNS int LANGUAGE sql AS 'SELECT 42'")
    _make_it_a_cluster_of_an_earlier_version(cluster)
    held = psycopg.connect(url, autocommit=True)  # a server of the earlier version, still connected
    try:
        assert held.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (True,)
        # brought up again (running, as by any `cim` command; then restarted): upgraded, the same URL
        for _ in range(2):
            assert LocalCluster(fresh).up() == url
            with psycopg.connect(url, autocommit=True) as conn:
                assert conn.execute(
                    "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
                ).fetchone() == ("cim", False)
                owners = conn.execute(
                    """SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c
                       JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE n.nspname IN ('layers', 'layers_extra', 'public') AND c.relname <> 'spatial_ref_sys'
                         AND c.relkind IN ('r', 'S')"""
                ).fetchall()
                assert owners == [("cim",)]
                assert conn.execute("SELECT v FROM keep_me").fetchone() == (42,)
                conn.execute("CREATE OR REPLACE FUNCTION public.answer() RETURNS int LANGUAGE sql AS 'SELECT 43'")
                assert conn.execute("SELECT answer()").fetchone() == (43,)  # the function is the app's now
                assert conn.execute(
                    "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'cim'"
                ).fetchone() == ("cim",)
                roles = dict(conn.execute("SELECT rolname, rolsuper FROM pg_roles WHERE rolname !~ '^pg_'").fetchall())
                assert roles == {"postgres": True, "cim": False, "cim_reader": False}
                # a database the application makes has PostGIS (template1 has it now)
                conn.execute("DROP DATABASE IF EXISTS cim_upgrade_probe")
                conn.execute("CREATE DATABASE cim_upgrade_probe")
            probe = psycopg.conninfo.make_conninfo(url, dbname="cim_upgrade_probe")
            with psycopg.connect(probe, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
                assert conn.execute("SELECT ST_AsText(ST_MakePoint(1, 2))").fetchone() == ("POINT(1 2)",)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("DROP DATABASE cim_upgrade_probe")
            with psycopg.connect(cluster.reader_url()) as conn:
                assert conn.execute("SELECT count(*) FROM layers.old_layer").fetchone() == (1,)
            with pytest.raises(psycopg.OperationalError, match="rejects connection"):
                psycopg.connect(url.replace("postgresql://cim:", "postgresql://postgres:"))
            held.close()
            assert LocalCluster(fresh).down()
        assert stat.S_IMODE((cluster.home / "reader_password").stat().st_mode) == 0o600
    finally:
        held.close()
