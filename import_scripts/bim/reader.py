"""IFC files read with ifcopenshell: elements, their triangles, colours,
storey, type, material and property sets.

Geometry comes from ifcopenshell's geometry iterator (metres), on all cores,
in each element's own placement, so that repeated geometry (a door type used
twenty times) is recognised by its geometry id; world coordinates are the
placement matrix applied. A product with a body representation that the
iterator does not yield has failed: it is named and counted, never fatal.
"""

from __future__ import annotations

import json
import mmap
import multiprocessing
import re
from dataclasses import dataclass, field
from pathlib import Path

import ifcopenshell
import ifcopenshell.geom
import ifcopenshell.util.element
import ifcopenshell.util.shape
import numpy as np

from cim.errors import InputError

SUPPORTED_SCHEMAS = ("IFC2X3", "IFC4", "IFC4X3", "IFC4X3_ADD2")
#: what the iterator leaves out: openings are voids cut from walls, drawn as solids they would fill every door
EXCLUDED_CLASSES = ("IfcOpeningElement",)
DEFAULT_RGBA = (0.8, 0.8, 0.8, 1.0)


@dataclass
class Element:
    global_id: str
    ifc_class: str
    name: str | None
    storey: str | None
    type_name: str | None
    material: str | None
    properties: dict
    vertices: np.ndarray  # (n, 3) world coordinates of the model, metres
    faces: np.ndarray  # (m, 3) vertex indices
    face_rgba: np.ndarray  # (m, 4) colour of each triangle, 0..1
    local_vertices: np.ndarray  # (n, 3) in the element's own placement (shared by repeated geometry)
    geometry_id: str  # equal for elements that share their representation (and styles)


@dataclass
class Model:
    path: Path
    schema: str
    file: ifcopenshell.file
    elements: list[Element] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # "IfcWall 2O2Fr$t4X7Zf8NOew3FLOH 'Wall-001'"


def open_model(path: Path) -> ifcopenshell.file:
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "no such file")
    check_step_file(path)
    try:
        model = ifcopenshell.open(str(path))
    except Exception as exc:  # ifcopenshell raises plain errors for truncated or foreign files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            str(path),
            f"is not a readable IFC file ({first})",
            hint="export it again as IFC2X3, IFC4 or IFC4.3 (STEP, .ifc)",
        ) from exc
    if model.schema_identifier.upper() not in SUPPORTED_SCHEMAS and model.schema not in SUPPORTED_SCHEMAS:
        raise InputError(str(path), f"uses schema {model.schema_identifier}, not IFC2X3, IFC4 or IFC4.3")
    return model


#: a STEP file is checked in pieces of about this size, cut where an entity begins
_CHUNK = 32 << 20
#: string literals ('it''s') and comments, where a '#' is text, not a reference
_TEXT = re.compile(rb"'(?:[^']|'')*'|/\*.*?\*/", re.DOTALL)
_DEFINED = re.compile(rb"#(\d+)\s*=")
_ANY = re.compile(rb"#(\d+)")
_HINT = "copy or export it again; nothing was imported"


def _ids(pattern: re.Pattern[bytes], text: bytes) -> np.ndarray:
    found = pattern.findall(text)
    return np.array(found).astype(np.int64) if found else np.zeros(0, np.int64)


def check_step_file(path: Path) -> None:
    """Refuse a damaged IFC (STEP) file before ifcopenshell opens it, in one line.

    ifcopenshell opens a cut or gutted file leniently and silently yields
    fewer elements (an entity that references a missing one loses it: a wall
    without its placement, a storey without its walls), so the import would
    look like a success and be wrong. A damaged model is refused, never
    imported with a note: which elements, placements, units or storeys went
    missing with the lost entities cannot be known, so no count in a summary
    could say what the model lacks (and a wall placed at the origin or a
    model in the wrong unit looks plausible). The previous version stays.

    Checked: the file begins with ``ISO-10303-21;`` and ends with
    ``ENDSEC;`` then ``END-ISO-10303-21;`` (truncated otherwise); no entity
    is defined twice; every ``#N`` referenced is defined (dangling otherwise:
    entities cut out of the middle). Strings and comments are skipped; the
    file is scanned in pieces (memory does not grow with it)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
        fh.seek(max(0, size - 4096))
        tail = fh.read()
    if not head.startswith(b"ISO-10303-21;"):
        if not head:
            raise InputError(str(path), "is empty", hint=_HINT)
        if head.startswith(b"PK"):
            raise InputError(str(path), "is a zip file (.ifczip?): unzip it and import the .ifc inside")
        raise InputError(str(path), "is not an IFC (STEP) file: it does not begin with ISO-10303-21;", hint=_HINT)
    end = tail.rfind(b"END-ISO-10303-21;")
    if end < 0:  # ifcopenshell reads a cut file leniently, with dangling references
        raise InputError(
            str(path),
            "is truncated or not an IFC (STEP) file: it does not end with END-ISO-10303-21;",
            hint=_HINT,
        )
    if not tail[:end].rstrip().endswith(b"ENDSEC;"):
        raise InputError(str(path), "is truncated or damaged: its DATA section does not end with ENDSEC;", hint=_HINT)
    defined: list[np.ndarray] = []
    referenced: list[np.ndarray] = []
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        start = 0
        while start < size:
            cut = data.find(b"\n#", start + _CHUNK) if start + _CHUNK < size else -1
            stop = size if cut < 0 else cut + 1
            text = _TEXT.sub(b"''", data[start:stop])
            defined.append(_ids(_DEFINED, text))
            referenced.append(np.unique(_ids(_ANY, text)))
            start = stop
    ids = np.concatenate(defined)
    unique, counts = np.unique(ids, return_counts=True)
    if len(unique) < len(ids):
        twice = unique[counts > 1]
        raise InputError(
            str(path),
            f"is damaged: {len(twice):,} entities are defined twice ({_names(twice)})",
            hint=_HINT,
        )
    missing = np.setdiff1d(np.unique(np.concatenate(referenced)), unique, assume_unique=True)
    if len(missing):
        raise InputError(
            str(path),
            f"is damaged: {len(missing):,} referenced entities are missing ({_names(missing)}): "
            "entities were cut out of it",
            hint=_HINT,
        )


def _names(ids: np.ndarray, first: int = 5) -> str:
    shown = ", ".join(f"#{i}" for i in ids[:first])
    return shown + (", ..." if len(ids) > first else "")


def _storey_of(product) -> str | None:
    """The storey an element is contained in or aggregated by (spaces, roof
    slabs and curtain-wall plates are aggregated, walls contained)."""
    node = product
    while node is not None and not node.is_a("IfcBuildingStorey"):
        node = ifcopenshell.util.element.get_container(node) or ifcopenshell.util.element.get_aggregate(node)
    return node.Name if node is not None else None


def _material_name(product) -> str | None:
    material = ifcopenshell.util.element.get_material(product, should_skip_usage=True)
    if material is None:
        return None
    if material.is_a("IfcMaterial"):
        return material.Name
    names = [m.Name for m in ifcopenshell.util.element.get_materials(product) if getattr(m, "Name", None)]
    return ", ".join(dict.fromkeys(names)) or getattr(material, "Name", None)


def _jsonable(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


def _properties(product) -> dict:
    """Property and quantity sets, as {set: {property: value}} (the ``id`` keys dropped)."""
    psets = ifcopenshell.util.element.get_psets(product)
    return {name: {k: _jsonable(v) for k, v in values.items() if k != "id"} for name, values in psets.items()}


_NOT_DRAWN = ("IfcSpatialElement", "IfcSpatialStructureElement", "IfcFeatureElementSubtraction", "IfcAnnotation")


def _has_body(product) -> bool:
    """A product the iterator should have triangulated: it has a Body shape
    and is not a kind the iterator leaves out on purpose (openings...)."""
    if any(product.is_a(kind) for kind in _NOT_DRAWN):  # a kind a schema lacks is simply False
        return False
    shape = product.Representation
    return shape is not None and any(r.RepresentationIdentifier == "Body" for r in shape.Representations)


def read_model(path: Path, jobs: int | None = None) -> Model:
    model = open_model(path)
    settings = ifcopenshell.geom.settings()  # local coordinates: repeated geometry keeps one geometry id
    iterator = ifcopenshell.geom.iterator(
        settings, model, jobs or multiprocessing.cpu_count(), exclude=list(EXCLUDED_CLASSES)
    )
    out = Model(Path(path), model.schema_identifier, model)
    seen: set[str] = set()
    if iterator.initialize():
        while True:
            shape = iterator.get()
            element = _element(model, shape)
            if len(element.faces) and len(element.vertices):
                out.elements.append(element)
                seen.add(shape.guid)  # an element without triangles is reported as failed below
            if not iterator.next():
                break
    for product in model.by_type("IfcProduct"):
        if product.GlobalId not in seen and _has_body(product):
            out.failed.append(f"{product.is_a()} {product.GlobalId} {product.Name!r}")
    if not out.elements:
        raise InputError(
            str(path),
            "holds no element with geometry" + (f" ({len(out.failed)} failed to triangulate)" if out.failed else ""),
        )
    return out


def _element(model: ifcopenshell.file, shape) -> Element:
    geometry = shape.geometry
    local = ifcopenshell.util.shape.get_vertices(geometry).astype(np.float64)
    matrix = ifcopenshell.util.shape.get_shape_matrix(shape)
    vertices = local @ matrix[:3, :3].T + matrix[:3, 3]
    faces = ifcopenshell.util.shape.get_faces(geometry).reshape(-1, 3)
    colours = ifcopenshell.util.shape.get_material_colors(geometry)
    style_of_face = ifcopenshell.util.shape.get_faces_material_style_ids(geometry)
    palette = np.vstack([colours, np.array([DEFAULT_RGBA])]) if len(colours) else np.array([DEFAULT_RGBA])
    face_rgba = (
        palette[np.where(style_of_face < 0, len(palette) - 1, style_of_face)] if len(faces) else np.zeros((0, 4))
    )
    product = model.by_guid(shape.guid)
    element_type = ifcopenshell.util.element.get_type(product)
    return Element(
        global_id=shape.guid,
        ifc_class=product.is_a(),
        name=product.Name,
        storey=_storey_of(product),
        type_name=element_type.Name if element_type is not None else None,
        material=_material_name(product),
        properties=_properties(product),
        vertices=vertices,
        faces=faces,
        face_rgba=face_rgba,
        local_vertices=local,
        geometry_id=str(geometry.id),
    )


def properties_json(element: Element) -> str:
    return json.dumps(element.properties, ensure_ascii=False, separators=(",", ":"))
