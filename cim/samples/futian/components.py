"""City components (城市部件): the catalogue's classes placed on streets, at buildings, in parks and on the river bank.

Each class of :data:`cim.components.catalogue.CLASSES` has a full-scale count (its share: street trees,
manhole covers and street lamps lead) and where it stands (:data:`PLACEMENTS`):

- ``line``: on a street line (a street-lattice cell edge, like the sensors on streets): manhole
  covers, grates, speed bumps, gantries and overpasses spanning the street;
- ``kerb``: 0.3-1.2 m inside a cell edge, between the street line and the buildings (which keep
  1.5 m inside their cells): lamps, signs, cabinets, bins, bollards, street trees, shelters, kiosks;
- ``corner``: at a street crossing (a cell corner, 0.8-1.5 m in): traffic lights, enforcement cameras;
- ``building``: 0.6-1.2 m outside a building's outer wall (an entrance), facing out: mailboxes,
  hydrants, house number plates, refuse rooms, car park entrances;
- ``park`` / ``park_edge``: inside the hills and parks (``park_edge``: within 150 m of their outline,
  where the paths and squares are): trees, benches, fitness and playground equipment;
- ``water``: 3-15 m inside the district's river and bay shore: railings, outfalls, gauges.

Headings (degrees clockwise from north) turn a model's front (+y) to face the street (so its width
runs along the street) or, for the classes marked ``along``, along the street (speed bumps, gantries,
piers and entrances lie across or beside it); at buildings and on the shore they face out, in
parks they are random.

Sensors of category ``manhole_cover`` and ``hydrant_pressure`` each get a component at their exact
position (a 井盖 class, the 消火栓 class) whose id is their ``component_id``; tickets about street
furniture, sanitation, fire safety, traffic or water (:data:`TICKET_CLASSES`) get the id of the
nearest fitting component within :data:`TICKET_RADIUS_M` (about half of them). Component ids follow
GB/T 30428.2: district code 440304 + class code + a 6-digit serial within the class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from cim.components.catalogue import CLASSES, ComponentClass
from cim.samples import names
from cim.samples.futian.buildings import Buildings
from cim.samples.futian.geometry import lonlat_box, rotate_xy
from cim.samples.futian.landcover import LandCover
from cim.samples.futian.lattice import Cells

# imported as _rng: the functions here name their generators "rng"
from cim.samples.futian.params import rng as _rng
from cim.samples.futian.parcels import as_dates
from cim.samples.futian.partitions import apportion, random_points_in
from cim.samples.futian.points import PointLayer

LINE, KERB, CORNER, BUILDING, PARK, PARK_EDGE, WATER = (
    "line",
    "kerb",
    "corner",
    "building",
    "park",
    "park_edge",
    "water",
)
KINDS = (LINE, KERB, CORNER, BUILDING, PARK, PARK_EDGE, WATER)
STREET_KINDS = frozenset({LINE, KERB, CORNER})
FACE, ALONG, RANDOM = "face", "along", "random"

MIN_PER_CLASS = 10  # every class has at least this many components (when the total allows)
TICKET_RADIUS_M = 50.0  # a ticket is linked to a fitting component at most this far away
TICKET_LINK_SHARE = 0.7  # the share of fitting tickets that are about a component
PARK_EDGE_M = 150.0
STATUS = ("完好", "破损", "丢失", "占用", "废弃")
_STATUS_P = (0.955, 0.025, 0.005, 0.01, 0.005)
_LOSABLE_SHAPES = frozenset({"manhole", "grate", "bin", "sign", "bollard", "barrier", "plate", "post"})
_INSTALLED = ("1995-01-01", "2026-10-31")
# the river and bay shore of the district (as the eco red line of landcover: Shenzhen River, mangroves)
_SHORE_BOXES = ((113.98, 22.49, 114.036, 22.519), (114.036, 22.49, 114.11, 22.534))


def _at(kind: str) -> tuple[tuple[str, float], ...]:
    return ((kind, 1.0),)


# class code -> (full-scale count, where it stands (kind, share), heading rule)
PLACEMENTS: dict[str, tuple[float, tuple[tuple[str, float], ...], str]] = {
    # 01 公用设施
    "0101": (20_000, _at(LINE), ALONG),
    "0102": (22_000, _at(LINE), ALONG),
    "0103": (25_000, _at(LINE), ALONG),
    "0104": (20_000, _at(LINE), ALONG),
    "0105": (15_000, _at(LINE), ALONG),
    "0106": (6_000, _at(LINE), ALONG),
    "0107": (15_000, _at(LINE), ALONG),
    "0108": (4_000, _at(LINE), ALONG),
    "0109": (6_000, _at(LINE), ALONG),
    "0110": (200, _at(LINE), ALONG),  # no district heating in Shenzhen: a few steam/hot-water lines
    "0111": (8_000, _at(LINE), ALONG),
    "0112": (2_000, _at(LINE), ALONG),
    "0113": (1_500, _at(LINE), ALONG),
    "0114": (300, _at(LINE), ALONG),
    "0115": (32_000, ((KERB, 0.6), (BUILDING, 0.4)), FACE),  # most carry a hydrant_pressure sensor
    "0116": (6_000, _at(KERB), FACE),
    "0117": (5_000, _at(KERB), FACE),
    "0118": (2_000, _at(KERB), FACE),
    "0119": (800, ((BUILDING, 0.7), (KERB, 0.3)), FACE),
    "0120": (300, _at(KERB), FACE),
    "0121": (600, _at(KERB), FACE),
    "0122": (400, _at(KERB), FACE),
    "0123": (6_000, ((KERB, 0.7), (CORNER, 0.3)), FACE),
    "0124": (150, ((CORNER, 0.5), (BUILDING, 0.5)), FACE),
    "0125": (45_000, _at(KERB), FACE),
    "0126": (4_000, ((PARK_EDGE, 0.6), (BUILDING, 0.4)), RANDOM),
    "0127": (8_000, ((PARK_EDGE, 0.6), (KERB, 0.4)), FACE),
    "0128": (120, _at(PARK), RANDOM),
    "0129": (2_500, ((KERB, 0.5), (BUILDING, 0.5)), FACE),
    "0130": (1_500, _at(BUILDING), FACE),
    "0131": (3_000, _at(KERB), FACE),
    "0132": (4_000, _at(KERB), FACE),
    # 02 道路交通
    "0201": (1_500, ((BUILDING, 0.7), (KERB, 0.3)), FACE),
    "0202": (3_000, _at(KERB), FACE),
    "0203": (1_400, _at(KERB), FACE),
    "0204": (200, _at(KERB), FACE),
    "0205": (40, _at(KERB), FACE),
    "0206": (15_000, ((KERB, 0.7), (CORNER, 0.3)), FACE),
    "0207": (5_000, _at(CORNER), FACE),
    "0208": (80, _at(LINE), FACE),  # spans the street
    "0209": (40, _at(KERB), ALONG),
    "0210": (30, _at(WATER), FACE),  # spans the river
    "0211": (600, _at(LINE), ALONG),
    "0212": (12_000, _at(KERB), FACE),
    "0213": (150, _at(LINE), ALONG),
    "0214": (3_000, ((KERB, 0.7), (BUILDING, 0.3)), FACE),
    "0215": (400, _at(KERB), FACE),
    "0216": (500, _at(KERB), FACE),
    "0217": (100, _at(CORNER), FACE),
    "0218": (5_000, ((CORNER, 0.6), (KERB, 0.4)), FACE),
    "0219": (1_500, _at(CORNER), FACE),
    "0220": (2_500, _at(KERB), FACE),
    "0221": (450, _at(KERB), ALONG),
    "0222": (2_000, _at(LINE), ALONG),
    "0223": (4_000, _at(KERB), FACE),
    "0224": (15_000, ((KERB, 0.6), (BUILDING, 0.4)), FACE),
    "0225": (800, _at(CORNER), FACE),
    "0226": (6_000, ((BUILDING, 0.6), (KERB, 0.4)), FACE),
    # 03 市容环境
    "0301": (400, ((PARK_EDGE, 0.5), (KERB, 0.5)), FACE),
    "0302": (800, ((KERB, 0.6), (PARK_EDGE, 0.4)), FACE),
    "0303": (3_000, _at(BUILDING), FACE),
    "0304": (1_500, _at(BUILDING), FACE),
    "0305": (20_000, ((KERB, 0.6), (BUILDING, 0.25), (PARK_EDGE, 0.15)), FACE),
    "0306": (4_000, _at(BUILDING), FACE),
    "0307": (3_000, ((BUILDING, 0.6), (KERB, 0.4)), FACE),
    "0308": (200, _at(BUILDING), FACE),
    "0309": (60, _at(BUILDING), FACE),
    "0310": (500, ((BUILDING, 0.7), (CORNER, 0.3)), FACE),
    "0311": (3_500, _at(BUILDING), FACE),
    "0312": (600, _at(BUILDING), FACE),
    "0313": (800, ((KERB, 0.5), (BUILDING, 0.5)), FACE),
    "0314": (600, ((PARK_EDGE, 0.6), (KERB, 0.4)), FACE),
    # 04 园林绿化
    "0401": (600, _at(PARK), RANDOM),
    "0402": (90_000, _at(KERB), FACE),
    "0403": (8_000, _at(KERB), FACE),
    "0404": (5_000, ((KERB, 0.5), (BUILDING, 0.3), (PARK_EDGE, 0.2)), FACE),
    "0405": (3_000, _at(PARK), RANDOM),
    "0406": (300, ((PARK_EDGE, 0.7), (CORNER, 0.3)), RANDOM),
    "0407": (8_000, ((PARK_EDGE, 0.6), (KERB, 0.4)), FACE),
    "0408": (4_000, _at(PARK_EDGE), RANDOM),
    "0409": (6_000, _at(PARK), RANDOM),
    "0410": (120, _at(PARK_EDGE), RANDOM),
    "0411": (15_000, ((KERB, 0.5), (PARK, 0.5)), RANDOM),
    "0412": (8_000, ((KERB, 0.5), (PARK_EDGE, 0.5)), FACE),
    "0413": (1_500, _at(PARK_EDGE), RANDOM),
    # 05 房屋土地
    "0501": (2_500, ((BUILDING, 0.6), (KERB, 0.4)), FACE),
    "0502": (400, _at(BUILDING), FACE),
    "0503": (12_000, _at(BUILDING), FACE),
    "0504": (8_000, _at(BUILDING), FACE),
    "0505": (3_000, _at(BUILDING), FACE),
    "0506": (800, ((CORNER, 0.5), (PARK, 0.5)), RANDOM),
    # 06 其他设施
    "0601": (50, _at(BUILDING), FACE),
    "0602": (300, _at(KERB), FACE),
    "0603": (400, _at(WATER), FACE),
    "0604": (2_500, _at(WATER), FACE),
    "0605": (1_500, _at(PARK_EDGE), RANDOM),
    "0606": (600, _at(PARK_EDGE), RANDOM),
    "0607": (150, _at(WATER), FACE),
    "0608": (100, _at(WATER), FACE),
    "0609": (500, ((WATER, 0.5), (BUILDING, 0.5)), FACE),
    "0610": (600, ((PARK_EDGE, 0.5), (KERB, 0.5)), FACE),
    "0611": (800, _at(BUILDING), FACE),
    "0612": (150, _at(BUILDING), FACE),
}

# a class the table does not know (the catalogue grew): placed by its shape, 500 at full scale
_DEFAULT_BY_SHAPE = {"manhole": LINE, "grate": LINE, "tree": PARK, "palm": PARK, "shrub": PARK, "hedge": PARK_EDGE}


def placement(cls: ComponentClass) -> tuple[float, tuple[tuple[str, float], ...], str]:
    """(full-scale count, ((kind, share), ...), heading rule) of a class."""
    found = PLACEMENTS.get(cls.code)
    if found is not None:
        return found
    kind = _DEFAULT_BY_SHAPE.get(cls.shape, KERB)
    return 500.0, _at(kind), RANDOM if kind in (PARK, PARK_EDGE) else FACE


def _codes(*items: str) -> frozenset[str]:
    return frozenset(items)


_MANHOLES = frozenset(c.code for c in CLASSES if c.name_zh.endswith("井盖"))
_WATER_MANHOLES = _codes("0101", "0102", "0103", "0104")
# ticket category (names.TICKET_CATEGORIES) -> the component classes such a ticket may be about
TICKET_CLASSES: dict[str, frozenset[str]] = {
    "市容环境": frozenset(c.code for c in CLASSES if c.major in ("03", "04")),
    "道路设施": frozenset(c.code for c in CLASSES if c.major == "02") | _MANHOLES | _codes("0125", "0131", "0127"),
    "消防安全": _codes("0115", "0611", "0612"),
    "交通秩序": _codes("0201", "0202", "0206", "0207", "0212", "0213", "0217", "0219", "0222", "0223", "0224"),
    "水务": _WATER_MANHOLES | _codes("0314", "0603", "0604", "0607", "0608", "0609"),
}
# sensor category -> the classes its component is drawn from (by their shares)
SENSOR_CLASSES: dict[str, frozenset[str]] = {
    "manhole_cover": _MANHOLES,
    "hydrant_pressure": frozenset(c.code for c in CLASSES if c.shape == "hydrant"),
}

# 权属单位 (owner) by department, and by class where the owner is a company of its own
_OWNERS_BY_DEPARTMENT: dict[str, tuple[str, ...]] = {
    "区水务局": ("深圳市水务（集团）有限公司", "福田区水务局"),
    "区城管和综合执法局": ("福田区城市管理和综合执法局", "福田区环境卫生管理所", "福田区市政设施管理中心"),
    "区供电局": ("深圳供电局有限公司",),
    "区交通运输局": ("深圳市交通运输局福田管理局", "福田区道路养护中心"),
    "区公安分局交警大队": ("深圳市公安局交通警察局福田大队",),
    "区公安分局": ("深圳市公安局福田分局",),
    "区消防救援大队": ("福田区消防救援大队",),
    "区住房和建设局": ("福田区住房和建设局", "深圳市燃气集团股份有限公司"),
    "区工业和信息化局": ("中国电信深圳分公司", "中国移动深圳分公司", "中国联通深圳分公司", "中国铁塔深圳分公司"),
    "区邮政分局": ("中国邮政集团有限公司深圳市分公司",),
    "区文化广电旅游体育局": ("福田区文化广电旅游体育局", "深圳市天威视讯股份有限公司"),
    "区规划和自然资源局": ("深圳市规划和自然资源局福田管理局",),
    "区应急管理局": ("福田区应急管理局",),
    "区人民防空办公室": ("福田区人民防空办公室",),
    "区生态环境局": ("深圳市生态环境局福田管理局",),
}
_OWNERS_BY_CLASS: dict[str, tuple[str, ...]] = {
    "0111": ("深圳市燃气集团股份有限公司",),
    "0130": ("深圳市燃气集团股份有限公司",),
    "0108": ("深圳市天威视讯股份有限公司",),
    "0118": ("深圳市天威视讯股份有限公司",),
    "0203": ("深圳巴士集团股份有限公司", "深圳市东部公共交通有限公司"),
    "0220": ("深圳巴士集团股份有限公司", "深圳市东部公共交通有限公司"),
    "0221": ("深圳市地铁集团有限公司",),
    "0205": ("中国石化深圳石油分公司", "中国石油深圳销售分公司"),
    "0215": ("深圳市公共自行车服务中心",),
    "0226": ("深圳市特来电新能源有限公司", "南方电网电动汽车服务有限公司"),
    "0503": ("深圳市公安局福田分局",),
    "0504": ("物业服务企业",),
    "0304": ("物业服务企业",),
}


def owners(cls: ComponentClass) -> tuple[str, ...]:
    """The owners (权属单位) a component of the class may have (invented, plausible)."""
    return _OWNERS_BY_CLASS.get(cls.code) or _OWNERS_BY_DEPARTMENT.get(cls.department) or (f"福田{cls.department}",)


@dataclass
class Components:
    """The components layer and the links: each sensor's and each ticket's component id (None: none)."""

    layer: PointLayer
    sensor_component_id: np.ndarray  # object, one per sensor
    ticket_component_id: np.ndarray  # object, one per ticket


# --- placement -----------------------------------------------------------------------------------


def _heading(direction: np.ndarray) -> np.ndarray:
    """Metric direction vectors (n, 2) -> degrees clockwise from north, [0, 360)."""
    return np.degrees(np.arctan2(direction[:, 0], direction[:, 1])) % 360.0


# the four sides of a cell (bottom, right, top, left): outward normal in the cell frame
_SIDE_NORMALS = np.array([[0.0, -1.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])


def _on_cell_edges(cells: Cells, inset: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Points ``inset`` metres inside random cell edges (uniform along the outlines), and the
    direction each faces (out of its cell, towards the street line), metric."""
    n = len(inset)
    idx = rng.integers(0, len(cells), n)
    w, h = cells.size[idx, 0], cells.size[idx, 1]
    t = rng.uniform(0.0, 1.0, n) * 2.0 * (w + h)
    side = np.select([t < w, t < w + h, t < 2 * w + h], [0, 1, 2], 3)
    along = np.select([side == 0, side == 1, side == 2], [t, t - w, t - w - h], t - 2 * w - h)
    x = np.select([side == 0, side == 1, side == 2], [-w / 2 + along, w / 2 - inset, w / 2 - along], -w / 2 + inset)
    y = np.select([side == 0, side == 1, side == 2], [-h / 2 + inset, -h / 2 + along, h / 2 - inset], h / 2 - along)
    xy = cells.local_to_metric(np.column_stack([x, y]), idx)
    return xy, rotate_xy(_SIDE_NORMALS[side], cells.angle[idx])


def _at_cell_corners(cells: Cells, inset: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Points ``inset`` metres in from random cell corners (both ways), facing one of the two streets."""
    n = len(inset)
    idx = rng.integers(0, len(cells), n)
    signs = rng.choice([-1.0, 1.0], size=(n, 2))
    local = signs * (cells.size[idx] / 2.0 - inset[:, None])
    use_x = rng.random(n) < 0.5
    face = np.where(
        use_x[:, None], np.column_stack([signs[:, 0], np.zeros(n)]), np.column_stack([np.zeros(n), signs[:, 1]])
    )
    return cells.local_to_metric(local, idx), rotate_xy(face, cells.angle[idx])


def _ring_segments(rings: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start and end points of every segment of the rings, and their outward normals
    (right of a counter-clockwise exterior ring)."""
    coords, ring = shapely.get_coordinates(rings, return_index=True)
    same = ring[:-1] == ring[1:]
    a, b = coords[:-1][same], coords[1:][same]
    d = b - a
    length = np.hypot(d[:, 0], d[:, 1])
    keep = length > 1e-6
    a, b, d, length = a[keep], b[keep], d[keep], length[keep]
    ccw = np.asarray(shapely.is_ccw(rings))[ring[:-1][same][keep]]
    normal = np.column_stack([d[:, 1], -d[:, 0]]) / length[:, None]
    normal[~ccw] *= -1.0
    return a, b, normal


def _on_segments(
    segments: tuple[np.ndarray, np.ndarray, np.ndarray], offset: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Points on the segments (picked by length), moved ``offset`` metres along the outward normal."""
    a, b, normal = segments
    cum = np.cumsum(np.hypot(*(b - a).T))
    seg = np.minimum(np.searchsorted(cum, rng.uniform(0.0, cum[-1], len(offset)), side="right"), len(cum) - 1)
    t = rng.uniform(0.05, 0.95, len(offset))[:, None]
    return a[seg] + t * (b[seg] - a[seg]) + offset[:, None] * normal[seg], normal[seg]


def _outer_rings(geometry: np.ndarray) -> np.ndarray:
    return shapely.get_exterior_ring(shapely.get_parts(geometry))


def _at_buildings(buildings: Buildings, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Points 0.6-1.2 m outside the buildings' outer walls (entrances), facing out."""
    return _on_segments(_ring_segments(_outer_rings(buildings.geometry)), rng.uniform(0.6, 1.2, n), rng)


def _on_shore(district: BaseGeometry, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Points 3-15 m inside the district's river and bay shore, facing the water."""
    a, b, normal = _ring_segments(_outer_rings(np.array([district], dtype=object)))
    boxes = shapely.union_all([lonlat_box(*box) for box in _SHORE_BOXES])
    mid = (a + b) / 2.0
    on_shore = shapely.contains_xy(boxes, mid[:, 0], mid[:, 1])
    segments = (a[on_shore], b[on_shore], normal[on_shore])
    inner = shapely.buffer(district, -1.0)
    shapely.prepare(inner)
    xy, face = np.empty((0, 2)), np.empty((0, 2))
    while len(xy) < n:
        m = max(64, 2 * (n - len(xy)))
        p, f = _on_segments(segments, -rng.uniform(3.0, 15.0, m), rng)
        ok = shapely.contains_xy(inner, p[:, 0], p[:, 1])
        xy, face = np.vstack([xy, p[ok]]), np.vstack([face, f[ok]])
    return xy[:n], face[:n]


def _in_region(region: BaseGeometry, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    xy = random_points_in(region, n, rng) if n else np.empty((0, 2))
    return xy, np.zeros((n, 2))


def _place(
    kind: str,
    n: int,
    road_cells: Cells,
    buildings: Buildings,
    parks: tuple[BaseGeometry, BaseGeometry],
    district: BaseGeometry,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """n points of one placement kind and the direction each faces (zero: none), metric."""
    if kind == LINE:
        return _on_cell_edges(road_cells, np.zeros(n), rng)
    if kind == KERB:
        return _on_cell_edges(road_cells, rng.uniform(0.3, 1.2, n), rng)
    if kind == CORNER:
        return _at_cell_corners(road_cells, rng.uniform(0.8, 1.5, n), rng)
    if kind == BUILDING:
        return _at_buildings(buildings, n, rng)
    if kind == PARK:
        return _in_region(parks[0], n, rng)
    if kind == PARK_EDGE:
        return _in_region(parks[1], n, rng)
    if kind == WATER:
        return _on_shore(district, n, rng)
    raise ValueError(f"unknown placement kind {kind!r}")


def _nearest_within(xy: np.ndarray, targets: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """For each point of xy, the nearest of targets (metric points) within radius: the indices
    of the points that have one and of their nearest targets (ties: the lower target index)."""
    points = shapely.points(targets)
    assert isinstance(points, np.ndarray)  # (n, 2) coordinates: n points
    tree = shapely.STRtree(points)
    i, j = tree.query(shapely.box(xy[:, 0] - radius, xy[:, 1] - radius, xy[:, 0] + radius, xy[:, 1] + radius))
    d = np.hypot(*(xy[i] - targets[j]).T)
    near = d <= radius
    i, j, d = i[near], j[near], d[near]
    order = np.lexsort((j, d, i))
    i, j = i[order], j[order]
    first = np.r_[True, i[1:] != i[:-1]] if len(i) else np.empty(0, dtype=bool)
    return i[first], j[first]


def _edge_direction(road_cells: Cells, xy: np.ndarray) -> np.ndarray:
    """For points on street lines: the outward normal of the nearest cell edge (metric unit vectors)."""
    corners = road_cells.local_to_metric(
        np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])[None, :, :] * road_cells.size[:, None, :]
    )
    cells = shapely.polygons(corners)
    assert isinstance(cells, np.ndarray)  # (n, 4, 2) coordinates: n polygons
    tree = shapely.STRtree(cells)
    i, j = tree.query(shapely.box(xy[:, 0] - 0.01, xy[:, 1] - 0.01, xy[:, 0] + 0.01, xy[:, 1] + 0.01))
    local = rotate_xy(xy[i] - road_cells.centre[j], -road_cells.angle[j])
    over = np.abs(local) - road_cells.size[j] / 2.0  # 0 on the cell's outline, < 0 inside
    off = np.abs(np.max(over, axis=1))
    order = np.lexsort((j, off, i))
    i, j, local, over = i[order], j[order], local[order], over[order]
    first = np.r_[True, i[1:] != i[:-1]] if len(i) else np.empty(0, dtype=bool)
    normal = np.zeros((len(xy), 2))
    vertical = over[first, 0] > over[first, 1]
    sign = np.sign(local[first])
    normal[i[first]] = np.where(
        vertical[:, None],
        np.column_stack([sign[:, 0], np.zeros(len(sign))]),
        np.column_stack([np.zeros(len(sign)), sign[:, 1]]),
    )
    normal[np.all(normal == 0.0, axis=1)] = (0.0, 1.0)
    angle = np.zeros(len(xy))
    angle[i[first]] = road_cells.angle[j[first]]
    return rotate_xy(normal, angle)


def _parks(land: LandCover) -> tuple[BaseGeometry, BaseGeometry]:
    """The hills and parks, and their rim (within PARK_EDGE_M of the outline)."""
    parks = shapely.union_all(land.hills)
    rim = shapely.difference(parks, shapely.buffer(parks, -PARK_EDGE_M))
    return parks, rim


# --- the layer -----------------------------------------------------------------------------------


def _class_counts(n: int, linked: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Components per class to place freely: the classes' shares of n (each >= MIN_PER_CLASS when
    n allows) less the ones already placed at sensors."""
    minimum = MIN_PER_CLASS if n >= MIN_PER_CLASS * len(weights) else 0
    target = apportion(n, weights, minimum)
    free_total = n - int(linked.sum())
    if free_total < 0:
        raise ValueError(f"{n} components are fewer than the {int(linked.sum())} linked sensors")
    wanted = np.maximum(target - linked, 0)
    if wanted.sum() == free_total:
        return wanted
    return apportion(free_total, wanted + 1e-9, 0)


def _linked_classes(
    category: np.ndarray, codes: list[str], weights: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Sensors getting a component (their indices) and the class index of each."""
    sensor_idx: list[np.ndarray] = []
    class_idx: list[np.ndarray] = []
    for sensor_category, allowed in SENSOR_CLASSES.items():
        sel = np.flatnonzero(category == sensor_category)
        pool = np.array([i for i, c in enumerate(codes) if c in allowed])
        if not len(sel) or not len(pool):
            continue
        p = weights[pool] / weights[pool].sum()
        sensor_idx.append(sel)
        class_idx.append(pool[rng.choice(len(pool), len(sel), p=p)])
    if not sensor_idx:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(sensor_idx), np.concatenate(class_idx)


def _days(dates) -> np.ndarray:
    """Dates -> days since 1970-01-01."""
    return pd.DatetimeIndex(dates).to_numpy().astype("datetime64[D]").astype(np.int64)


def build_components(
    road_cells: Cells,
    buildings: Buildings,
    land: LandCover,
    district: BaseGeometry,
    sensors: PointLayer,
    tickets: PointLayer,
    n: int,
    seed: int,
) -> Components:
    """n city components over every class of the catalogue (see the module docstring), those at the
    manhole and hydrant sensors included, and the sensors' and tickets' component ids."""
    rng = _rng(seed, "components")
    classes = list(CLASSES)
    codes = [c.code for c in classes]
    plans = [placement(c) for c in classes]
    weights = np.array([p[0] for p in plans], dtype=float)

    # components at the sensors, then the rest by placement kind
    sensor_idx, linked_class = _linked_classes(np.asarray(sensors.columns["category"]), codes, weights, rng)
    free = _class_counts(n, np.bincount(linked_class, minlength=len(classes)), weights)
    parts_xy = [sensors.xy[sensor_idx]]
    parts_face = [_edge_direction(road_cells, sensors.xy[sensor_idx])]
    parts_class = [linked_class]
    per_kind: dict[str, list[np.ndarray]] = {kind: [] for kind in KINDS}
    for c, (_, shares, _) in enumerate(plans):
        split = apportion(int(free[c]), np.array([s for _, s in shares]), 0)
        for (kind, _), k in zip(shares, split):
            per_kind[kind].append(np.full(k, c))
    parks = _parks(land)
    for kind in KINDS:
        cls_of = np.concatenate(per_kind[kind]) if per_kind[kind] else np.empty(0, dtype=np.int64)
        cls_of = rng.permutation(cls_of)
        xy, face = _place(kind, len(cls_of), road_cells, buildings, parks, district, rng)
        parts_xy.append(xy)
        parts_face.append(face)
        parts_class.append(cls_of)
    xy = np.vstack(parts_xy)
    face = np.vstack(parts_face)
    cls = np.concatenate(parts_class).astype(np.int64)
    total = len(cls)
    source = np.full(total, -1)  # the sensor a component was made for
    source[: len(sensor_idx)] = sensor_idx

    # headings: facing (the street, out of the building, the water), along the street, or random
    rule = np.array([p[2] for p in plans], dtype=object)[cls]
    facing = _heading(face)
    side = rng.choice([-90.0, 90.0], total)
    random_heading = rng.uniform(0.0, 360.0, total)
    no_face = ~np.any(face != 0.0, axis=1)
    heading = np.where(rule == ALONG, facing + side, facing)
    heading = np.where((rule == RANDOM) | no_face, random_heading, heading)
    heading = np.round(heading % 360.0, 1) % 360.0

    # order by class, a random order within a class; serials count up within each class
    order = np.lexsort((rng.permutation(total), cls))
    xy, cls, heading, source = xy[order], cls[order], heading[order], source[order]
    serial = np.arange(total) - np.searchsorted(cls, cls, side="left") + 1
    code_arr = np.array(codes, dtype=object)[cls]
    ids = np.array([f"{names.DISTRICT_ADCODE}{c}{s:06d}" for c, s in zip(code_arr, serial)], dtype=object)

    losable = np.array([c.shape in _LOSABLE_SHAPES for c in classes])[cls]
    status_idx = rng.choice(len(STATUS), total, p=_STATUS_P)
    status_idx[(status_idx == 2) & ~losable] = 0
    owner = np.empty(total, dtype=object)
    draw = rng.random(total)
    for c, klass in enumerate(classes):
        sel = cls == c
        pool = np.array(owners(klass), dtype=object)
        owner[sel] = pool[(draw[sel] * len(pool)).astype(np.int64)]
    first, last = (_days([d])[0] for d in _INSTALLED)
    days = rng.integers(first, last + 1, total)
    has_sensor = source >= 0
    sensor_days = _days(sensors.columns["install_date"])
    days[has_sensor] = np.minimum(days[has_sensor], sensor_days[source[has_sensor]])

    sensor_component = np.full(len(sensors.xy), None, dtype=object)
    sensor_component[source[has_sensor]] = ids[has_sensor]
    layer = PointLayer(
        xy,
        {
            "id": ids,
            "class_code": code_arr,
            "class_name": np.array([c.name_zh for c in classes], dtype=object)[cls],
            "status": np.array(STATUS, dtype=object)[status_idx],
            "department": np.array([c.department for c in classes], dtype=object)[cls],
            "owner": owner,
            "install_date": as_dates(pd.to_datetime(days, unit="D")),
            "heading": heading,
        },
    )
    return Components(layer, sensor_component, link_tickets(xy, code_arr, ids, tickets, rng))


def link_tickets(
    xy: np.ndarray, class_code: np.ndarray, ids: np.ndarray, tickets: PointLayer, rng: np.random.Generator
) -> np.ndarray:
    """Each ticket's component id: for about TICKET_LINK_SHARE of the tickets of a category in
    TICKET_CLASSES, the nearest component (xy, class_code, ids) of a fitting class within
    TICKET_RADIUS_M; else None."""
    out = np.full(len(tickets.xy), None, dtype=object)
    category = np.asarray(tickets.columns["category"], dtype=object)
    about = rng.random(len(tickets.xy)) < TICKET_LINK_SHARE
    codes, cls = np.unique(class_code.astype(str), return_inverse=True)
    for ticket_category, allowed in TICKET_CLASSES.items():
        sel = np.flatnonzero((category == ticket_category) & about)
        fit = np.flatnonzero(np.isin(codes, list(allowed))[cls])
        if not len(sel) or not len(fit):
            continue
        found, nearest = _nearest_within(tickets.xy[sel], xy[fit], TICKET_RADIUS_M)
        out[sel[found]] = ids[fit[nearest]]
    return out
