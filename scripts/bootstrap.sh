#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian 12 machine, and nothing twice:
#   Debian packages (PostgreSQL 15 + PostGIS 3, Python venv support),
#   a virtualenv in .venv with the project and its test tools.
# Safe to run again: it only installs what is missing or changed.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

packages=(postgresql-15 postgresql-15-postgis-3 postgresql-contrib python3 python3-venv python3-pip ca-certificates
          chromium fonts-noto-cjk  # headless Chromium drives the browser tests; CJK fonts draw the viewer's Chinese
          openscenegraph libopenscenegraph-dev g++  # OpenSceneGraph reads OSGB (oblique photography); g++ builds its reader
          mosquitto  # the MQTT broker of live readings
          ffmpeg  # makes the HLS camera stream the viewer test plays
          gdal-bin  # ogrinfo/ogr2ogr: the tests add the server as an OGC API - Features service (OAPIF)
          fonts-wqy-zenhei  # the Chinese font embedded in the land reports (PDF): TrueType, which reportlab reads
          poppler-utils  # pdftotext/pdfinfo: the tests read the land reports back
          proj-data)  # the EGM96 geoid grid (egm96_15.gtx): orthometric heights to ellipsoidal ones
# Node.js and npm run the Khronos glTF validator and bring the viewer's JS (no CDN at run time)
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ -n "$SUDO" ] && ! command -v sudo >/dev/null; then
    echo "bootstrap: these Debian packages are missing: ${missing[*]}; run as root, or install sudo, or install them by hand" >&2
    exit 1
  fi
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$PYTHON" -m venv .venv
fi
# reinstall only when the project's dependencies changed
stamp=.venv/.cim-installed
want="$(cat pyproject.toml package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1) $PWD"  # a moved clone reinstalls
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing the project into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  echo "$want" > "$stamp"
fi

# the OpenSceneGraph reader of `cim import oblique` (built once per version of its source)
.venv/bin/python -c "from import_scripts.oblique.osgb import ensure_reader; ensure_reader()"

# the JavaScript the project uses (package-lock.json pins it)
if [ ! -f node_modules/.cim-installed ] || [ "$(cat node_modules/.cim-installed)" != "$want" ]; then
  echo "bootstrap: installing JavaScript packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > node_modules/.cim-installed
fi
