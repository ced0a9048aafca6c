"""The API definition as OpenAPI 3.0 (OGC API - Features' ``oas30`` class,
and the version GDAL, QGIS and most generators read). FastAPI writes 3.1,
whose JSON Schema 2020-12 differs from 3.0's in a few ways; this turns one
into the other: ``anyOf`` with ``{"type": "null"}`` -> ``nullable``,
``examples`` -> ``example``, ``const`` -> a one-value ``enum``, numeric
``exclusiveMinimum``/``exclusiveMaximum`` -> their boolean form, binary
strings -> ``format: binary``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

OPENAPI_VERSION = "3.0.3"


def _schema_30(node: Any) -> Any:
    if isinstance(node, list):
        return [_schema_30(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _schema_30(value) for key, value in node.items()}
    for key in ("anyOf", "oneOf"):
        options = out.get(key)
        if isinstance(options, list) and {"type": "null"} in options:
            rest = [o for o in options if o != {"type": "null"}]
            del out[key]
            if len(rest) == 1:
                out.update(rest[0])
            else:
                out[key] = rest
            out["nullable"] = True
    if isinstance(out.get("type"), list):  # ["string", "null"]
        types = [t for t in out["type"] if t != "null"]
        if len(types) < len(out["type"]):
            out["nullable"] = True
        out["type"] = types[0] if len(types) == 1 else types
    if "examples" in out and isinstance(out["examples"], list) and "example" not in out:
        examples = out.pop("examples")
        if examples:
            out["example"] = examples[0]
    if "const" in out:
        out["enum"] = [out.pop("const")]
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), (int, float)) and not isinstance(out.get(bound), bool):
            out[plain] = out.pop(bound)
            out[bound] = True
    if out.get("contentMediaType") and out.get("type") == "string":
        out.pop("contentMediaType")
        out["format"] = "binary"
    return out


def openapi_30(document: dict) -> dict:
    """``document`` (OpenAPI 3.1, as FastAPI writes it) as OpenAPI 3.0."""
    out = dict(document)
    out["openapi"] = OPENAPI_VERSION
    for key in ("paths", "components"):
        if key in out:
            out[key] = _parameters_30(_schema_30(out[key]))
    out.pop("webhooks", None)
    return out


def _parameters_30(node: Any) -> Any:
    """3.1 lets a schema sit beside ``$ref``; 3.0 does not: keep the ``$ref`` alone."""
    if isinstance(node, list):
        return [_parameters_30(item) for item in node]
    if isinstance(node, dict):
        if "$ref" in node and len(node) > 1:
            return {"$ref": node["$ref"]}
        return {key: _parameters_30(value) for key, value in node.items()}
    return node


def install_openapi_30(app: FastAPI) -> None:
    """Serve ``/openapi.json`` as OpenAPI 3.0 (built once, on first use)."""

    def openapi() -> dict:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            app.openapi_schema = openapi_30(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to replace the generator
