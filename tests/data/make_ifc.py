"""Makes ``data_samples/ifc/gk_map_conversion.ifc``: a small IFC4.3 model
georeferenced by an IfcMapConversion to a Gauss-Krüger CRS (EPSG:31467),
the project's own stand-in for buildingSMART's sample
``geographic-referencing-gk.ifc``, which has no licence and is not shipped.

    .venv/bin/python tests/data/make_ifc.py [OUT.ifc]

What it keeps of that sample (the cases the BIM importer must handle):

- the map conversion: the same Eastings, Northings, OrthogonalHeight and
  rotation, so the model's origin stands at about 8.4337 E, 49.0955 N,
  113.7 m up (near Karlsruhe);
- a model in millimetres whose ``Scale`` is 1000, the model-to-map unit
  factor (0.001) upside down, as in the sample: the importer recognises it,
  uses it as a unit conversion and says so;
- IfcSite RefLatitude/RefLongitude of the same point (for information: the
  map conversion wins);
- a marker at the origin, a pin whose apex is the georeferenced point
  (ReferenceView: tessellated geometry only).

Beside the marker stands a small pavilion with real geometry on two storeys:
a floor slab, four columns, a wall turned a quarter (its placement has a
RefDirection), and a roof slab on the upper storey, whose placement is
raised 3 m. Every element has its own IfcTriangulatedFaceSet (no shared
representation, so nothing is drawn as an instance) and a surface colour.

The output is deterministic (fixed GlobalIds, header and time stamp):
``tests/test_bim.py`` checks that the committed file is what this makes.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import ifcopenshell
import ifcopenshell.guid

OUT = Path(__file__).resolve().parents[2] / "data_samples" / "ifc" / "gk_map_conversion.ifc"

# the map conversion (of the bSI IFC4.3 sample): model origin -> EPSG:31467 easting, northing, height
CRS = "EPSG:31467"
EASTINGS, NORTHINGS, ORTHOGONAL_HEIGHT = 3458715.92, 5439966.65, 113.7
X_AXIS_ABSCISSA, X_AXIS_ORDINATE = 0.270600445976, 0.962691746426  # the model's +X is 74.3° left of east
SCALE = 1000.0  # on purpose: the unit factor (0.001 for millimetres to metres) upside down, as in the sample
SITE_LATITUDE = (49, 5, 43, 983700)  # the same point, as IfcSite's compound angles
SITE_LONGITUDE = (8, 26, 1, 247300)

_GUIDS = uuid.UUID("6f0b4a52-2d1e-4c53-9a57-0c1e5b1a4d31")  # namespace of this file's GlobalIds
_BOX_FACES = (  # a box's 8 corners (below) as 12 triangles, counter-clockwise seen from outside, 1-based
    (1, 3, 2), (1, 4, 3), (5, 6, 7), (5, 7, 8), (1, 2, 6), (1, 6, 5),
    (2, 3, 7), (2, 7, 6), (3, 4, 8), (3, 8, 7), (4, 1, 5), (4, 5, 8),
)  # fmt: skip


def _guid(key: str) -> str:
    return ifcopenshell.guid.compress(uuid.uuid5(_GUIDS, key).hex)


def box(x0: float, y0: float, z0: float, x1: float, y1: float, z1: float) -> tuple[list, list]:
    """Corners and triangles of an axis-aligned box, in the element's own coordinates (mm)."""
    points = [(x, y, z) for z in (z0, z1) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]
    return points, list(_BOX_FACES)


def pin() -> tuple[list, list]:
    """The marker: an upside-down pyramid from its apex at (0, 0, 0) up to a
    1 m square at 2 m, and a 1 m cube on it (closed: the cube has no bottom)."""
    square = [(-500.0, -500.0), (500.0, -500.0), (500.0, 500.0), (-500.0, 500.0)]
    points = [(0.0, 0.0, 0.0), *((x, y, 2000.0) for x, y in square), *((x, y, 4000.0) for x, y in square)]
    faces = [(1, 3, 2), (1, 4, 3), (1, 5, 4), (1, 2, 5)]  # the pyramid's sides
    for a in range(4):  # the cube's sides
        b = (a + 1) % 4
        faces += [(2 + a, 2 + b, 6 + b), (2 + a, 6 + b, 6 + a)]
    return points, [*faces, (6, 7, 8), (6, 8, 9)]


def build() -> ifcopenshell.file:
    f = ifcopenshell.file(schema="IFC4X3_ADD2")
    f.header.file_description.description = ("ViewDefinition [ReferenceView]",)
    name = f.header.file_name
    name.name = OUT.name
    name.time_stamp = "2025-01-01T00:00:00"
    name.author = ("cim-twin",)
    name.organization = ("cim-twin",)
    name.preprocessor_version = "tests/data/make_ifc.py (IfcOpenShell)"
    name.originating_system = "tests/data/make_ifc.py"
    name.authorization = "none"

    def direction(*ratios: float):
        return f.createIfcDirection(DirectionRatios=ratios)

    def axes(x: float = 0.0, y: float = 0.0, z: float = 0.0, ref_direction: tuple[float, float, float] = (1, 0, 0)):
        return f.createIfcAxis2Placement3D(
            Location=f.createIfcCartesianPoint(Coordinates=(x, y, z)),
            Axis=direction(0.0, 0.0, 1.0),
            RefDirection=direction(*map(float, ref_direction)),
        )

    def placement(relative_to, *args, **kwargs):
        return f.createIfcLocalPlacement(PlacementRelTo=relative_to, RelativePlacement=axes(*args, **kwargs))

    # units (millimetres), the model context, the project
    millimetre = f.createIfcSIUnit(UnitType="LENGTHUNIT", Prefix="MILLI", Name="METRE")
    units = f.createIfcUnitAssignment(
        Units=[
            millimetre,
            f.createIfcSIUnit(UnitType="AREAUNIT", Name="SQUARE_METRE"),
            f.createIfcSIUnit(UnitType="VOLUMEUNIT", Name="CUBIC_METRE"),
            f.createIfcSIUnit(UnitType="PLANEANGLEUNIT", Name="RADIAN"),
        ]
    )
    context = f.createIfcGeometricRepresentationContext(
        ContextType="Model", CoordinateSpaceDimension=3, Precision=1.0e-5, WorldCoordinateSystem=axes()
    )
    body = f.createIfcGeometricRepresentationSubContext(
        ContextIdentifier="Body", ContextType="Model", ParentContext=context, TargetView="MODEL_VIEW"
    )
    project = f.createIfcProject(
        GlobalId=_guid("project"),
        Name="Georeferenced pavilion (Gauss-Krueger)",
        RepresentationContexts=[context],
        UnitsInContext=units,
    )

    # the georeference: the model's origin, axes and units -> EPSG:31467
    crs = f.createIfcProjectedCRS(
        Name=CRS,
        Description="DHDN / 3-degree Gauss-Kruger zone 3",
        GeodeticDatum="DHDN",
        VerticalDatum="DHHN92",
        MapProjection="Gauss-Krueger",
        MapZone="3",
        MapUnit=f.createIfcSIUnit(UnitType="LENGTHUNIT", Name="METRE"),
    )
    f.createIfcMapConversion(
        SourceCRS=context,
        TargetCRS=crs,
        Eastings=EASTINGS,
        Northings=NORTHINGS,
        OrthogonalHeight=ORTHOGONAL_HEIGHT,
        XAxisAbscissa=X_AXIS_ABSCISSA,
        XAxisOrdinate=X_AXIS_ORDINATE,
        Scale=SCALE,
    )

    # the spatial structure: site, building, two storeys (the upper one raised 3 m)
    site = f.createIfcSite(
        GlobalId=_guid("site"),
        Name="Site",
        ObjectPlacement=placement(None),
        CompositionType="ELEMENT",
        RefLatitude=SITE_LATITUDE,
        RefLongitude=SITE_LONGITUDE,
        RefElevation=ORTHOGONAL_HEIGHT * 1000.0,  # in the model's unit
    )
    building = f.createIfcBuilding(
        GlobalId=_guid("building"),
        Name="Pavilion",
        ObjectPlacement=placement(site.ObjectPlacement),
        CompositionType="ELEMENT",
    )
    storeys = [
        f.createIfcBuildingStorey(
            GlobalId=_guid(f"storey {name}"),
            Name=name,
            ObjectPlacement=placement(building.ObjectPlacement, 0.0, 0.0, elevation),
            CompositionType="ELEMENT",
            Elevation=elevation,
        )
        for name, elevation in (("Ground floor", 0.0), ("Roof", 3000.0))
    ]
    f.createIfcRelAggregates(GlobalId=_guid("project-site"), RelatingObject=project, RelatedObjects=[site])
    f.createIfcRelAggregates(GlobalId=_guid("site-building"), RelatingObject=site, RelatedObjects=[building])
    f.createIfcRelAggregates(GlobalId=_guid("building-storeys"), RelatingObject=building, RelatedObjects=storeys)

    styles = {
        name: f.createIfcSurfaceStyle(
            Name=name,
            Side="BOTH",
            Styles=[
                f.createIfcSurfaceStyleShading(
                    SurfaceColour=f.createIfcColourRgb(Red=rgb[0], Green=rgb[1], Blue=rgb[2]), Transparency=0.0
                )
            ],
        )
        for name, rgb in (
            ("Marker red", (0.85, 0.15, 0.1)),
            ("Concrete", (0.7, 0.7, 0.68)),
            ("Steel", (0.35, 0.38, 0.42)),
            ("Render", (0.9, 0.85, 0.72)),
            ("Roofing", (0.45, 0.25, 0.2)),
        )
    }

    def element(ifc_class: str, name: str, storey, where, geometry: tuple[list, list], style: str, **attributes):
        points, faces = geometry
        faceset = f.createIfcTriangulatedFaceSet(
            Coordinates=f.createIfcCartesianPointList3D(CoordList=[tuple(map(float, p)) for p in points]),
            Closed=True,
            CoordIndex=faces,
        )
        f.createIfcStyledItem(Item=faceset, Styles=[styles[style]])
        shape = f.createIfcProductDefinitionShape(
            Representations=[
                f.createIfcShapeRepresentation(
                    ContextOfItems=body,
                    RepresentationIdentifier="Body",
                    RepresentationType="Tessellation",
                    Items=[faceset],
                )
            ]
        )
        return f.create_entity(
            ifc_class,
            GlobalId=_guid(name),
            Name=name,
            ObjectPlacement=f.createIfcLocalPlacement(PlacementRelTo=storey.ObjectPlacement, RelativePlacement=where),
            Representation=shape,
            **attributes,
        )

    ground, roof = storeys
    on_ground = [
        element("IfcBuildingElementProxy", "Geographic Position", ground, axes(), pin(), "Marker red"),
        element(
            "IfcSlab", "Floor slab", ground, axes(2000, -3000), box(0, 0, -300, 8000, 6000, 0), "Concrete",
            PredefinedType="FLOOR",
        ),
        *(
            element(
                "IfcColumn", f"Column {label}", ground, axes(x, y), box(-200, -200, 0, 200, 200, 3000), "Steel",
                PredefinedType="COLUMN",
            )
            for label, x, y in (("A1", 2400, -2600), ("A2", 2400, 2600), ("B1", 9400, -2600), ("B2", 9400, 2600))
        ),
        # its own +X runs north: a quarter turn by the placement's RefDirection
        element(
            "IfcWall", "East wall", ground, axes(10000, -3000, ref_direction=(0, 1, 0)),
            box(0, 0, 0, 6000, 250, 3000), "Render", PredefinedType="SOLIDWALL",
        ),
    ]  # fmt: skip
    on_roof = [
        element(
            "IfcSlab", "Roof slab", roof, axes(1700, -3300), box(0, 0, 0, 8600, 6600, 250), "Roofing",
            PredefinedType="ROOF",
        )
    ]  # fmt: skip
    for storey, contained in ((ground, on_ground), (roof, on_roof)):
        f.createIfcRelContainedInSpatialStructure(
            GlobalId=_guid(f"contained in {storey.Name}"), RelatedElements=contained, RelatingStructure=storey
        )

    wall = on_ground[-1]
    pset = f.createIfcPropertySet(
        GlobalId=_guid("Pset_WallCommon"),
        Name="Pset_WallCommon",
        HasProperties=[
            f.createIfcPropertySingleValue(Name="IsExternal", NominalValue=f.createIfcBoolean(True)),
            f.createIfcPropertySingleValue(Name="LoadBearing", NominalValue=f.createIfcBoolean(False)),
        ],
    )
    f.createIfcRelDefinesByProperties(
        GlobalId=_guid("wall properties"), RelatedObjects=[wall], RelatingPropertyDefinition=pset
    )
    return f


def main(argv: list[str]) -> None:
    out = Path(argv[1]) if len(argv) > 1 else OUT
    build().write(str(out))
    print(out)


if __name__ == "__main__":
    main(sys.argv)
