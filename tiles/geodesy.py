"""WGS84 geodesy for tiles: lon/lat/height <-> ECEF, and local east-north-up frames."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyproj

from cim.crs import transform_arrays

_TO_ECEF = pyproj.Transformer.from_crs(4979, 4978, always_xy=True)
_FROM_ECEF = pyproj.Transformer.from_crs(4978, 4979, always_xy=True)


def lonlath_to_ecef(lon, lat, h) -> np.ndarray:
    """(n, 3) ECEF metres from degrees and ellipsoidal heights."""
    return np.column_stack(transform_arrays(_TO_ECEF, lon, lat, h))


def ecef_to_lonlath(xyz: np.ndarray) -> np.ndarray:
    """(n, 3) lon, lat (degrees), height (metres) from ECEF."""
    return np.column_stack(transform_arrays(_FROM_ECEF, xyz[:, 0], xyz[:, 1], xyz[:, 2]))


@dataclass(frozen=True)
class EnuFrame:
    """A local east-north-up frame at ``origin`` (ECEF).

    ``rotation`` has the east, north and up unit vectors as rows, so
    ``enu = (ecef - origin) @ rotation.T`` and ``ecef = enu @ rotation + origin``.
    """

    origin: np.ndarray
    rotation: np.ndarray

    @classmethod
    def at(cls, lon: float, lat: float, h: float = 0.0) -> EnuFrame:
        lam, phi = np.radians(lon), np.radians(lat)
        east = np.array([-np.sin(lam), np.cos(lam), 0.0])
        north = np.array([-np.sin(phi) * np.cos(lam), -np.sin(phi) * np.sin(lam), np.cos(phi)])
        up = np.array([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)])
        return cls(origin=lonlath_to_ecef([lon], [lat], [h])[0], rotation=np.vstack([east, north, up]))

    def to_enu(self, ecef: np.ndarray) -> np.ndarray:
        return (ecef - self.origin) @ self.rotation.T

    def to_ecef(self, enu: np.ndarray) -> np.ndarray:
        return enu @ self.rotation + self.origin

    def up_of(self, lon, lat) -> np.ndarray:
        """The local vertical at (lon, lat), expressed in this frame (n, 3)."""
        lam, phi = np.radians(np.asarray(lon, float)), np.radians(np.asarray(lat, float))
        up = np.column_stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)])
        return up @ self.rotation.T

    def matrix(self) -> np.ndarray:
        """The 4x4 ENU -> ECEF transform (column vectors: ecef = M @ [e, n, u, 1])."""
        m = np.eye(4)
        m[:3, :3] = self.rotation.T
        m[:3, 3] = self.origin
        return m
