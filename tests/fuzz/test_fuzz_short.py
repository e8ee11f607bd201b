"""The CI variant of the fuzzers: every target for a bounded number of executions.

With atheris installed, each target runs coverage-guided in its own process
(``python -m tests.fuzz.run --all``), seeded, with libFuzzer's 1 s per input and
256 MiB limits. Without it, the built-in seeded mutator runs them in this
process. Either way a crash is any exception a target does not document.
The full variant is ``python -m tests.fuzz.run --all --runs 1000000``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .driver import fuzz
from .seeds import seeds
from .targets import TARGETS

RUNS = 20_000
# Seconds per input: the full variant holds 1 s; a CI machine shared with other
# jobs can stall a process that long, so CI reports only real hangs.
TIMEOUT = 20
ROOT = Path(__file__).resolve().parents[2]
HAVE_ATHERIS = importlib.util.find_spec("atheris") is not None


def test_every_target_is_seeded() -> None:
    for name in TARGETS:
        assert seeds(name), name
        for data in seeds(name):
            TARGETS[name](data)  # seeds themselves never crash


if HAVE_ATHERIS:

    def test_fuzz_targets_with_atheris() -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        env.pop("PYTHONDEVMODE", None)
        proc = subprocess.run(
            [
                *(sys.executable, "-m", "tests.fuzz.run", "--all", "--runs", str(RUNS)),
                *("--jobs", "2", "--timeout", str(TIMEOUT)),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-2000:]

else:

    @pytest.mark.parametrize("name", list(TARGETS))
    def test_fuzz_target_with_builtin_driver(name: str) -> None:
        assert fuzz(TARGETS[name], seeds(name), RUNS // 4, time_limit=60) > 0
