"""Footprints extruded into flat-shaded meshes (LOD1 "white model", 白模).

Every footprint vertex is placed exactly: its ECEF position at the base and
at the top height, expressed in the tileset's local ENU frame, so walls stand
on the real ellipsoid and not on a plane. Walls are one quad per ring edge
with its own outward normal; roofs are triangulated with earcut (holes and
multipolygons included) and face up. Nothing is shared between faces, so
shading is flat. Degenerate edges and sliver triangles are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import mapbox_earcut
import numpy as np
import shapely

from tiles.geodesy import EnuFrame, lonlath_to_ecef

MIN_EDGE_M = 1e-3
MIN_TRIANGLE_M2 = 1e-6


@dataclass
class Mesh:
    """Triangles in a local ENU frame (double precision until written)."""

    positions: np.ndarray  # (n, 3) float64, ENU metres
    normals: np.ndarray  # (n, 3) float32, unit
    feature_ids: np.ndarray  # (n,) uint32: the building each vertex belongs to
    indices: np.ndarray  # (m,) uint32, triangles, counter-clockwise seen from outside

    @property
    def triangle_count(self) -> int:
        return len(self.indices) // 3

    @classmethod
    def concat(cls, meshes: list[Mesh]) -> Mesh:
        offsets = np.cumsum([0] + [len(m.positions) for m in meshes[:-1]])
        return cls(
            positions=np.concatenate([m.positions for m in meshes]),
            normals=np.concatenate([m.normals for m in meshes]),
            feature_ids=np.concatenate([m.feature_ids for m in meshes]),
            indices=np.concatenate([m.indices + o for m, o in zip(meshes, offsets)]).astype(np.uint32),
        )


@dataclass
class _Rings:
    lonlat: np.ndarray  # (n, 2) ring vertices, closing vertex removed
    ring: np.ndarray  # (n,) ring number of each vertex
    polygon_of_ring: np.ndarray  # polygon number of each ring
    building_of_polygon: np.ndarray  # building number of each polygon


def _rings(footprints: np.ndarray) -> _Rings:
    oriented = shapely.orient_polygons(footprints, exterior_cw=False)  # exteriors CCW, holes CW
    polygons, building_of_polygon = shapely.get_parts(oriented, return_index=True)
    rings, polygon_of_ring = shapely.get_rings(polygons, return_index=True)
    coords, ring = shapely.get_coordinates(rings, return_index=True)
    counts = np.bincount(ring, minlength=len(rings))
    closing = np.cumsum(counts) - 1
    keep = np.ones(len(coords), bool)
    keep[closing[counts > 0]] = False
    coords, ring = coords[keep], ring[keep]
    repeated = np.zeros(len(coords), bool)  # a vertex equal to the one before it in its ring
    repeated[1:] = (coords[1:] == coords[:-1]).all(axis=1) & (ring[1:] == ring[:-1])
    return _Rings(coords[~repeated], ring[~repeated], polygon_of_ring, building_of_polygon)


def extrude(footprints: np.ndarray, base: np.ndarray, top: np.ndarray, frame: EnuFrame) -> Mesh:
    """Extrude lon/lat footprints (Polygon/MultiPolygon, valid) from ``base``
    to ``top`` (metres above the ellipsoid, one value per footprint). Feature
    ids are the footprints' positions in the input."""
    r = _rings(np.asarray(footprints, dtype=object))
    building = r.building_of_polygon[r.polygon_of_ring[r.ring]]
    b_ecef = lonlath_to_ecef(r.lonlat[:, 0], r.lonlat[:, 1], base[building])
    t_ecef = lonlath_to_ecef(r.lonlat[:, 0], r.lonlat[:, 1], top[building])
    bottom, roof = frame.to_enu(b_ecef), frame.to_enu(t_ecef)
    up = frame.up_of(r.lonlat[:, 0], r.lonlat[:, 1])
    walls = _walls(bottom, roof, r.ring, building, (top - base)[building])
    roofs = _roofs(roof, up, r, building)
    return Mesh.concat([walls, roofs])


def _walls(bottom: np.ndarray, roof: np.ndarray, ring: np.ndarray, building: np.ndarray, height: np.ndarray) -> Mesh:
    n = len(ring)
    nxt = np.arange(1, n + 1)
    last = np.flatnonzero(np.r_[ring[1:] != ring[:-1], True])  # last vertex of each ring
    first = np.r_[0, last[:-1] + 1]
    nxt[last] = first
    i = np.arange(n)
    edge = bottom[nxt] - bottom[i]
    ok = (np.linalg.norm(edge, axis=1) > MIN_EDGE_M) & (height > MIN_EDGE_M)
    i, j = i[ok], nxt[ok]
    quads = np.stack([bottom[i], bottom[j], roof[j], roof[i]], axis=1)  # (e, 4, 3)
    normal = np.cross(quads[:, 1] - quads[:, 0], quads[:, 3] - quads[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    e = len(i)
    indices = (np.array([0, 1, 2, 0, 2, 3], np.uint32)[None, :] + 4 * np.arange(e, dtype=np.uint32)[:, None]).ravel()
    return Mesh(
        positions=quads.reshape(-1, 3),
        normals=np.repeat(normal, 4, axis=0).astype(np.float32),
        feature_ids=np.repeat(building[i], 4).astype(np.uint32),
        indices=indices,
    )


def _roofs(roof: np.ndarray, up: np.ndarray, r: _Rings, building: np.ndarray) -> Mesh:
    polygon_of_vertex = r.polygon_of_ring[r.ring]
    starts = np.flatnonzero(np.r_[True, polygon_of_vertex[1:] != polygon_of_vertex[:-1]])
    stops = np.r_[starts[1:], len(polygon_of_vertex)]
    ring_ends_all = np.flatnonzero(np.r_[r.ring[1:] != r.ring[:-1], True]) + 1
    triangles = []
    for start, stop in zip(starts, stops):
        ends = ring_ends_all[(ring_ends_all > start) & (ring_ends_all <= stop)] - start
        tri = mapbox_earcut.triangulate_float64(roof[start:stop, :2], ends.astype(np.uint32))
        triangles.append(tri.astype(np.int64) + start)
    tri = np.concatenate(triangles).reshape(-1, 3) if triangles else np.zeros((0, 3), np.int64)
    a, b, c = roof[tri[:, 0]], roof[tri[:, 1]], roof[tri[:, 2]]
    normal = np.cross(b - a, c - a)
    area2 = np.einsum("ij,ij->i", normal, up[tri[:, 0]])  # twice the area, signed by facing up
    tri = tri[np.abs(area2) > 2 * MIN_TRIANGLE_M2]
    flip = area2[np.abs(area2) > 2 * MIN_TRIANGLE_M2] < 0
    tri[flip] = tri[flip][:, [0, 2, 1]]
    used, inverse = np.unique(tri.ravel(), return_inverse=True)
    return Mesh(
        positions=roof[used],
        normals=up[used].astype(np.float32),
        feature_ids=building[used].astype(np.uint32),
        indices=inverse.astype(np.uint32),
    )
