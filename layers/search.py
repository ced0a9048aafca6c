"""One search over the catalogue's layers (the viewer's search box, ``GET /search``).

What is searched, by kind (:data:`KINDS`), found in the catalogue by the columns a layer has
(the names the Futian sample and the importers use):

- ``street``, ``community``, ``grid``: the partition's layers (``streets``, ``communities``,
  ``grids``): a layer with ``street_code`` (and no finer code), ``community_code`` (and no
  ``grid_code``), ``grid_code``; by code, and by name (``street``, ``community``, ``grid_name``);
- ``building``: polygon layers with a ``height`` or ``floors`` column (``cim import buildings``):
  by ``id``, and by ``name`` or address;
- ``parcel``: layers with a ``parcel_id`` column: by parcel id;
- ``component``: the component layers (``components.layers``, 城市部件): by component ``id``;
- ``ticket``: the layers whose points are personal data (:data:`layers.sensitive.SNAPPED_LAYERS`,
  ``tickets``): by ticket ``id``, and only for the roles that may see where a ticket is
  (:data:`layers.sensitive.MAY_SEE`): a hit gives the exact place, which the others never get;
- ``bim``: BIM element layers (:func:`layers.elements.is_element_layer`): by GlobalId and name.

Only the columns the caller sees are searched or shown (the layer's allow-list and, for roles
without the right, its sensitive columns left out: :func:`layers.sensitive.hidden_columns`), so
a hidden value can neither be read nor probed. A layer whose id column is hidden is not searched.

Matching: an exact id or name first, then those that start with the text, then those that
contain it, case-insensitively; ``%``, ``_`` and ``\\`` in the text are literal. Per layer one
query for the ids equal to the text or starting with it and the names containing it, at most
:data:`PER_KIND` rows, their boxes and points computed for those rows only; a second one for the
ids containing the text only when nothing matched exactly anywhere (:func:`search`).

Speed: every import makes a B-tree index on a layer's id columns (layers.load.ID_COLUMNS; the
collation is C, so it also serves the prefix match). Measured on stand-ins of the full sample's size
(500 000 components, 150 000 tickets and buildings, on 2 busy cores): without it a scan of the
components takes 55-85 ms, a whole search for an id 110-250 ms, for a part of an id (a second scan)
up to about 600 ms; with it an id is found in 0.3 ms (a bitmap index scan) and a search for an id
takes about 110 ms, nearly all of it the buildings' names (``ILIKE '%...%'``: a ``pg_trgm`` index
would serve it, none is made).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from cim.errors import InputError
from layers.catalogue import LayerInfo
from layers.elements import is_element_layer
from layers.sensitive import hidden_columns, may_see, snaps_points

#: the kinds of hit, in the order they are listed
KINDS = ("street", "community", "grid", "building", "parcel", "component", "ticket", "bim")
#: the longest text searched (characters)
MAX_QUERY = 100
#: the most hits of one search, and of one kind in one layer
MAX_LIMIT = 50
DEFAULT_LIMIT = 20
PER_KIND = 10
#: how a hit matched, best first
MATCHES = ("exact", "prefix", "contains")
#: a statement that runs longer is cancelled (a 503, never a hung request)
STATEMENT_TIMEOUT_MS = 5000
#: an id is looked for inside (not only at its start) with a text this long or longer
MIN_INSIDE = 3

_POLYGONS = ("Polygon", "MultiPolygon")
_BUILDING_NAMES = ("name", "名称", "建筑名称")
_ADDRESS_NAMES = ("address", "addr", "地址", "门牌地址")


@dataclass(frozen=True)
class Target:
    """One layer searched for one kind: which columns hold its id, what is matched, what is shown."""

    kind: str
    layer: LayerInfo
    #: the column that identifies a feature (the hit's ``id``; ``/layers/{layer}/items?{key}=...`` finds it)
    key: str
    #: id-like columns: matched exactly, by prefix and inside (``key`` first)
    codes: tuple[str, ...]
    #: names, addresses: matched exactly, by prefix and inside
    texts: tuple[str, ...] = ()
    #: the hit's label: these columns joined by a space (``key`` when all are empty)
    label: tuple[str, ...] = ()
    #: the hit's second line: these columns joined by " · "
    detail: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hit:
    kind: str
    layer: str
    #: the value of ``key`` in the layer
    id: str
    key: str
    label: str
    detail: str
    match: str  # one of MATCHES
    #: west, south, east, north (WGS84)
    bbox: tuple[float, float, float, float]
    #: a point on the feature (inside a polygon), lon/lat: where to fly to
    point: tuple[float, float]
    #: the layer's title (Chinese in the sample), for the list
    title: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "layer": self.layer,
            "title": self.title,
            "id": self.id,
            "key": self.key,
            "label": self.label,
            "detail": self.detail,
            "match": self.match,
            "bbox": list(self.bbox),
            "point": list(self.point),
        }


@dataclass(frozen=True)
class SearchRequest:
    text: str
    kinds: tuple[str, ...] = KINDS
    limit: int = DEFAULT_LIMIT

    @property
    def per_kind(self) -> int:
        return min(PER_KIND, self.limit)


def parse_request(q: str | None, kinds: str | None = None, limit: int | None = None) -> SearchRequest:
    """The request's ``q``, ``kinds`` (comma-separated, empty: all) and ``limit``, checked:
    :class:`InputError` (a 400) names what is wrong."""
    text = (q or "").strip()
    if len(text) > MAX_QUERY:
        raise InputError("q", f"the search text is {len(text)} characters long: at most {MAX_QUERY} are searched")
    if any(ord(c) < 32 for c in text):
        raise InputError("q", "the search text holds a control character")
    chosen = tuple(k.strip() for k in (kinds or "").split(",") if k.strip())
    unknown = [k for k in chosen if k not in KINDS]
    if unknown:
        raise InputError("kinds", f"unknown kind {', '.join(map(repr, unknown))}", hint=f"one of {', '.join(KINDS)}")
    n = DEFAULT_LIMIT if limit is None else limit
    if not 1 <= n <= MAX_LIMIT:
        raise InputError("limit", f"{n} hits asked for: between 1 and {MAX_LIMIT}")
    ordered = tuple(k for k in KINDS if k in chosen) if chosen else KINDS
    return SearchRequest(text, ordered, n)


def _kind_of(layer: LayerInfo, component_layers: Collection[str]) -> str | None:
    cols = layer.columns
    if is_element_layer(layer):
        return "bim"
    if layer.name in component_layers:
        return "component"
    if layer.geometry_type in ("Point", "MultiPoint") and snaps_points(layer, ()):
        return "ticket"
    if "grid_code" in cols:
        return "grid"
    if "community_code" in cols:
        return "community"
    if "street_code" in cols:
        return "street"
    if "parcel_id" in cols:
        return "parcel"
    if layer.geometry_type in _POLYGONS and ("height" in cols or "floors" in cols):
        return "building"
    return None


def _target(kind: str, layer: LayerInfo, seen: set[str]) -> Target | None:
    """What ``kind`` searches of ``layer``, among the columns ``seen``; None: nothing to search."""

    def keep(*names: str) -> tuple[str, ...]:
        return tuple(n for n in names if n in seen)

    spec: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
        # kind: (key, codes, texts, label, detail)
        "street": ("street_code", ("street_code",), ("street",), ("street",), ()),
        "community": ("community_code", ("community_code",), ("community",), ("community",), ("street",)),
        "grid": ("grid_code", ("grid_code",), ("grid_name",), ("grid_name",), ("community", "street")),
        "parcel": ("parcel_id", ("parcel_id",), (), ("parcel_id",), ("use", "status", "street")),
        "component": ("id", ("id",), (), ("class_name", "id"), ("status", "department", "street")),
        "ticket": ("id", ("id",), (), ("category", "id"), ("status", "address", "department")),
        "bim": ("global_id", ("global_id",), ("name",), ("name",), ("ifc_class", "storey")),
    }
    if kind == "building":
        names = keep(*_BUILDING_NAMES)
        addresses = keep(*_ADDRESS_NAMES)
        key = "id" if "id" in seen else (names[0] if names else "")
        spec["building"] = (key, keep("id"), names + addresses, names[:1], addresses[:1] + keep("use", "street"))
    key, codes, texts, label, detail = spec[kind]
    if key not in seen:
        return None
    return Target(kind, layer, key, keep(*codes), keep(*texts), keep(*label), keep(*detail))


def targets(
    catalogue: Mapping[str, LayerInfo] | Iterable[LayerInfo],
    roles: Iterable[str],
    *,
    component_layers: Collection[str] = (),
    kinds: Collection[str] = KINDS,
) -> list[Target]:
    """What a caller with ``roles`` may search, in :data:`KINDS` order then by layer name.
    ``component_layers``: the names in ``components.layers``."""
    roles = {str(r) for r in roles}
    layers = catalogue.values() if isinstance(catalogue, Mapping) else catalogue
    out = []
    for layer in sorted(layers, key=lambda x: x.name):
        kind = _kind_of(layer, component_layers)
        if kind is None or kind not in kinds:
            continue
        if snaps_points(layer, roles) or (kind == "ticket" and not may_see(roles)):
            continue  # where a ticket is: personal data, not for this caller
        seen = set(layer.served_columns) - hidden_columns(layer, roles)
        target = _target(kind, layer, seen)
        if target is not None:
            out.append(target)
    return sorted(out, key=lambda t: (KINDS.index(t.kind), t.layer.name))


def escape_like(text: str) -> str:
    """``text`` with LIKE's wildcards and its escape character taken literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _col(name: str) -> sql.Composable:
    return sql.SQL("t.{}::text").format(sql.Identifier(name))


def _raw(name: str) -> sql.Composable:
    return sql.SQL("t.{}").format(sql.Identifier(name))


def search_query(target: Target, text: str, cap: int, *, inside_ids: bool = False) -> tuple[sql.Composed, dict]:
    """The hits of ``text`` in ``target``: rows (id, label, detail, match rank, west, south,
    east, north, lon, lat), the best ``cap`` of them, best first.

    First (``inside_ids`` False) the ids equal to the text or starting with it (an index on the
    column serves both: the database's collation is C) and the names containing it; then, where
    :func:`needs_inside_ids` says so, the ids containing it that the first query did not find
    (``inside_ids``: a scan of the layer)."""
    columns = (*target.codes, *target.texts)
    text_type = {c for c in columns if target.layer.columns.get(c) in ("text", "character varying")}
    # a text column compared as it is (an index on it can serve = and LIKE 'x%'); others cast to text
    as_text = {c: (_raw(c) if c in text_type else _col(c)) for c in columns}
    # no function around the first condition: an index on an id column serves its = and LIKE 'x%'
    first = sql.SQL(" OR ").join(
        [sql.SQL("{} = %(q)s").format(as_text[c]) for c in target.codes]
        + [sql.SQL("{} LIKE %(prefix)s").format(as_text[c]) for c in target.codes]
        + [sql.SQL("{} ILIKE %(inside)s").format(as_text[c]) for c in target.texts]
    )
    where: sql.Composable = first
    if inside_ids:
        inside = sql.SQL(" OR ").join(sql.SQL("{} ILIKE %(inside)s").format(as_text[c]) for c in target.codes)
        where = sql.SQL("({}) AND NOT coalesce({}, false)").format(inside, first)
    exact = sql.SQL(" OR ").join(sql.SQL("lower({}) = lower(%(q)s)").format(as_text[c]) for c in columns)
    prefix = sql.SQL(" OR ").join(sql.SQL("{} ILIKE %(prefix)s").format(as_text[c]) for c in columns)
    key = _col(target.key)
    label_parts = [sql.SQL("nullif({}, '')").format(_col(c)) for c in target.label]
    label = (
        sql.SQL("coalesce(nullif(concat_ws(' ', {}), ''), {})").format(sql.SQL(", ").join(label_parts), key)
        if label_parts
        else key
    )
    detail = (
        sql.SQL("concat_ws(' · ', {})").format(
            sql.SQL(", ").join(sql.SQL("nullif({}, '')").format(_col(c)) for c in target.detail)
        )
        if target.detail
        else sql.SQL("''")
    )
    # the boxes and points of the rows kept only
    query = sql.SQL("""
        SELECT m.id, m.label, m.detail, m.rank, ST_XMin(m.geom), ST_YMin(m.geom), ST_XMax(m.geom), ST_YMax(m.geom),
               ST_X(p.point), ST_Y(p.point)
        FROM (
            SELECT t.fid, {key} AS id, {label} AS label, {detail} AS detail, t.geom,
                   CASE WHEN {exact} THEN 0 WHEN {prefix} THEN 1 ELSE 2 END AS rank
            FROM {table} t
            WHERE {where}
            ORDER BY rank, length({label}), {label}, t.fid
            LIMIT %(cap)s
        ) m CROSS JOIN LATERAL (SELECT ST_PointOnSurface(m.geom) AS point) p
        ORDER BY m.rank, length(m.label), m.label, m.fid""").format(
        key=key,
        label=label,
        detail=detail,
        exact=exact,
        prefix=prefix,
        table=sql.Identifier(target.layer.table_schema, target.layer.table_name),
        where=where,
    )
    escaped = escape_like(text)
    return query, {"q": text, "prefix": f"{escaped}%", "inside": f"%{escaped}%", "cap": cap}


def needs_inside_ids(target: Target, text: str, first: list[Hit], cap: int) -> bool:
    """Whether to look in ``target`` for ids containing ``text`` after the first query found ``first``
    there: not when it filled the cap, nor for a text shorter than :data:`MIN_INSIDE` (a digit is
    inside nearly every id)."""
    return bool(target.codes) and len(text) >= MIN_INSIDE and len(first) < cap


#: runs one query, gives its rows (the caller's connection, or one of its pool's)
Execute = Callable[[sql.Composed, dict], Awaitable[list[tuple]]]


async def search(targets: Sequence[Target], request: SearchRequest, execute: Execute) -> list[Hit]:
    """The hits of ``request`` in ``targets``, best first (:func:`merge`). Each layer's first
    query (:func:`search_query`) runs at once (``execute`` may run them side by side); the ids
    containing the text are looked for only where :func:`needs_inside_ids` says so and nothing
    matched exactly anywhere (an exact id: the caller typed one, and the other layers need no scan)."""
    if not request.text or not targets:
        return []
    cap = request.per_kind

    async def run(target: Target, inside_ids: bool, n: int) -> list[Hit]:
        query, params = search_query(target, request.text, n, inside_ids=inside_ids)
        return [hit_of(target, row) for row in await execute(query, params)]

    first = await asyncio.gather(*(run(t, False, cap) for t in targets))
    found = [list(hits) for hits in first]
    if not any(h.match == "exact" for hits in found for h in hits):
        more = [i for i, t in enumerate(targets) if needs_inside_ids(t, request.text, found[i], cap)]
        for i, hits in zip(more, await asyncio.gather(*(run(targets[i], True, cap - len(found[i])) for i in more))):
            found[i] += hits
    return merge((h for hits in found for h in hits), request.limit, cap)


def hit_of(target: Target, row: tuple) -> Hit:
    id_, label, detail, rank, w, s, e, n, lon, lat = row
    return Hit(
        kind=target.kind,
        layer=target.layer.name,
        id=str(id_),
        key=target.key,
        label=str(label),
        detail=str(detail or ""),
        match=MATCHES[int(rank)],
        bbox=(float(w), float(s), float(e), float(n)),
        point=(float(lon), float(lat)),
        title=target.layer.title,
    )


def merge(hits: Iterable[Hit], limit: int, per_kind: int = PER_KIND) -> list[Hit]:
    """The best ``limit`` hits, at most ``per_kind`` of a kind: exact matches first, then
    prefixes, then the rest; by kind within each (in :data:`KINDS` order), each layer's own order kept."""
    ordered = sorted(enumerate(hits), key=lambda ih: (MATCHES.index(ih[1].match), KINDS.index(ih[1].kind), ih[0]))
    out: list[Hit] = []
    counts: dict[str, int] = {}
    for _, hit in ordered:
        if counts.get(hit.kind, 0) < per_kind:
            counts[hit.kind] = counts.get(hit.kind, 0) + 1
            out.append(hit)
    return out[:limit]
