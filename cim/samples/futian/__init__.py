"""Deterministic synthetic "Futian sample" (福田区, Shenzhen) for the CIM twin.

ALL DATA WRITTEN HERE IS SYNTHETIC. Only the district outline is real (the
GCJ-02 boundary in ``data_samples/boundaries/440304.geojson``, converted to
WGS84), and the ten street names/codes are the real ones. Streets,
communities and grids are a random (but exact) partition of that outline;
buildings, parcels, land cover, sensors, cameras, citizen tickets and city
components (with their procedural models) are invented, placed with rough real
landmarks (the CBD, hills, urban villages, the mangrove coast) so that a map of
the sample looks like Futian.

Land supervision: parcels are whole street blocks with their indicators set
from what stands on them; most are compliant and a few per finding kind of
``layers/land/rules.py`` are made to trigger it (``parcels``). A second survey
of the buildings (``buildings_2026``: new, demolished, raised and grown
buildings) and the existing construction land they may stand on without a
parcel (``construction_land``, an exempt layer) come from ``survey``.

:func:`generate` writes one GeoPackage per layer (``<out_dir>/<layer>.gpkg``,
GDAL layer ``<layer>``, EPSG:4326). The same ``seed`` and ``scale`` give
identical content: every random draw comes from ``numpy.random.default_rng``
seeded with ``(seed, stream)``, and nothing depends on time or set order.

Geometry is built in metres (EPSG:4547, CGCS2000 Gauss-Krüger CM 114E) and
then converted to lon/lat rounded to 7 decimals (about 1 cm). Admin layers
are one noded coverage: every shared vertex is the same coordinate in every
polygon that uses it, so rounding keeps the partitions exact.

The package, one module per step (imports point one way, down this list):
``params`` (layers, constants, scales, random streams), ``geometry``
(coordinates, small helpers), ``partitions``, ``admin``, ``landcover``,
``lattice``, ``buildings``, ``blocks`` (street blocks of plots), ``parcels``,
``survey`` (the 2026 buildings, construction land), ``points`` (sensors,
cameras, tickets), ``components`` (city components on streets, at buildings and
in parks, linked to sensors and tickets), ``write`` (the sample's core, GeoPackages,
the components' GLB models, :func:`generate`) and ``rasters`` (the generated terrain
and orthophoto, ``dem.tif`` and ``dom.tif``: :func:`generate_rasters`; it loads
rasterio only when called).
"""

from cim.samples import names
from cim.samples.futian.params import BOUNDARY_GCJ02, LAYERS, SCALES, Scale, ScaleSpec
from cim.samples.futian.partitions import apportion, partition
from cim.samples.futian.rasters import generate_rasters
from cim.samples.futian.write import generate, write_layer

__all__ = [
    "BOUNDARY_GCJ02",
    "LAYERS",
    "SCALES",
    "Scale",
    "ScaleSpec",
    "apportion",
    "generate",
    "generate_rasters",
    "names",
    "partition",
    "write_layer",
]
