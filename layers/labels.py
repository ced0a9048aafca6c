"""What the columns of layer tables mean, as people read them (Simplified Chinese first, English second).

One list for everything that names a column: the viewer's tooltips
(``viewer.styles`` adds a viewer file's own labels to it) and the comments
on the layer tables in PostGIS (``COMMENT ON COLUMN``), which QGIS and
``psql``'s ``\\d+`` show. A unit, where there is one, is part of the label.
"""

from __future__ import annotations

#: property names as people read them: (zh, en)
FIELD_LABELS: dict[str, tuple[str, str]] = {  # in the order tooltips list them
    "name": ("名称", "Name"),
    "id": ("编号", "ID"),
    "height": ("高度 (米)", "Height (m)"),
    "floors": ("层数", "Floors"),
    "use": ("用途", "Use"),
    "year_built": ("建成年份", "Year built"),
    "base_height": ("基底高度 (米)", "Base height (m)"),
    "street": ("街道", "Street"),
    "community": ("社区", "Community"),
    "grid": ("网格", "Grid"),
    "grid_code": ("网格编码", "Grid code"),
    "grid_name": ("网格名称", "Grid name"),
    "street_code": ("街道编码", "Street code"),
    "community_code": ("社区编码", "Community code"),
    "parcel_id": ("宗地号", "Parcel"),
    "use_code": ("用地代码", "Land-use code"),
    "approved_far": ("批准容积率", "Approved FAR"),
    "coverage": ("建筑密度", "Coverage"),
    "height_limit": ("限高 (米)", "Height limit (m)"),
    "approval_date": ("批准日期", "Approved on"),
    "start_deadline": ("开工期限", "Start deadline"),
    "completion_deadline": ("竣工期限", "Completion deadline"),
    "status": ("状态", "Status"),
    "area_ha": ("面积 (公顷)", "Area (ha)"),
    "code": ("编码", "Code"),
    "category_name": ("类别", "Category"),
    "category": ("类别代码", "Category code"),
    "vendor": ("厂商", "Vendor"),
    "install_date": ("安装日期", "Installed on"),
    "heading": ("朝向 (度)", "Heading (°)"),
    "fov": ("视场角 (度)", "Field of view (°)"),
    "range_m": ("可视距离 (米)", "Range (m)"),
    "kind": ("类型", "Kind"),
    "channel": ("来源渠道", "Channel"),
    "created_at": ("创建时间", "Created"),
    "department": ("责任部门", "Department"),
    "address": ("地址", "Address"),
}

#: the two columns every layer table has (not shown in tooltips): their comments
KEY_COLUMNS: dict[str, str] = {
    "fid": "要素编号 (主键)",
    "geom": "几何 (WGS 84 经纬度, EPSG:4326)",
}


def column_comment(name: str) -> str | None:
    """A layer column's comment in the database: its Chinese label with the
    unit (``height`` -> ``高度 (米)``); ``None`` for a column of unknown meaning."""
    if name in KEY_COLUMNS:
        return KEY_COLUMNS[name]
    label = FIELD_LABELS.get(name)
    return label[0] if label else None
