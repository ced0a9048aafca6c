"""Who may see what under ``/tilesets``, and tilesets that stay in step with their layers:

- ``/tilesets/NAME/...`` serves the published version's files only (ETag,
  ranges, media types as before); old versions, dot-files, traversal, folder
  listings and links that lead out of the version are 404;
- no response carries a path of the server (``/layers``, ``/tilesets``,
  ``/bim``, ``/viewer/config.json``, ``/collections``);
- an import killed between its layer's commit and its tileset's swap is put
  back in step by the next ``cim import`` and by the server's start;
- a cut or gutted IFC is refused in one line, the previous version intact.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from cim.config import Settings
from import_scripts.contract import KILL_AFTER_COMMIT, reconcile_tilesets
from tests.conftest import CIM, DATA, REPO, cli_env, run_cim
from tiles.output import TilesetVersion, published_folder

DUPLEX = DATA / "ifc" / "duplex.ifc"


# --- what /tilesets serves -------------------------------------------------------------


def _version(settings: Settings, name: str) -> Path:
    folder = published_folder(settings.tilesets_dir, name)
    assert folder is not None, f"tileset {name!r} is not published"
    return folder


def test_the_published_version_is_served_with_etag_ranges_and_media_types(http, settings):
    folder = _version(settings, "buildings")
    tileset = http.get("/tilesets/buildings/tileset.json")
    assert tileset.status_code == 200 and tileset.headers["content-type"].startswith("application/json")
    assert tileset.content == (folder / "tileset.json").read_bytes()
    assert tileset.headers["etag"] and tileset.headers["last-modified"]
    again = http.get("/tilesets/buildings/tileset.json", headers={"If-None-Match": tileset.headers["etag"]})
    assert again.status_code == 304
    part = http.get("/tilesets/buildings/tileset.json", headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and part.content == tileset.content[:10]
    glb = next(p for p in sorted(folder.rglob("*.glb")))
    got = http.get(f"/tilesets/buildings/{glb.relative_to(folder).as_posix()}")
    assert got.status_code == 200 and got.headers["content-type"] == "model/gltf-binary"
    assert got.content[:4] == b"glTF"
    assert http.head("/tilesets/buildings/tileset.json").status_code == 200


def test_old_versions_dot_files_traversal_and_listings_are_refused(http, settings):
    root, folder = settings.tilesets_dir, _version(settings, "buildings")
    assert (root / ".versions" / folder.name / "tileset.json").is_file()
    assert (root / ".buildings.lock").exists()
    subfolder = next(p for p in folder.rglob("*") if p.is_dir()).relative_to(folder).as_posix()
    refused = [
        f"/tilesets/.versions/{folder.name}/tileset.json",  # a version by its folder: never, current or not
        "/tilesets/.versions/",
        "/tilesets/.buildings.lock",
        "/tilesets/buildings/.resume-key",
        "/tilesets/buildings/../.buildings.lock",
        f"/tilesets/buildings/%2e%2e/.versions/{folder.name}/tileset.json",  # encoded: decoded before judged
        "/tilesets/buildings/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/tilesets/buildings/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/tilesets/%2fetc%2fpasswd",
        "/tilesets/buildings",  # folders: no listings
        "/tilesets/buildings/",
        f"/tilesets/buildings/{subfolder}",
        f"/tilesets/buildings/{subfolder}/",
        "/tilesets/",
        "/tilesets/buildings/no-such.glb",
        "/tilesets/no_such_tileset/tileset.json",
    ]
    for url in refused:
        got = http.get(url)
        assert got.status_code == 404, (url, got.status_code)
        assert str(root) not in got.text and "/etc" not in got.text, url
    assert http.post("/tilesets/buildings/tileset.json").status_code == 405


def test_links_that_leave_the_published_version_are_refused(http, settings, tmp_path):
    root, folder = settings.tilesets_dir, _version(settings, "buildings")
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the web")
    planted = {
        folder / "etc": Path("/etc"),  # a folder outside the data directory
        folder / "hostname": Path("/etc/hostname"),
        folder / "secret.txt": secret,
        folder / "lock": root / ".buildings.lock",  # inside the data directory, outside the version
        root / "etc_link": Path("/etc"),  # a name whose link leads elsewhere
        root / "other": folder,  # another name's version
        root / "plain": tmp_path,  # (a link to) a plain folder
    }
    (tmp_path / "tileset.json").write_text("{}")
    inside = folder / "alias.json"  # a link that stays inside the version is fine
    try:
        for link, target in planted.items():
            link.symlink_to(target)
        inside.symlink_to("tileset.json")
        for url in [
            "/tilesets/buildings/etc/passwd",
            "/tilesets/buildings/etc/",
            "/tilesets/buildings/hostname",
            "/tilesets/buildings/secret.txt",
            "/tilesets/buildings/lock",
            "/tilesets/etc_link/passwd",
            "/tilesets/other/tileset.json",
            "/tilesets/plain/tileset.json",
        ]:
            got = http.get(url)
            assert got.status_code == 404, (url, got.status_code)
            assert "not for the web" not in got.text and "root:" not in got.text, url
        assert http.get("/tilesets/buildings/alias.json").content == (folder / "tileset.json").read_bytes()
        listed = {t["name"] for t in http.get("/tilesets").json()}
        assert "buildings" in listed and not listed & {"etc_link", "other", "plain"}
    finally:
        for link in [*planted, inside]:
            link.unlink(missing_ok=True)


# --- no server paths in responses ------------------------------------------------------


def _no_server_paths(text: str, settings: Settings) -> None:
    for path in (str(settings.data_dir), str(REPO), "/tmp/", "/home/", "/root/", "/srv/"):
        assert path not in text, path


def test_no_response_carries_a_server_path(http, settings):
    name = "t_paths"
    with TilesetVersion.writing(settings.tilesets_dir, name) as version:  # as the oblique importer writes it
        extras = {"kind": "oblique", "source": "/srv/productions/Production_5", "srs": "EPSG:4547"}
        (version.folder / "tileset.json").write_text(json.dumps({"asset": {"version": "1.1", "extras": extras}}))
    try:
        tilesets = http.get("/tilesets")
        entry = next(t for t in tilesets.json() if t["name"] == name)
        assert entry["source"] == "Production_5" and entry["srs"] == "EPSG:4547"
        _no_server_paths(tilesets.text, settings)
        layers = http.get("/layers")
        assert layers.json() and all("/" not in layer["source"] for layer in layers.json())
        assert http.get("/layers/buildings").json()["source"] == "buildings.gpkg"
        for url in [
            "/layers",
            "/layers/buildings",
            "/bim",
            "/viewer/config.json",
            "/collections",
            "/collections/buildings",
        ]:
            got = http.get(url)
            assert got.status_code == 200, url
            _no_server_paths(got.text, settings)
    finally:
        (settings.tilesets_dir / name).unlink()
        for old in (settings.tilesets_dir / ".versions").glob(f"{name}-*"):
            shutil.rmtree(old)


# --- a kill between the layer's commit and the tileset's swap ---------------------------


def _buildings(path: Path, n: int) -> Path:
    d = 0.0002
    geoms = [shapely.box(114.05 + i * 0.001, 22.541, 114.05 + i * 0.001 + d, 22.541 + d) for i in range(n)]
    gpd.GeoDataFrame(
        {"id": [f"K{i}" for i in range(n)], "height": [10.0 + i for i in range(n)]}, geometry=geoms, crs=4326
    ).to_file(path)
    return path


def _state(settings: Settings, conn, name: str) -> dict:
    layer_version, count = conn.execute(
        "SELECT version, feature_count FROM cim.layers WHERE name = %s", (name,)
    ).fetchone()
    recorded = conn.execute(
        "SELECT folder, layer_version FROM cim.tileset_versions WHERE name = %s", (name,)
    ).fetchone()
    folder = published_folder(settings.tilesets_dir, name)
    assert folder is not None
    tileset = json.loads((folder / "tileset.json").read_text())
    return {
        "layer_version": layer_version,
        "features": count,
        "recorded": tuple(recorded),
        "published": folder.name,
        "tileset_buildings": tileset["asset"]["extras"]["buildings"],
    }


def _in_step(state: dict) -> bool:
    return (
        state["recorded"] == (state["published"], state["layer_version"])
        and state["tileset_buildings"] == state["features"]
    )


def _killed_import(settings: Settings, source: Path, name: str) -> None:
    """``cim import buildings`` that SIGKILLs itself after its layer's commit, before the swap."""
    env = cli_env(settings) | {KILL_AFTER_COMMIT: "1"}
    args = [CIM, "import", "buildings", str(source), "--name", name]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stdout, done.stderr)


def test_an_import_killed_between_commit_and_swap_is_put_in_step(settings, sample, conn, tmp_path, monkeypatch):
    name = "b_killed"
    run_cim(settings, "import", "buildings", str(_buildings(tmp_path / "two.gpkg", 2)), "--name", name, check=True)
    first = _state(settings, conn, name)
    assert _in_step(first) and first["features"] == 2

    # 1. killed; the next `cim import` (of anything) puts the tileset in step first
    _killed_import(settings, _buildings(tmp_path / "five.gpkg", 5), name)
    killed = _state(settings, conn, name)
    assert killed["layer_version"] == 2 and killed["features"] == 5  # the layer landed ...
    assert killed["published"] == first["published"] and killed["tileset_buildings"] == 2  # ... its tileset did not
    assert not _in_step(killed) and (settings.tilesets_dir / ".versions" / killed["recorded"][0]).is_dir()
    other = tmp_path / "point.geojson"
    other.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"n": 1},
                        "geometry": {"type": "Point", "coordinates": [114.05, 22.54]},
                    }
                ],
            }
        )
    )
    run_cim(
        settings, "import", "layer", str(other), "--name", "k_other", "--no-grid-join", check=True, subprocess_=True
    )
    after = _state(settings, conn, name)
    assert _in_step(after) and after["features"] == 5 and after["published"] == killed["recorded"][0]
    assert (
        settings.tilesets_dir / ".versions" / first["published"]
    ).is_dir()  # the previous one is kept, as a swap does

    # 2. killed again; the server's start (its lifespan) puts it in step
    _killed_import(settings, _buildings(tmp_path / "three.gpkg", 3), name)
    assert not _in_step(_state(settings, conn, name))

    from fastapi.testclient import TestClient

    import cim.server.app

    class NoHub:  # the session's server runs the live hub; this app needs only its lifespan's first steps
        def __init__(self, *args: object) -> None:
            pass

        def start(self) -> None:
            pass

        def stop(self) -> None:
            pass

    class NoBroadcaster:
        def __init__(self, *args: object) -> None:
            pass

        def start(self) -> None:
            pass

        async def stop(self) -> None:
            pass

    monkeypatch.setattr(cim.server.app, "LiveHub", NoHub)
    monkeypatch.setattr(cim.server.app, "Broadcaster", NoBroadcaster)
    with TestClient(cim.server.app.create_app(settings), base_url="http://127.0.0.1") as client:
        started = _state(settings, conn, name)
        assert _in_step(started) and started["features"] == 3 and started["layer_version"] == 3
        assert client.get(f"/tilesets/{name}/tileset.json").json()["asset"]["extras"]["buildings"] == 3

    # 3. nothing to do: the function the server and the imports call changes nothing
    assert reconcile_tilesets(settings) == []
    assert _state(settings, conn, name) == started


def test_reconcile_leaves_a_name_whose_import_is_running(settings, sample, conn, tmp_path):
    """An import between its commit and its swap holds the name: a reconcile meanwhile leaves it alone."""
    name = "b_killed_lock"
    run_cim(settings, "import", "buildings", str(_buildings(tmp_path / "two.gpkg", 2)), "--name", name, check=True)
    _killed_import(settings, _buildings(tmp_path / "four.gpkg", 4), name)
    assert not _in_step(_state(settings, conn, name))
    import fcntl

    with open(settings.tilesets_dir / f".{name}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as a running import of the name holds it
        assert name not in reconcile_tilesets(settings)
        assert not _in_step(_state(settings, conn, name))
    assert name in reconcile_tilesets(settings) and _in_step(_state(settings, conn, name))


# --- damaged IFC files -----------------------------------------------------------------


def _gutted(path: Path, share: float = 0.3) -> Path:
    """duplex.ifc with ``share`` of its entity lines cut out of the middle."""
    lines = DUPLEX.read_text().splitlines(keepends=True)
    entities = [i for i, line in enumerate(lines) if re.match(r"#\d+=", line)]
    start = int(len(entities) * (0.5 - share / 2))
    dropped = set(entities[start : start + int(len(entities) * share)])
    path.write_text("".join(line for i, line in enumerate(lines) if i not in dropped))
    return path


def test_a_cut_or_gutted_ifc_is_refused_and_the_previous_version_stays(settings, sample, conn, tmp_path):
    name = "bim_damage"
    run_cim(settings, "import", "bim", str(DUPLEX), "--name", name, check=True)

    def state():
        version = conn.execute("SELECT version, feature_count FROM cim.layers WHERE name = %s", (name,)).fetchone()
        outline = conn.execute("SELECT version FROM cim.layers WHERE name = %s", (f"{name}_outline",)).fetchone()
        return version, outline, published_folder(settings.tilesets_dir, name)

    before = state()
    text = DUPLEX.read_text()
    half = tmp_path / "half.ifc"
    half.write_text(text[: len(text) // 2])
    half_closed = tmp_path / "half_closed.ifc"  # cut, then given an ending: the lost entities still show
    half_closed.write_text(text[: text.rindex("\n", 0, len(text) // 2) + 1] + "ENDSEC;\nEND-ISO-10303-21;\n")
    no_endsec = tmp_path / "no_endsec.ifc"
    no_endsec.write_text(text.replace("ENDSEC;\nEND-ISO-10303-21;", "END-ISO-10303-21;"))
    for path, problem in [
        (_gutted(tmp_path / "gutted.ifc"), "is damaged: "),
        (_gutted(tmp_path / "gutted_5.ifc", 0.05), "is damaged: "),
        (half, "is truncated"),
        (half_closed, "is damaged: "),
        (no_endsec, "does not end with ENDSEC;"),
    ]:
        out = run_cim(settings, "import", "bim", str(path), "--name", name)
        assert out.returncode == 2, (path.name, out.returncode, out.stdout, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert path.name in out.stderr and problem in out.stderr, out.stderr
        if "damaged" in problem:
            assert "referenced entities are missing (#" in out.stderr, out.stderr
        assert state() == before
    assert (before[2] / "tileset.json").is_file()
    leftovers = [p.name for p in (settings.tilesets_dir / ".versions").iterdir() if p.name.startswith(f"{name}-")]
    assert leftovers == [before[2].name]


def test_an_intact_ifc_passes_the_damage_checks():
    from import_scripts.bim.reader import check_step_file

    for path in sorted((DATA / "ifc").glob("*.ifc")):
        check_step_file(path)  # no error


_STEP = "ISO-10303-21;\nHEADER;\nENDSEC;\nDATA;\n{}\nENDSEC;\nEND-ISO-10303-21;\n"


@pytest.mark.parametrize(
    "text, problem",
    [
        ("", "is empty"),
        ("hello", "does not begin with ISO-10303-21;"),
        (_STEP.format("#1=IFCA('it''s #9',#2);\n#1=IFCB();\n#2=IFCC();"), "1 entities are defined twice (#1)"),
        (
            _STEP.format("#1=IFCA('it''s #9',#2,(#3,#4));\n/* #8 */\n#2=IFCC();"),
            "2 referenced entities are missing (#3, #4)",
        ),
    ],
)
def test_the_damage_checks_read_references_not_text(tmp_path, text, problem):
    from cim.errors import InputError
    from import_scripts.bim.reader import check_step_file

    path = tmp_path / "m.ifc"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        check_step_file(path)
    assert problem in str(info.value) and "m.ifc" in str(info.value)
    assert os.linesep not in str(info.value)
