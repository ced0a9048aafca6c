"""The Futian sample, imported as `cim demo` does: boundary datum, exact
partitions, grid placement (进格入块), counts in the catalogue."""

from __future__ import annotations

import json

import numpy as np
import pyproj
import pytest
import shapely

from cim.crs import wgs84_to_gcj02
from cim.demo import BOUNDARY_GCJ02

GEOD = pyproj.Geod(ellps="WGS84")
EXPECTED = {
    "futian_boundary": 1,
    "streets": 10,
    "communities": 92,
    "grids": 1646,
    "sensors": 5000,
    "cameras": 500,
    "tickets": 3000,
}


def test_catalogue_counts(sample, conn):
    counts = dict(conn.execute("SELECT name, feature_count FROM cim.layers").fetchall())
    for name, n in EXPECTED.items():
        assert counts[name] == n, name
    assert 1800 <= counts["buildings"] <= 2200
    for name in ("parcels", "farmland", "forest", "eco_redline"):
        assert counts[name] > 0
    for name, n in counts.items():
        if name in EXPECTED or name in ("buildings", "parcels", "farmland", "forest", "eco_redline"):
            assert conn.execute(f'SELECT count(*) FROM layers."{name}"').fetchone()[0] == n


def test_boundary_is_on_wgs84_not_gcj02(sample, conn):
    """Every stored vertex, pushed through the GCJ-02 formula, gives back the
    published (GCJ-02) vertex: the layer holds true WGS84."""
    stored = shapely.from_wkb(conn.execute("SELECT ST_AsBinary(geom) FROM layers.futian_boundary").fetchone()[0])
    published = shapely.geometry.shape(json.loads(BOUNDARY_GCJ02.read_text()))
    mine = shapely.get_coordinates(stored)
    theirs = shapely.get_coordinates(published)
    assert mine.shape == theirs.shape
    glon, glat = wgs84_to_gcj02(mine[:, 0], mine[:, 1])
    err = GEOD.inv(glon, glat, theirs[:, 0], theirs[:, 1])[2]
    assert err.max() < 0.5, f"worst vertex {err.max():.3f} m"
    # and the stored boundary is really shifted from the published one by the offset
    shift = GEOD.inv(mine[:, 0], mine[:, 1], theirs[:, 0], theirs[:, 1])[2]
    assert 300 < np.median(shift) < 700
    # Futian's area is about 78.66 km²
    area = abs(GEOD.geometry_area_perimeter(stored)[0]) / 1e6
    assert 75 < area < 82


def _area(conn, sql: str) -> float:
    return conn.execute(sql).fetchone()[0]


@pytest.mark.parametrize(
    "child, parent, key",
    [
        ("streets", "futian_boundary", None),
        ("communities", "streets", "street_code"),
        ("grids", "communities", "community_code"),
    ],
)
def test_each_level_partitions_the_one_above(sample, conn, child, parent, key):
    """Areas in CGCS2000 Gauss-Krüger metres: children sum to their parent
    (no gaps) and their union is as large as their sum (no overlaps).

    The top level compares with the boundary imported from the published
    GCJ-02 file, unrounded, while the sample's files carry 7 decimals (about
    1 cm): there the outlines must agree to 5 cm (Hausdorff distance)."""
    if key is None:
        rows = conn.execute(f"""
            SELECT (SELECT sum(ST_Area(ST_Transform(geom, 4547))) FROM layers.{parent}),
                   sum(ST_Area(ST_Transform(geom, 4547))),
                   ST_Area(ST_Transform(ST_Union(geom), 4547)),
                   ST_HausdorffDistance(ST_Transform(ST_Union(c.geom), 4547),
                                        (SELECT ST_Transform(ST_Union(geom), 4547) FROM layers.{parent})) - 0.05
            FROM layers.{child} c""").fetchall()
    else:
        rows = conn.execute(f"""
            SELECT ST_Area(ST_Transform(p.geom, 4547)), k.child_sum, k.child_union, k.sym
            FROM layers.{parent} p JOIN LATERAL (
                SELECT sum(ST_Area(ST_Transform(c.geom, 4547))) AS child_sum,
                       ST_Area(ST_Transform(ST_Union(c.geom), 4547)) AS child_union,
                       ST_Area(ST_Transform(ST_SymDifference(ST_Union(c.geom), p.geom), 4547)) AS sym
                FROM layers.{child} c WHERE c.{key} = p.{key}) k ON true""").fetchall()
    assert rows and len(rows) == {"futian_boundary": 1, "streets": 10, "communities": 92}[parent]
    for parent_area, child_sum, child_union, sym in rows:
        assert child_sum == pytest.approx(parent_area, rel=1e-6)  # no gaps (and no double counting)
        assert child_union == pytest.approx(child_sum, rel=1e-6)  # no overlaps
        assert sym < 1.0  # same shape: to a square metre (to 5 cm at the top level)


@pytest.mark.parametrize("layer", ["buildings", "parcels", "sensors", "cameras", "tickets"])
def test_every_feature_is_placed_in_its_street_community_and_grid(sample, conn, layer):
    total, placed = conn.execute(
        f"SELECT count(*), count(*) FILTER (WHERE street IS NOT NULL AND community IS NOT NULL "
        f"AND grid IS NOT NULL) FROM layers.{layer}"
    ).fetchone()
    assert placed == total > 0
    # the placement agrees with the geometry: the grid named contains the feature
    wrong = conn.execute(f"""
        SELECT count(*) FROM layers.{layer} f JOIN layers.grids g ON g.grid_code = f.grid
        WHERE NOT ST_Intersects(g.geom, ST_PointOnSurface(f.geom))
           OR g.street <> f.street OR g.community <> f.community""").fetchone()[0]
    assert wrong == 0
