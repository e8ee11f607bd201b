#!/usr/bin/env bash
# Build the HTML documentation into docs/_build/html; any Sphinx warning fails the
# build (-W), and --keep-going reports all of them first. Assumes .venv has the
# "docs" extra installed (sphinx, myst-parser): this script installs nothing.
# Extra arguments go to sphinx-build (e.g. -E to rebuild every page).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/sphinx-build -W --keep-going -q -b html "$@" docs docs/_build/html
