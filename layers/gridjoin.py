"""进格入块: place every feature in its street, community and grid.

The grid layer (``Settings.grid_layer``, ``grids`` by default) is the finest
level of the district's partition and carries the names of the levels above
it: columns ``street``, ``community`` and ``grid_code``. A feature is placed
by a spatial join in PostGIS: a point where it lies, a line or polygon by
its point on surface (a point guaranteed inside it). On a shared edge the
grid with the lowest ``fid`` wins, so placement is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from layers.catalogue import find_layer

#: columns added to placed layers, and the grid-layer column each comes from
GRID_COLUMNS = ("street", "community", "grid")
_SOURCE_COLUMNS = ("street", "community", "grid_code")


@dataclass(frozen=True)
class GridPlacement:
    schema: str
    table: str

    def select_sql(self) -> sql.Composable:
        return sql.SQL(", ").join(sql.SQL("g.{}").format(sql.Identifier(c)) for c in GRID_COLUMNS)

    def join_sql(self, *, point_geometry: bool) -> sql.Composable:
        """A LEFT JOIN LATERAL that adds columns g.street, g.community, g.grid
        to a query over staging rows aliased ``s``."""
        probe = sql.SQL("s.geom") if point_geometry else sql.SQL("ST_PointOnSurface(s.geom)")
        picks = sql.SQL(", ").join(
            sql.SQL("{} AS {}").format(sql.Identifier(src), sql.Identifier(dst))
            for src, dst in zip(_SOURCE_COLUMNS, GRID_COLUMNS))
        return sql.SQL("LEFT JOIN LATERAL (SELECT {} FROM {} gg WHERE ST_Intersects(gg.geom, {}) "
                       "ORDER BY gg.fid LIMIT 1) g ON true").format(
            picks, sql.Identifier(self.schema, self.table), probe)


def grid_placement(conn: psycopg.Connection, grid_layer: str) -> GridPlacement | None:
    """The placement for ``grid_layer``, or None when that layer is not
    imported or lacks the street/community/grid_code columns."""
    info = find_layer(conn, grid_layer)
    if info is None or not set(_SOURCE_COLUMNS) <= set(info.columns):
        return None
    return GridPlacement(info.table_schema, info.table_name)
