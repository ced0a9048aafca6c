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
import multiprocessing
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
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - 4096))
        tail = fh.read()
    if b"END-ISO-10303-21" not in tail:  # ifcopenshell reads a cut file leniently, with dangling references
        raise InputError(
            str(path),
            "is truncated or not an IFC (STEP) file: it does not end with END-ISO-10303-21;",
            hint="copy or export it again",
        )
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
