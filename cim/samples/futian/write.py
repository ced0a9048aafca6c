"""Writing: one GeoPackage per layer, the component models, and :func:`generate` (the whole sample)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from shapely.geometry.base import BaseGeometry

from cim.components import shapes
from cim.components.catalogue import CLASSES
from cim.samples import names
from cim.samples.futian.admin import Admin, build_admin
from cim.samples.futian.blocks import Blocks, build_blocks
from cim.samples.futian.buildings import (
    Buildings,
    UrbanVillages,
    build_buildings,
    building_ids,
    select_buildings,
)
from cim.samples.futian.components import build_components
from cim.samples.futian.geometry import (
    as_multipolygons,
    load_boundary_metric,
    to_output,
)
from cim.samples.futian.landcover import LandCover, Patches, build_land_cover, with_patches
from cim.samples.futian.lattice import Cells
from cim.samples.futian.params import LAYERS, SCALES, Scale, ScaleSpec, rng
from cim.samples.futian.parcels import Parcels, build_parcels
from cim.samples.futian.points import (
    PointLayer,
    build_cameras,
    build_sensors,
    build_tickets,
)
from cim.samples.futian.survey import build_survey


def _frame(columns: dict, geometry: np.ndarray) -> gpd.GeoDataFrame:
    data = {k: (v if isinstance(v, pd.Series) else pd.Series(v)) for k, v in columns.items()}
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geometry, crs="EPSG:4326"))


def _point_geometry(xy: np.ndarray) -> np.ndarray:
    """Metric (n, 2) -> EPSG:4326 points rounded like every other vertex."""
    return to_output(shapely.points(xy))


def write_layer(out_dir: Path, layer: str, frame: gpd.GeoDataFrame) -> int:
    """Write one layer to ``out_dir/<layer>.gpkg`` (replacing the file)."""
    path = out_dir / f"{layer}.gpkg"
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    # GeoPackage DATETIME is UTC with a "Z" (other offsets make GDAL warn on
    # every read); the Arrow path writes datetime.date columns as DATE fields.
    frame = frame.copy()
    for column, dtype in frame.dtypes.items():
        if isinstance(dtype, pd.DatetimeTZDtype):
            frame[column] = frame[column].dt.tz_convert("UTC")
    pyogrio.write_dataframe(
        frame, path, layer=layer, driver="GPKG", use_arrow=True, layer_options={"SPATIAL_INDEX": "NO"}
    )
    return len(frame)


def _admin_frames(admin: Admin) -> dict[str, Callable[[], gpd.GeoDataFrame]]:
    streets, comms, grids = admin.streets, admin.communities, admin.grids
    comm_street = comms.parent
    grid_comm = grids.parent

    def pick(values: list[str], idx: np.ndarray) -> np.ndarray:
        return np.array(values, dtype=object)[idx]

    return {
        "futian_boundary": lambda: _frame(
            {"name": [names.DISTRICT_NAME], "adcode": [names.DISTRICT_ADCODE]},
            as_multipolygons(to_output([admin.boundary])),
        ),
        "streets": lambda: _frame(
            {"street_code": streets.codes, "street": streets.names}, as_multipolygons(to_output(streets.geometry))
        ),
        "communities": lambda: _frame(
            {
                "community_code": comms.codes,
                "community": comms.names,
                "street_code": pick(streets.codes, comm_street),
                "street": pick(streets.names, comm_street),
            },
            as_multipolygons(to_output(comms.geometry)),
        ),
        "grids": lambda: _frame(
            {
                "grid_code": grids.codes,
                "grid_name": grids.names,
                "community_code": pick(comms.codes, grid_comm),
                "community": pick(comms.names, grid_comm),
                "street_code": pick(streets.codes, comm_street[grid_comm]),
                "street": pick(streets.names, comm_street[grid_comm]),
            },
            as_multipolygons(to_output(grids.geometry)),
        ),
    }


def _patch_frame(patches: Patches) -> gpd.GeoDataFrame:
    return _frame(
        {"code": patches.codes, "name": patches.names, "area_ha": np.round(shapely.area(patches.geometry) / 1e4, 4)},
        as_multipolygons(to_output(patches.geometry)),
    )


def _buildings_frame(buildings: Buildings, ids: np.ndarray | None = None) -> gpd.GeoDataFrame:
    """The buildings layer (ids: BLD000001... in order unless given)."""
    n = len(buildings.geometry)
    return _frame(
        {
            "id": building_ids(np.arange(1, n + 1)) if ids is None else ids,
            "name": buildings.name,
            "height": buildings.height,
            "floors": buildings.floors,
            "use": buildings.use,
            "year_built": buildings.year_built,
            "base_height": np.zeros(n),
        },
        as_multipolygons(to_output(buildings.geometry)),
    )


def _parcels_frame(parcels: Parcels) -> gpd.GeoDataFrame:
    return _frame(parcels.columns, as_multipolygons(to_output(parcels.geometry)))


def _points_frame(layer: PointLayer) -> gpd.GeoDataFrame:
    return _frame(layer.columns, _point_geometry(layer.xy))


def _with_column(layer: PointLayer, name: str, values: np.ndarray) -> PointLayer:
    return PointLayer(layer.xy, {**layer.columns, name: values})


MODELS_DIR = "component_models"


def write_component_models(out_dir: Path) -> int:
    """Write ``out_dir/component_models/<code>.glb``, the built-in model of every catalogue class
    (other .glb files there are removed). Returns the number of models."""
    folder = out_dir / MODELS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {f"{c.code}.glb" for c in CLASSES}
    for stale in folder.glob("*.glb"):
        if stale.name not in wanted:
            stale.unlink()
    for cls in CLASSES:
        (folder / f"{cls.code}.glb").write_bytes(shapes.to_glb(shapes.build(cls)))
    return len(CLASSES)


def _first_survey(selected: Buildings, parcels: Parcels) -> tuple[Buildings, dict[int, int]]:
    """The first survey's buildings: the selected ones but those that stood on vacant
    parcels, built when their parcels say; and the parcels' raises by their index there."""
    kept = np.flatnonzero(~parcels.cleared)
    buildings = replace(selected, year_built=parcels.year_built).take(kept)
    index_after = np.cumsum(~parcels.cleared) - 1
    return buildings, {int(index_after[b]): added for b, added in parcels.raises.items()}


@dataclass
class Core:
    """What every layer of a sample is made from (metric): the admin partition, the land cover,
    the street lattices' plots and blocks, the urban villages, the approved parcels and the
    first survey's buildings (``area``: the small sample's grids, None at full scale)."""

    spec: ScaleSpec
    admin: Admin
    land: LandCover
    road_cells: Cells
    villages: UrbanVillages
    area: BaseGeometry | None
    blocks: Blocks
    parcels: Parcels
    buildings: Buildings
    raises: dict[int, int]


def build_core(scale: Scale, seed: int) -> Core:
    """The sample's :class:`Core` for a scale and seed (about 1-2 s)."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, not {scale!r}")
    spec = SCALES[scale]
    admin = build_admin(load_boundary_metric(), seed)
    land = build_land_cover(admin.boundary, seed)
    all_buildings, road_cells, villages = build_buildings(admin, land, seed)
    selected, area = select_buildings(all_buildings, spec, admin)
    blocks = build_blocks(road_cells, rng(seed, "blocks"))
    parcels = build_parcels(admin, blocks, road_cells, selected, area, spec, seed)
    buildings, raises = _first_survey(selected, parcels)
    return Core(spec, admin, land, road_cells, villages, area, blocks, parcels, buildings, raises)


def generate(
    out_dir: Path,
    scale: Scale = "small",
    seed: int = 42,
    on_layer: Callable[[str, int], None] | None = None,
    *,
    rasters: bool = True,
    on_raster: Callable[[str, Path], None] | None = None,
) -> dict[str, int]:
    """Write one GeoPackage per layer into out_dir (out_dir/<layer>.gpkg, GDAL layer name =
    <layer>), all in EPSG:4326 (lon/lat WGS84), and the components' models
    (out_dir/component_models/<code>.glb). Returns {layer: feature_count}. Calls
    on_layer(layer, count) after each layer. With ``rasters``, also writes the sample's
    terrain and orthophoto (out_dir/dem.tif, out_dir/dom.tif: see
    :func:`cim.samples.futian.rasters.generate_rasters`), calling on_raster(name, path)
    after each. The data is synthetic (see the module docstring)."""
    core = build_core(scale, seed)
    spec = core.spec
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    admin, land, road_cells, villages, area = core.admin, core.land, core.road_cells, core.villages, core.area
    blocks, parcels, buildings = core.blocks, core.parcels, core.buildings
    survey = build_survey(buildings, core.raises, parcels, blocks, road_cells, villages, area, admin, seed)
    patches = {
        "farmland": with_patches(land.farmland, parcels.encroached["farmland"]),
        "forest": with_patches(land.forest, parcels.encroached["forest"]),
        "eco_redline": with_patches(land.eco_redline, parcels.encroached["eco_redline"]),
        "construction_land": survey.construction_land,
    }

    points: dict[str, PointLayer] = {}  # sensors, tickets and components: built together, once

    def point_layer(layer: str) -> PointLayer:
        if not points:
            sensors = build_sensors(buildings, road_cells, admin.boundary, spec.sensors, seed)
            tickets = build_tickets(buildings, road_cells, admin, spec.tickets, seed)
            found = build_components(
                road_cells, buildings, land, admin.boundary, sensors, tickets, spec.components, seed
            )
            points["sensors"] = _with_column(sensors, "component_id", found.sensor_component_id)
            points["tickets"] = _with_column(tickets, "component_id", found.ticket_component_id)
            points["components"] = found.layer
        return points[layer]

    builders: dict[str, Callable[[], gpd.GeoDataFrame]] = {
        **_admin_frames(admin),
        "buildings": lambda: _buildings_frame(buildings),
        "buildings_2026": lambda: _buildings_frame(survey.buildings, survey.ids),
        "parcels": lambda: _parcels_frame(parcels),
        **{layer: partial(_patch_frame, p) for layer, p in patches.items()},
        "sensors": lambda: _points_frame(point_layer("sensors")),
        "cameras": lambda: _points_frame(build_cameras(road_cells, admin, spec.cameras, seed)),
        "tickets": lambda: _points_frame(point_layer("tickets")),
        "components": lambda: _points_frame(point_layer("components")),
    }
    counts: dict[str, int] = {}
    for layer in LAYERS:
        counts[layer] = write_layer(out_dir, layer, builders[layer]())
        if on_layer is not None:
            on_layer(layer, counts[layer])
    write_component_models(out_dir)
    if rasters:
        from cim.samples.futian.rasters import Scene, generate_rasters  # rasterio is loaded only here

        generate_rasters(out_dir, scale, seed, scene=Scene.from_core(core), on_raster=on_raster)
    return counts
