"""Bounding boxes in EPSG:4326: one parser for every route and query."""

from __future__ import annotations

import math

from cim.errors import InputError

#: west, south, east, north in degrees
BBox = tuple[float, float, float, float]


def parse_bbox(text: str | None, name: str = "bbox", *, lonlat: bool = True) -> BBox | None:
    """``"west,south,east,north"`` as numbers, or ``None`` for no text.

    Refused, with an :class:`~cim.errors.InputError` naming the parameter:
    not four numbers, not finite, and (``lonlat``: in degrees, CRS84) outside
    -180..180 / -90..90, west > east or south > north (a box across the
    antimeridian is not supported). Without ``lonlat`` (a box in another CRS,
    in its own axis order) only the numbers are checked."""
    if text is None or not text.strip():
        return None
    try:
        parts = tuple(float(v) for v in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 4 or not all(math.isfinite(v) for v in parts):
        raise InputError(name, f"{text!r} is not west,south,east,north (four numbers, degrees)")
    w, s, e, n = parts
    if not lonlat:
        return (w, s, e, n)
    if not (-180 <= w <= e <= 180 and -90 <= s <= n <= 90):
        raise InputError(
            name,
            f"{text!r} is not west,south,east,north with -180 <= west <= east <= 180 and -90 <= south <= north <= 90",
        )
    return (w, s, e, n)
