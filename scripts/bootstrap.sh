#!/usr/bin/env bash
# Creates .venv and installs wsjet (with its compiled extension) and the test tools.
# Sourced by scripts/test.sh and scripts/serve.sh; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# Build the C extension or fail loudly: CI must test the compiled path.
WSJET_BUILD_EXTENSION=${WSJET_BUILD_EXTENSION:-required} \
  .venv/bin/pip install --quiet --disable-pip-version-check -e '.[test]' 2>&1 \
  | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import wsjet; assert wsjet.speedups_enabled(), 'compiled extension missing'"
