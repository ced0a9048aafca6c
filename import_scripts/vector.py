"""Reading vector sources and normalising them to valid EPSG:4326 features.

Shared by the importers that take footprints or features (``layer``,
``buildings``): read with pyogrio (Shapefile, GeoPackage, GeoJSON,
FlatGeobuf, CSV with lon/lat or WKT columns, and anything else GDAL reads),
resolve the CRS, transform, undo GCJ-02/BD-09, repair invalid geometries.

Text is stored as UTF-8. A Shapefile's text is decoded as its .cpg or DBF
language driver declares; a CSV or a Shapefile that declares nothing and is
not UTF-8 is decoded as GB18030 (what Chinese Windows and Excel write: a
superset of GBK and GB2312), with a note; ``--encoding`` chooses. Text that
does not decode fails naming the record and field.
"""

from __future__ import annotations

import codecs
import csv
import io
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyogrio
import pyogrio.errors
import pyproj
import shapely

from cim.crs import WGS84, Datum, geometries_to_wgs84, resolve_crs
from cim.errors import CrsError, InputError
from import_scripts.report import NAMED
from layers.load import FeatureTable

#: column names GDAL's CSV driver takes as coordinates or geometry
_CSV_OPTIONS = {
    "X_POSSIBLE_NAMES": "lon,lng,long,longitude,x,经度",
    "Y_POSSIBLE_NAMES": "lat,latitude,y,纬度",
    "GEOM_POSSIBLE_NAMES": "wkt,geometry,geom,the_geom,shape",
    "KEEP_GEOM_COLUMNS": "NO",
    "AUTODETECT_TYPE": "YES",
}
_LONLAT_NAMES = {"lon", "lng", "long", "longitude", "经度"}
_FAMILIES = {
    "Point": "point",
    "MultiPoint": "point",
    "LineString": "line",
    "MultiLineString": "line",
    "LinearRing": "line",
    "Polygon": "polygon",
    "MultiPolygon": "polygon",
}
_LAYER_TYPE = {"line": "MultiLineString", "polygon": "MultiPolygon"}


@dataclass(frozen=True)
class LayerOptions:
    """What every vector import takes (``cim import layer`` and the importers built on it)."""

    title: str | None = None
    layer: str | None = None  # the layer inside a multi-layer file
    src_crs: str | None = None
    datum: Datum = Datum.wgs84
    grid_join: bool = True
    encoding: str | None = None  # the source's text encoding (default: declared, else UTF-8, else GB18030)


@dataclass
class VectorSource:
    """A source as read: attributes and geometries in the source CRS."""

    path: Path
    layer: str
    attributes: pa.Table
    geometry: np.ndarray
    crs: pyproj.CRS
    crs_note: str
    notes: list[str] = field(default_factory=list)  # for the summary: how the text was decoded


@dataclass
class NormaliseReport:
    repaired: int = 0
    skipped_count: int = 0
    skipped: list[str] = field(default_factory=list)  # the first few, as "record 12: no geometry"
    notes: list[str] = field(default_factory=list)


def _choose_layer(path: Path, layer: str | None, name_hint: str | None, *, shown: Path | None = None) -> str:
    """The layer to read (``shown``: the source's name in errors, when GDAL reads a copy)."""
    where = str(shown or path)
    try:
        layers = [str(row[0]) for row in pyogrio.list_layers(path)]
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise InputError(
            where,
            f"not a vector file GDAL can read ({_first_line(exc).replace(str(path), where)})",
            hint="use Shapefile, GeoPackage, GeoJSON, FlatGeobuf or CSV",
        ) from exc
    if not layers:
        raise InputError(where, "holds no layers")
    if layer is not None:
        if layer not in layers:
            raise InputError(where, f"has no layer {layer!r}", hint=f"its layers: {', '.join(layers)}")
        return layer
    if len(layers) == 1:
        return layers[0]
    if name_hint in layers:
        return name_hint
    raise InputError(where, f"holds {len(layers)} layers", hint=f"choose one with --layer: {', '.join(layers)}")


def _first_line(exc: Exception) -> str:
    """GDAL's message, without its advice on driver prefixes."""
    text = str(exc).strip()
    return text.splitlines()[0].split("; It might help")[0].rstrip(".") if text else type(exc).__name__


def read_vector(
    path: Path | str,
    *,
    layer: str | None = None,
    src_crs: str | None = None,
    name_hint: str | None = None,
    encoding: str | None = None,
) -> VectorSource:
    """Read a vector source whole. ``src_crs`` overrides the file's CRS (and
    is required when the file has none); ``encoding`` the encoding of its
    text (by default: as the file declares, else UTF-8, else GB18030)."""
    path = Path(path)
    if not path.exists():
        raise InputError(str(path), "no such file or folder")
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(str(path), "is empty (0 bytes)")
    codec = None
    if encoding:
        try:
            codec = text_codec(encoding)
        except LookupError:
            raise InputError(
                str(path), f"--encoding {encoding!r} is not a text encoding", hint="e.g. gbk, gb18030, big5, utf-8"
            ) from None
    is_csv = path.suffix.lower() in _TEXT_SUFFIXES
    options = _CSV_OPTIONS if is_csv else {}
    with _decoded_text_file(path, codec) if is_csv and path.is_file() else nullcontext() as decoded:
        layer_name = _choose_layer(decoded.path if decoded else path, layer, name_hint, shown=path)
        text = decoded or _plan_binary(path, layer_name, codec)
        try:
            meta, table = pyogrio.read_arrow(text.path, layer=layer_name, encoding=text.gdal_encoding, **options)
        except (
            pyogrio.errors.DataSourceError,
            pyogrio.errors.DataLayerError,
            pyogrio.errors.FieldError,
            pyogrio.errors.GeometryError,
            pyogrio.errors.CRSError,
        ) as exc:
            problem = _first_line(exc).replace(str(text.path), str(path))  # not the name of a UTF-8 copy
            raise InputError(str(path), f"cannot be read ({problem})") from exc
        except UnicodeDecodeError as exc:  # pyogrio decodes field names as UTF-8
            raise InputError(
                str(path), f"has a field name that is not UTF-8 text: {_bytes_at(exc.object, exc)}", hint=text.hint
            ) from exc
        except ValueError as exc:
            if text.gdal_encoding is None:
                raise
            # pyogrio reads only Shapefiles in another encoding than UTF-8
            raise InputError(
                str(path), f"cannot be read with --encoding {encoding} ({exc})", hint="leave --encoding out"
            ) from exc
        header = _csv_header(text.path) if is_csv else []
    _check_text(path, table, text)
    geom_col = next(
        (
            c
            for c in ("wkb_geometry", meta.get("geometry_name") or "", "geometry", "geom")
            if c and c in table.column_names
        ),
        None,
    )
    if geom_col is None:
        hint = "CSV needs lon/lat columns or a WKT column named wkt/geometry" if is_csv else None
        raise InputError(str(path), "has no geometry column", hint=hint)
    if table.num_rows == 0:
        raise InputError(str(path), f"layer {layer_name!r} has no features")
    try:
        geometry = shapely.from_wkb(table.column(geom_col).to_numpy(zero_copy_only=False), on_invalid="raise")
    except shapely.errors.GEOSException as exc:
        raise InputError(str(path), f"holds a geometry that cannot be decoded ({exc})") from exc
    attributes = table.drop_columns([geom_col])

    if src_crs:
        crs = resolve_crs(src_crs, source=f"{path}: --src-crs")
        crs_note = f"{crs.name} (--src-crs)"
    elif meta.get("crs"):
        crs = resolve_crs(meta["crs"], source=str(path))
        crs_note = crs.name
    elif is_csv and _LONLAT_NAMES & {c.lower() for c in header}:
        crs = WGS84
        crs_note = "EPSG:4326, assumed from the lon/lat column names"
    else:
        raise CrsError(
            str(path),
            "has no coordinate reference system and none was given",
            hint="pass --src-crs, e.g. --src-crs 4547 or --src-crs file.prj",
        )
    return VectorSource(
        path=path,
        layer=layer_name,
        attributes=attributes,
        geometry=geometry,
        crs=crs,
        crs_note=crs_note,
        notes=[text.note] if text.note else [],
    )


def _csv_header(path: Path) -> list[str]:
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        first = fh.readline()
    sep = "\t" if first.count("\t") > first.count(",") else ","
    return [c.strip().strip('"') for c in first.split(sep)]


# --- text encodings ---------------------------------------------------------------

_TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
#: formats whose text is UTF-8 by definition: --encoding does not apply
_UTF8_FORMATS = {".gpkg": "GeoPackage", ".fgb": "FlatGeobuf", ".geojson": "GeoJSON", ".json": "GeoJSON"}
#: what text that is not UTF-8 and names no encoding is decoded as: GB18030,
#: a superset of GBK (Chinese Windows' code page 936, Excel's "CSV") and GB2312
GUESSED = "gb18030"
GUESSED_NOTE = "text decoded as GB18030: the file is not UTF-8 and names no encoding; pass --encoding to choose"
_CHOOSE = "pass --encoding to choose, e.g. --encoding gbk"
_ONE_ENCODING = "save the file in one encoding, e.g. UTF-8"


class UndecodableText(ValueError):
    """A value (or, in record 0, a field name) that does not decode."""

    def __init__(self, record: int, field: bytes, problem: str, *, mixed: bool = False) -> None:
        self.record = record
        self.field = field
        self.problem = problem
        self.mixed = mixed  # the file mixes encodings: no --encoding reads it
        super().__init__(f"{_cell(record, field)} {problem}")

    def error(self, path: Path, hint: str) -> InputError:
        """As the one-line error naming the file, the record and the field."""
        if self.record == 0:
            return InputError(str(path), f"field name {_shown(self.field)!r} {self.problem}", hint=hint)
        return InputError(
            str(path), f"field {_shown(self.field)!r} {self.problem}", record=f"record {self.record}", hint=hint
        )


#: (record, field name, value) as raw bytes; record 0 holds the field names
Cell = tuple[int, bytes, bytes]


def text_codec(name: str) -> str:
    """Python's name of the text encoding ``name`` (LookupError when it is none)."""
    info = codecs.lookup(name)
    if not getattr(info, "_is_text_encoding", True):  # base64, rot13, ...
        raise LookupError(name)
    return info.name


def detect_encoding(cells: Iterable[Cell], *, cut_ok: bool = False) -> str | None:
    """The encoding of text that names none: None when it is UTF-8 (ASCII
    included: nothing to decode), :data:`GUESSED` when it is not UTF-8 but
    GB18030 decodes every value. Raises :class:`UndecodableText` naming the
    first value that decodes in neither, or a UTF-8 one among GB18030 ones (a
    file that mixes encodings: value by value, each looks right in one).
    ``cut_ok``: a multi-byte character cut at a value's end is no error (DBF
    writers cut text at the field's width)."""
    not_utf8: Cell | None = None  # the first value that is not UTF-8
    only_utf8: Cell | None = None  # the first that is UTF-8 and not GB18030
    like_utf8: Cell | None = None  # the first that is both, and reads as Chinese in UTF-8
    count = likes = 0
    for cell in cells:
        record, name, raw = cell
        if raw.isascii():
            continue
        count += 1
        utf8 = _fails(raw, "utf-8", cut_ok) is None
        gb = _fails(raw, GUESSED, cut_ok)
        if not utf8 and gb is not None:
            raise UndecodableText(record, name, f"is neither UTF-8 nor GB18030 text: {_bytes_at(raw, gb)}")
        if not utf8:
            not_utf8 = not_utf8 or cell
        elif gb is not None:
            only_utf8 = only_utf8 or cell
        elif _looks_utf8(raw):
            likes += 1
            like_utf8 = like_utf8 or cell
        if not_utf8 and only_utf8:
            raise _mixed(only_utf8, not_utf8)
    if not_utf8 is None:
        return None
    # UTF-8 Chinese of an even number of bytes decodes as GB18030 too, into
    # nonsense: a value of two or more ideographs in valid UTF-8 is taken as
    # UTF-8 (GBK text is that by chance in about 1 of 100,000 values)
    if like_utf8 and likes * 1000 >= count:
        raise _mixed(like_utf8, not_utf8)
    return GUESSED


def _mixed(utf8: Cell, other: Cell) -> UndecodableText:
    problem = f"is UTF-8 text, but {_cell(other[0], other[1])} is not: the file mixes encodings"
    return UndecodableText(utf8[0], utf8[1], problem, mixed=True)


def check_encoding(cells: Iterable[Cell], codec: str, *, cut_ok: bool = False) -> None:
    """Raise :class:`UndecodableText` at the first value ``codec`` cannot decode."""
    for record, name, raw in cells:
        if not raw.isascii() and (exc := _fails(raw, codec, cut_ok)) is not None:
            raise UndecodableText(record, name, f"is not {_label(codec)} text: {_bytes_at(raw, exc)}")


def _fails(raw: bytes, codec: str, cut_ok: bool) -> UnicodeDecodeError | None:
    try:
        raw.decode(codec)
    except UnicodeDecodeError as exc:
        cut = exc.end == len(raw) and exc.reason in ("unexpected end of data", "incomplete multibyte sequence")
        return _fails(raw[: exc.start], codec, False) if cut_ok and cut else exc
    return None


def _looks_utf8(raw: bytes) -> bool:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return sum("\u4e00" <= ch <= "\u9fff" for ch in text) >= 2


def _cell(record: int, field: bytes) -> str:
    return f"field name {_shown(field)!r}" if record == 0 else f"record {record}, field {_shown(field)!r}"


def _shown(raw: bytes) -> str:
    for codec in ("utf-8", GUESSED):
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            pass
    return raw.decode("utf-8", errors="replace")


def _bytes_at(raw: bytes, exc: UnicodeDecodeError) -> str:
    return "bytes " + raw[exc.start : exc.start + 4].hex(" ")


def _label(codec: str) -> str:
    return codec.upper()


def _ascii_compatible(codec: str) -> bool:
    """Whether ASCII (CSV's separators, quotes and newlines) is itself in ``codec``."""
    probe = ',;\t|"\r\nAz09'
    try:
        return probe.encode(codec) == probe.encode("ascii")
    except UnicodeError:
        return False


@dataclass(frozen=True)
class _Text:
    """How GDAL is to read a source's text."""

    path: Path  # what GDAL reads: the source, or a UTF-8 copy of a text file
    gdal_encoding: str | None = None  # for pyogrio's encoding=: GDAL decodes a Shapefile's text with it
    recoded: bool = False  # decoded from another encoding than UTF-8: U+FFFD means a wrong one
    note: str | None = None  # for the summary
    hint: str = _CHOOSE  # what to do when text does not decode


@contextmanager
def _decoded_text_file(path: Path, codec: str | None) -> Iterator[_Text]:
    """The CSV for GDAL to read, and how its text was read: one not in UTF-8
    is decoded here (GDAL reads CSV as UTF-8) into a UTF-8 copy."""
    text, utf8 = _decode_text_file(path, codec)
    if utf8 is None:
        yield text
        return
    with tempfile.TemporaryDirectory(prefix="cim-text-") as tmp:
        copy = Path(tmp) / path.name
        copy.write_bytes(utf8)
        for ext in (".csvt", ".prj"):  # GDAL's CSV sidecars: column types, CRS
            if (side := _sidecar(path.with_suffix(""), ext)) is not None:
                shutil.copyfile(side, copy.with_suffix(ext))
        yield replace(text, path=copy)


def _decode_text_file(path: Path, codec: str | None) -> tuple[_Text, bytes | None]:
    """How a CSV's text decodes, and its UTF-8 text when it is not UTF-8 already."""
    raw = path.read_bytes()
    if codec is not None:
        hint = f"the file is not {_label(codec)}: pass the right --encoding"
        note = f"text decoded as {_label(codec)} (--encoding)"
        if _ascii_compatible(codec):
            try:
                check_encoding(_csv_cells(raw), codec)
            except UndecodableText as exc:
                raise exc.error(path, hint) from None
        if codec == "utf-8":
            return _Text(path, hint=hint), None
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # declared by its byte-order mark
        codec, hint, note = "utf-16", _CHOOSE, "text decoded as UTF-16, as its byte-order mark says"
    else:
        try:
            raw.decode("utf-8")
            return _Text(path), None
        except UnicodeDecodeError:
            pass
        try:
            codec = detect_encoding(_csv_cells(raw)) or "utf-8"
        except UndecodableText as exc:
            raise exc.error(path, _ONE_ENCODING if exc.mixed else _CHOOSE) from None
        hint, note = _CHOOSE, GUESSED_NOTE
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError as exc:  # an encoding whose records cannot be told apart (UTF-16)
        raise InputError(
            str(path), f"is not {_label(codec)} text: {_bytes_at(raw, exc)} at byte {exc.start}", hint=hint
        ) from None
    return _Text(path, recoded=True, note=note, hint=hint), text.encode("utf-8")


def _csv_cells(raw: bytes) -> Iterator[Cell]:
    """A CSV's values as bytes, by record (parsed byte for byte as Latin-1:
    separators, quotes and newlines are the same bytes in UTF-8 and GB18030,
    and neither uses them inside a character)."""
    text = raw.decode("latin-1")
    first = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=max(",;\t|", key=first.count))
    limit = csv.field_size_limit(2**31 - 1)  # a WKT polygon may be over csv's 128 KiB
    try:
        names = [name.encode("latin-1") for name in next(reader, [])]
        for name in names:
            yield 0, name, name
        for record, row in enumerate((row for row in reader if row), start=1):
            for i, value in enumerate(row):
                if not value.isascii():
                    yield record, names[i] if i < len(names) else f"column {i + 1}".encode(), value.encode("latin-1")
    finally:
        csv.field_size_limit(limit)


def _plan_binary(path: Path, layer_name: str, codec: str | None) -> _Text:
    """How to read a Shapefile (a DBF's text is checked here, before GDAL
    reads it), or another format (its text is checked once read)."""
    gdal_encoding = _label(codec).replace("_", "-") if codec else None
    given = f"text decoded as {_label(codec)} (--encoding)" if codec and codec != "utf-8" else None
    dbf_path = _dbf_path(path, layer_name)
    dbf = _Dbf.read(dbf_path) if dbf_path else None
    if dbf is None:  # not a Shapefile, or one inside a .zip
        fmt = _UTF8_FORMATS.get(path.suffix.lower())
        if fmt and codec:
            raise InputError(str(path), f"is {fmt}, whose text is UTF-8: --encoding applies to Shapefiles and CSV")
        hint = f"{fmt} text is UTF-8: save the file again as UTF-8" if fmt else _CHOOSE
        return _Text(path, gdal_encoding, recoded=bool(given), note=given, hint=hint)
    if codec:
        hint = f"the file is not {_label(codec)}: pass the right --encoding"
        try:
            check_encoding(dbf.cells(), codec, cut_ok=True)
        except UndecodableText as exc:
            raise exc.error(path, hint) from None
        return _Text(path, gdal_encoding, recoded=bool(given), note=given, hint=hint)
    cpg = _sidecar(dbf_path.with_suffix(""), ".cpg") if dbf_path else None
    declared = cpg.read_text(encoding="latin-1").strip() if cpg else ""
    if declared or dbf.ldid:  # GDAL decodes as the file declares; a .cpg is checked here
        hint = f"its .cpg names {declared}" if declared else f"its DBF names language driver {dbf.ldid}"
        hint = f"{hint}: {_CHOOSE}"
        cpg_codec = _cpg_codec(declared) if declared else None
        if cpg_codec:
            try:
                check_encoding(dbf.cells(), cpg_codec, cut_ok=True)
            except UndecodableText as exc:
                raise exc.error(path, hint) from None
        return _Text(path, recoded=cpg_codec != "utf-8", hint=hint)
    try:
        found = None if dbf.is_utf8() else detect_encoding(dbf.cells(), cut_ok=True)
    except UndecodableText as exc:
        raise exc.error(path, _ONE_ENCODING if exc.mixed else _CHOOSE) from None
    if found is None:
        return _Text(path)
    return _Text(path, _label(found), recoded=True, note=GUESSED_NOTE)


def _sidecar(base: Path, ext: str) -> Path | None:
    """``base`` + ``ext`` (in lower or upper case) when it exists."""
    for suffix in (ext, ext.upper()):
        if (candidate := base.parent / (base.name + suffix)).is_file():
            return candidate
    return None


def _dbf_path(path: Path, layer_name: str) -> Path | None:
    if path.is_dir():  # a folder of Shapefiles: one per layer
        return _sidecar(path / layer_name, ".dbf")
    if path.suffix.lower() in (".shp", ".dbf", ".shx"):
        return _sidecar(path.with_suffix(""), ".dbf")
    return None


def _cpg_codec(declared: str) -> str | None:
    """The Python codec of a .cpg's code page, read as GDAL reads it
    ("UTF-8", "GBK", "936", "ANSI 1252", "88591"), or None."""
    name = declared.strip().upper()
    if name.startswith("8859"):
        name = "ISO8859-" + name[4:].lstrip("-")
    elif name.startswith("ANSI"):
        name = "CP" + name[4:].strip()
    elif name.isdigit():
        name = "UTF-8" if name == "65001" else "CP" + name
    try:
        return text_codec(name)
    except LookupError:
        return None


@dataclass(frozen=True)
class _Dbf:
    """A DBF's text, as bytes: the field names and the character fields of
    the records GDAL reads (all but the deleted)."""

    ldid: int  # language driver id: 0 when none is declared
    names: list[bytes]
    fields: list[tuple[bytes, int, int]]  # character fields: name, offset in the record, width
    records: np.ndarray  # (records, record length) bytes

    @classmethod
    def read(cls, path: Path) -> _Dbf | None:
        """None when it is not a DBF this reads (GDAL then says what is wrong)."""
        data = path.read_bytes()
        if len(data) < 32:
            return None
        count = int.from_bytes(data[4:8], "little")
        header = int.from_bytes(data[8:10], "little")
        length = int.from_bytes(data[10:12], "little")
        if length < 1 or header < 33 or header > len(data):
            return None
        names: list[bytes] = []
        fields = []
        offset = 1  # after the deletion flag
        for pos in range(32, header - 31, 32):
            if data[pos] == 0x0D:
                break
            name, kind = data[pos : pos + 11].split(b"\0", 1)[0], data[pos + 11]
            width = data[pos + 16] + (data[pos + 17] << 8 if kind == ord("C") else 0)
            names.append(name)
            if kind == ord("C"):
                fields.append((name, offset, width))
            offset += width
        if offset > length:
            return None
        count = min(count, (len(data) - header) // length)
        records = np.frombuffer(data, dtype=np.uint8, count=count * length, offset=header).reshape(count, length)
        deleted = records[:, 0] == ord("*")
        return cls(data[29], names, fields, records[~deleted] if deleted.any() else records)

    def is_utf8(self) -> bool:
        """Whether all its text is UTF-8 (ASCII included), found at once."""
        try:
            b"".join(self.names).decode("utf-8")
            if (self.records >= 0x80).any():
                self.records.tobytes().decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True

    def cells(self) -> Iterator[Cell]:
        """Field names (record 0), then the values that are not ASCII, by record."""
        for name in self.names:
            yield 0, name, name
        high = np.zeros(len(self.records), dtype=bool)
        for _, offset, width in self.fields:
            high |= (self.records[:, offset : offset + width] >= 0x80).any(axis=1)
        for row in np.flatnonzero(high):
            record = self.records[row]
            for name, offset, width in self.fields:
                value = record[offset : offset + width].tobytes().rstrip(b" \0")
                if not value.isascii():
                    yield int(row) + 1, name, value


def _check_text(path: Path, table: pa.Table, text: _Text) -> None:
    """The text as read is UTF-8 (GDAL passes on the bytes of text it was not
    told how to decode) and, when it was decoded from another encoding, has no
    U+FFFD (what a wrong encoding makes of bytes it does not have)."""
    for name in table.column_names:
        if "\ufffd" in name:
            raise InputError(str(path), f"field name {name!r} is not UTF-8 text", hint=text.hint)
    for name in table.column_names:
        column = table.column(name)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        try:
            column.validate(full=True)
        except pa.ArrowInvalid:
            row, problem = _first_invalid(column)
            raise InputError(
                str(path), f"field {name!r} is not UTF-8 text: {problem}", record=f"record {row + 1}", hint=text.hint
            ) from None
        if text.recoded:
            replaced = pc.match_substring(column, "\ufffd")
            if pc.any(replaced).as_py():
                row = pc.index(replaced, True).as_py()
                raise InputError(
                    str(path),
                    f"field {name!r} holds text that did not decode (U+FFFD)",
                    record=f"record {row + 1}",
                    hint=text.hint,
                )


def _first_invalid(column: pa.ChunkedArray) -> tuple[int, str]:
    """The row of the first value that is not UTF-8, and its bytes."""
    start = 0
    for chunk in column.chunks:
        binary = chunk.view(pa.large_binary() if pa.types.is_large_string(chunk.type) else pa.binary())
        for i, value in enumerate(binary.to_pylist()):
            if value is None:
                continue
            try:
                value.decode("utf-8")
            except UnicodeDecodeError as exc:
                return start + i, _bytes_at(value, exc)
        start += len(chunk)
    return 0, "unknown bytes"


_TYPE_NAMES = np.array(
    [
        "Point",
        "LineString",
        "LinearRing",
        "Polygon",
        "MultiPoint",
        "MultiLineString",
        "MultiPolygon",
        "GeometryCollection",
    ]
)
_FAMILY_OF_TYPE = np.array([_FAMILIES.get(n, "other") for n in _TYPE_NAMES])


def normalise(source: VectorSource, datum: Datum = Datum.wgs84) -> tuple[FeatureTable, NormaliseReport]:
    """Valid EPSG:4326 features of one geometry type, with a report of what
    was repaired or skipped. Fails, naming the record, where the data cannot
    be right (coordinates that are not lon/lat, mixed geometry kinds)."""
    report = NormaliseReport()
    where = str(source.path)
    if shapely.has_z(source.geometry).any():
        report.notes.append("Z coordinates dropped: layers are 2D (heights belong in attributes)")
    geoms = shapely.force_2d(source.geometry)
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    report.skipped_count = int(missing.sum())
    report.skipped += [f"record {i + 1}: no geometry" for i in np.flatnonzero(missing)[:NAMED]]
    keep = ~missing
    if not keep.any():
        raise InputError(where, "no record has a geometry")

    types = np.clip(shapely.get_type_id(geoms), 0, 7)
    fam_of_row = _FAMILY_OF_TYPE[types]
    present, counts = np.unique(fam_of_row[keep], return_counts=True)
    family = str(present[np.argmax(counts)])  # the layer's kind: what most records are
    if family == "other":
        raise InputError(where, "holds only geometry collections", hint="split them into points, lines or polygons")
    odd = np.flatnonzero(keep & (fam_of_row != family))
    if len(odd):
        i = odd[0]
        raise InputError(
            where,
            f"is a {_TYPE_NAMES[types[i]]} in a layer of {family}s ({len(odd)} such records)",
            record=f"record {i + 1}",
            hint="split the file by geometry type",
        )

    idx = np.flatnonzero(keep)
    geoms = geometries_to_wgs84(geoms[idx], source.crs, datum)
    bounds = shapely.bounds(geoms)
    bad = (
        ~np.isfinite(bounds).all(axis=1)
        | (np.abs(bounds[:, [0, 2]]) > 180).any(axis=1)
        | (np.abs(bounds[:, [1, 3]]) > 90).any(axis=1)
    )
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raw = shapely.bounds(source.geometry[idx[i]])
        raise CrsError(
            where,
            f"coordinates ({raw[0]:.6g}, {raw[1]:.6g}) do not fit {source.crs_note}",
            record=f"record {idx[i] + 1}",
            hint="give the right CRS with --src-crs",
        )

    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        fixed = shapely.make_valid(geoms[invalid])
        geoms[invalid] = _keep_family(fixed, family)
        still_bad = shapely.is_empty(geoms) | shapely.is_missing(geoms)
        report.repaired = int(invalid.sum()) - int(still_bad.sum())
        if still_bad.any():
            report.skipped_count += int(still_bad.sum())
            report.skipped += [
                f"record {idx[j] + 1}: invalid geometry that cannot be repaired"
                for j in np.flatnonzero(still_bad)[:NAMED]
            ]
            geoms, idx = geoms[~still_bad], idx[~still_bad]
            if len(idx) == 0:
                raise InputError(where, "no record has a usable geometry (all are invalid and cannot be repaired)")

    if family == "point" and not (shapely.get_type_id(geoms) == 4).any():
        layer_type = "Point"
    else:
        layer_type = "MultiPoint" if family == "point" else _LAYER_TYPE[family]
        geoms = _to_multi(geoms, family)
    attributes = source.attributes.take(pa.array(idx)) if source.attributes.num_columns else source.attributes
    return FeatureTable(attributes=attributes, geometry=geoms, geometry_type=layer_type), report


def _keep_family(geoms: np.ndarray, family: str) -> np.ndarray:
    """From make_valid's output keep only the parts of the layer's kind
    (a repaired bow-tie polygon may come back with a stray line)."""
    wanted = {"point": (0, 4), "line": (1, 2, 5), "polygon": (3, 6)}[family]
    out = np.empty(len(geoms), dtype=object)
    for k, g in enumerate(geoms):
        if shapely.get_type_id(g) in wanted:
            out[k] = g
            continue
        parts = [p for p in shapely.get_parts(g) if shapely.get_type_id(p) in wanted and not p.is_empty]
        flat = [q for p in parts for q in shapely.get_parts(p)]
        out[k] = shapely.union_all(flat) if flat else shapely.Polygon() if family == "polygon" else None
    return out


def _to_multi(geoms: np.ndarray, family: str) -> np.ndarray:
    """Promote single geometries to their Multi type (vectorised: a (n, 1)
    array of parts makes n one-part Multi geometries)."""
    single_ids = {"point": (0,), "line": (1, 2), "polygon": (3,)}[family]
    makers: dict[str, Callable[[np.ndarray], shapely.Geometry | np.ndarray]] = {
        "point": shapely.multipoints,
        "line": shapely.multilinestrings,
        "polygon": shapely.multipolygons,
    }
    maker = makers[family]
    out = geoms.copy()
    is_single = np.isin(shapely.get_type_id(out), single_ids)
    if is_single.any():
        out[is_single] = maker(out[is_single].reshape(-1, 1))
    return out


def find_field(
    columns: list[str], wanted: str | None, candidates: tuple[str, ...], what: str, source: str
) -> str | None:
    """The field ``wanted`` (it must be there), else the first of ``candidates`` the
    source has (case-insensitive), else None."""
    if wanted is not None:
        if wanted not in columns:
            raise InputError(source, f"has no {what} field {wanted!r}", hint=f"its fields: {', '.join(columns)}")
        return wanted
    lower = {c.lower(): c for c in columns}
    return next((lower[c.lower()] for c in candidates if c.lower() in lower), None)


def numbers(table: pa.Table, column: str) -> np.ndarray:
    """A column as floats: NaN where missing or not a number."""
    return pd.to_numeric(table.column(column).to_pandas(), errors="coerce").to_numpy(dtype=float, na_value=np.nan)


@dataclass
class Features:
    """A source read and normalised: what every vector importer loads."""

    source: Path
    vector: VectorSource
    table: FeatureTable
    checks: NormaliseReport
