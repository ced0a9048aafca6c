"""``cim import oblique``: an oblique-photography production (ContextCapture
OSGB, or OBJ tiles) -> a 3D Tiles 1.1 tileset that keeps the production's
PagedLOD pyramid, and a PostGIS layer with its extent and per-folder footprints.

read the production (metadata.xml: SRS, SRSOrigin) -> convert every tile file
on all cores (OpenSceneGraph reads, numpy/pyproj place in ECEF, one GLB per
PagedLOD node; resumable: a rerun skips finished files) -> a tileset per
``Tile_*`` folder and a root tileset -> the layer, in one transaction ->
tileset swap. Until the swap, the previous tileset of that name is served.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import shapely

from cim.errors import InputError
from cim.geoid import VerticalDatum
from import_scripts.contract import Importer
from import_scripts.oblique.convert import Job, convert, finished
from import_scripts.oblique.production import Production, TileFolder, open_production
from import_scripts.report import ImportReport, Progress
from layers.load import FeatureTable, LoadResult
from layers.schema import LAYER_SCHEMA
from tiles.geodesy import EnuFrame
from tiles.oblique import TileContent, TreeTile, write_root_tileset, write_tree_tileset
from tiles.output import TilesetVersion

_FORMAT = 2  # bump when what a record holds changes: older partial work is then redone


@dataclass(frozen=True)
class ObliqueOptions:
    srs: str | None = None  # overrides metadata.xml's SRS
    origin: tuple[float, float, float] | None = None  # overrides its SRSOrigin
    jobs: int | None = None  # worker processes (default: all cores)
    title: str | None = None
    grid_join: bool = True
    vertical_datum: VerticalDatum = VerticalDatum.egm96  # what the production's heights are measured from


@dataclass
class FolderTree:
    """A folder's pyramid built from the records, and what was missing on the way."""

    folder: TileFolder
    root: TreeTile | None
    root_error: str | None = None  # why the folder's root tile could not be read
    levels: int = 0
    tiles: int = 0
    triangles: int = 0
    textures: int = 0
    bytes: int = 0
    missing: list[str] = field(default_factory=list)  # named by a PagedLOD, not on disk
    unreadable: list[str] = field(default_factory=list)  # "file: why"
    unreached: int = 0  # files no PagedLOD names
    untextured: list[str] = field(default_factory=list)  # textures in a pixel format we cannot store
    footprint: list | None = None
    z: list | None = None


def _record_path(out: Path, folder: TileFolder, file: Path) -> Path:
    return out / "tiles" / folder.name / f"{file.stem}.json"


def build_tree(folder: TileFolder, out: Path) -> FolderTree:
    """The folder's tiles, from its root file down the PagedLOD child names."""
    tree = FolderTree(folder, None)
    on_disk = {p.name for p in folder.files}
    seen: set[str] = set()

    def tiles_of(name: str, depth: int) -> list[TreeTile]:
        if name in seen:  # a file named twice (or by itself) is drawn once
            return []
        seen.add(name)
        if name not in on_disk:
            tree.missing.append(f"{folder.name}/{name}")
            return []
        record = json.loads(_record_path(out, folder, folder.root.parent / name).read_text())
        if record["error"]:
            tree.unreadable.append(f"{folder.name}/{name}: {record['error']}")
            if depth == 1:
                tree.root_error = record["error"]
            return []
        tree.triangles += record["triangles"]
        tree.textures += record["textures"]
        tree.untextured += [f"{folder.name}/{name}: {t}" for t in record["unsupported_textures"]]
        if depth == 1:
            tree.footprint, tree.z = record["footprint"], record["z"]
        tree.levels = max(tree.levels, depth)
        out_tiles = []
        for node in record["nodes"]:
            children = [t for child in node["children"] for t in tiles_of(child, depth + 1)]
            content = TileContent.from_record(node["content"]) if node["content"] else None
            if content is None and not children:
                continue
            out_tiles.append(TreeTile(content, node["geometric_error"] if children else 0.0, children))
        if record["loose"]:
            out_tiles.append(TreeTile(TileContent.from_record(record["loose"]), 0.0))
        for t in out_tiles:
            if t.content:
                tree.tiles += 1
                tree.bytes += t.content.bytes
        return out_tiles

    roots = tiles_of(folder.root.name, 1)
    tree.unreached = len(on_disk - seen)
    if roots:
        tree.root = roots[0] if len(roots) == 1 else TreeTile(None, 0.0, roots)
    return tree


def _key(production: Production) -> str:
    g = production.georef
    text = json.dumps([_FORMAT, str(production.source.resolve()), g.srs, g.origin, g.geoid_n, production.kind])
    return hashlib.sha256(text.encode()).hexdigest()


def _convert_all(jobs: list[Job], workers: int, progress: Progress) -> tuple[int, int]:
    """Convert what is not finished yet, ``workers`` files at a time; returns (converted, reused)."""
    todo = [j for j in jobs if finished(j) is None]
    reused = len(jobs) - len(todo)
    done = reused
    progress("convert", done, len(jobs))
    if workers <= 1:
        for job in todo:
            convert(job)
            done += 1
            progress("convert", done, len(jobs))
        return len(todo), reused
    # spawn: workers start clean (no copy of the parent's pyproj/database state); a bounded number
    # of files in flight keeps memory flat however large the production is
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending = iter(todo)
        running = {pool.submit(convert, job) for job in itertools.islice(pending, 2 * workers)}
        while running:
            finished_now, running = wait(running, return_when=FIRST_COMPLETED)
            for future in finished_now:
                future.result()
                done += 1
                nxt = next(pending, None)
                if nxt is not None:
                    running.add(pool.submit(convert, nxt))
            progress("convert", done, len(jobs))
    return len(todo), reused


def _layer_table(production: Production, trees: list[FolderTree], levels: int) -> FeatureTable:
    """Rows: the production's extent (kind "production"), then one footprint per folder (kind "folder")."""
    rows, geoms = [], []
    for t in trees:
        if not t.footprint:
            continue
        geoms.append(shapely.MultiPolygon([shapely.Polygon(t.footprint)]))
        rows.append(
            {
                "kind": "folder",
                "name": t.folder.name,
                "levels": t.levels,
                "tiles": t.tiles,
                "triangles": t.triangles,
                "z_min": t.z[0] if t.z else None,
                "z_max": t.z[1] if t.z else None,
            }
        )
    if not geoms:
        raise InputError(str(production.source), "has no tile with geometry")
    extent = shapely.convex_hull(shapely.union_all(geoms))
    assert isinstance(extent, shapely.Polygon)  # the hull of footprints that are polygons with an area
    geoms.insert(0, shapely.MultiPolygon([extent]))
    rows.insert(
        0,
        {
            "kind": "production",
            "name": production.source.name,
            "levels": levels,
            "tiles": sum(t.tiles for t in trees),
            "triangles": sum(t.triangles for t in trees),
            "z_min": min((r["z_min"] for r in rows if r["z_min"] is not None), default=None),
            "z_max": max((r["z_max"] for r in rows if r["z_max"] is not None), default=None),
        },
    )
    return FeatureTable(pa.Table.from_pylist(rows), np.array(geoms, dtype=object), "MultiPolygon")


class ObliqueImporter(Importer[ObliqueOptions]):
    """Workers are spawned processes: a script that runs this import must do
    so under ``if __name__ == "__main__":``."""

    kind = "oblique"
    writes_tileset = True

    def read(self) -> None:
        self.production = open_production(self.source, self.options.srs, self.options.origin)
        if self.options.vertical_datum == VerticalDatum.egm96:
            self.production.georef = self.production.georef.with_geoid()
        georef = self.production.georef
        centre = georef.to_lonlath(np.zeros((1, 3)))[0]
        self.frame_lonlat = (float(centre[0]), float(centre[1]))
        self.frame = EnuFrame.at(*self.frame_lonlat, 0.0)
        self.report.crs = georef.description

    def resume_key(self) -> str:
        return _key(self.production)

    def write(self, version: TilesetVersion | None) -> LoadResult:
        assert version is not None
        production, georef, out, name = self.production, self.production.georef, version.folder, self.name
        for stray in out.rglob("*.tmp"):  # what a killed run was writing
            stray.unlink()
        jobs = []
        for folder in production.folders:
            (out / "tiles" / folder.name).mkdir(parents=True, exist_ok=True)
            jobs += [
                Job(str(f), str(_record_path(out, folder, f)), georef, self.frame, root=f == folder.root)
                for f in folder.files
            ]
        workers = max(1, self.options.jobs or os.cpu_count() or 1)
        self.converted, self.reused = _convert_all(jobs, workers, self.progress)
        self.progress("tileset", 0, len(production.folders))
        trees, refs = [], []
        for i, folder in enumerate(production.folders):
            tree = build_tree(folder, out)
            trees.append(tree)
            if tree.root is not None:
                ref = write_tree_tileset(
                    out / "tiles" / folder.name,
                    "tileset.json",
                    tree.root,
                    self.frame,
                    {"folder": folder.name, "levels": tree.levels},
                    ref_uri=f"tiles/{folder.name}/tileset.json",
                )
                if ref is not None:
                    lo, hi = tree.root.lo, tree.root.hi
                    assert lo is not None and hi is not None  # a tileset was written: its box is known
                    refs.append((ref, lo, hi))
            self.progress("tileset", i + 1, len(production.folders))
        broken_roots = [t for t in trees if t.root_error]
        if broken_roots:
            first = broken_roots[0]
            raise InputError(
                str(first.folder.root),
                first.root_error or "",
                hint=f"{len(broken_roots)} folder(s) have an unreadable root tile; the rest is converted "
                "and kept: fix or remove the file and run the same command again to finish; "
                f"the previous tileset {name!r} is still served",
            )
        if not refs:
            raise InputError(
                str(production.source),
                "has no tile with geometry",
                hint=f"the previous tileset {name!r} is still served",
            )
        self.trees = trees
        self.levels = max(t.levels for t in trees)
        self.totals = {k: sum(getattr(t, k) for t in trees) for k in ("tiles", "triangles", "textures", "bytes")}
        write_root_tileset(
            out,
            refs,
            self.frame,
            {
                "kind": "oblique",
                "source": production.source.name,
                "srs": georef.srs,
                "srs_origin": list(georef.origin),
                "origin": {"lon": self.frame_lonlat[0], "lat": self.frame_lonlat[1]},
                "folders": len(refs),
                "levels": self.levels,
                **self.totals,
            },
        )
        table = _layer_table(production, trees, self.levels)
        return self.load(
            table,
            title=self.options.title or f"倾斜摄影 {production.source.name}",
            source=production.source,
            source_crs=georef.description,
            grid_join=self.options.grid_join,
        )

    def summary(self, result: LoadResult, tileset: Path | None) -> ImportReport:
        production, trees, totals = self.production, self.trees, self.totals
        missing = [m for t in trees for m in t.missing]
        unreadable = [u for t in trees for u in t.unreadable]
        self.report.notes += [
            f"georeference: {production.georef.description}",
            f"{production.files:,} files ({production.bytes / 1e6:,.1f} MB of {production.kind.upper()}) in "
            f"{len(production.folders)} folders: {self.converted:,} converted, {self.reused:,} reused from an "
            "interrupted run",
            f"tileset: {totals['tiles']:,} tiles, {self.levels} levels, {totals['triangles']:,} triangles, "
            f"{totals['textures']:,} textures, {totals['bytes'] / 1e6:,.1f} MB",
        ]
        self.report.note_named(
            f"{len(missing)} child tiles are named but absent (their parents are drawn as the finest level there)",
            missing,
        )
        unreached = sum(t.unreached for t in trees)
        if unreached:
            self.report.note(f"{unreached} files are not named by any PagedLOD and were left out")
        untextured = [u for t in trees for u in t.untextured]
        self.report.note_named(
            f"{len(untextured)} textures are in a pixel format 3D Tiles cannot carry (compressed "
            "or not 8-bit) and were drawn grey",
            untextured,
        )
        self.report.skip(unreadable + missing)
        return self.report.build(
            result,
            feature_count=totals["tiles"],
            geometry_type=f"tiles ({production.kind.upper()})",
            output=f"{LAYER_SCHEMA}.{self.name} + {tileset}",
        )
