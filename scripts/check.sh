#!/usr/bin/env bash
# The static checks CI runs before the tests (scripts/test.sh calls this):
#   ruff (lint and format), mypy on the core packages, import-linter's layering contracts.
# Configured in pyproject.toml ([tool.ruff], [tool.mypy], [tool.importlinter]).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
echo "check: ruff lint";         "$bin/ruff" check --quiet .
echo "check: ruff format";       "$bin/ruff" format --check --quiet .
echo "check: mypy";              "$bin/mypy"
echo "check: import layering"
out=$("$bin/lint-imports" --no-cache 2>&1) || { echo "$out"; exit 1; }
echo "$out" | tail -n 1
