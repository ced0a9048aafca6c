"""Feature properties as an EXT_structural_metadata property table.

A :class:`PropertyTable` is a set of columns, one value per feature; it
knows its schema (class and property definitions) and how its columns are
laid out in binary buffers (strings as UTF-8 plus UINT32 offsets, numbers
packed little-endian), as the 3D Tiles 1.1 metadata specification says.

Missing values: a string is written as ``""`` (or the column's ``noData``),
a number as the column's ``noData`` (NaN without one; an integer column with
a missing value needs a ``noData``). A string column with no value at all in
a tile (buildings outside the grids, elements without a type name) is left
out of that tile's property table: its UTF-8 would take zero bytes, and a
glTF buffer view cannot be empty (a one-byte filler contradicts string offsets
that end at 0). Its class still defines it (never ``required``), so a client
reads it as absent (CesiumJS: ``undefined``). A numeric column is always
written, all ``noData`` if need be: it never needs an empty buffer, and the
CesiumGS validator (3d-tiles-tools 0.5) fails with an internal error on a
numeric class property that a property table leaves out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: numpy dtype of each scalar component type we write
COMPONENT_DTYPES = {
    "INT16": "<i2",
    "UINT16": "<u2",
    "INT32": "<i4",
    "UINT32": "<u4",
    "INT64": "<i8",
    "FLOAT32": "<f4",
    "FLOAT64": "<f8",
}


def _is_missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


@dataclass(frozen=True)
class Column:
    name: str
    values: np.ndarray  # one per feature; object array of str (None allowed) for strings
    kind: str = "STRING"  # STRING or a component type from COMPONENT_DTYPES
    no_data: float | int | str | None = None  # stands for a missing value
    title: str | None = None  # shown to people (Chinese by default)

    def definition(self) -> dict:
        d: dict = {"type": "STRING"} if self.kind == "STRING" else {"type": "SCALAR", "componentType": self.kind}
        if self.no_data is not None:
            d["noData"] = self.no_data
        if self.title:
            d["name"] = self.title
        return d

    def _strings(self) -> list[bytes]:
        default = "" if self.no_data is None else str(self.no_data)
        return [(default if _is_missing(v) else str(v)).encode("utf-8") for v in self.values]

    def _numbers(self) -> np.ndarray:
        """The values as the component type, missing ones (None, NaN) as ``noData``."""
        floating = self.kind.startswith("FLOAT")
        raw = np.asarray(self.values)
        if raw.dtype == object:
            missing = np.array([_is_missing(v) for v in raw], dtype=bool)
        elif raw.dtype.kind == "f":
            missing = np.isnan(raw)
        else:
            missing = np.zeros(raw.shape, dtype=bool)
        if missing.any() and self.no_data is None and not floating:
            raise ValueError(f"property {self.name!r}: a missing {self.kind} value needs a noData value")
        fill = self.no_data if self.no_data is not None else np.nan
        values = np.where(missing, fill, raw).astype(np.float64 if floating else np.int64)
        out = values.astype(COMPONENT_DTYPES[self.kind])
        if not floating and not np.array_equal(out.astype(np.int64), values):
            raise ValueError(f"property {self.name!r}: a value does not fit {self.kind}")
        return out

    def is_empty(self) -> bool:
        """A string column without a value (every string empty or ``noData``), left
        out of the table. A numeric column never is: it is written, missing values as ``noData``."""
        if self.kind != "STRING":
            return False
        no_data = b"" if self.no_data is None else str(self.no_data).encode("utf-8")
        return all(e in (b"", no_data) for e in self._strings())

    def encode(self) -> list[bytes]:
        """The buffers of this column: [values] or [values, string offsets]
        (UINT32, one more than the values; the last is the values' byte length).
        An empty column (:meth:`is_empty`) has none: it is left out of the table."""
        if self.kind == "STRING":
            encoded = self._strings()
            offsets = np.zeros(len(encoded) + 1, dtype="<u4")
            lengths = np.array([len(e) for e in encoded], dtype=np.int64)
            if lengths.sum() > np.iinfo(np.uint32).max:
                raise ValueError(f"property {self.name!r}: over 4 GiB of strings in one tile")
            offsets[1:] = np.cumsum(lengths)
            values = b"".join(encoded)
            if not values:
                raise ValueError(f"property {self.name!r} has no value in this tile: leave it out of the table")
            return [values, offsets.tobytes()]
        return [self._numbers().tobytes()]


@dataclass
class PropertyTable:
    class_id: str
    count: int
    columns: list[Column] = field(default_factory=list)
    class_title: str | None = None

    def schema(self, schema_id: str = "cim") -> dict:
        cls: dict = {"properties": {c.name: c.definition() for c in self.columns}}
        if self.class_title:
            cls["name"] = self.class_title
        return {"id": schema_id, "classes": {self.class_id: cls}}

    def table(self, add_buffer_view) -> dict:
        """The propertyTable object; ``add_buffer_view(bytes) -> index`` stores a
        buffer (8-byte aligned). String columns without a value in this table are left out."""
        if self.count < 1:
            raise ValueError("a property table needs at least one feature")
        properties = {}
        for column in self.columns:
            if len(column.values) != self.count:
                raise ValueError(f"property {column.name!r} has {len(column.values)} values for {self.count} features")
            if column.is_empty():
                continue
            buffers = column.encode()
            entry = {"values": add_buffer_view(buffers[0])}
            if column.kind == "STRING":
                entry["stringOffsets"] = add_buffer_view(buffers[1])
                entry["stringOffsetType"] = "UINT32"
            properties[column.name] = entry
        out: dict = {"class": self.class_id, "count": self.count}
        if properties:  # the spec wants at least one when the object is there
            out["properties"] = properties
        return out
