#!/usr/bin/env bash
# The tests: install what is missing, then run the whole suite against a real
# PostgreSQL/PostGIS server (a throw-away local cluster, or CIM_TEST_DATABASE_URL).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m pytest "$@"
