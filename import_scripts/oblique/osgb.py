"""Reading OSGB (and OBJ) tiles through OpenSceneGraph.

The reading itself is OpenSceneGraph's (Debian ``libopenscenegraph``: the
osgDB plugins ``osgconv`` uses), in the small program ``osgb_dump.cpp``
beside this module, compiled once per source version into
``<venv>/lib/cim-osgb-dump-<hash>`` (``scripts/bootstrap.sh`` does it; the
first read does it too if it is missing). :class:`OsgbReader` keeps one such
process per importer worker and turns its records into numpy arrays.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cim.errors import CimError

SOURCE = Path(__file__).with_name("osgb_dump.cpp")
_LIBS = ["-losg", "-losgDB", "-lOpenThreads"]


class OsgbToolError(CimError):
    """The OpenSceneGraph reader is missing or cannot be built."""


@dataclass
class LodNode:
    """One PagedLOD node: where it is, how big, and when it hands over to its child files."""

    centre: np.ndarray  # (3,) source coordinates (relative to SRSOrigin)
    radius: float
    pixel_mode: bool  # ranges in pixels on screen (ContextCapture) or in metres from the eye
    ranges: list[tuple[float, float]]
    files: list[str]  # per range: a child file name, or "" for the geometry held in this file

    @property
    def child_files(self) -> list[str]:
        return [f for f in self.files if f]

    def switch_range(self) -> float | None:
        """Where the node's own geometry gives way to its child files: the
        smallest minimum of the ranges that name a file."""
        found = [lo for (lo, _), f in zip(self.ranges, self.files) if f]
        return min(found) if found else None


@dataclass
class Texture:
    name: str
    data: bytes | None  # encoded image as stored in the file (JPEG/PNG), or raw pixels
    mime: str | None  # image/jpeg, image/png; None for raw pixels or unsupported
    width: int = 0  # raw pixels only
    height: int = 0
    pixel_format: int = 0  # GL enum (GL_RGB 6407, GL_RGBA 6408, GL_LUMINANCE 6409, ...)
    unsupported: str | None = None


@dataclass
class Geometry:
    node: int  # index into OsgbFile.nodes, -1 outside any PagedLOD
    positions: np.ndarray  # (n, 3) float64, source coordinates
    indices: np.ndarray  # (m,) uint32 triangles
    uv: np.ndarray | None  # (n, 2) float32, OpenGL convention (t = 0 at the image's bottom row)
    texture: int  # index into OsgbFile.textures, -1 without


@dataclass
class OsgbFile:
    path: str
    nodes: list[LodNode] = field(default_factory=list)
    geometries: list[Geometry] = field(default_factory=list)
    textures: list[Texture] = field(default_factory=list)
    error: str | None = None


def _mime(data: bytes) -> str | None:
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    return None


def parse_record(header: dict, payload: bytes) -> OsgbFile:
    out = OsgbFile(path=header["file"], error=header.get("error"))
    if out.error:
        return out
    for n in header["nodes"]:
        out.nodes.append(
            LodNode(
                np.array(n["centre"], float),
                float(n["radius"]),
                bool(n["pixel_mode"]),
                [tuple(r) for r in n["ranges"]],
                list(n["files"]),
            )
        )
    for t in header["textures"]:
        if "encoded" in t:
            data = payload[t["encoded"] : t["encoded"] + t["size"]]
            out.textures.append(
                Texture(t["name"], data, _mime(data), unsupported=None if _mime(data) else "not a JPEG or PNG")
            )
        elif "raw" in t:
            out.textures.append(
                Texture(
                    t["name"],
                    payload[t["raw"] : t["raw"] + t["size"]],
                    None,
                    t["width"],
                    t["height"],
                    t["pixel_format"],
                )
            )
        else:
            out.textures.append(Texture(t["name"], None, None, unsupported=t["unsupported"]))
    for g in header["geometries"]:
        n, m = g["vertices"], g["indices"]
        positions = np.frombuffer(payload, np.float64, n * 3, g["positions"]).reshape(n, 3)
        indices = np.frombuffer(payload, np.uint32, m, g["triangle_indices"])
        uv = np.frombuffer(payload, np.float32, n * 2, g["uv"]).reshape(n, 2) if "uv" in g else None
        out.geometries.append(Geometry(g["node"], positions, indices, uv, g["texture"]))
    return out


# --- the native reader ---------------------------------------------------------------------


def reader_path() -> Path:
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    return Path(sys.prefix) / "lib" / f"cim-osgb-dump-{digest}"


def ensure_reader() -> Path:
    """The compiled reader, built now if this version of its source has not been."""
    path = reader_path()
    if path.exists():
        return path
    compiler = shutil.which("g++") or shutil.which("c++")
    if not compiler or not Path("/usr/include/osgDB/ReadFile").exists():
        raise OsgbToolError(
            "the OpenSceneGraph reader is not built and cannot be: g++ or the OpenSceneGraph headers are missing",
            hint="run scripts/bootstrap.sh (it installs openscenegraph, libopenscenegraph-dev and g++)",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    result = subprocess.run(
        [compiler, "-O2", "-std=c++17", "-o", str(tmp), str(SOURCE), *_LIBS], capture_output=True, text=True
    )
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise OsgbToolError(
            f"building the OpenSceneGraph reader failed: {result.stderr.strip().splitlines()[-1:]}",
            hint="check that libopenscenegraph-dev is installed (scripts/bootstrap.sh)",
        )
    os.replace(tmp, path)  # two builds at once: the last rename wins, both are the same program
    return path


class OsgbReader:
    """One long-lived reader process; ``read(path)`` returns the file's content.

    A file that crashes OpenSceneGraph (some damaged files do) is reported as
    unreadable and the process is started again for the next file."""

    def __init__(self) -> None:
        self.binary = ensure_reader()
        self.proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(
                [str(self.binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0
            )
        return self.proc

    def read(self, path: str | Path) -> OsgbFile:
        path = str(Path(path).resolve())
        if "\n" in path:
            return OsgbFile(path, error="a file name with a line break cannot be read")
        proc = self._start()
        assert proc.stdin is not None  # started with stdin=PIPE
        try:
            proc.stdin.write(path.encode("utf-8") + b"\n")
            header = json.loads(self._exactly(proc, struct.unpack("<Q", self._exactly(proc, 8))[0]))
            payload = self._exactly(proc, struct.unpack("<Q", self._exactly(proc, 8))[0])
        except (BrokenPipeError, EOFError):
            proc.kill()
            proc.wait()
            return OsgbFile(
                path, error=f"OpenSceneGraph stopped while reading it (exit {proc.returncode}): the file is damaged"
            )
        return parse_record(header, payload)

    @staticmethod
    def _exactly(proc: subprocess.Popen, size: int) -> bytes:
        assert proc.stdout is not None  # started with stdout=PIPE
        chunks, left = [], size
        while left:
            chunk = proc.stdout.read(left)
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdin is not None  # started with stdin=PIPE
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self) -> OsgbReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
