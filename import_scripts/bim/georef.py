"""Where an IFC model stands on the earth.

In this order: IfcMapConversion (+ IfcProjectedCRS) when present; else
IfcSite RefLatitude/RefLongitude/RefElevation with the context's TrueNorth;
else ``--anchor LON,LAT,HEIGHT[,ROTATION_DEG]`` is required. ``--anchor``
overrides both (how a model without georeference is placed on a parcel).

Local coordinates are the geometry iterator's world coordinates, already in
metres. Heights (OrthogonalHeight, RefElevation, the anchor's) are
orthometric by default (above the geoid, as surveyors give them) and made
ellipsoidal with the EGM96 geoid (:mod:`cim.geoid`; Shenzhen: N about -3 m,
south-west Germany about +48 m); ``--vertical-datum ellipsoidal`` takes them as they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import ifcopenshell
import ifcopenshell.util.geolocation
import ifcopenshell.util.placement
import ifcopenshell.util.unit
import numpy as np
import pyproj

from cim.crs import WGS84, resolve_crs, transform_arrays
from cim.errors import CrsError, InputError
from cim.geoid import VerticalDatum, undulation
from tiles.geodesy import EnuFrame, lonlath_to_ecef

#: (n, 3) local metres -> (n, 3) ECEF metres
ToEcef = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Anchor:
    lon: float
    lat: float
    height: float = 0.0
    rotation_deg: float = 0.0  # compass bearing of the model's +Y axis (clockwise from north)

    @classmethod
    def parse(cls, text: str) -> Anchor:
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            values = []
        if (
            len(values) not in (2, 3, 4)
            or not all(math.isfinite(v) for v in values)
            or not (-180 <= values[0] <= 180 and -90 <= values[1] <= 90)
        ):
            raise InputError("--anchor", f"{text!r} is not LON,LAT[,HEIGHT[,ROTATION_DEG]]")
        return cls(*values)


@dataclass
class Georeference:
    method: str  # for people: how the model was placed
    origin: tuple[float, float, float]  # lon, lat, height of the local origin
    _to_ecef: ToEcef = field(repr=False)
    notes: list[str] = field(default_factory=list)

    def to_ecef(self, local: np.ndarray) -> np.ndarray:
        """(n, 3) local metres -> (n, 3) ECEF metres."""
        return self._to_ecef(np.asarray(local, dtype=np.float64))


def _rotated(local: np.ndarray, angle: float) -> np.ndarray:
    """Rotate x, y counter-clockwise by ``angle`` radians."""
    c, s = math.cos(angle), math.sin(angle)
    out = local.copy()
    out[:, 0] = c * local[:, 0] - s * local[:, 1]
    out[:, 1] = s * local[:, 0] + c * local[:, 1]
    return out


def _enu_placement(lon: float, lat: float, height: float, angle: float) -> ToEcef:
    frame = EnuFrame.at(lon, lat, height)
    return lambda local: frame.to_ecef(_rotated(local, angle))


def from_anchor(anchor: Anchor) -> Georeference:
    angle = -math.radians(anchor.rotation_deg)  # a clockwise bearing is a negative rotation
    return Georeference(
        f"--anchor {anchor.lon},{anchor.lat},{anchor.height},{anchor.rotation_deg}",
        (anchor.lon, anchor.lat, anchor.height),
        _enu_placement(anchor.lon, anchor.lat, anchor.height, angle),
    )


def _metres(unit) -> float:
    """How many metres one ``unit`` (an IfcSIUnit or IfcConversionBasedUnit of length) is."""
    if unit is None:
        return 1.0
    if unit.is_a("IfcSIUnit"):
        return ifcopenshell.util.unit.get_prefix_multiplier(unit.Prefix) if unit.Prefix else 1.0
    if unit.is_a("IfcConversionBasedUnit"):
        factor = unit.ConversionFactor
        return float(factor.ValueComponent.wrappedValue) * _metres(factor.UnitComponent)
    return 1.0


def _map_scale(conversion, model: ifcopenshell.file, notes: list[str]) -> float:
    """The scale from local metres to map units. IFC's Scale converts the
    model's length unit to the map's; since our coordinates are metres
    already, only a remaining factor (a grid scale factor near 1) applies.
    A Scale that is the unit conversion upside down (the bSI 4.3 sample's
    1000 for a millimetre model) is recognised and reported."""
    unit = ifcopenshell.util.unit.calculate_unit_scale(model)  # model unit in metres
    map_unit = _metres(getattr(conversion.TargetCRS, "MapUnit", None))
    given = float(conversion.Scale) if conversion.Scale is not None else None
    conversion_factor = unit / map_unit  # what Scale would be if it only converted units
    if given is None:
        return 1.0 / map_unit
    for candidate in (given / conversion_factor, given):  # Scale as unit conversion x factor, or a bare factor
        if abs(candidate - 1.0) < 0.01:
            return candidate / map_unit
    if abs(given * conversion_factor - 1.0) < 0.01:
        notes.append(
            f"IfcMapConversion.Scale {given:g} is the inverse of the model-to-map unit factor "
            f"{conversion_factor:g}; used as a unit conversion"
        )
        return 1.0 / map_unit
    raise CrsError(
        "IfcMapConversion",
        f"Scale {given:g} cannot be read for a model in {unit:g} m units",
        hint="place the model with --anchor LON,LAT,HEIGHT[,ROTATION_DEG]",
    )


def from_map_conversion(model: ifcopenshell.file, source: str) -> Georeference | None:
    conversions = model.by_type("IfcMapConversion") if model.schema != "IFC2X3" else []
    if not conversions:
        return None
    c = conversions[0]
    crs_entity = c.TargetCRS
    try:
        crs = resolve_crs(crs_entity.Name, source=f"{source}: IfcProjectedCRS")
    except CrsError:
        raise CrsError(
            source,
            f"IfcProjectedCRS {crs_entity.Name!r} is not a CRS I know",
            hint="place the model with --anchor LON,LAT,HEIGHT[,ROTATION_DEG]",
        ) from None
    notes: list[str] = []
    scale = _map_scale(c, model, notes)
    angle = math.atan2(
        c.XAxisOrdinate if c.XAxisOrdinate is not None else 0.0, c.XAxisAbscissa if c.XAxisAbscissa is not None else 1.0
    )
    to_lonlat = pyproj.Transformer.from_crs(crs, WGS84, always_xy=True)
    e0, n0, h0 = float(c.Eastings), float(c.Northings), float(c.OrthogonalHeight or 0.0)

    def to_ecef(local: np.ndarray) -> np.ndarray:
        rotated = _rotated(local, angle)
        lon, lat = transform_arrays(to_lonlat, e0 + scale * rotated[:, 0], n0 + scale * rotated[:, 1])
        return lonlath_to_ecef(lon, lat, h0 + local[:, 2])

    lon, lat = transform_arrays(to_lonlat, np.array([e0]), np.array([n0]))
    return Georeference(f"IfcMapConversion to {crs_entity.Name}", (float(lon[0]), float(lat[0]), h0), to_ecef, notes)


def _true_north_angle(model: ifcopenshell.file) -> float:
    """The angle (radians, counter-clockwise) that turns the model's axes so
    that its TrueNorth direction points north; 0 without TrueNorth."""
    for context in model.by_type("IfcGeometricRepresentationContext"):
        if context.is_a("IfcGeometricRepresentationSubContext") or context.TrueNorth is None:
            continue
        x, y = context.TrueNorth.DirectionRatios[:2]
        return math.pi / 2 - math.atan2(y, x)
    return 0.0


def _degrees(compound) -> float:
    """An IfcCompoundPlaneAngleMeasure in degrees; its parts share the sign of the
    first non-zero one (some exporters sign only the degrees)."""
    parts = list(compound) + [0] * (4 - len(compound))
    sign = -1.0 if any(p < 0 for p in parts) else 1.0
    return sign * ifcopenshell.util.geolocation.dms2dd(*(abs(int(p)) for p in parts[:4]))


def from_site(model: ifcopenshell.file) -> Georeference | None:
    """LoGeoRef 20: the site's latitude, longitude and elevation are those of
    the origin of the site's own placement, turned by TrueNorth."""
    for site in model.by_type("IfcSite"):
        if site.RefLatitude and site.RefLongitude:
            lat, lon = _degrees(site.RefLatitude), _degrees(site.RefLongitude)
            unit = ifcopenshell.util.unit.calculate_unit_scale(model)
            height = float(site.RefElevation or 0.0) * unit
            angle = _true_north_angle(model)
            placement = np.eye(4)
            if site.ObjectPlacement is not None:
                placement = np.array(ifcopenshell.util.placement.get_local_placement(site.ObjectPlacement), float)
                placement[:3, 3] *= unit  # model units -> metres, as the geometry
            to_site = np.linalg.inv(placement)
            place = _enu_placement(lon, lat, height, angle)
            return Georeference(
                f"IfcSite {lat:.6f}, {lon:.6f} (true north {math.degrees(angle):.1f}°)",
                (lon, lat, height),
                lambda local: place(local @ to_site[:3, :3].T + to_site[:3, 3]),  # noqa: B023 - returned at once
            )
    return None


def georeference(model: ifcopenshell.file, source: str, anchor: Anchor | None) -> Georeference:
    if anchor is not None:
        return from_anchor(anchor)
    found = from_map_conversion(model, source) or from_site(model)
    if found is None:
        raise InputError(
            source,
            "has no georeference (no IfcMapConversion, no IfcSite latitude/longitude)",
            hint="place it with --anchor LON,LAT,HEIGHT[,ROTATION_DEG], e.g. --anchor 114.0553,22.5333,0,30",
        )
    return found


def with_vertical_datum(found: Georeference, datum: VerticalDatum) -> Georeference:
    """``found`` with its heights made ellipsoidal: orthometric ones are raised by
    the geoid's N at the model's origin, along its vertical (a model is small:
    N and the vertical do not change across it)."""
    if datum == VerticalDatum.ellipsoidal:
        return found
    lon, lat, height = found.origin
    n = float(undulation(lon, lat)[0])
    up = EnuFrame.at(lon, lat).rotation[2] * n
    place = found.to_ecef
    return Georeference(
        found.method,
        (lon, lat, height + n),
        lambda local: place(local) + up,
        [*found.notes, f"heights orthometric (EGM96): raised by the geoid's N = {n:+.2f} m to ellipsoidal ones"],
    )
