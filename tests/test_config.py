"""The settings object: read from CIM_* variables, validated, documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cim.config import Settings, settings_table
from cim.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def test_every_setting_is_read_from_its_variable(tmp_path):
    s = Settings.from_env(
        {
            "CIM_DATA_DIR": str(tmp_path / "d"),
            "CIM_PORT": "8100",
            "CIM_DB_POOL_SIZE": "4",
            "CIM_DATABASE_URL": "postgresql://u@db.example:5433/cim",
            "CIM_NODE_MODULES": str(tmp_path),
            "CIM_MQTT_URL": "mqtt://broker:1883",
            "CIM_SLA_RESOLVE_HOURS": "48",
            "OTHER": "x",
            "CIM_HOST": "",
        }
    )  # an empty variable counts as unset
    assert (s.data_dir, s.port, s.db_pool_size, s.node_modules) == (tmp_path / "d", 8100, 4, tmp_path)
    assert s.database_url == "postgresql://u@db.example:5433/cim" and not s.uses_local_cluster
    assert s.mqtt_url == "mqtt://broker:1883" and s.sla_resolve_hours == 48 and s.host == "127.0.0.1"
    assert s.tilesets_dir == tmp_path / "d" / "tilesets" and s.viewer_config_file == tmp_path / "d" / "viewer.json"


def test_defaults_and_relative_paths_are_resolved(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    s = Settings.from_env({"CIM_DATA_DIR": "data"})
    assert s.data_dir == tmp_path / "data" and s.data_dir.is_absolute()
    assert Settings.from_env({}).data_dir == tmp_path / ".cim"
    assert Settings.from_env({}).database_url is None and Settings.from_env({}).port == 8000


@pytest.mark.parametrize(
    "env, problem",
    [
        ({"CIM_PORT": "eighty"}, "CIM_PORT='eighty': Input should be a valid integer"),
        ({"CIM_PORT": "70000"}, "CIM_PORT='70000': Input should be less than or equal to 65535"),
        ({"CIM_DB_POOL_SIZE": "1"}, "CIM_DB_POOL_SIZE='1': Input should be greater than or equal to 2"),
        ({"CIM_LIVE_RETENTION_DAYS": "-3"}, "CIM_LIVE_RETENTION_DAYS='-3'"),
        ({"CIM_MQTT_URL": "http://u:secret@broker"}, "CIM_MQTT_URL=(value not shown): not an mqtt://host:port URL"),
        (
            {"CIM_DATABASE_URL": "postgresql://u:pw d@x"},
            "CIM_DATABASE_URL=(value not shown): not a PostgreSQL connection",
        ),
    ],
)
def test_a_bad_variable_is_named_with_its_problem(env, problem):
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert problem in str(info.value) and "\n" not in str(info.value)
    assert "secret" not in str(info.value) and "pw d" not in str(info.value)  # no password repeated


def test_the_readme_table_is_written_from_the_settings():
    """README's configuration table lists exactly the settings, with their defaults (python -m cim.config)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert settings_table() in readme
    documented = set(re.findall(r"^\| `(CIM_[A-Z0-9_]+)`", readme, re.M))
    assert documented == {f"CIM_{name.upper()}" for name in Settings.model_fields}
