"""The component class catalogue (城市部件分类): six 大类, 103 小类, user classes.

Where the list comes from
-------------------------
The classes follow GB/T 30428.2-2013 《数字化城市管理信息系统 第2部分：管理部件和事件》 and its
predecessor CJ/T 214-2007 (城市市政综合监管信息系统 管理部件和事件分类、编码及数据要求). Both
code a component class with 4 digits, 大类 (2) + 小类 (2), and a component (部件标识码) as
6-digit district code + 4-digit class code + 6-digit serial, e.g. ``4403040101000123``.

The standard's text could not be consulted while writing this (offline; no copy found in the
reference corpora). Known for certain: the six 大类 and their codes (01 公用设施, 02 道路交通,
03 市容环境, 04 园林绿化, 05 房屋土地, 06 其他设施), the 4-digit scheme, and the first 小类 of 01
(0101 上水井盖, 0102 污水井盖, 0103 雨水井盖, 0104 雨水箅子, 0105 电力井盖, ...), which appear in many
published city systems. The remaining 小类 names are those commonly used by digital city management
systems built on CJ/T 214 / GB/T 30428.2, reconstructed from memory; their 小类 numbers are assigned
in order here and may differ from the standard's. Check against the standard before relying on a
code outside the 井盖 series.

Futian's CIM counts 103 classes, more than the standard's list; the classes marked
``# local addition`` below (smart poles, EV chargers, 5G small cells, ...) are this project's
additions to reach 103, numbered after the standard-style classes of their 大类.

Each class has a Chinese and English name, a default size (width east-west, depth north-south,
height, metres; the built-in model's bounding box), a colour (a hue family per 大类, distinct per
class), the built-in model's shape (a key of ``cim.components.shapes.SHAPES``) and its usual
主管部门 (department; Futian district names, shortened).
"""

from __future__ import annotations

import colorsys
import re
import zlib
from dataclasses import dataclass

CODE_PATTERN = r"^[0-9]{4}$"
_CODE_RE = re.compile(CODE_PATTERN)


@dataclass(frozen=True)
class Major:
    """A 大类 (major group)."""

    code: str
    name_zh: str
    name_en: str


@dataclass(frozen=True)
class ComponentClass:
    """A 小类 (component class)."""

    code: str
    name_zh: str
    name_en: str
    size: tuple[float, float, float]
    colour: tuple[int, int, int]
    shape: str
    department: str
    builtin: bool = True

    @property
    def major(self) -> str:
        return self.code[:2]


MAJORS: tuple[Major, ...] = (
    Major("01", "公用设施", "Public utilities"),
    Major("02", "道路交通", "Roads and traffic"),
    Major("03", "市容环境", "City appearance and sanitation"),
    Major("04", "园林绿化", "Parks and greenery"),
    Major("05", "房屋土地", "Buildings and land"),
    Major("06", "其他设施", "Other facilities"),
)
_MAJOR_BY_CODE = {m.code: m for m in MAJORS}

# Departments (主管部门), Futian district names, shortened.
_WATER = "区水务局"
_CITY = "区城管和综合执法局"
_POWER = "区供电局"
_TRANSPORT = "区交通运输局"
_TRAFFIC_POLICE = "区公安分局交警大队"
_POLICE = "区公安分局"
_FIRE = "区消防救援大队"
_HOUSING = "区住房和建设局"
_TELECOM = "区工业和信息化局"
_POST = "区邮政分局"
_CULTURE = "区文化广电旅游体育局"
_PLANNING = "区规划和自然资源局"
_EMERGENCY = "区应急管理局"
_AIR_DEFENCE = "区人民防空办公室"
_ENV = "区生态环境局"

# (code, name_zh, name_en, (w, d, h) metres, shape, department); "# local addition" marks
# classes that are not in the standard's list (see the module docstring).
_TABLE: tuple[tuple[str, str, str, tuple[float, float, float], str, str], ...] = (
    # 01 公用设施 Public utilities
    ("0101", "上水井盖", "Water supply manhole cover", (0.7, 0.7, 0.05), "manhole", _WATER),
    ("0102", "污水井盖", "Sewage manhole cover", (0.7, 0.7, 0.05), "manhole", _WATER),
    ("0103", "雨水井盖", "Storm-water manhole cover", (0.7, 0.7, 0.05), "manhole", _WATER),
    ("0104", "雨水箅子", "Storm drain grate", (0.75, 0.45, 0.05), "grate", _WATER),
    ("0105", "电力井盖", "Power manhole cover", (0.8, 0.8, 0.05), "manhole", _POWER),
    ("0106", "路灯井盖", "Street-light manhole cover", (0.5, 0.5, 0.05), "manhole", _CITY),
    ("0107", "通讯井盖", "Telecom manhole cover", (0.7, 0.7, 0.05), "manhole", _TELECOM),
    ("0108", "电视井盖", "Cable TV manhole cover", (0.6, 0.6, 0.05), "manhole", _CULTURE),
    ("0109", "网络井盖", "Network manhole cover", (0.6, 0.6, 0.05), "manhole", _TELECOM),
    ("0110", "热力井盖", "Heating manhole cover", (0.7, 0.7, 0.05), "manhole", _HOUSING),
    ("0111", "燃气井盖", "Gas manhole cover", (0.6, 0.6, 0.05), "manhole", _HOUSING),
    ("0112", "公安井盖", "Police manhole cover", (0.6, 0.6, 0.05), "manhole", _POLICE),
    ("0113", "无主井盖", "Unowned manhole cover", (0.7, 0.7, 0.05), "manhole", _CITY),
    ("0114", "输油（气）井盖", "Oil/gas pipeline manhole cover", (0.7, 0.7, 0.05), "manhole", _EMERGENCY),
    ("0115", "消火栓", "Fire hydrant", (0.45, 0.35, 0.9), "hydrant", _FIRE),
    ("0116", "电力设施", "Power distribution cabinet", (1.2, 0.6, 1.5), "box", _POWER),
    ("0117", "通讯交接箱", "Telecom cross-connect cabinet", (0.9, 0.4, 1.4), "box", _TELECOM),
    ("0118", "有线电视箱", "Cable TV cabinet", (0.6, 0.35, 1.0), "box", _CULTURE),
    ("0119", "邮筒", "Mailbox", (0.5, 0.5, 1.2), "bin", _POST),
    ("0120", "报刊亭", "Newsstand", (2.5, 1.8, 2.8), "booth", _CITY),
    ("0121", "电话亭", "Telephone booth", (1.0, 1.0, 2.3), "booth", _TELECOM),
    ("0122", "信息亭", "Information kiosk", (0.8, 0.5, 1.9), "box", _CITY),
    ("0123", "监控电子眼", "Surveillance camera", (0.3, 1.2, 6.0), "camera_pole", _POLICE),
    ("0124", "治安岗亭", "Police sentry box", (2.0, 2.0, 2.8), "booth", _POLICE),
    ("0125", "路灯", "Street lamp", (0.4, 2.0, 10.0), "lamp", _CITY),
    ("0126", "地灯", "Ground light", (0.3, 0.3, 0.08), "manhole", _CITY),
    ("0127", "景观灯", "Landscape light", (0.4, 0.4, 3.5), "post_light", _CITY),
    ("0128", "高压线铁塔", "High-voltage pylon", (8.0, 8.0, 40.0), "tower", _POWER),
    ("0129", "变压器（箱）", "Box transformer", (2.5, 1.8, 2.2), "box", _POWER),
    ("0130", "燃气调压箱", "Gas pressure regulator box", (1.0, 0.6, 1.5), "box", _HOUSING),
    ("0131", "智慧灯杆", "Smart pole", (0.5, 2.0, 10.0), "smart_pole", _TELECOM),  # local addition
    ("0132", "5G 微基站", "5G small cell", (0.4, 0.4, 8.0), "mast", _TELECOM),  # local addition
    # 02 道路交通 Roads and traffic
    ("0201", "停车场", "Car park entrance", (0.8, 0.3, 3.0), "sign", _TRANSPORT),
    ("0202", "停车咪表", "Parking meter", (0.35, 0.3, 1.5), "post", _TRANSPORT),
    ("0203", "公交站亭", "Bus shelter", (8.0, 2.0, 2.8), "shelter", _TRANSPORT),
    ("0204", "出租车站牌", "Taxi stand sign", (0.6, 0.1, 2.8), "sign", _TRANSPORT),
    ("0205", "加油站", "Petrol station", (20.0, 12.0, 6.0), "canopy", _EMERGENCY),
    ("0206", "交通标志牌", "Traffic sign", (0.9, 0.1, 3.0), "sign", _TRAFFIC_POLICE),
    ("0207", "交通信号灯", "Traffic light", (0.5, 6.0, 6.5), "traffic_light", _TRAFFIC_POLICE),
    ("0208", "过街天桥", "Pedestrian overpass", (4.0, 40.0, 6.5), "bridge", _TRANSPORT),
    ("0209", "地下通道", "Pedestrian underpass entrance", (4.0, 8.0, 3.2), "entrance", _TRANSPORT),
    ("0210", "跨河桥", "River bridge", (16.0, 40.0, 5.0), "bridge", _TRANSPORT),
    ("0211", "高架立交桥", "Viaduct pier", (14.0, 3.0, 12.0), "pier", _TRANSPORT),
    ("0212", "交通护栏", "Traffic guardrail", (3.0, 0.2, 1.1), "barrier", _TRANSPORT),
    ("0213", "道路信息显示屏", "Variable message sign", (8.0, 0.6, 7.5), "gantry", _TRAFFIC_POLICE),
    ("0214", "存车支架", "Bicycle rack", (3.0, 0.6, 0.8), "rack", _TRANSPORT),
    ("0215", "公共自行车租赁点", "Public bicycle station", (6.0, 1.2, 2.2), "rack_station", _TRANSPORT),
    ("0216", "隔音屏", "Noise barrier", (6.0, 0.3, 4.0), "wall", _ENV),
    ("0217", "交通岗亭", "Traffic police booth", (1.8, 1.8, 2.8), "booth", _TRAFFIC_POLICE),
    ("0218", "路名牌", "Street name sign", (1.2, 0.1, 3.0), "sign", _CITY),
    ("0219", "电子警察", "Traffic enforcement camera", (0.4, 7.0, 6.5), "camera_arm", _TRAFFIC_POLICE),
    ("0220", "公交站牌", "Bus stop sign", (0.6, 0.2, 3.0), "sign", _TRANSPORT),
    ("0221", "地铁出入口", "Metro entrance", (5.0, 10.0, 3.8), "entrance", _TRANSPORT),
    ("0222", "减速带", "Speed bump", (4.0, 0.4, 0.06), "grate", _TRAFFIC_POLICE),
    ("0223", "隔离墩", "Traffic separation block", (1.0, 0.5, 0.8), "block", _TRAFFIC_POLICE),
    ("0224", "阻车桩", "Bollard", (0.2, 0.2, 0.8), "bollard", _TRANSPORT),
    ("0225", "道路反光镜", "Convex traffic mirror", (0.8, 0.3, 3.0), "mirror", _TRAFFIC_POLICE),
    ("0226", "充电桩", "EV charger", (0.5, 0.3, 1.6), "box", _TRANSPORT),  # local addition
    # 03 市容环境 City appearance and sanitation
    ("0301", "公共厕所", "Public toilet", (6.0, 4.0, 3.5), "booth", _CITY),
    ("0302", "公厕指示牌", "Public toilet sign", (0.6, 0.1, 2.5), "sign", _CITY),
    ("0303", "化粪池", "Septic tank cover", (0.7, 0.7, 0.05), "manhole", _CITY),
    ("0304", "垃圾间（楼）", "Refuse room", (4.0, 3.0, 3.0), "box", _CITY),
    ("0305", "垃圾箱", "Litter bin", (0.5, 0.4, 1.0), "bin", _CITY),
    ("0306", "灯箱霓虹灯", "Light box", (1.5, 0.2, 2.5), "board", _CITY),
    ("0307", "广告牌匾", "Billboard", (6.0, 0.5, 8.0), "board", _CITY),
    ("0308", "环卫工具房", "Sanitation tool house", (3.0, 2.5, 2.6), "box", _CITY),
    ("0309", "垃圾转运站", "Refuse transfer station", (12.0, 8.0, 6.0), "box", _CITY),
    ("0310", "户外电子屏", "Outdoor LED screen", (8.0, 0.6, 10.0), "board", _CITY),
    ("0311", "垃圾分类收集点", "Sorted waste collection point", (3.0, 0.8, 2.2), "bin_station", _CITY),
    ("0312", "再生资源回收点", "Recycling point", (2.0, 1.5, 2.2), "booth", _CITY),
    ("0313", "环卫公示牌", "Sanitation notice board", (1.2, 0.1, 2.2), "sign", _CITY),
    ("0314", "饮水机", "Drinking fountain", (0.4, 0.4, 1.0), "bollard", _WATER),  # local addition
    # 04 园林绿化 Parks and greenery
    ("0401", "古树名木", "Heritage tree", (12.0, 12.0, 15.0), "tree", _CITY),
    ("0402", "行道树", "Street tree", (5.0, 5.0, 8.0), "tree", _CITY),
    ("0403", "护树设施", "Tree guard", (1.2, 1.2, 0.6), "tree_guard", _CITY),
    ("0404", "花架花钵", "Planter", (1.0, 1.0, 0.9), "planter", _CITY),
    ("0405", "绿地", "Green space marker", (3.0, 3.0, 1.2), "shrub", _CITY),
    ("0406", "城市雕塑", "Public sculpture", (2.0, 2.0, 4.0), "sculpture", _CULTURE),
    ("0407", "街头座椅", "Street bench", (1.8, 0.6, 0.8), "bench", _CITY),
    ("0408", "绿地护栏", "Green-space fence", (3.0, 0.1, 0.6), "barrier", _CITY),
    ("0409", "绿地喷灌设施", "Irrigation sprinkler", (0.2, 0.2, 0.3), "bollard", _CITY),
    ("0410", "喷泉", "Fountain", (5.0, 5.0, 1.8), "fountain", _CITY),
    ("0411", "棕榈树", "Palm tree", (4.0, 4.0, 9.0), "palm", _CITY),  # local addition
    ("0412", "绿篱", "Hedge", (4.0, 1.0, 1.2), "hedge", _CITY),  # local addition
    ("0413", "公园指示牌", "Park sign", (1.0, 0.15, 2.2), "sign", _CITY),  # local addition
    # 05 房屋土地 Buildings and land
    ("0501", "宣传栏", "Notice board", (2.5, 0.3, 2.2), "board", _CITY),
    ("0502", "人防工事", "Civil air-defence entrance", (4.0, 6.0, 3.0), "entrance", _AIR_DEFENCE),
    ("0503", "门牌", "House number plate", (0.45, 0.05, 2.5), "plate", _POLICE),
    ("0504", "楼栋牌", "Building name plate", (0.8, 0.05, 3.0), "plate", _POLICE),
    ("0505", "地下车库出入口", "Underground car park entrance", (6.0, 12.0, 3.0), "entrance", _HOUSING),
    ("0506", "测量标志", "Survey marker", (0.3, 0.3, 0.15), "bollard", _PLANNING),
    # 06 其他设施 Other facilities
    ("0601", "重大危险源", "Major hazard installation", (3.0, 3.0, 3.5), "tank", _EMERGENCY),
    ("0602", "工地", "Construction site hoarding", (6.0, 0.3, 2.5), "wall", _HOUSING),
    ("0603", "水域附属设施", "Waterway facility", (1.5, 1.5, 1.5), "box", _WATER),
    ("0604", "水域护栏", "Waterside railing", (3.0, 0.15, 1.2), "barrier", _WATER),
    ("0605", "健身设施", "Outdoor fitness equipment", (2.5, 1.5, 2.2), "fitness", _CULTURE),
    ("0606", "游乐设施", "Playground equipment", (4.0, 3.0, 3.0), "playground", _CULTURE),
    ("0607", "河道排口", "River outfall", (1.2, 1.0, 1.2), "outfall", _WATER),
    ("0608", "水位监测站", "Water level gauge", (0.8, 0.8, 3.0), "mast", _WATER),
    ("0609", "防汛物资箱", "Flood-control supply box", (1.5, 0.8, 1.2), "box", _WATER),
    ("0610", "应急避难场所指示牌", "Emergency shelter sign", (0.9, 0.15, 2.8), "sign", _EMERGENCY),
    ("0611", "AED 急救设备", "AED cabinet", (0.5, 0.3, 1.6), "box", _EMERGENCY),  # local addition
    ("0612", "微型消防站", "Mini fire station", (2.0, 1.2, 2.4), "booth", _FIRE),  # local addition
)

# Hue family per 大类: (first hue, last hue) in degrees.
_HUES = {"01": (190.0, 240.0), "02": (28.0, 58.0), "03": (265.0, 300.0), "04": (85.0, 150.0),
         "05": (350.0, 372.0), "06": (160.0, 182.0)}  # fmt: skip


def _family_colour(major: str, index: int, count: int) -> tuple[int, int, int]:
    """A colour of the major's hue family, distinct per index (hue steps, alternating saturation/value)."""
    lo, hi = _HUES[major]
    hue = (lo + (hi - lo) * (index / max(count - 1, 1))) % 360.0
    sat = (0.85, 0.55, 0.7)[index % 3]
    val = (0.85, 0.65, 0.95, 0.75)[index % 4]
    r, g, b = colorsys.hsv_to_rgb(hue / 360.0, sat, val)
    return (round(r * 255), round(g * 255), round(b * 255))


def _build_classes() -> tuple[ComponentClass, ...]:
    by_major: dict[str, list[tuple[str, str, str, tuple[float, float, float], str, str]]] = {}
    for row in _TABLE:
        by_major.setdefault(row[0][:2], []).append(row)
    out: list[ComponentClass] = []
    for major, rows in by_major.items():
        for i, (code, zh, en, size, shape, dept) in enumerate(rows):
            out.append(ComponentClass(code, zh, en, size, _family_colour(major, i, len(rows)), shape, dept))
    return tuple(sorted(out, key=lambda c: c.code))


CLASSES: tuple[ComponentClass, ...] = _build_classes()
_BY_CODE = {c.code: c for c in CLASSES}

UNCLASSIFIED = ComponentClass(
    "0000", "未分类", "Unclassified", (1.0, 1.0, 1.0), (150, 150, 150), "box", "区城管和综合执法局"
)


def builtin_class(code: str) -> ComponentClass | None:
    """The catalogue's class of ``code`` (also "0000", unclassified), or None."""
    if code == UNCLASSIFIED.code:
        return UNCLASSIFIED
    return _BY_CODE.get(code)


def _code_colour(code: str) -> tuple[int, int, int]:
    """A stable colour for a user class, from its code (grey-free, mid brightness)."""
    h = zlib.crc32(code.encode()) / 0xFFFFFFFF
    r, g, b = colorsys.hsv_to_rgb(h, 0.6, 0.85)
    return (round(r * 255), round(g * 255), round(b * 255))


def user_class(
    code: str,
    name_zh: str | None = None,
    name_en: str | None = None,
    size: tuple[float, float, float] | None = None,
    colour: tuple[int, int, int] | None = None,
    department: str | None = None,
) -> ComponentClass:
    """A user-defined class (``builtin=False``); raises ValueError on a code that is not 4 digits."""
    if not isinstance(code, str) or not _CODE_RE.match(code):
        raise ValueError(f"component class code {code!r} is not 4 digits (大类 2 + 小类 2, e.g. 0701)")
    return ComponentClass(
        code=code,
        name_zh=name_zh or f"自定义部件 {code}",
        name_en=name_en or f"User class {code}",
        size=(float(size[0]), float(size[1]), float(size[2])) if size is not None else (1.0, 1.0, 1.0),
        colour=(int(colour[0]), int(colour[1]), int(colour[2])) if colour is not None else _code_colour(code),
        shape="box",
        department=department or "",
        builtin=False,
    )


def major_of(code: str) -> Major:
    """The 大类 of a class code ("0101" or "01"); a group outside the six gets a user group."""
    major = code[:2]
    found = _MAJOR_BY_CODE.get(major)
    return found if found is not None else Major(major, f"自定义大类 {major}", f"User group {major}")
