#!/usr/bin/env bash
# The test command: installs everything, then runs linters, type checks and every
# test on both paths (compiled extension, then pure Python), Autobahn included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/install-system-deps.sh
export PYTHONDEVMODE=1
echo "== ruff" && .venv/bin/ruff check src tests bench && .venv/bin/ruff format --check src tests
echo "== mypy --strict" && .venv/bin/mypy
echo "== pytest (compiled path)"
.venv/bin/pytest -p no:cacheprovider --cov=wsjet --cov-branch --cov-report=term:skip-covered \
  --cov-fail-under=0 "$@"
.venv/bin/coverage report --include='src/wsjet/core/*' --omit='src/wsjet/core/_speedups*' \
  --fail-under=95
echo "== pytest (compiled path, uvloop)"
WSJET_TEST_LOOP=uvloop .venv/bin/pytest -p no:cacheprovider "$@"
echo "== pytest (pure-Python path: WSJET_NO_EXTENSIONS=1)"
WSJET_NO_EXTENSIONS=1 .venv/bin/pytest -p no:cacheprovider "$@"
