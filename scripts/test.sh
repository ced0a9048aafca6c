#!/usr/bin/env bash
# The tests: install what is missing, run the static checks (scripts/check.sh),
# then the suite against a real PostgreSQL/PostGIS server (a throw-away local
# cluster, or CIM_TEST_DATABASE_URL). Arguments go to pytest, e.g. the fast
# subset: ./scripts/test.sh -m "not slow and not browser"
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/check.sh
exec .venv/bin/python -m pytest "$@"
