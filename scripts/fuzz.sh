#!/usr/bin/env bash
# Fuzzing, the full variant (issue 6): every target of tests/fuzz/targets.py runs under
# atheris (coverage-guided libFuzzer), seeded from tests/fuzz/seeds.py, for 1,000,000
# executions, two targets at a time, with limits of 1 s of CPU per input and 256 MiB.
# (The limit per input is on CPU time, measured around each call: libFuzzer's own is on
# the wall clock, and a hypervisor that stalls the machine for seconds made it report
# hangs on inputs that replay in microseconds. A stall can inflate one call's CPU time
# too, so an input over the limit runs twice more and fails only if every run is over.
# libFuzzer's wall-clock limit stays, at 60 s, for an input that never returns.)
# Prints per target: executions, executions per second, wall and CPU seconds, the slowest
# input's CPU seconds, peak RSS and crashes; then the total wall time. Fails on any crash
# (an exception the API does not document, a broken invariant, the compiled and
# pure-Python cores disagreeing, an input over its CPU time, a hang, a memory blow-up)
# and on a target that ran short of its count.
# A crashing input is saved under $TMPDIR/wsjet-fuzz-artifacts/ (its path is printed);
# replay it with: PYTHONPATH=. .venv/bin/python -m tests.fuzz.run TARGET --replay FILE
#
# Usage: scripts/fuzz.sh [RUNS [JOBS]]   (defaults 1000000 and 2, or WSJET_FUZZ_RUNS and
# WSJET_FUZZ_JOBS). Under CI=true atheris must be installed (pyproject's test extra); on
# a developer's machine without it the built-in random mutator runs instead, with a warning.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-${WSJET_FUZZ_RUNS:-1000000}}
JOBS=${2:-${WSJET_FUZZ_JOBS:-2}}

if ! .venv/bin/python -c "import atheris" 2>/dev/null; then
  if [ "${CI:-}" = "true" ]; then
    echo "error: atheris is not installed, and CI must run the coverage-guided fuzzer" >&2
    echo "       (.venv/bin/pip install -e '.[test]' installs it)" >&2
    exit 1
  fi
  echo "warning: atheris is not installed: falling back to the built-in random mutator" >&2
fi

# PYTHONDEVMODE (set by scripts/test.sh) would slow every execution by a third.
env -u PYTHONDEVMODE PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" \
  .venv/bin/python -m tests.fuzz.run --all --runs "$RUNS" --jobs "$JOBS" --timeout 1
