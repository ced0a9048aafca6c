"""`cim db`: the local PostGIS cluster, started for real."""

from __future__ import annotations

import os
import stat
import subprocess

import psycopg
import pytest

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
