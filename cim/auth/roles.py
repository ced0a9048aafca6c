"""The roles a user or a token holds, by the ids the bureau uses."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    viewer = "viewer"  # 浏览: the map, layers, live overlays (no personal data)
    land_supervisor = "land_supervisor"  # 土地监管: land supervision, findings and their follow-up
    operator = "operator"  # 运行值守: tickets, alarms, live data with citizens' details
    admin = "admin"  # GIS 管理员: imports, users, tokens, the audit
    device = "device"  # 设备: a sensor gateway or service that sends readings, nothing else


TITLES: dict[Role, str] = {
    Role.viewer: "浏览",
    Role.land_supervisor: "土地监管",
    Role.operator: "运行值守",
    Role.admin: "GIS 管理员",
    Role.device: "设备接入",
}

#: roles that read what any viewer reads (a device token reads nothing)
READERS = frozenset({Role.viewer, Role.land_supervisor, Role.operator, Role.admin})
