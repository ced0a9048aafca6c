"""Personal and sensitive data in layers: which columns are sensitive, and who may see them.

A column is sensitive by its name, in any layer (:data:`SENSITIVE_NAMES`:
addresses, phone numbers, contacts, e-mail, identity card numbers, the
reporter of a request, in English and in Chinese; compared without case, as
the whole name or a part of it: ``owner_phone``, ``详细地址``).
The layers in :data:`SNAPPED_LAYERS` (``tickets``: citizens' requests) also
hold an exact location: for a role without the right, each point is
replaced by the centroid of its grid cell (the grid layer, joined on the
``grid`` column that grid placement stores on every feature), or, when a
feature has no grid, rounded to :data:`FALLBACK_DEGREES`.

An admin may mark more columns of a layer sensitive, and a layer serves only
the columns on its allow-list (``cim layers columns NAME --serve ... --sensitive ...``,
kept in the catalogue: :class:`layers.catalogue.LayerInfo` ``served`` and
``sensitive``); a column off the list is left out for everyone, as a hidden one is.

Who may see them: :data:`MAY_SEE` (``operator`` and ``admin``). Everyone
else (viewers, land supervisors, visitors not signed in) gets the features
without the sensitive columns and with the snapped points, in items, tiles,
snapshots and streams alike. Filters and bounding boxes apply to what the
caller sees (a hidden column cannot be filtered on; a box selects snapped
points), so the exact values cannot be probed either.

Roles are plain names here (``"operator"``): ``layers`` does not import the server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from psycopg import sql

from layers.catalogue import LayerInfo

#: the roles that see sensitive columns and exact locations
MAY_SEE = frozenset({"operator", "admin"})

#: column names that are sensitive in any layer (lower case)
SENSITIVE_NAMES = frozenset(
    {
        "address",
        "addr",
        "phone",
        "telephone",
        "tel",
        "mobile",
        "contact",
        "contact_name",
        "contact_phone",
        "email",
        "id_card",
        "id_number",
        "reporter",
        "reporter_name",
        "reporter_phone",
        "地址",
        "电话",
        "手机",
        "手机号",
        "联系人",
        "联系电话",
        "联系方式",
        "身份证",
        "身份证号",
        "邮箱",
        "反映人",
    }
)

#: point layers whose exact locations are sensitive: snapped for those without the right
SNAPPED_LAYERS = frozenset({"tickets"})
#: the column of a snapped layer that names its grid cell, and the grid layer's column it matches
GRID_COLUMN = "grid"
GRID_CODE = "grid_code"
#: where a feature has no grid: its point rounded to this many degrees (about a kilometre)
FALLBACK_DEGREES = 0.01


def may_see(roles: Iterable[str]) -> bool:
    return bool(MAY_SEE & {str(r) for r in roles})


_CJK_NAMES = tuple(n for n in SENSITIVE_NAMES if not n.isascii())


def sensitive_by_name(column: str) -> bool:
    """``Address``, ``contact_phone``, ``owner_tel``, ``详细地址``: a sensitive name is the
    whole name, a part of it between underscores (or other separators), or, in
    Chinese, any part of it."""
    name = column.strip().lower()
    if name in SENSITIVE_NAMES or any(word in name for word in _CJK_NAMES):
        return True
    return any(part in SENSITIVE_NAMES for part in re.split(r"[^0-9a-z]+", name) if part)


def is_sensitive(column: str, layer: LayerInfo | None = None) -> bool:
    """Sensitive by its name, or marked so in ``layer`` (``cim layers columns NAME --sensitive``)."""
    return sensitive_by_name(column) or (layer is not None and column in layer.sensitive)


def hidden_columns(layer: LayerInfo, roles: Iterable[str]) -> set[str]:
    """The columns of ``layer`` that callers with ``roles`` do not see: those
    off its allow-list for everyone, and its sensitive ones for those without the right."""
    unserved = set(layer.columns) - set(layer.served_columns)
    if may_see(roles):
        return unserved
    return unserved | {c for c in layer.served_columns if is_sensitive(c, layer)}


def snaps_points(layer: LayerInfo, roles: Iterable[str]) -> bool:
    """Whether ``layer``'s points are snapped for callers with ``roles``."""
    return layer.name in SNAPPED_LAYERS and layer.geometry_type in ("Point", "MultiPoint") and not may_see(roles)


@dataclass(frozen=True)
class Mask:
    """What one caller does not see of one layer."""

    hidden: frozenset[str] = frozenset()
    snap: bool = False
    #: the grid layer's table (schema, table): snapped points go to its cells' centroids; None: rounding only
    grids: tuple[str, str] | None = None

    #: whether the mask depends on the caller's roles (sensitive columns hidden, points snapped),
    #: not only on the layer's allow-list (the same for everyone)
    restricted: bool = False

    @property
    def full(self) -> bool:
        return not self.hidden and not self.snap


FULL = Mask()


def grid_table(grids: LayerInfo | None) -> tuple[str, str] | None:
    """The grid layer's table, when it has the cells' codes to snap to."""
    return (grids.table_schema, grids.table_name) if grids is not None and GRID_CODE in grids.columns else None


def mask_for(layer: LayerInfo, roles: Iterable[str], grids: LayerInfo | None = None) -> Mask:
    """The mask of ``layer`` for ``roles``; ``grids`` is the grid layer (the catalogue's), if imported."""
    roles = {str(r) for r in roles}
    snap = snaps_points(layer, roles)
    cells = grid_table(grids) if snap and GRID_COLUMN in layer.columns else None
    hidden = frozenset(hidden_columns(layer, roles))
    unserved = set(layer.columns) - set(layer.served_columns)  # what everyone misses: the allow-list's doing
    return Mask(hidden, snap, cells, restricted=snap or not hidden <= unserved)


def visible_columns(layer: LayerInfo, mask: Mask) -> dict[str, str]:
    """The layer's columns (name -> type) that the mask leaves."""
    return {c: t for c, t in layer.served_columns.items() if c not in mask.hidden}


def snapped_point_sql(geom: sql.Composable, centre: sql.Composable | None) -> sql.Composable:
    """A point snapped: the grid cell's centre, else rounded to FALLBACK_DEGREES."""
    rounded = sql.SQL("ST_SnapToGrid({}, {})").format(geom, sql.Literal(FALLBACK_DEGREES))
    return rounded if centre is None else sql.SQL("coalesce({}, {})").format(centre, rounded)


def snapped_sql(grids: tuple[str, str] | None, row: str = "t") -> tuple[sql.Composable, sql.Composable]:
    """The snapped point of the rows aliased ``row`` (their ``geom`` and ``grid``)
    and the join that it needs: ``SELECT {point} ... FROM table row {join}``.
    Without ``grids`` (no grid layer) the points are rounded only."""
    alias = sql.Identifier(row)
    geom = sql.SQL("{}.geom").format(alias)
    if grids is None:
        return snapped_point_sql(geom, None), sql.SQL("")
    # on a shared edge placement picks the lowest fid: the same cell here
    join = sql.SQL(
        "LEFT JOIN (SELECT DISTINCT ON (gc.{code}) gc.{code} AS code, ST_Centroid(gc.geom) AS centre "
        "FROM {grids} gc WHERE gc.{code} IS NOT NULL ORDER BY gc.{code}, gc.fid) cell "
        "ON cell.code = {row}.{grid}"
    ).format(code=sql.Identifier(GRID_CODE), grids=sql.Identifier(*grids), row=alias, grid=sql.Identifier(GRID_COLUMN))
    return snapped_point_sql(geom, sql.SQL("cell.centre")), join


def source_sql(layer: LayerInfo, mask: Mask) -> sql.Composable:
    """The layer's rows as the caller may see them, to be used as ``FROM {source} t``:
    the table itself when nothing is masked, else a subquery with ``fid``, the
    visible columns and ``geom`` (snapped when the mask says so)."""
    table = sql.Identifier(layer.table_schema, layer.table_name)
    if mask.full:
        return table
    columns = [sql.SQL("t.{}").format(sql.Identifier(c)) for c in visible_columns(layer, mask)]
    geom, join = snapped_sql(mask.grids) if mask.snap else (sql.SQL("t.geom"), sql.SQL(""))
    return sql.SQL("(SELECT t.fid, {columns}{geom} AS geom FROM {table} t {join})").format(
        columns=sql.SQL("").join(sql.SQL("{}, ").format(c) for c in columns), geom=geom, table=table, join=join
    )
