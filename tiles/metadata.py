"""Feature properties as an EXT_structural_metadata property table.

A :class:`PropertyTable` is a set of columns, one value per feature; it
knows its schema (class and property definitions) and how its columns are
laid out in binary buffers (strings as UTF-8 plus UINT32 offsets, numbers
packed little-endian), as the 3D Tiles 1.1 metadata specification says.
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

    def encode(self) -> list[bytes]:
        """The buffers of this column: [values] or [values, string offsets]."""
        if self.kind == "STRING":
            default = "" if self.no_data is None else str(self.no_data)
            encoded = [
                (default if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)).encode("utf-8")
                for v in self.values
            ]
            offsets = np.zeros(len(encoded) + 1, dtype="<u4")
            np.cumsum([len(e) for e in encoded], out=offsets[1:])
            # a buffer view cannot be empty: when every string is "", one byte no offset points into
            return [b"".join(encoded) or b" ", offsets.tobytes()]
        values = np.asarray(self.values, dtype=np.float64 if self.kind.startswith("FLOAT") else np.int64)
        if self.no_data is not None and values.dtype.kind == "f":
            values = np.where(np.isnan(values), self.no_data, values)
        return [values.astype(COMPONENT_DTYPES[self.kind]).tobytes()]


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
        """The propertyTable object; ``add_buffer_view(bytes) -> index`` stores a buffer."""
        properties = {}
        for column in self.columns:
            buffers = column.encode()
            entry = {"values": add_buffer_view(buffers[0])}
            if column.kind == "STRING":
                entry["stringOffsets"] = add_buffer_view(buffers[1])
                entry["stringOffsetType"] = "UINT32"
            properties[column.name] = entry
        return {"class": self.class_id, "count": self.count, "properties": properties}
