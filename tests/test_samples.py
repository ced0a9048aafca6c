"""Tests of the synthetic Futian sample generator (cim.samples.futian). No database."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from cim.samples import futian
from cim.samples.futian import LAYERS, generate

# datetimes are written in GeoPackage's canonical UTC "Z" form: GDAL must not warn on reading them
pytestmark = pytest.mark.filterwarnings("error:Non-conformant content:RuntimeWarning")

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "data_samples" / "futian"
SLACK_DEG = 1e-7
METRIC = 4547

STREETS = {
    "440304001": "园岭街道",
    "440304002": "南园街道",
    "440304003": "福田街道",
    "440304004": "沙头街道",
    "440304005": "香蜜湖街道",
    "440304006": "梅林街道",
    "440304007": "莲花街道",
    "440304008": "华富街道",
    "440304009": "福保街道",
    "440304010": "华强北街道",
}
CHANNELS = {
    "12345热线",
    "i深圳APP",
    "微信公众号",
    "网格员上报",
    "市长信箱",
    "人民网留言",
    "福田通APP",
    "现场来访",
    "来信",
    "网络舆情",
    "12319热线",
    "12369热线",
    "110非警务",
    "城管通",
    "政务邮箱",
    "民意速办小程序",
    "数字城管",
    "社区工作站",
}
BUILDING_USES = {"住宅", "商业", "办公", "商住混合", "工业", "教育", "医疗", "公共服务", "酒店"}


def read(folder: Path, layer: str) -> gpd.GeoDataFrame:
    return pyogrio.read_dataframe(folder / f"{layer}.gpkg", layer=layer)


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("futian_small")
    calls: list[tuple[str, int]] = []
    counts = generate(out, "small", 42, on_layer=lambda layer, n: calls.append((layer, n)))
    frames = {layer: read(out, layer) for layer in LAYERS}
    return {"dir": out, "counts": counts, "calls": calls, "frames": frames}


@pytest.fixture(scope="module")
def frames(sample) -> dict[str, gpd.GeoDataFrame]:
    return sample["frames"]


@pytest.fixture(scope="module")
def boundary(frames) -> shapely.Geometry:
    return frames["futian_boundary"].geometry.iloc[0]


def metric_areas(frame: gpd.GeoDataFrame) -> np.ndarray:
    return frame.to_crs(METRIC).geometry.area.to_numpy()


def assert_same_layer(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"))
    assert shapely.equals_exact(a.geometry.to_numpy(), b.geometry.to_numpy(), tolerance=1e-9).all()


# --- files, counts, callback ------------------------------------------------------------------


def test_layer_files_names_counts_and_callback(sample, frames):
    expected = {
        "futian_boundary": 1,
        "streets": 10,
        "communities": 92,
        "grids": 1646,
        "sensors": 5000,
        "cameras": 500,
        "tickets": 3000,
    }
    for layer, n in expected.items():
        assert sample["counts"][layer] == n
    assert 1800 <= sample["counts"]["buildings"] <= 2200
    assert abs(sample["counts"]["buildings_2026"] - sample["counts"]["buildings"]) < 50
    assert 180 <= sample["counts"]["parcels"] <= 220
    assert 50 <= sample["counts"]["construction_land"] <= 600
    assert 3 <= sample["counts"]["farmland"] <= 10
    assert 10 <= sample["counts"]["forest"] <= 40
    assert 3 <= sample["counts"]["eco_redline"] <= 10
    assert list(sample["counts"]) == list(LAYERS)
    assert sample["calls"] == list(sample["counts"].items())
    for layer in LAYERS:
        path = sample["dir"] / f"{layer}.gpkg"
        assert [row[0] for row in pyogrio.list_layers(path)] == [layer]
        assert len(frames[layer]) == sample["counts"][layer]
        assert frames[layer].crs.to_epsg() == 4326


def test_generate_rejects_unknown_scale(tmp_path):
    with pytest.raises(ValueError):
        generate(tmp_path, "huge", 42)  # type: ignore[arg-type]


def test_write_layer_replaces_an_existing_file(tmp_path):
    for n in (3, 2):
        frame = gpd.GeoDataFrame({"k": list(range(n))}, geometry=shapely.points(np.zeros((n, 2))), crs=4326)
        assert futian.write_layer(tmp_path, "x", frame) == n
    assert len(read(tmp_path, "x")) == 2


def test_boundary_path_points_at_the_real_outline():
    assert futian.BOUNDARY_GCJ02 == REPO / "data_samples" / "boundaries" / "440304.geojson"
    assert futian.BOUNDARY_GCJ02.is_file()


# --- admin hierarchy ----------------------------------------------------------------------------


def test_admin_attributes_and_code_nesting(frames):
    b, streets, comms, grids = (frames[k] for k in ("futian_boundary", "streets", "communities", "grids"))
    assert b.loc[0, "name"] == "福田区" and b.loc[0, "adcode"] == "440304"
    assert dict(zip(streets.street_code, streets.street)) == STREETS
    assert comms.community_code.is_unique and comms.community.is_unique
    assert comms.community.str.endswith("社区").all()
    assert (comms.community_code.str.len() == 12).all()
    assert (comms.community_code.str[:9] == comms.street_code).all()
    assert (comms.street_code.map(STREETS) == comms.street).all()
    assert comms.groupby("street_code").size().min() >= 3
    assert grids.grid_code.is_unique and (grids.grid_code.str.len() == 15).all()
    assert (grids.grid_code.str[:12] == grids.community_code).all()
    assert (grids.community_code.str[:9] == grids.street_code).all()
    by_code = dict(zip(comms.community_code, comms.community))
    assert (grids.community_code.map(by_code) == grids.community).all()
    assert all(name.startswith(comm) for name, comm in zip(grids.grid_name, grids.community))
    assert grids.grid_name.str.fullmatch(r".+社区第\d+网格").all()
    assert grids.groupby("community_code").size().min() >= 3


def test_admin_geometries_are_valid_multipolygons(frames):
    for layer in ("futian_boundary", "streets", "communities", "grids"):
        geoms = frames[layer].geometry.to_numpy()
        assert (shapely.get_type_id(geoms) == shapely.GeometryType.MULTIPOLYGON).all(), layer
        assert shapely.is_valid(geoms).all(), layer
        assert (shapely.area(geoms) > 0).all(), layer


def _assert_partition(parent_area: float, child_areas: np.ndarray, children: gpd.GeoDataFrame) -> None:
    assert abs(child_areas.sum() - parent_area) / parent_area < 1e-6
    union = shapely.union_all(children.to_crs(METRIC).geometry.to_numpy())
    assert (child_areas.sum() - union.area) / union.area < 1e-6  # no overlaps
    assert abs(union.area - parent_area) / parent_area < 1e-6  # no gaps


def test_streets_partition_the_boundary_exactly(frames):
    boundary_area = metric_areas(frames["futian_boundary"])[0]
    streets = frames["streets"]
    _assert_partition(boundary_area, metric_areas(streets), streets)


def test_communities_partition_each_street_exactly(frames):
    streets, comms = frames["streets"], frames["communities"]
    street_area = dict(zip(streets.street_code, metric_areas(streets)))
    comm_area = metric_areas(comms)
    for code, area in street_area.items():
        sel = (comms.street_code == code).to_numpy()
        _assert_partition(area, comm_area[sel], comms[sel])
    _assert_partition(sum(street_area.values()), comm_area, comms)


def test_grids_partition_each_community_exactly(frames):
    comms, grids = frames["communities"], frames["grids"]
    comm_area = dict(zip(comms.community_code, metric_areas(comms)))
    grid_area = metric_areas(grids)
    worst = 0.0
    for code, area in comm_area.items():
        sel = (grids.community_code == code).to_numpy()
        worst = max(worst, abs(grid_area[sel].sum() - area) / area)
    assert worst < 1e-6
    _assert_partition(sum(comm_area.values()), grid_area, grids)


def test_children_lie_in_their_parents(frames):
    streets = frames["streets"].set_index("street_code").geometry
    comms = frames["communities"]
    for code, geom in zip(comms.street_code, comms.geometry):
        assert streets[code].buffer(SLACK_DEG).contains(geom)
    comm_geom = comms.set_index("community_code").geometry
    grids = frames["grids"].sample(200, random_state=0)
    for code, geom in zip(grids.community_code, grids.geometry):
        assert comm_geom[code].buffer(SLACK_DEG).contains(geom)


# --- buildings ------------------------------------------------------------------------------


def test_buildings_do_not_touch_and_stay_inside(frames, boundary):
    geoms = frames["buildings"].geometry.to_numpy()
    assert shapely.is_valid(geoms).all()
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    assert (left == right).all(), "two buildings intersect"
    metric = frames["buildings"].to_crs(METRIC).geometry.to_numpy()
    left, right = shapely.STRtree(metric).query(metric, predicate="dwithin", distance=2.9)
    assert (left == right).all(), "two buildings closer than ~3 m"
    assert shapely.contains(boundary.buffer(SLACK_DEG), geoms).all()


def test_building_attributes(frames):
    b = frames["buildings"]
    assert b.id.str.fullmatch(r"BLD\d{6}").all() and b.id.is_unique
    assert b.height.between(3, 350).all()
    per_floor = b.height / b.floors
    assert per_floor.between(2.9, 3.6).all()
    assert (b.floors >= 1).all()
    assert set(b.use) <= BUILDING_USES and len(set(b.use)) >= 6
    assert b.year_built.between(1980, 2024).all()
    assert (b.base_height == 0.0).all()
    assert (b.height == b.height.round(1)).all()
    assert b.name.str.endswith("栋").all()


def test_building_shapes_and_cbd_towers(frames):
    b = frames["buildings"]
    geoms = b.geometry.to_numpy()
    parts = shapely.get_num_geometries(geoms)
    holes = shapely.get_num_interior_rings(shapely.get_geometry(geoms, 0))
    assert 0.002 < (parts == 2).mean() < 0.05  # ~1 % two-part buildings
    assert 0.005 < (holes > 0).mean() < 0.08  # ~3 % courtyards
    footprint = metric_areas(b)
    assert np.median(footprint) > 200 and footprint.max() < 3700
    cbd = shapely.Point(114.055, 22.537)
    near = shapely.distance(cbd, shapely.centroid(geoms)) < 0.006
    assert b.height[near].max() >= 200 and b.height[~near].median() < 80
    assert (b.height >= 100).sum() >= 50
    villages = "|".join(name for name, _ in futian.names.URBAN_VILLAGES)
    village = b.name.str.fullmatch(rf"({villages})村\d+栋")
    assert village.sum() > 50 and b.floors[village].between(6, 9).all()


# --- parcels and land cover -------------------------------------------------------------------


def test_parcels(frames, boundary):
    p = frames["parcels"]
    geoms = p.geometry.to_numpy()
    assert shapely.is_valid(geoms).all()
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    assert (left == right).all(), "parcels overlap"
    assert shapely.contains(boundary.buffer(SLACK_DEG), geoms).all()
    assert p.parcel_id.str.fullmatch(r"B1\d{2}-\d{4}").all() and p.parcel_id.is_unique
    assert p.coverage.between(0.2, 0.6).all()
    assert (p.approved_far > 0).all() and (p.height_limit > 0).all()
    assert set(p.status) <= {"待开工", "在建", "已竣工", "逾期未开工", "逾期未竣工"}
    approval = pd.to_datetime(p.approval_date)
    assert approval.dt.year.between(2015, 2026).all()
    assert approval.max() <= pd.Timestamp("2026-06-30")
    start, done = pd.to_datetime(p.start_deadline), pd.to_datetime(p.completion_deadline)
    # land delivered in stages: to be started within four years (in 2030 or after)
    staged = start >= pd.Timestamp("2030-01-01")
    assert (p.status[staged] == "待开工").all() and staged.sum() >= 3
    assert ((start - approval)[~staged].dt.days.between(365, 366)).all()
    assert ((start - approval)[staged].dt.days.between(1460, 1462)).all()
    assert ((done - start).dt.days.between(730, 1097)).all()
    # the date-bound findings hold from 2026 on: open parcels are past due by 2024, or due in 2030 or after
    open_ = p.status != "已竣工"
    assert (staged | (done < pd.Timestamp("2025-01-01")))[open_].all()
    sides = np.sqrt(metric_areas(p))
    assert sides.min() > 30 and sides.max() < 320
    assert p.approved_far.between(1, 12).all() and p.height_limit.between(24, 400).all()


def test_buildings_stand_on_parcels_or_construction_land(frames):
    """Every building of the first survey has most of its footprint on one parcel, or lies
    whole on existing construction land (never both)."""
    b = frames["buildings"].to_crs(METRIC).geometry.to_numpy()
    parcels = frames["parcels"].to_crs(METRIC).geometry.to_numpy()
    land = shapely.union_all(frames["construction_land"].to_crs(METRIC).geometry.to_numpy())
    on_parcel = np.zeros(len(b))
    i, j = shapely.STRtree(parcels).query(b, predicate="intersects")
    np.maximum.at(on_parcel, i, shapely.area(shapely.intersection(b[i], parcels[j])) / shapely.area(b[i]))
    on_land = shapely.area(shapely.intersection(b, land)) / shapely.area(b)
    assert ((on_parcel > 0.5) != (on_land > 0.999)).all()
    assert (on_parcel[on_parcel > 0] > 0.5).all() and (on_land[on_land > 0] > 0.999).all()
    assert 0.2 < (on_parcel > 0.5).mean() < 0.8


def test_construction_land(frames, boundary):
    c = frames["construction_land"]
    geoms = c.geometry.to_numpy()
    assert (shapely.get_type_id(geoms) == shapely.GeometryType.MULTIPOLYGON).all()
    assert shapely.is_valid(geoms).all() and shapely.contains(boundary.buffer(SLACK_DEG), geoms).all()
    assert list(c.columns) == ["code", "name", "area_ha", "geometry"]
    assert c.code.str.fullmatch(r"CL-\d{5}").all() and c.code.is_unique
    assert c.name.str.contains("存量建设用地").all()
    np.testing.assert_allclose(c.area_ha, metric_areas(c) / 1e4, rtol=1e-4, atol=1e-4)
    metric = c.to_crs(METRIC).geometry.to_numpy()
    left, right = shapely.STRtree(metric).query(metric, predicate="intersects")
    assert (left == right).all(), "construction land polygons overlap"
    parcels = frames["parcels"].to_crs(METRIC).geometry.to_numpy()
    left, _ = shapely.STRtree(parcels).query(metric, predicate="intersects")
    assert len(left) == 0, "construction land on a parcel"


def _by_id(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return frame.set_index("id")


def test_second_survey(frames):
    """buildings_2026: the first survey's columns; kept buildings keep id and footprint, but
    for a few raised (+3 m or more) or grown (+10 m2 or more); a few new and demolished."""
    first, second = frames["buildings"], frames["buildings_2026"]
    assert list(second.columns) == list(first.columns)
    assert (second.dtypes == first.dtypes).all()
    assert second.id.is_unique and second.id.str.fullmatch(r"BLD\d{6}").all()
    old, new = _by_id(first), _by_id(second)
    kept = old.index.intersection(new.index)
    demolished, added = old.index.difference(new.index), new.index.difference(old.index)
    assert len(demolished) >= 3 and len(added) >= 6
    assert (added > old.index.max()).all()  # new ids are numbered on
    a, b = old.loc[kept], new.loc[kept]
    same = shapely.equals_exact(a.geometry.to_numpy(), b.geometry.to_numpy(), tolerance=0.0)
    area_a = a.to_crs(METRIC).geometry.area.to_numpy()
    area_b = b.to_crs(METRIC).geometry.area.to_numpy()
    grown = ~same
    assert grown.sum() >= 3 and (area_b[grown] - area_a[grown] >= 10).all()
    raised = (b.height - a.height).to_numpy()
    assert ((raised == 0) | (raised >= 3)).all() and (raised >= 3).sum() >= 3
    assert (b.floors[raised > 0] > a.floors[raised > 0]).all()
    unchanged = same & (raised == 0)
    cols = ["name", "height", "floors", "use", "year_built", "base_height"]
    pd.testing.assert_frame_equal(a.loc[unchanged, cols], b.loc[unchanged, cols])
    assert new.loc[added, "year_built"].between(2025, 2026).all() and set(new.loc[added, "use"]) <= BUILDING_USES


def test_new_buildings_without_a_parcel_stand_off_construction_land(frames):
    second = frames["buildings_2026"].to_crs(METRIC)
    added = second[~second.id.isin(frames["buildings"].id)].geometry.to_numpy()
    parcels = shapely.union_all(frames["parcels"].to_crs(METRIC).geometry.to_numpy())
    land = shapely.union_all(frames["construction_land"].to_crs(METRIC).geometry.to_numpy())
    unapproved = shapely.area(shapely.intersection(added, parcels)) < 1.0
    assert unapproved.sum() >= 3 and (~unapproved).sum() >= 3  # some on (idle) parcels
    assert not shapely.intersects(added[unapproved], land).any()


@pytest.mark.parametrize("layer", ["farmland", "forest", "eco_redline"])
def test_land_cover(frames, boundary, layer):
    f = frames[layer]
    geoms = f.geometry.to_numpy()
    assert (shapely.get_type_id(geoms) == shapely.GeometryType.MULTIPOLYGON).all()
    assert shapely.is_valid(geoms).all()
    assert shapely.contains(boundary.buffer(SLACK_DEG), geoms).all()
    assert f.code.is_unique
    np.testing.assert_allclose(f.area_ha, metric_areas(f) / 1e4, rtol=1e-4, atol=1e-4)  # 4 decimals
    if layer == "eco_redline":
        assert f.name.str.contains("红树林").any()
        mangrove = f[f.name.str.contains("红树林")].geometry.iloc[0]
        assert mangrove.bounds[1] < 22.51  # along the southern coast


# --- points -------------------------------------------------------------------------------------


@pytest.mark.parametrize("layer", ["sensors", "cameras", "tickets"])
def test_points_inside_boundary(frames, boundary, layer):
    xy = shapely.get_coordinates(frames[layer].geometry.to_numpy())
    assert (shapely.get_type_id(frames[layer].geometry.to_numpy()) == shapely.GeometryType.POINT).all()
    inside = boundary.buffer(SLACK_DEG)
    assert shapely.contains_xy(inside, xy[:, 0], xy[:, 1]).all()
    assert (np.round(xy, 7) == xy).all()


def test_sensors(frames):
    s = frames["sensors"]
    assert s.id.str.fullmatch(r"SNS\d{7}").all() and s.id.is_unique
    shares = s.category.value_counts(normalize=True)
    expected = {
        "smoke_detector": 0.55,
        "hydrant_pressure": 0.10,
        "manhole_cover": 0.12,
        "water_level": 0.03,
        "gas_detector": 0.10,
        "air_quality": 0.03,
        "noise": 0.03,
        "electrical_fire": 0.04,
    }
    assert set(shares.index) == set(expected)
    for category, share in expected.items():
        assert abs(shares[category] - share) < 0.005
    names = {
        "smoke_detector": "烟感",
        "hydrant_pressure": "消防栓水压",
        "manhole_cover": "井盖",
        "water_level": "水位",
        "gas_detector": "燃气",
        "air_quality": "空气质量",
        "noise": "噪声",
        "electrical_fire": "电气火灾",
    }
    assert (s.category.map(names) == s.category_name).all()
    install = pd.to_datetime(s.install_date)
    assert install.min() >= pd.Timestamp("2018-01-01") and install.max() <= pd.Timestamp("2026-12-31")
    assert set(s.status) <= {"normal", "fault", "offline"} and (s.status == "normal").mean() > 0.85
    assert s.vendor.notna().all()


def test_smoke_detectors_sit_at_buildings(frames):
    s, b = frames["sensors"], frames["buildings"].to_crs(METRIC)
    smoke = s[s.category == "smoke_detector"].to_crs(METRIC).geometry.to_numpy()
    dist = shapely.STRtree(b.geometry.to_numpy()).query_nearest(smoke, return_distance=True)[1]
    assert np.median(dist) == 0.0 and np.quantile(dist, 0.95) < 10.0
    manholes = s[s.category == "manhole_cover"].to_crs(METRIC).geometry.to_numpy()
    left, _ = shapely.STRtree(b.geometry.to_numpy()).query(manholes, predicate="intersects")
    assert len(left) == 0  # manholes are in the street, never in a building


def test_cameras(frames):
    c = frames["cameras"]
    assert c.id.str.fullmatch(r"CAM\d{6}").all() and c.id.is_unique
    assert c.heading.between(0, 360).all() and c.fov.between(30, 100).all()
    assert c.range_m.between(30, 200).all() and c.height_m.between(3, 12).all()
    assert (c.stream_url == "/live/cameras/" + c.id + "/index.m3u8").all()
    assert set(c.status) == {"online", "offline"} and (c.status == "online").mean() > 0.85
    assert set(c.kind) == {"球机", "枪机", "全景"}


def test_tickets(frames):
    t = frames["tickets"]
    assert t.id.str.fullmatch(r"TK\d{8}").all() and t.id.is_unique
    assert set(t.channel) == CHANNELS and t.channel.nunique() == 18
    assert t.address.str.fullmatch(r".+街道.+\d+号").all()
    assert (t.address.str.extract(r"^(.+?街道)")[0].isin(STREETS.values())).all()
    stamps = ["created_at", "acknowledged_at", "contacted_at", "resolved_at"]
    for col in stamps:
        assert isinstance(t[col].dtype, pd.DatetimeTZDtype), col
        assert t[col].dropna().dt.tz.utcoffset(None) == pd.Timedelta(0)  # stored in UTC
    now = pd.Timestamp("2026-11-01", tz="Asia/Shanghai")
    assert t.created_at.notna().all()
    assert t.created_at.min() >= now - pd.Timedelta(days=366) and t.created_at.max() < now
    assert t.created_at.is_monotonic_increasing  # ids follow creation time
    for earlier, later in itertools.pairwise(stamps):
        both = t[earlier].notna() & t[later].notna()
        assert (t.loc[both, later] > t.loc[both, earlier]).all()
        assert not (t[earlier].isna() & t[later].notna()).any()
        assert (t[later].dropna() <= now).all()
    status = np.where(t.resolved_at.notna(), "已办结", np.where(t.acknowledged_at.notna(), "处理中", "待受理"))
    assert (t.status == status).all()
    open_ = t.resolved_at.isna()
    assert 0.01 <= open_.mean() <= 0.04
    assert t.loc[open_, "created_at"].min() > now - pd.Timedelta(days=14)  # the newest ones are open
    assert {"待受理", "处理中"} <= set(t.status[open_])
    ack = (t.acknowledged_at - t.created_at).dropna()
    contact = (t.contacted_at - t.created_at).dropna()
    resolve = (t.resolved_at - t.created_at).dropna()
    assert (ack <= pd.Timedelta(minutes=10)).mean() > 0.9
    assert (contact <= pd.Timedelta(minutes=30)).mean() > 0.88
    assert (resolve <= pd.Timedelta(hours=24)).mean() > 0.9
    late = (
        (ack > pd.Timedelta(minutes=10)).reindex(t.index, fill_value=False)
        | (contact > pd.Timedelta(minutes=30)).reindex(t.index, fill_value=False)
        | (resolve > pd.Timedelta(hours=24)).reindex(t.index, fill_value=False)
    )
    assert 0.06 <= late.mean() <= 0.14
    assert t.department.notna().all() and t.category.notna().all()


# --- determinism and the committed sample ---------------------------------------------------


def test_same_seed_gives_identical_layers(sample, tmp_path):
    generate(tmp_path, "small", 42)
    for layer in LAYERS:
        assert_same_layer(read(tmp_path, layer), sample["frames"][layer])


def test_other_seed_gives_other_buildings(sample, tmp_path):
    generate(tmp_path, "small", 7)
    mine, other = sample["frames"]["buildings"], read(tmp_path, "buildings")
    assert 1800 <= len(other) <= 2200
    common = min(len(mine), len(other))
    same = shapely.equals_exact(mine.geometry.to_numpy()[:common], other.geometry.to_numpy()[:common], 1e-9)
    assert same.mean() < 0.01
    assert not mine.height.head(common).equals(other.height.head(common))


def test_committed_sample_matches_a_fresh_generation(sample):
    assert COMMITTED.is_dir(), "run cim.samples.futian.generate(Path('data_samples/futian'), 'small', 42)"
    assert sorted(p.name for p in COMMITTED.glob("*.gpkg")) == sorted(f"{layer}.gpkg" for layer in LAYERS)
    for layer in LAYERS:
        assert_same_layer(read(COMMITTED, layer), sample["frames"][layer])
    total = sum(p.stat().st_size for p in COMMITTED.iterdir() if p.suffix != ".tif")  # rasters: generated, ignored
    assert total < 6_000_000


# --- helpers ------------------------------------------------------------------------------------


def test_apportion_is_proportional_exact_and_respects_minimum():
    counts = futian.apportion(92, np.array([1.0, 2.0, 3.0, 50.0]), 3)
    assert counts.sum() == 92 and counts.min() >= 3
    assert list(counts) == sorted(counts)


def test_partition_covers_the_region():
    region = shapely.Polygon([(0, 0), (1000, 0), (1000, 400), (600, 400), (600, 1000), (0, 1000)])
    pieces = futian.partition(region, 12, np.random.default_rng(1))
    assert len(pieces) == 12
    assert abs(shapely.area(pieces).sum() - region.area) < 1e-6 * region.area
    assert abs(shapely.union_all(pieces).area - region.area) < 1e-6 * region.area
    assert re.fullmatch(r"Polygon|MultiPolygon", pieces[0].geom_type)
