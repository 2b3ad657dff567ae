#!/usr/bin/env bash
# Install everything the test suite needs, then run it. Usage: bash tests/run.sh [pytest args...]
# - system packages (as root, with apt): Chromium for the browser tests, WordNet for METEOR,
#   PostgreSQL for the review store's PostgreSQL tests
# - a virtual environment in .venv with requirements.txt and requirements-test.txt
# - the slide viewer's browser library (OpenSeadragon, pinned in ui/viewer/package-lock.json) with npm
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  need=()
  for pkg in chromium wordnet-base wordnet-sense-index postgresql; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  # Debian's own python3 creates virtual environments only with python3-venv installed
  python3 -c "import ensurepip" >/dev/null 2>&1 || need+=("python3-venv")
  command -v npm >/dev/null 2>&1 || need+=("npm")
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
. .venv/bin/activate
pip install -q -r requirements.txt -r requirements-test.txt
npm ci --prefix ui/viewer --no-audit --no-fund --ignore-scripts --loglevel=error
python -m pytest -n 2 "$@"
