"""How each layer looks and is named in the viewer (Simplified Chinese first, English second)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Style:
    fill: tuple[int, int, int, int] = (120, 160, 200, 60)
    line: tuple[int, int, int, int] = (160, 200, 240, 200)
    line_width_px: float = 1.0
    visible: bool = True
    order: int = 50  # drawing order: lower first (underneath)
    en: str | None = None  # English title (the catalogue's title is the Chinese one)


#: the sample's layers; any other layer gets the default style, visible when it is a polygon layer
STYLES: dict[str, Style] = {
    "futian_boundary": Style(fill=(0, 0, 0, 0), line=(255, 255, 255, 230), line_width_px=2.5, order=90, en="District"),
    "streets": Style(fill=(70, 110, 160, 25), line=(120, 180, 255, 230), line_width_px=2, order=80, en="Streets"),
    "communities": Style(fill=(0, 0, 0, 0), line=(100, 150, 220, 160), line_width_px=1.2, order=70, visible=False,
                         en="Communities"),
    "grids": Style(fill=(0, 0, 0, 0), line=(90, 130, 190, 110), line_width_px=0.6, order=60, visible=False, en="Grids"),
    "parcels": Style(fill=(240, 170, 60, 70), line=(250, 190, 80, 220), line_width_px=1.2, order=40, en="Approved parcels"),
    "farmland": Style(fill=(200, 210, 80, 110), line=(220, 230, 110, 200), order=30, en="Farmland"),
    "forest": Style(fill=(40, 150, 80, 110), line=(60, 190, 100, 200), order=30, en="Forest"),
    "eco_redline": Style(fill=(230, 40, 40, 50), line=(255, 60, 60, 230), line_width_px=1.5, order=35,
                         en="Ecological red line"),
    "buildings": Style(fill=(230, 235, 245, 255), line=(0, 0, 0, 0), order=10, en="Buildings"),
    "sensors": Style(fill=(80, 220, 160, 200), line=(0, 0, 0, 0), visible=False, order=95, en="IoT sensors"),
    "cameras": Style(fill=(250, 210, 60, 220), line=(0, 0, 0, 0), visible=False, order=95, en="Video cameras"),
    "tickets": Style(fill=(250, 110, 90, 220), line=(0, 0, 0, 0), visible=False, order=95, en="Citizen tickets"),
}

#: property names as people read them: (zh, en)
FIELD_LABELS: dict[str, tuple[str, str]] = {  # in the order tooltips list them
    "name": ("名称", "Name"), "id": ("编号", "ID"), "height": ("高度 (米)", "Height (m)"),
    "floors": ("层数", "Floors"), "use": ("用途", "Use"), "year_built": ("建成年份", "Year built"),
    "base_height": ("基底高度 (米)", "Base height (m)"),
    "street": ("街道", "Street"), "community": ("社区", "Community"), "grid": ("网格", "Grid"),
    "grid_code": ("网格编码", "Grid code"), "grid_name": ("网格名称", "Grid name"),
    "street_code": ("街道编码", "Street code"), "community_code": ("社区编码", "Community code"),
    "parcel_id": ("宗地号", "Parcel"), "use_code": ("用地代码", "Land-use code"),
    "approved_far": ("批准容积率", "Approved FAR"), "coverage": ("建筑密度", "Coverage"),
    "height_limit": ("限高 (米)", "Height limit (m)"), "approval_date": ("批准日期", "Approved on"),
    "start_deadline": ("开工期限", "Start deadline"), "completion_deadline": ("竣工期限", "Completion deadline"),
    "status": ("状态", "Status"), "area_ha": ("面积 (公顷)", "Area (ha)"), "code": ("编码", "Code"),
    "category_name": ("类别", "Category"), "category": ("类别代码", "Category code"), "vendor": ("厂商", "Vendor"),
    "install_date": ("安装日期", "Installed on"), "heading": ("朝向 (度)", "Heading (°)"), "fov": ("视场角 (度)", "Field of view (°)"),
    "range_m": ("可视距离 (米)", "Range (m)"), "kind": ("类型", "Kind"), "channel": ("来源渠道", "Channel"),
    "created_at": ("创建时间", "Created"), "department": ("责任部门", "Department"), "address": ("地址", "Address"),
}


#: an oblique production's layer: its extent and folder footprints, outlined over the photographs
OBLIQUE_FOOTPRINTS = Style(fill=(0, 0, 0, 0), line=(255, 190, 60, 200), line_width_px=1.2, order=12, en="Oblique photography")


def style_of(name: str, geometry_type: str, kind: str = "") -> Style:
    """A layer's style; ``kind`` is that of the layer's tileset, if it has one."""
    if kind == "oblique":
        return OBLIQUE_FOOTPRINTS
    if name in STYLES:
        return STYLES[name]
    polygons = "Polygon" in geometry_type
    return Style(visible=polygons, order=50 if polygons else 95)
