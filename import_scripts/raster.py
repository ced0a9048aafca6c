"""``cim import raster``: an orthophoto (DOM) or a terrain model (DEM) ->
a Cloud-Optimized GeoTIFF with overviews, catalogued by name and epoch.

read -> normalise CRS -> checks -> COG (a DEM converted to ellipsoidal
heights on the way) -> catalogue row (one transaction) -> the replaced file removed.

Sources: GeoTIFF (tiled or not), JPEG 2000, ERDAS IMG, a VRT, or a folder of
tiles (made one VRT by ``gdalbuildvrt``), in any CRS GDAL reads (``--src-crs``
for a file without one, or one whose CRS is wrong; a WKT is read whole).
The COG stays in the source's CRS (no resampling: a DEM keeps its values;
the tile server reprojects). GDAL's COG driver writes it, through rasterio
(the same driver as ``gdal_translate -of COG``). A new epoch of a name is
kept beside the older ones; the same epoch again replaces its file, and the
old file goes only after the new row commits: a failure leaves the previous
raster as it was.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import math
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyproj

from cim.crs import resolve_crs
from cim.db import connect
from cim.errors import CrsError, InputError
from cim.geoid import VerticalDatum, undulation
from import_scripts.contract import Importer, database_errors
from import_scripts.report import ImportReport
from layers.catalogue import LayerInfo, find_layer
from layers.load import LoadResult
from layers.rasters import KINDS, RasterInfo, ensure_rasters_schema, kinds_of, record_raster
from tiles.output import TilesetVersion

#: the suffixes of a folder's tiles that are read (one VRT of them all)
RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".img", ".vrt")
DEM_RANGE = (-500.0, 9000.0)  # metres: lower than the Dead Sea shore, higher than Everest: an error in the data
BLOCK = 1024  # pixels: the DEM is checked and converted window by window


@dataclass(frozen=True)
class RasterOptions:
    kind: str  # dom or dem
    epoch: dt.date | None = None  # default: today
    src_crs: str | None = None
    nodata: float | None = None
    vertical_datum: VerticalDatum = VerticalDatum.egm96  # a DEM's source heights (converted to ellipsoidal)
    title: str | None = None
    actor: str = "cli"
    district_check: bool = True  # refuse a raster that misses the district (the grid layer's extent)


def _gdal(args: list[str], source: Path) -> None:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=3600)
    except FileNotFoundError as exc:
        raise InputError(str(source), f"needs GDAL's {args[0]}", hint="install Debian gdal-bin") from exc
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise InputError(str(source), f"GDAL cannot read it: {last}")


def _metres_per_pixel(src, bounds84: tuple[float, float, float, float]) -> float:
    size = min(abs(src.transform.a), abs(src.transform.e))
    crs = pyproj.CRS.from_wkt(src.crs.to_wkt())
    if crs.is_geographic:
        return size * 111_320.0 * math.cos(math.radians((bounds84[1] + bounds84[3]) / 2))
    unit = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    return size * unit


class RasterImporter(Importer[RasterOptions]):
    kind = "raster"

    def run(self) -> ImportReport:
        """As every importer's, with a scratch folder (VRTs, the DEM's ellipsoidal heights) removed at the end."""
        self._scratch = Path(tempfile.mkdtemp(prefix="cim-raster-"))
        try:
            return super().run()
        finally:
            shutil.rmtree(self._scratch, ignore_errors=True)

    # --- read ---------------------------------------------------------------------------------

    def _input(self) -> Path:
        """The file GDAL opens: the source, a VRT of a folder's tiles, or a VRT giving it a CRS."""
        source = self.source
        if not source.exists():
            raise InputError(str(source), "does not exist")
        path = source
        if source.is_dir():
            tiles = sorted(p for p in source.rglob("*") if p.suffix.lower() in RASTER_SUFFIXES and p.is_file())
            if not tiles:
                raise InputError(str(source), f"holds no raster ({', '.join(RASTER_SUFFIXES)})")
            listing = self._scratch / "tiles.txt"
            listing.write_text("\n".join(str(t) for t in tiles))
            path = self._scratch / "mosaic.vrt"
            _gdal(["gdalbuildvrt", "-q", "-input_file_list", str(listing), str(path)], source)
        if self.options.src_crs:
            crs = resolve_crs(self.options.src_crs, source=f"{source}: --src-crs")
            with_crs = self._scratch / "with_crs.vrt"
            wkt = self._scratch / "crs.wkt"
            wkt.write_text(crs.to_wkt())
            _gdal(["gdal_translate", "-q", "-of", "VRT", "-a_srs", str(wkt), str(path), str(with_crs)], source)
            path = with_crs
        return path

    def read(self) -> None:
        import rasterio
        from rasterio.errors import RasterioError
        from rasterio.warp import transform_bounds

        opts, where = self.options, str(self.source)
        if opts.kind not in KINDS:
            raise InputError("--kind", f"{opts.kind!r} is not a raster kind", hint="dom or dem")
        self.path = self._input()
        try:
            src = rasterio.open(self.path)
        except RasterioError as exc:
            raise InputError(where, f"is not a raster GDAL can read ({str(exc).splitlines()[0][:160]})") from exc
        with src:
            if src.crs is None:
                raise CrsError(where, "has no coordinate reference system", hint="give it with --src-crs, e.g. 4547")
            if opts.kind == "dem" and src.count != 1:
                raise InputError(where, f"has {src.count} bands: a DEM has one (heights)")
            if opts.kind == "dom" and (src.count not in (1, 3, 4) or src.dtypes[0] != "uint8"):
                raise InputError(
                    where,
                    f"has {src.count} band(s) of {src.dtypes[0]}: an orthophoto is 8-bit grey, RGB or RGBA",
                    hint="stretch it to 8 bits first (gdal_translate -ot Byte -scale)",
                )
            try:
                bounds = transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21)
            except Exception as exc:
                raise CrsError(where, f"its extent cannot be put in WGS 84 ({exc})", hint="check --src-crs") from exc
            if not all(map(math.isfinite, bounds)) or not (-180 <= bounds[0] <= bounds[2] <= 180):
                raise CrsError(where, f"its extent {src.bounds} does not fit its CRS", hint="check --src-crs")
            self.bbox: tuple[float, float, float, float] = tuple(bounds)
            self.crs_wkt = src.crs.to_wkt()
            self.crs_name = pyproj.CRS.from_wkt(self.crs_wkt).name
            self.width, self.height, self.bands, self.dtype = src.width, src.height, src.count, src.dtypes[0]
            self.nodata = opts.nodata if opts.nodata is not None else src.nodata
            self.resolution = _metres_per_pixel(src, self.bbox)
        self._check_overlap()
        self.report.crs = self.crs_name

    def _check_overlap(self) -> None:
        """A raster that misses the district (the grid layer's extent) is a mistake: wrong CRS or wrong file."""
        if not self.options.district_check:
            return
        with connect(self.settings, autocommit=True) as conn:
            grids = find_layer(conn, self.settings.grid_layer)
        if grids is None:
            return
        w, s, e, n = self.bbox
        gw, gs, ge, gn = grids.bbox
        if e < gw or w > ge or n < gs or s > gn:
            raise InputError(
                str(self.source),
                f"lies at {w:.4f}..{e:.4f} E, {s:.4f}..{n:.4f} N, outside the district "
                f"({gw:.4f}..{ge:.4f} E, {gs:.4f}..{gn:.4f} N)",
                hint="check its CRS (--src-crs) or the file",
            )

    # --- write --------------------------------------------------------------------------------

    def write(self, version: TilesetVersion | None) -> LoadResult:
        t0 = time.perf_counter()
        opts = self.options
        self.epoch = opts.epoch or dt.date.today()
        self.stats: dict = {}
        folder = self.settings.rasters_dir / self.name
        folder.mkdir(parents=True, exist_ok=True)
        with _locked(folder):
            # unique: a failure removes its own file, never one of the same second and process
            file = f"{self.epoch.isoformat()}-{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}.tif"
            staging = folder / f".{file}.part"
            written = False
            try:
                with _unreadable(self.source):
                    source = self._dem_to_ellipsoidal() if opts.kind == "dem" else self.path
                    self.progress("cog", 0, 0)
                    self._cog(source, staging)
                os.replace(staging, folder / file)
                written = True
                previous = self._record(file)
            except BaseException:
                staging.unlink(missing_ok=True)
                if written:
                    (folder / file).unlink(missing_ok=True)
                raise
            if previous and previous != file:
                (folder / previous).unlink(missing_ok=True)
            self._remove_strays(folder)
        self.cog_bytes = (folder / file).stat().st_size
        self.file = folder / file
        self.seconds = time.perf_counter() - t0
        info = LayerInfo(
            name=self.name,
            title=self._title(),
            table_schema="rasters",
            table_name="catalogue",
            geometry_type="Raster",
            srid=4326,
            feature_count=self.width * self.height,
            bbox=self.bbox,
        )
        return LoadResult(layer=info, seconds=self.seconds)

    def _title(self) -> str:
        return self.options.title or KINDS[self.options.kind]  # the epoch is beside it, not in it

    def _dem_to_ellipsoidal(self) -> Path:
        """The DEM checked window by window (absurd heights, all nodata) and, from
        orthometric heights, made ellipsoidal (+ the geoid's N): a tiled GeoTIFF in the scratch folder."""
        import rasterio
        from rasterio.windows import Window

        opts, where = self.options, str(self.source)
        out = self._scratch / "ellipsoidal.tif"
        lo, hi = DEM_RANGE
        low, high, valid, n_min, n_max = math.inf, -math.inf, 0, math.inf, -math.inf
        with rasterio.open(self.path) as src:
            profile = {
                "driver": "GTiff", "width": src.width, "height": src.height, "count": 1, "dtype": "float32",
                "crs": src.crs, "transform": src.transform, "nodata": self.nodata, "tiled": True,
                "blockxsize": 512, "blockysize": 512, "BIGTIFF": "IF_SAFER",
            }  # fmt: skip
            to84 = pyproj.Transformer.from_crs(pyproj.CRS.from_wkt(self.crs_wkt), 4326, always_xy=True)
            windows = [
                Window(c, r, min(BLOCK, src.width - c), min(BLOCK, src.height - r))
                for r in range(0, src.height, BLOCK)
                for c in range(0, src.width, BLOCK)
            ]
            with rasterio.open(out, "w", **profile) as dst:
                for k, window in enumerate(windows):
                    self.progress("heights", k, len(windows))
                    data = src.read(1, window=window, out_dtype="float64")
                    mask = np.isfinite(data)
                    if self.nodata is not None:
                        mask &= data != self.nodata
                    if mask.any():
                        values = data[mask]
                        bad = (values < lo) | (values > hi)
                        if bad.any():
                            r, c = (int(v) for v in np.argwhere(mask)[np.flatnonzero(bad)[0]])
                            value = values[bad][0]
                            raise InputError(
                                where,
                                f"height {value:.6g} m at pixel (row {window.row_off + r}, column "
                                f"{window.col_off + c}) is not a height on Earth",
                                hint="set the value that means 'no data' with --nodata",
                            )
                        low, high, valid = min(low, values.min()), max(high, values.max()), valid + int(mask.sum())
                        if opts.vertical_datum == VerticalDatum.egm96:
                            n = self._geoid(src.window_transform(window), window, to84)
                            data = np.where(mask, data + n, data)
                            n_min, n_max = min(n_min, float(n.min())), max(n_max, float(n.max()))
                    fill = self.nodata if self.nodata is not None else np.nan
                    dst.write(np.where(mask, data, fill).astype("float32"), 1, window=window)
        if valid == 0:
            raise InputError(where, "every cell is 'no data': the DEM holds no height", hint="check --nodata")
        self.stats = {"min": low, "max": high, "valid_cells": valid}
        if opts.vertical_datum == VerticalDatum.egm96:
            self.stats["geoid_n"] = [n_min, n_max]
        return out

    @staticmethod
    def _geoid(transform, window, to84: pyproj.Transformer) -> np.ndarray:
        """N over a window: computed on a coarse grid (the geoid changes over tens of km) and interpolated."""
        rows, cols = int(window.height), int(window.width)
        step = 64
        rr = np.unique(np.r_[np.arange(0, rows, step), rows - 1])
        cc = np.unique(np.r_[np.arange(0, cols, step), cols - 1])
        gc, gr = np.meshgrid(cc + 0.5, rr + 0.5)
        x, y = transform * (gc, gr)
        lon, lat = to84.transform(x, y)
        n = undulation(np.ravel(lon), np.ravel(lat)).reshape(len(rr), len(cc))
        # bilinear from the coarse grid to every pixel
        ci = np.interp(np.arange(cols), cc, np.arange(len(cc)))
        ri = np.interp(np.arange(rows), rr, np.arange(len(rr)))
        c0 = np.clip(np.floor(ci).astype(int), 0, len(cc) - 1)
        r0 = np.clip(np.floor(ri).astype(int), 0, len(rr) - 1)
        c1, r1 = np.minimum(c0 + 1, len(cc) - 1), np.minimum(r0 + 1, len(rr) - 1)
        fc, fr = (ci - c0)[None, :], (ri - r0)[:, None]
        top = n[r0][:, c0] * (1 - fc) + n[r0][:, c1] * fc
        bottom = n[r1][:, c0] * (1 - fc) + n[r1][:, c1] * fc
        return top * (1 - fr) + bottom * fr

    def _cog(self, source: Path, target: Path) -> None:
        """GDAL's COG driver (through rasterio): 512-px tiles, overviews, all cores."""
        import rasterio
        import rasterio.shutil

        options: dict[str, str | float] = {
            "BLOCKSIZE": "512",
            "OVERVIEWS": "AUTO",
            "NUM_THREADS": "ALL_CPUS",
            "BIGTIFF": "IF_SAFER",
        }
        if self.options.kind == "dem":
            options |= {"COMPRESS": "DEFLATE", "PREDICTOR": "YES", "RESAMPLING": "BILINEAR", "LEVEL": "6"}
        elif self.bands == 4:
            options |= {"COMPRESS": "DEFLATE", "RESAMPLING": "AVERAGE"}
        else:
            options |= {"COMPRESS": "JPEG", "QUALITY": "90", "RESAMPLING": "AVERAGE"}
        if self.nodata is not None:
            options["NODATA"] = self.nodata
        if options["COMPRESS"] == "JPEG" and shutil.which("gdal_translate"):
            # the same driver through Debian's GDAL: rasterio's wheel bundles IJG libjpeg 9, Debian's GDAL
            # libjpeg-turbo (SIMD); on the 1.4 GB full-sample DOM rasterio took 16.4 s against 10.9 s
            # (bench/RESULTS.md). DEFLATE is faster through rasterio: DEMs and RGBA stay there.
            nodata = ["-a_nodata", str(options.pop("NODATA"))] if "NODATA" in options else []
            creation = [arg for key, value in options.items() for arg in ("-co", f"{key}={value}")]
            threads = ["--config", "GDAL_NUM_THREADS", "ALL_CPUS"]
            _gdal(
                ["gdal_translate", "-q", "-of", "COG", *threads, *nodata, *creation, str(source), str(target)],
                self.source,
            )
            return
        with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"):
            rasterio.shutil.copy(str(source), str(target), driver="COG", **options)

    def _record(self, file: str) -> str | None:
        info = RasterInfo(
            name=self.name,
            epoch=self.epoch,
            kind=self.options.kind,
            title=self._title(),
            file=file,
            crs=self.crs_wkt,
            bbox=self.bbox,
            resolution_m=self.resolution,
            width=self.width,
            height=self.height,
            bands=self.bands,
            dtype=self.dtype,
            nodata=self.nodata,
            vertical_datum=self.options.vertical_datum.value if self.options.kind == "dem" else None,
            stats=self.stats,
            source=str(self.source.resolve()),
            imported_by=self.options.actor,
        )
        with database_errors(self.source, self.name), connect(self.settings) as conn:
            ensure_rasters_schema(conn)
            kinds = kinds_of(conn, self.name) - {self.options.kind}
            if kinds:
                raise InputError(
                    "--name", f"{self.name!r} holds a {kinds.pop()}: its epochs are all one kind", hint="choose a name"
                )
            previous = record_raster(conn, info)
            conn.commit()
        return previous

    def _remove_strays(self, folder: Path) -> None:
        """Files no row names (an import killed before its commit), under the name's lock."""
        with connect(self.settings) as conn:
            named = {r[0] for r in conn.execute("SELECT file FROM rasters.catalogue WHERE name = %s", (self.name,))}
        for path in folder.glob("*.tif"):
            if path.name not in named:
                path.unlink(missing_ok=True)
        for path in folder.glob(".*.part"):
            path.unlink(missing_ok=True)

    def summary(self, result: LoadResult, tileset: Path | None) -> ImportReport:
        opts = self.options
        self.report.note(
            f"{KINDS[opts.kind]}, epoch {self.epoch.isoformat()}: {self.width:,} x {self.height:,} px, "
            f"{self.bands} band(s) of {self.dtype}, {self.resolution:.3g} m a pixel"
        )
        if opts.kind == "dem":
            self.report.note(
                f"heights {self.stats['min']:.1f} .. {self.stats['max']:.1f} m ({opts.vertical_datum.value})"
                + (
                    f", made ellipsoidal with the EGM96 geoid (N {self.stats['geoid_n'][0]:.2f} .. "
                    f"{self.stats['geoid_n'][1]:.2f} m)"
                    if opts.vertical_datum == VerticalDatum.egm96
                    else ", stored as they are (ellipsoidal)"
                )
            )
        self.report.note(f"Cloud-Optimized GeoTIFF: {self.cog_bytes / 1e6:,.1f} MB, written in {self.seconds:.2f} s")
        return self.report.build(result, output=str(self.file), feature_count=self.width * self.height)


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One import of a name at a time."""
    with open(folder / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextmanager
def _unreadable(source: Path) -> Iterator[None]:
    """GDAL failing half-way through a file (truncated, corrupt): one line naming it."""
    from rasterio.errors import RasterioError

    try:
        yield
    except RasterioError as exc:
        cause = exc.__cause__ or exc.__context__ or exc
        detail = str(cause).splitlines()[0][:160]
        raise InputError(str(source), f"cannot be read whole: it is truncated or corrupt ({detail})") from exc
