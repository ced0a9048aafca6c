"""How each layer looks and is named in the viewer (Simplified Chinese first, English second).

The viewer itself knows no layer by name: the styles of named layers, the
layer whose extent is the initial view and extra property labels come from a
JSON file (``cim demo`` copies ``data_samples/futian/viewer.json`` to the data
directory's ``viewer.json``)::

    {
      "home": "futian_boundary",
      "styles": {
        "streets": {"fill": [70, 110, 160, 25], "line": [120, 180, 255, 230], "line_width_px": 2,
                    "visible": true, "order": 80, "en": "Streets", "group": "base"}
      },
      "fields": {"land_class": {"zh": "地类", "en": "Land class"}}
    }

Every key is optional, and so is every key of a style (a missing one takes
:class:`Style`'s default). Colours are ``[r, g, b]`` or ``[r, g, b, a]``,
0-255. Read it with :meth:`ViewerStyles.load`: a missing file gives the
defaults, a malformed one the defaults and a logged warning.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from layers.labels import FIELD_LABELS  # kept importable from here: the labels live with the layers

log = logging.getLogger(__name__)

RGBA = tuple[int, int, int, int]


@dataclass(frozen=True)
class Style:
    fill: RGBA = (120, 160, 200, 60)
    line: RGBA = (160, 200, 240, 200)
    line_width_px: float = 1.0
    visible: bool = True
    order: int = 50  # drawing order: lower first (underneath)
    en: str | None = None  # English title (the catalogue's title is the Chinese one)
    group: str | None = None  # the layer tree's group (GROUPS); None: chosen by what the layer is (group_of)


#: the layer tree's groups, in the panel's order: base map, planning and land, 3D models, city operations
GROUPS = ("base", "planning", "models", "operations")


def group_of(style: Style, geometry_type: str, tileset_kind: str | None, live: bool) -> str:
    """A layer's group: its style's, else 3D models for a layer with a tileset (buildings, BIM, oblique;
    not city components), city operations for live layers, components and points, planning and land else."""
    if style.group:
        return style.group
    if tileset_kind is not None and tileset_kind != "components":
        return "models"
    if live or tileset_kind == "components" or "Point" in geometry_type:
        return "operations"
    return "planning"


#: an oblique production's layer: its extent and folder footprints, outlined over the photographs
OBLIQUE_FOOTPRINTS = Style(
    fill=(0, 0, 0, 0), line=(255, 190, 60, 200), line_width_px=1.2, order=12, en="Oblique photography"
)


def default_style(geometry_type: str) -> Style:
    """A layer without a style of its own: polygons shown underneath, points and lines hidden on top."""
    polygons = "Polygon" in geometry_type
    return Style(visible=polygons, order=50 if polygons else 95)


class ViewerConfigError(ValueError):
    """What is wrong in a viewer file, and where (``styles.streets.fill: ...``)."""


@dataclass(frozen=True)
class ViewerStyles:
    """A viewer file's contents: styles of named layers, the layer whose extent
    is the initial view, and property labels added to :data:`FIELD_LABELS`.
    ``ViewerStyles()`` is no file: every layer in the default style, the
    initial view on every layer's extent."""

    styles: Mapping[str, Style] = field(default_factory=dict)
    home: str | None = None
    fields: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # property name: (zh, en)

    def style_of(self, name: str, geometry_type: str, kind: str = "") -> Style:
        """A layer's style; ``kind`` is that of the layer's tileset, if it has one."""
        if kind == "oblique":
            return OBLIQUE_FOOTPRINTS
        style = self.styles.get(name)
        return style if style is not None else default_style(geometry_type)

    def field_labels(self) -> dict[str, tuple[str, str]]:
        """:data:`FIELD_LABELS` with this file's: a name already there keeps its place, new ones come after."""
        return {**FIELD_LABELS, **self.fields}

    def to_dict(self) -> dict[str, Any]:
        """The viewer file's JSON (what :meth:`from_dict` reads)."""
        out: dict[str, Any] = {"styles": {name: dataclasses.asdict(s) for name, s in self.styles.items()}}
        if self.home is not None:
            out["home"] = self.home
        if self.fields:
            out["fields"] = {name: {"zh": zh, "en": en} for name, (zh, en) in self.fields.items()}
        return out

    @classmethod
    def from_dict(cls, data: Any) -> ViewerStyles:
        """The parsed JSON of a viewer file, checked: :class:`ViewerConfigError` says what is wrong."""
        obj = _object(data, "the file")
        _only(obj, ("home", "styles", "fields"), "the file")
        home = obj.get("home")
        if home is not None and not isinstance(home, str):
            raise ViewerConfigError(f"home: expected a layer name, got {_short(home)}")
        styles = {
            name: _style(value, f"styles.{name}") for name, value in _object(obj.get("styles", {}), "styles").items()
        }
        labels = {
            name: _labels(value, f"fields.{name}") for name, value in _object(obj.get("fields", {}), "fields").items()
        }
        return cls(styles=styles, home=home, fields=labels)

    @classmethod
    def load(cls, path: str | Path | None) -> ViewerStyles:
        """The viewer file at ``path``. No file (or ``None``): the defaults. A
        file that cannot be read or is malformed: the defaults, and a warning
        naming the file and the problem (the page still opens)."""
        if path is None:
            return cls()
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls()
        except (OSError, UnicodeDecodeError) as exc:
            problem = f"cannot be read: {exc}"
        else:
            try:
                return cls.from_dict(json.loads(text))
            except (json.JSONDecodeError, RecursionError) as exc:
                problem = f"is not JSON: {exc}"
            except ViewerConfigError as exc:
                problem = str(exc)
        log.warning("viewer file %s ignored, every layer in the default style: %s", path, problem)
        return cls()


NO_STYLES = ViewerStyles()

_STYLE_KEYS = tuple(f.name for f in dataclasses.fields(Style))


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ViewerConfigError(f"{where}: expected an object, got {_short(value)}")
    return value


def _only(obj: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(obj) - set(keys))
    if unknown:
        raise ViewerConfigError(f"{where}: unknown key {', '.join(map(repr, unknown))} (known: {', '.join(keys)})")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _colour(value: Any, where: str) -> RGBA:
    if not (isinstance(value, list) and len(value) in (3, 4) and all(_is_int(v) and 0 <= v <= 255 for v in value)):
        raise ViewerConfigError(
            f"{where}: expected [r, g, b] or [r, g, b, a] of whole numbers 0-255, got {_short(value)}"
        )
    return (value[0], value[1], value[2], value[3] if len(value) == 4 else 255)


def _style(value: Any, where: str) -> Style:
    obj = _object(value, where)
    _only(obj, _STYLE_KEYS, where)
    kwargs: dict[str, Any] = {}
    for key in ("fill", "line"):
        if key in obj:
            kwargs[key] = _colour(obj[key], f"{where}.{key}")
    if "line_width_px" in obj:
        width = obj["line_width_px"]
        if not (
            isinstance(width, (int, float)) and not isinstance(width, bool) and math.isfinite(width) and width >= 0
        ):
            raise ViewerConfigError(f"{where}.line_width_px: expected a number of pixels >= 0, got {_short(width)}")
        kwargs["line_width_px"] = float(width)
    if "visible" in obj:
        if not isinstance(obj["visible"], bool):
            raise ViewerConfigError(f"{where}.visible: expected true or false, got {_short(obj['visible'])}")
        kwargs["visible"] = obj["visible"]
    if "order" in obj:
        if not _is_int(obj["order"]):
            raise ViewerConfigError(f"{where}.order: expected a whole number, got {_short(obj['order'])}")
        kwargs["order"] = obj["order"]
    if "group" in obj:
        if obj["group"] is not None and obj["group"] not in GROUPS:
            raise ViewerConfigError(f"{where}.group: expected one of {', '.join(GROUPS)}, got {_short(obj['group'])}")
        kwargs["group"] = obj["group"]
    if "en" in obj:
        if obj["en"] is not None and not isinstance(obj["en"], str):
            raise ViewerConfigError(f"{where}.en: expected a title or null, got {_short(obj['en'])}")
        kwargs["en"] = obj["en"]
    return Style(**kwargs)


def _labels(value: Any, where: str) -> tuple[str, str]:
    obj = _object(value, where)
    _only(obj, ("zh", "en"), where)
    if not (isinstance(obj.get("zh"), str) and isinstance(obj.get("en"), str)):
        raise ViewerConfigError(f'{where}: expected {{"zh": ..., "en": ...}} (two strings), got {_short(obj)}')
    return (obj["zh"], obj["en"])
