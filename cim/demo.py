"""The demo chain: the Futian sample into layers, with a BIM model placed on one
of its parcels and the oblique-photography sample, so that the three kinds of
3D model (white model, BIM, oblique photography) are there (then ``cim demo``
serves it)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.progress import Progress

from cim.config import Settings
from cim.crs import Datum
from cim.db import connect
from cim.geoid import VerticalDatum
from import_scripts.bim import BimImporter, BimOptions
from import_scripts.bim.georef import Anchor
from import_scripts.buildings import BuildingOptions, BuildingsImporter
from import_scripts.components import ComponentOptions, ComponentsImporter
from import_scripts.layer import LayerImporter, LayerOptions
from import_scripts.oblique import ObliqueImporter, ObliqueOptions
from import_scripts.raster import RasterImporter, RasterOptions
from import_scripts.report import ImportReport
from layers.land.checks import CheckOptions, CheckResult, run_check
from layers.land.rules import thresholds_of

if TYPE_CHECKING:  # the generator (geopandas) is imported only when a sample is generated
    from cim.samples.futian.params import Scale as SampleScale

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DIR = REPO / "data_samples" / "futian"
BOUNDARY_GCJ02 = REPO / "data_samples" / "boundaries" / "440304.geojson"
#: the sample's look in the viewer: its layers' styles and the layer the view opens on
SAMPLE_VIEWER_CONFIG = SAMPLE_DIR / "viewer.json"
#: the BIM model of the demo (FZK-Haus: IFC4, two storeys; no georeference of Futian, so placed by an anchor)
DEMO_BIM = REPO / "data_samples" / "ifc" / "AC20-FZK-Haus.ifc"
#: where its origin stands: on parcel B103-0029 of the sample (residential, 待开工) in Futian's CBD, the
#: whole house inside the parcel and over 10 m from the white model's buildings; its +Y axis due north
DEMO_BIM_ANCHOR = Anchor(114.05503, 22.53071, 0.0, 0.0)
#: the oblique-photography production of the demo, where its metadata.xml puts it (about 113.38 E, 22.50 N:
#: outside Futian, ~70 km west; found in the catalogue)
DEMO_OBLIQUE = REPO / "data_samples" / "oblique" / "Production_5_part"


@dataclass(frozen=True)
class SampleLayer:
    name: str
    title: str  # shown to users: Simplified Chinese
    grid_join: bool = True
    kind: str = "layer"  # the importer: layer, buildings or components (layer + 3D Tiles)


#: in import order: the partition first, so that the rest can be placed in it
SAMPLE_LAYERS: tuple[SampleLayer, ...] = (
    SampleLayer("streets", "街道", grid_join=False),
    SampleLayer("communities", "社区", grid_join=False),
    SampleLayer("grids", "网格", grid_join=False),
    SampleLayer("buildings", "建筑", kind="buildings"),
    SampleLayer("buildings_2026", "建筑（2026年度调查）", kind="buildings"),  # the second survey epoch
    SampleLayer("parcels", "已批宗地"),
    SampleLayer("farmland", "耕地"),
    SampleLayer("forest", "林地"),
    SampleLayer("eco_redline", "生态保护红线"),
    SampleLayer("construction_land", "存量建设用地"),  # exempt land for the unapproved-building check
    SampleLayer("sensors", "物联感知设备"),
    SampleLayer("cameras", "视频监控"),
    SampleLayer("tickets", "民意速办工单"),
    SampleLayer("components", "城市部件", kind="components"),  # after sensors and tickets: its files link them
)


def sample_dir(settings: Settings, scale: SampleScale) -> Path:
    """The committed small sample, or the full one generated on demand."""
    if scale == "small":
        return SAMPLE_DIR
    from cim.samples import futian

    out = settings.data_dir / "samples" / scale
    if not (out / "tickets.gpkg").exists():
        futian.generate(out, scale=scale)
    return out


def install_viewer_config(settings: Settings, source: Path = SAMPLE_VIEWER_CONFIG) -> Path:
    """Copy the sample's viewer file to ``settings.viewer_config_file``
    atomically (a temporary file beside it, then ``os.replace``), so a
    running server never reads half of it."""
    target = settings.viewer_config_file
    target.parent.mkdir(parents=True, exist_ok=True)
    data = source.read_bytes()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def import_sample(
    settings: Settings, scale: SampleScale = "small", progress: Progress | None = None, models: bool = True
) -> list[ImportReport]:
    """The Futian sample's layers; with ``models``, also the demo's BIM model
    (``demo_bim``, ``demo_bim_outline``) and oblique production (``demo_oblique``).
    The oblique import runs on spawned worker processes: a script calling this
    must do so under ``if __name__ == "__main__":`` (the ``cim`` command does)."""
    folder = sample_dir(settings, scale)
    if scale != "small" and not all((folder / f"{layer.name}.gpkg").is_file() for layer in SAMPLE_LAYERS):
        from cim.samples import futian

        futian.generate(folder, scale=scale)  # generated by a version without some of today's layers
    install_viewer_config(settings)  # first: the layers look right in a running viewer as they arrive
    total = len(SAMPLE_LAYERS) + 3 + (2 if models else 0)
    task = progress.add_task("import", total=total) if progress else None

    def step(description: str) -> None:
        if progress is not None and task is not None:
            progress.update(task, advance=1, description=description)

    # the real district boundary, as published in GCJ-02: converted on import
    boundary = LayerOptions(title="福田区", datum=Datum.gcj02, grid_join=False)
    reports = [LayerImporter(settings, BOUNDARY_GCJ02, "futian_boundary", boundary).run()]
    step("futian_boundary")
    for layer in SAMPLE_LAYERS:
        options = LayerOptions(title=layer.title, grid_join=layer.grid_join)
        source = folder / f"{layer.name}.gpkg"
        if layer.kind == "buildings":
            reports.append(BuildingsImporter(settings, source, layer.name, BuildingOptions(layer=options)).run())
        elif layer.kind == "components":  # the sample's own model files, one per class
            components = ComponentOptions(layer=options, models=folder / "component_models", actor="demo")
            reports.append(ComponentsImporter(settings, source, layer.name, components).run())
        else:
            reports.append(LayerImporter(settings, source, layer.name, options).run())
        step(layer.name)
        if layer.name == "grids":  # the district's extent is known: the terrain, before buildings stand on it
            for report in import_sample_rasters(settings, scale):
                reports.append(report)
                step(report.name)
    if models:  # after the grids: the BIM elements are placed in theirs
        bim = BimOptions(
            title="示例 BIM 模型（FZK-Haus 住宅）",
            anchor=_on_the_ground(settings, DEMO_BIM_ANCHOR),
            vertical_datum=VerticalDatum.ellipsoidal,  # the anchor's height is the DEM's, ellipsoidal already
        )
        reports.append(BimImporter(settings, DEMO_BIM, "demo_bim", bim).run())
        step("demo_bim")
        oblique = ObliqueOptions(title="示例倾斜摄影（Production_5 局部）")
        reports.append(ObliqueImporter(settings, DEMO_OBLIQUE, "demo_oblique", oblique).run())
        step("demo_oblique")
    return reports


#: the epoch of the sample's generated orthophoto and terrain (the sample's "today")
SAMPLE_RASTER_EPOCH = dt.date(2026, 11, 1)


def sample_rasters(settings: Settings, scale: SampleScale) -> dict[str, Path]:
    """The sample's generated DEM and DOM (``dem.tif``, ``dom.tif``): too big to commit,
    made on first use into the data directory (the full sample's folder holds its own)."""
    folder = settings.data_dir / "samples" / "small-rasters" if scale == "small" else sample_dir(settings, scale)
    paths = {"dem": folder / "dem.tif", "dom": folder / "dom.tif"}
    if not all(p.is_file() for p in paths.values()):
        from cim.samples.futian.rasters import generate_rasters

        return generate_rasters(folder, scale)
    return paths


def import_sample_rasters(settings: Settings, scale: SampleScale) -> list[ImportReport]:
    """The sample's terrain (orthometric, made ellipsoidal with the geoid) and orthophoto."""
    paths = sample_rasters(settings, scale)
    dem = RasterOptions(kind="dem", epoch=SAMPLE_RASTER_EPOCH, title="示例地形（生成）", actor="demo")
    dom = RasterOptions(kind="dom", epoch=SAMPLE_RASTER_EPOCH, title="示例正射影像（生成）", actor="demo")
    return [
        RasterImporter(settings, paths["dem"], "dem", dem).run(),
        RasterImporter(settings, paths["dom"], "dom", dom).run(),
    ]


def _on_the_ground(settings: Settings, anchor: Anchor) -> Anchor:
    """The anchor at the terrain's (ellipsoidal) height where it stands, if a DEM reaches there."""
    from import_scripts.ground import newest_dem, sample

    dem = newest_dem(settings, (anchor.lon, anchor.lat, anchor.lon, anchor.lat))
    if dem is None:
        return anchor
    height = sample(settings.rasters_dir / dem.name / dem.file, np.array([anchor.lon]), np.array([anchor.lat]))[0]
    return dataclasses.replace(anchor, height=float(height)) if np.isfinite(height) else anchor


#: the sample's two survey epochs, checked in order by the demo: (epoch, buildings layer)
SAMPLE_EPOCHS = (("2023", "buildings"), ("2026", "buildings_2026"))


def check_sample_land(settings: Settings) -> list[CheckResult]:
    """The land checks of the sample's parcels: the first survey, then the second (with the changes)."""
    results = []
    with connect(settings) as conn:
        for epoch, buildings in SAMPLE_EPOCHS:
            options = CheckOptions(
                parcels="parcels",
                buildings=(buildings,),
                epoch=epoch,
                exempt=("construction_land",),
                thresholds=thresholds_of(settings),
                actor="demo",
            )
            results.append(run_check(conn, options))
            conn.commit()
    return results
