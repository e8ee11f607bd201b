#!/usr/bin/env bash
# The main job: installs wsjet, then runs the demo server on 127.0.0.1:8765.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m wsjet serve "$@"
