"""CRS resolution and the GCJ-02 / BD-09 conversions, checked in metres."""

from __future__ import annotations

import re

import numpy as np
import prcoords
import pyproj
import pytest
import shapely

from cim.crs import (
    Datum,
    bd09_to_wgs84,
    gcj02_to_wgs84,
    geometries_to_wgs84,
    resolve_crs,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from cim.errors import CrsError
from tests.conftest import DATA

GEOD = pyproj.Geod(ellps="WGS84")


def metres(lon1, lat1, lon2, lat2) -> np.ndarray:
    return GEOD.inv(lon1, lat1, lon2, lat2)[2]


@pytest.fixture(scope="module")
def shenzhen_points():
    rng = np.random.default_rng(7)
    return rng.uniform(113.75, 114.65, 2000), rng.uniform(22.4, 22.87, 2000)


def test_gcj02_forward_matches_reference_library(shenzhen_points):
    lon, lat = shenzhen_points
    glon, glat = wgs84_to_gcj02(lon, lat)
    ref = [prcoords.wgs_gcj(prcoords.Coords(la, lo)) for lo, la in zip(lon[:200], lat[:200])]
    assert np.allclose(glon[:200], [c.lon for c in ref], atol=1e-9)
    assert np.allclose(glat[:200], [c.lat for c in ref], atol=1e-9)
    # the offset in Shenzhen is a few hundred metres: the trap the boundary file sets
    offset = metres(lon, lat, glon, glat)
    assert offset.min() > 250 and offset.max() < 800


def test_bd09_forward_matches_reference_library(shenzhen_points):
    lon, lat = shenzhen_points
    blon, blat = wgs84_to_bd09(lon[:200], lat[:200])
    ref = [prcoords.wgs_bd(prcoords.Coords(la, lo)) for lo, la in zip(lon[:200], lat[:200])]
    assert np.allclose(blon, [c.lon for c in ref], atol=1e-8)
    assert np.allclose(blat, [c.lat for c in ref], atol=1e-8)


@pytest.mark.parametrize("forward, inverse", [(wgs84_to_gcj02, gcj02_to_wgs84), (wgs84_to_bd09, bd09_to_wgs84)])
def test_inverse_is_accurate_to_well_under_half_a_metre(shenzhen_points, forward, inverse):
    lon, lat = shenzhen_points
    back = inverse(*forward(lon, lat))
    err = metres(lon, lat, *back)
    assert err.max() < 0.005, f"worst round trip {err.max():.4f} m"


def test_no_offset_outside_china():
    lon, lat = np.array([8.43, 151.2]), np.array([49.1, -33.87])  # Karlsruhe, Sydney
    assert np.array_equal(np.column_stack(wgs84_to_gcj02(lon, lat)), np.column_stack([lon, lat]))


def test_geometries_to_wgs84_projected_and_gcj02():
    # a point in CGCS2000 / 3-degree GK CM 114E (EPSG:4547) and the same place in GCJ-02
    x, y = pyproj.Transformer.from_crs(4326, 4547, always_xy=True).transform(114.05, 22.54)
    out = geometries_to_wgs84(np.array([shapely.Point(x, y)]), resolve_crs("4547"))
    assert metres(114.05, 22.54, out[0].x, out[0].y) < 0.01
    g = wgs84_to_gcj02(114.05, 22.54)
    out = geometries_to_wgs84(np.array([shapely.Point(float(g[0]), float(g[1]))]), resolve_crs(4326), Datum.gcj02)
    assert metres(114.05, 22.54, out[0].x, out[0].y) < 0.01


def test_wkt_is_read_whole_even_when_its_authority_lies():
    text = (DATA / "oblique" / "Production_5_part" / "metadata.xml").read_text()
    wkt = re.search(r"<SRS>(.*)</SRS>", text, re.S).group(1)
    assert 'AUTHORITY["EPSG","4547"]]' in wkt.replace("\n", "").replace(" ", "")
    crs = resolve_crs(wkt)
    lon, lat = pyproj.Transformer.from_crs(crs, 4326, always_xy=True).transform(501027.524, 2488718.808)
    assert abs(lon - 113.38) < 0.01 and abs(lat - 22.495) < 0.01
    # trusting the code instead would put it ~65 km away
    lon2, lat2 = pyproj.Transformer.from_crs(4547, 4326, always_xy=True).transform(501027.524, 2488718.808)
    assert metres(lon, lat, lon2, lat2) > 60_000


def test_crs_from_prj_file_and_codes(tmp_path):
    prj = tmp_path / "zone.prj"
    prj.write_text(pyproj.CRS.from_epsg(4547).to_wkt("WKT1_ESRI"))
    from_prj = pyproj.Transformer.from_crs(resolve_crs(str(prj)), 4326, always_xy=True)
    from_code = pyproj.Transformer.from_crs(4547, 4326, always_xy=True)
    a, b = from_prj.transform(512345.0, 2493456.0), from_code.transform(512345.0, 2493456.0)
    assert metres(*a, *b) < 0.001
    assert resolve_crs("EPSG:4490").to_epsg() == 4490
    assert resolve_crs("4549").to_epsg() == 4549


def test_unknown_crs_is_a_clear_error():
    with pytest.raises(CrsError, match="not a coordinate reference system"):
        resolve_crs("EPSG:999999")
    with pytest.raises(CrsError):
        resolve_crs("garbage")
