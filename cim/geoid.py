"""One vertical datum: heights are ellipsoidal (WGS 84 ellipsoid) in every
tileset and in every stored DEM, as 3D Tiles and quantized-mesh expect.

Sources that give orthometric heights (above the geoid: a DEM, an oblique
production's SRSOrigin, an IFC site's elevation; in China the 1985 national
height datum) are converted on import with the EGM96 geoid, the model that
ships with Debian's ``proj-data`` (``egm96_15.gtx``, 15' grid) and so is there
offline: ``h = H + N``. In Shenzhen N is about -3.0 m; in south-west Germany
(the BIM samples' georeference) about +48 m. The national quasi-geoid (CQG2000)
differs from EGM96 by decimetres in Guangdong; it is not available offline.
"""

from __future__ import annotations

import functools
import os
from enum import Enum
from pathlib import Path

import numpy as np
import pyproj

from cim.errors import CimError

GEOID_GRID = "egm96_15.gtx"


class VerticalDatum(str, Enum):
    """What a source's heights are measured from."""

    ellipsoidal = "ellipsoidal"  # the WGS 84 / CGCS2000 ellipsoid (GNSS heights; 3D Tiles)
    egm96 = "egm96"  # the geoid (orthometric heights: the 1985 national height datum, approximated by EGM96)


def grid_path() -> Path:
    """Where the EGM96 grid is: PROJ's data folders, Debian's first."""
    folders = [Path("/usr/share/proj"), *(Path(p) for p in os.environ.get("PROJ_DATA", "").split(os.pathsep) if p)]
    folders.append(Path(pyproj.datadir.get_data_dir()))
    for folder in folders:
        if (folder / GEOID_GRID).is_file():
            return folder / GEOID_GRID
    raise CimError(
        f"the geoid grid {GEOID_GRID} is not installed",
        hint="install the Debian package proj-data (scripts/bootstrap.sh does), "
        "or import with --vertical-datum ellipsoidal",
    )


@functools.lru_cache(maxsize=1)
def _orthometric_to_ellipsoidal() -> pyproj.Transformer:
    return pyproj.Transformer.from_pipeline(
        "+proj=pipeline +step +proj=unitconvert +xy_in=deg +xy_out=rad "
        f"+step +proj=vgridshift +grids={grid_path()} +multiplier=1 "
        "+step +proj=unitconvert +xy_in=rad +xy_out=deg"
    )


def undulation(lon: np.ndarray | float, lat: np.ndarray | float) -> np.ndarray:
    """N: the geoid's height above the WGS 84 ellipsoid (metres) at lon/lat (degrees)."""
    lon_a, lat_a = np.atleast_1d(np.asarray(lon, dtype=float)), np.atleast_1d(np.asarray(lat, dtype=float))
    _, _, h = _orthometric_to_ellipsoidal().transform(lon_a, lat_a, np.zeros_like(lon_a))
    return np.asarray(h, dtype=float)


def to_ellipsoidal(
    lon: np.ndarray | float, lat: np.ndarray | float, height: np.ndarray | float, datum: VerticalDatum
) -> np.ndarray:
    """Heights measured from ``datum`` as ellipsoidal heights."""
    h = np.atleast_1d(np.asarray(height, dtype=float))
    return h if datum == VerticalDatum.ellipsoidal else h + undulation(lon, lat)
