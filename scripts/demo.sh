#!/usr/bin/env bash
# The main job: install what is missing, start the local PostGIS cluster,
# import the Futian sample, and serve the viewer on http://127.0.0.1:8000/viewer
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/cim demo "$@"
