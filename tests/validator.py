"""The CesiumGS 3D Tiles validator as a test assertion.

It checks what the Khronos glTF validator cannot: tileset.json, external
tilesets, EXT_mesh_features, EXT_structural_metadata, EXT_instance_features.
It lives beside the project, in ``../shared/tools/validate-3dtiles`` (a node
process per call, about a second and a half; its first run builds it with
npm); a clone without ``../shared`` skips the check and says why.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VALIDATE_3DTILES = REPO.parent / "shared" / "tools" / "validate-3dtiles"


def assert_valid_3dtiles(tileset_json: Path) -> None:
    """Fail with the validator's printed errors when it finds any in ``tileset_json``
    (its external tilesets and tile contents included); warnings are allowed."""
    if not VALIDATE_3DTILES.is_file():
        pytest.skip("../shared/tools/validate-3dtiles is absent: the CesiumGS validator check needs it")
    tileset_json = Path(tileset_json)
    assert tileset_json.is_file(), f"{tileset_json} does not exist"
    out = subprocess.run(
        [str(VALIDATE_3DTILES), str(tileset_json)], capture_output=True, text=True, timeout=900
    )  # the first run builds the validator: a minute or so
    printed = (out.stdout + out.stderr).strip()
    found = re.search(r"^errors (\d+) warnings (\d+)$", out.stdout, re.MULTILINE)
    assert found, f"validate-3dtiles {tileset_json} exited {out.returncode} without a summary:\n{printed}"
    errors = int(found.group(1))
    assert errors == 0 and out.returncode == 0, f"the 3D Tiles validator found errors in {tileset_json}:\n{printed}"
