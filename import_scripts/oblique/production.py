"""An oblique-photography production on disk, and where it stands on Earth.

ContextCapture (Smart3D) layout::

    PRODUCTION/metadata.xml              SRS + SRSOrigin
    PRODUCTION/Data/Tile_+000_+012/Tile_+000_+012.osgb        the folder's root tile
    PRODUCTION/Data/Tile_+000_+012/Tile_+000_+012_L15_0u.osgb  its PagedLOD children

or the same with ``.obj`` tiles. ``metadata.xml``'s SRS is ``EPSG:n``, a WKT
(read whole: its AUTHORITY code can lie, the shared sample's does) or
``ENU:lat,lon``; vertices are offsets from ``SRSOrigin`` in that SRS.
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyproj

from cim.crs import WGS84, resolve_crs, transform_arrays
from cim.errors import CrsError, InputError
from cim.geoid import undulation
from tiles.geodesy import EnuFrame, ecef_to_lonlath, lonlath_to_ecef

TILE_SUFFIXES = (".osgb", ".obj")
_ENU = re.compile(r"^\s*ENU\s*:\s*([-+0-9.eE]+)\s*,\s*([-+0-9.eE]+)\s*$", re.I)


@dataclass(frozen=True)
class Georef:
    """How source coordinates (offsets from ``origin``) become ECEF.

    ``srs`` is what the user or metadata.xml said; ``crs_wkt`` the CRS it
    resolved to (None for ENU); ``enu`` the (lat, lon) of a local tangent
    plane. ``geoid_n`` is added to every height: the geoid's N where the
    production stands, for heights measured from the geoid (orthometric, as
    productions usually are: :meth:`with_geoid`), 0 for ellipsoidal ones."""

    srs: str
    origin: tuple[float, float, float]
    crs_wkt: str | None = None
    enu: tuple[float, float] | None = None
    geoid_n: float = 0.0

    def with_geoid(self) -> Georef:
        """This georeference with orthometric heights made ellipsoidal (EGM96, at its origin:
        the tangent plane's for ENU, the SRS origin's otherwise)."""
        lon, lat = (self.enu[1], self.enu[0]) if self.enu else self.to_lonlath(np.zeros((1, 3)))[0][:2]
        return dataclasses.replace(self, geoid_n=float(undulation(lon, lat)[0]))

    @classmethod
    def parse(cls, srs: str, origin: tuple[float, float, float], source: str) -> Georef:
        match = _ENU.match(srs)
        if match:
            lat, lon = float(match.group(1)), float(match.group(2))
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                raise CrsError(source, f"ENU origin {srs!r} is not a latitude,longitude pair")
            return cls(srs=srs, origin=origin, enu=(lat, lon))
        crs = resolve_crs(srs, source=source)
        if crs.is_geocentric:
            raise CrsError(
                source, f"SRS {crs.name!r} is geocentric; productions are in a projected, geographic or ENU system"
            )
        return cls(srs=srs, origin=origin, crs_wkt=crs.to_wkt())

    @property
    def description(self) -> str:
        if self.enu:
            datum = f", heights + geoid N {self.geoid_n:+.2f} m (EGM96)" if self.geoid_n else ""
            return f"ENU at {self.enu[0]:.6f}, {self.enu[1]:.6f}, origin {self.origin}{datum}"
        assert self.crs_wkt is not None  # parse() sets one of enu and crs_wkt
        datum = f", heights + geoid N {self.geoid_n:+.2f} m (EGM96)" if self.geoid_n else ""
        return f"{pyproj.CRS.from_wkt(self.crs_wkt).name}, origin {self.origin}{datum}"

    def to_lonlath(self, xyz: np.ndarray) -> np.ndarray:
        return Placement.of(self).to_lonlath(xyz)


class Placement:
    """A Georef's transformers, built once per process (pyproj objects are
    not shared between worker processes)."""

    _cache: ClassVar[dict[Georef, Placement]] = {}

    def __init__(self, georef: Georef) -> None:
        self.origin = np.array(georef.origin, dtype=np.float64)
        self.geoid_n = georef.geoid_n
        self.frame = EnuFrame.at(georef.enu[1], georef.enu[0], georef.geoid_n) if georef.enu else None
        self.transformer: pyproj.Transformer | None = None
        if georef.crs_wkt:
            self.transformer = pyproj.Transformer.from_crs(pyproj.CRS.from_wkt(georef.crs_wkt), WGS84, always_xy=True)

    @classmethod
    def of(cls, georef: Georef) -> Placement:
        if georef not in cls._cache:
            cls._cache[georef] = cls(georef)
        return cls._cache[georef]

    def to_lonlath(self, xyz: np.ndarray) -> np.ndarray:
        if self.frame is not None:
            return ecef_to_lonlath(self.to_ecef(xyz))
        assert self.transformer is not None  # not ENU: the georef has a CRS
        p = np.asarray(xyz, np.float64) + self.origin
        lon, lat = transform_arrays(self.transformer, p[:, 0], p[:, 1])
        return np.column_stack([lon, lat, p[:, 2] + self.geoid_n])

    def to_ecef(self, xyz: np.ndarray) -> np.ndarray:
        """(n, 3) ECEF metres, in double precision, from source coordinates."""
        if self.frame is not None:
            return self.frame.to_ecef(np.asarray(xyz, np.float64) + self.origin)
        llh = self.to_lonlath(xyz)
        return lonlath_to_ecef(llh[:, 0], llh[:, 1], llh[:, 2])


@dataclass
class TileFolder:
    """One ``Data/Tile_*`` folder: its root tile and every tile file in it."""

    name: str
    root: Path
    files: list[Path]


@dataclass
class Production:
    source: Path
    georef: Georef
    folders: list[TileFolder]
    kind: str  # "osgb" or "obj"

    @property
    def files(self) -> int:
        return sum(len(f.files) for f in self.folders)

    @property
    def bytes(self) -> int:
        return sum(p.stat().st_size for f in self.folders for p in f.files)


def read_metadata(path: Path) -> tuple[str | None, tuple[float, float, float] | None]:
    """(SRS, SRSOrigin) from a ContextCapture metadata.xml."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise InputError(str(path), f"is not well-formed XML ({exc})") from exc
    srs = root.findtext("SRS")
    origin_text = root.findtext("SRSOrigin")
    origin = None
    if origin_text and origin_text.strip():
        origin = parse_origin(origin_text, str(path))
    return (srs.strip() if srs and srs.strip() else None), origin


def parse_origin(text: str, source: str) -> tuple[float, float, float]:
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (2, 3) or not all(np.isfinite(values)):
        raise InputError(source, f"origin {text.strip()!r} is not X,Y[,Z]")
    return (values[0], values[1], values[2] if len(values) == 3 else 0.0)


def _tile_folders(data: Path, suffix: str) -> list[TileFolder]:
    folders = []
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() == suffix and p.is_file())
        if not files:
            continue
        root = folder / f"{folder.name}{suffix}"
        if not root.is_file():  # no file named after the folder: the one whose name has no level (_L..)
            plain = [p for p in files if not re.search(r"_L\d+_", p.name)]
            root = plain[0] if len(plain) == 1 else files[0]
        folders.append(TileFolder(folder.name, root, files))
    return folders


def open_production(
    source: Path, srs: str | None = None, origin: tuple[float, float, float] | None = None
) -> Production:
    """Find the tiles and the georeference of a production folder (or of a single tile file)."""
    source = Path(source)
    if not source.exists():
        raise InputError(str(source), "does not exist")
    if source.is_file():
        if source.suffix.lower() not in TILE_SUFFIXES:
            raise InputError(str(source), "is not an .osgb or .obj tile or a production folder")
        # one tile file: it is the root, its folder holds its children
        kind = source.suffix.lower()[1:]
        siblings = sorted(p for p in source.parent.iterdir() if p.suffix.lower() == source.suffix.lower())
        folders = [TileFolder(source.parent.name, source, siblings)]
        base = next(
            (
                p
                for p in (source.parent, source.parent.parent, source.parent.parent.parent)
                if (p / "metadata.xml").is_file()
            ),
            source.parent,
        )
    else:
        base = source
        data = source / "Data" if (source / "Data").is_dir() else source
        kind, folders = "osgb", _tile_folders(data, ".osgb")
        if not folders:
            kind, folders = "obj", _tile_folders(data, ".obj")
        if not folders and any(p.suffix.lower() in TILE_SUFFIXES for p in data.iterdir() if p.is_file()):
            files = sorted(p for p in data.iterdir() if p.suffix.lower() in TILE_SUFFIXES)  # loose tiles, one folder
            kind = files[0].suffix.lower()[1:]
            files = [p for p in files if p.suffix.lower() == files[0].suffix.lower()]
            folders = [TileFolder(p.stem, p, [p]) for p in files]
        if not folders:
            raise InputError(
                str(source),
                "holds no tiles: expected Data/Tile_*/Tile_*.osgb (or .obj)",
                hint="give the production folder that contains metadata.xml and Data/",
            )
    meta_srs, meta_origin = None, None
    metadata = base / "metadata.xml"
    if metadata.is_file():
        meta_srs, meta_origin = read_metadata(metadata)
    chosen_srs = srs or meta_srs
    if not chosen_srs:
        raise CrsError(
            str(source),
            "has no metadata.xml with an SRS, so where it stands is unknown",
            hint="give --srs (EPSG code, WKT or ENU:lat,lon) and --origin X,Y,Z",
        )
    chosen_origin = origin or meta_origin or (0.0, 0.0, 0.0)
    georef = Georef.parse(chosen_srs, chosen_origin, "--srs" if srs else str(metadata))
    return Production(source=source, georef=georef, folders=folders, kind=kind)
