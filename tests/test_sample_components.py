"""The Futian sample's city components (cim.samples.futian.components), read from the committed
small sample: counts, ids, placement, links to sensors and tickets, and the class models. No database."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from cim.components import shapes
from cim.components.catalogue import CLASSES, builtin_class
from cim.samples.futian import SCALES
from cim.samples.futian.admin import build_admin
from cim.samples.futian.buildings import build_buildings
from cim.samples.futian.components import (
    ALONG,
    BUILDING,
    LINE,
    PARK,
    PLACEMENTS,
    SENSOR_CLASSES,
    STATUS,
    STREET_KINDS,
    TICKET_CLASSES,
    TICKET_RADIUS_M,
    WATER,
    build_components,
)
from cim.samples.futian.geometry import load_boundary_metric
from cim.samples.futian.landcover import build_land_cover
from cim.samples.futian.points import build_sensors, build_tickets
from cim.samples.futian.write import MODELS_DIR

COMMITTED = Path(__file__).resolve().parents[1] / "data_samples" / "futian"
METRIC = 4547
SEED = 42


def read(layer: str) -> gpd.GeoDataFrame:
    return pyogrio.read_dataframe(COMMITTED / f"{layer}.gpkg", layer=layer)


def metric_xy(frame: gpd.GeoDataFrame) -> np.ndarray:
    return shapely.get_coordinates(frame.to_crs(METRIC).geometry.to_numpy())


def only(kind: str) -> set[str]:
    """Classes placed only by this kind."""
    return {code for code, (_, shares, _) in PLACEMENTS.items() if {k for k, _ in shares} == {kind}}


@pytest.fixture(scope="module")
def components() -> gpd.GeoDataFrame:
    return read("components")


@pytest.fixture(scope="module")
def world():
    """The sample's district, land cover, buildings and street lattice (seed 42), metric."""
    admin = build_admin(load_boundary_metric(), SEED)
    land = build_land_cover(admin.boundary, SEED)
    buildings, road_cells, _ = build_buildings(admin, land, SEED)
    return admin, land, buildings, road_cells


def cell_outlines(road_cells) -> np.ndarray:
    corners = road_cells.local_to_metric(
        np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])[None, :, :] * road_cells.size[:, None, :]
    )
    return shapely.polygons(corners)


# --- the layer ----------------------------------------------------------------------------------


def test_counts_and_every_class(components):
    assert len(components) == SCALES["small"].components == 10_000
    counts = components.class_code.value_counts()
    assert set(counts.index) == {c.code for c in CLASSES} and len(counts) == 103
    assert counts.min() >= 10
    # trees, manholes and lamps lead
    assert counts.index[0] == "0402"
    manholes = components.class_name.str.endswith("井盖")
    assert manholes.sum() > 0.15 * len(components)
    assert counts["0125"] > 0.05 * len(components)


def test_attributes_follow_the_catalogue(components):
    assert list(components.columns) == [
        "id",
        "class_code",
        "class_name",
        "status",
        "department",
        "owner",
        "install_date",
        "heading",
        "geometry",
    ]
    assert components.id.is_unique
    assert components.id.str.fullmatch(r"440304[0-9]{10}").all()
    assert (components.id.str[6:10] == components.class_code).all()
    for code, group in components.groupby("class_code"):
        cls = builtin_class(code)
        assert cls is not None
        assert (group.class_name == cls.name_zh).all() and (group.department == cls.department).all()
        serial = group.id.str[10:].astype(int).sort_values().to_numpy()
        assert list(serial) == list(range(1, len(group) + 1))
    assert set(components.status) <= set(STATUS)
    assert (components.status == "完好").mean() > 0.9
    assert components.owner.notna().all() and (components.owner.str.len() > 0).all()
    info = pyogrio.read_info(COMMITTED / "components.gpkg")
    assert dict(zip(info["fields"], info["dtypes"]))["install_date"] == "datetime64[D]"  # a DATE field
    dates = pd.to_datetime(components.install_date)
    assert dates.min() >= pd.Timestamp("1995-01-01") and dates.max() <= pd.Timestamp("2026-10-31")
    heading = components.heading.to_numpy()
    assert ((heading >= 0.0) & (heading < 360.0)).all()
    assert np.allclose(heading, np.round(heading, 1))


def test_components_stay_inside_the_district(components):
    boundary = read("futian_boundary").geometry.iloc[0]
    xy = shapely.get_coordinates(components.geometry.to_numpy())
    shapely.prepare(boundary)
    assert shapely.contains_xy(boundary, xy[:, 0], xy[:, 1]).all()


# --- placement ----------------------------------------------------------------------------------


def test_street_furniture_stands_on_the_street_lattice(components, world):
    _, _, _, road_cells = world
    outlines = shapely.boundary(cell_outlines(road_cells))
    tree = shapely.STRtree(outlines)
    street = {code for code, (_, shares, _) in PLACEMENTS.items() if {k for k, _ in shares} <= STREET_KINDS}
    sel = components[components.class_code.isin(street)]
    assert len(sel) > 0.5 * len(components)
    points = shapely.points(metric_xy(sel))
    _, dist = tree.query_nearest(points, return_distance=True, all_matches=False)
    assert dist.max() < 2.5  # kerb 0.3-1.2 m, corners 0.8-1.5 m each way
    on_line = sel.class_code.isin(only(LINE)).to_numpy()
    assert dist[on_line].max() < 0.05


def test_manholes_are_headed_along_their_street(components, world):
    _, _, _, road_cells = world
    codes = {code for code in only(LINE) if PLACEMENTS[code][2] == ALONG}
    sel = components[components.class_code.isin(codes)]
    xy = metric_xy(sel)
    tree = shapely.STRtree(shapely.boundary(cell_outlines(road_cells)))
    _, cell = tree.query_nearest(shapely.points(xy), all_matches=False)
    # a street of a lattice turned by `angle` (counter-clockwise) runs at compass 90 - angle (or 90° on)
    street = 90.0 - np.degrees(road_cells.angle[cell])
    off = (sel.heading.to_numpy() - street) % 90.0
    assert np.minimum(off, 90.0 - off).max() < 0.11


def test_entrance_furniture_stands_outside_buildings(components):
    buildings = read("buildings").to_crs(METRIC)
    sel = components[components.class_code.isin(only(BUILDING))]
    assert len(sel) > 100
    points = shapely.points(metric_xy(sel))
    tree = shapely.STRtree(buildings.geometry.to_numpy())
    _, dist = tree.query_nearest(points, return_distance=True, all_matches=False)
    assert dist.min() > 0.5 and dist.max() < 1.3


def test_park_and_shore_components(components, world):
    admin, land, _, _ = world
    parks = shapely.union_all(land.hills)
    in_park = components[components.class_code.isin(only(PARK))]
    xy = metric_xy(in_park)
    assert len(xy) > 100 and shapely.contains_xy(parks, xy[:, 0], xy[:, 1]).all()
    shore = components[components.class_code.isin(only(WATER))]
    xy = metric_xy(shore)
    dist = shapely.distance(shapely.boundary(admin.boundary), shapely.points(xy))
    assert len(xy) >= 30 and dist.max() < 15.5 and dist.min() > 2.5


# --- links --------------------------------------------------------------------------------------


def test_manhole_and_hydrant_sensors_sit_on_their_component(components):
    sensors = read("sensors")
    linked = sensors.category.isin(list(SENSOR_CLASSES))
    assert sensors.component_id[linked].notna().all()
    assert sensors.component_id[~linked].isna().all()
    assert sensors.component_id[linked].is_unique
    by_id = components.set_index("id")
    mine = by_id.loc[sensors.component_id[linked]]
    for category, allowed in SENSOR_CLASSES.items():
        assert set(mine.class_code[(sensors.category[linked] == category).to_numpy()]) <= allowed
    assert set(mine.class_name[(sensors.category[linked] == "manhole_cover").to_numpy()].str[-2:]) == {"井盖"}
    assert set(mine.class_name[(sensors.category[linked] == "hydrant_pressure").to_numpy()]) == {"消火栓"}
    a = metric_xy(sensors[linked])
    b = metric_xy(gpd.GeoDataFrame(mine, geometry="geometry", crs=components.crs))
    assert np.hypot(*(a - b).T).max() < 0.01


def test_tickets_link_to_nearby_fitting_components(components):
    tickets = read("tickets")
    linked = tickets[tickets.component_id.notna()]
    assert 150 <= len(linked) <= 1500
    by_id = components.set_index("id")
    assert linked.component_id.isin(by_id.index).all()
    for category, code in zip(linked.category, by_id.class_code.loc[linked.component_id]):
        assert code in TICKET_CLASSES[category]
    a = metric_xy(linked)
    b = metric_xy(gpd.GeoDataFrame(by_id.loc[linked.component_id], geometry="geometry", crs=components.crs))
    assert np.hypot(*(a - b).T).max() <= TICKET_RADIUS_M + 0.05


# --- the models ---------------------------------------------------------------------------------


def test_one_glb_model_per_class():
    folder = COMMITTED / MODELS_DIR
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{c.code}.glb" for c in CLASSES)
    for cls in CLASSES:
        data = (folder / f"{cls.code}.glb").read_bytes()
        magic, version, length = struct.unpack("<4sII", data[:12])
        assert magic == b"glTF" and version == 2 and length == len(data)
        assert len(data) < 64_000
        assert data == shapes.to_glb(shapes.build(cls)), f"{cls.code}.glb is stale: regenerate the sample"


# --- determinism --------------------------------------------------------------------------------


def test_a_tiny_generation_is_deterministic(world):
    admin, land, buildings, road_cells = world
    few = buildings.take(np.arange(300))

    def run(seed: int):
        sensors = build_sensors(few, road_cells, admin.boundary, 400, seed)
        tickets = build_tickets(few, road_cells, admin, 300, seed)
        return build_components(road_cells, few, land, admin.boundary, sensors, tickets, 1_500, seed)

    first, again, other = run(SEED), run(SEED), run(7)
    assert len(first.layer.xy) == 1_500
    assert np.array_equal(first.layer.xy, again.layer.xy)
    for key, values in first.layer.columns.items():
        assert list(values) == list(again.layer.columns[key]), key
    assert list(first.sensor_component_id) == list(again.sensor_component_id)
    assert list(first.ticket_component_id) == list(again.ticket_component_id)
    assert not np.array_equal(first.layer.xy, other.layer.xy)
    assert len(set(first.layer.columns["class_code"])) == 103
    assert all(re.fullmatch(r"440304[0-9]{10}", i) for i in first.layer.columns["id"])
