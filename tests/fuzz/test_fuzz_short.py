"""The short variant of the fuzzers, run by pytest: every target for a bounded count.

With atheris installed, each target runs coverage-guided in its own process
(``python -m tests.fuzz.run --all``), seeded, with libFuzzer's 256 MiB limit.
Without it, the built-in seeded mutator runs them in this process; under CI
(``CI=true``) a missing atheris is a failure instead. Either way a crash is any
exception a target does not document. The full variant, a million executions
per target, is ``scripts/fuzz.sh``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from . import _twins
from .driver import fuzz
from .run import in_ci
from .seeds import seeds
from .targets import PARITY_CASE, TARGETS, max_len

RUNS = 20_000
# CPU seconds per input, as in the full variant (run.CpuLimited: CPU time, which
# a stalled or shared machine does not inflate the way it does the wall clock).
TIMEOUT = 1
ROOT = Path(__file__).resolve().parents[2]
HAVE_ATHERIS = importlib.util.find_spec("atheris") is not None


@pytest.mark.parametrize("name", list(TARGETS))
def test_seeds_pass(name: str) -> None:
    assert seeds(name), name
    for i, data in enumerate(seeds(name)):
        try:
            TARGETS[name](data)  # seeds themselves never crash
        except Exception as exc:
            exc.add_note(f"{name} seed {i} of tests/fuzz/seeds.py: {data[:200]!r}")
            raise


@pytest.mark.parametrize("name", sorted(_twins.COVERED))
def test_pure_twin_is_the_python_source(name: str) -> None:
    module = importlib.import_module(name)
    twin = _twins.pure_twin(name)
    parent, _, leaf = name.rpartition(".")
    assert twin.__name__ == f"{parent}._pure_{leaf}"
    assert twin is not module and not _twins.is_compiled(twin)
    assert twin.__file__ == str(_twins.source_path(name))
    assert twin.__file__.endswith(f"{leaf}.py")
    assert all(hasattr(twin, public) for public in getattr(module, "__all__", ()))
    print(_twins.describe(module))


def test_every_compiled_core_module_has_a_parity_target() -> None:
    compiled = [name for name in _twins.compiled_modules() if name.startswith("wsjet.core.")]
    missing = [name for name in compiled if name not in _twins.COVERED]
    assert not missing, f"compiled, but no fuzz target compares it with its pure twin: {missing}"


def test_parity_case_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    assert PARITY_CASE.startswith("parity: ")
    with capsys.disabled():
        print(f"\n{PARITY_CASE}")


if HAVE_ATHERIS:

    def test_fuzz_targets_with_atheris() -> None:
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        env = dict(os.environ, PYTHONPATH=path)
        env.pop("PYTHONDEVMODE", None)
        proc = subprocess.run(
            [
                *(sys.executable, "-m", "tests.fuzz.run", "--all", "--runs", str(RUNS)),
                *("--jobs", "2", "--timeout", str(TIMEOUT), "--driver", "atheris"),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-2000:]

elif in_ci():

    def test_atheris_is_installed_in_ci() -> None:
        pytest.fail(
            "atheris is not installed, and CI must run the coverage-guided fuzzer: "
            ".venv/bin/pip install -e '.[test]'"
        )

else:

    @pytest.mark.parametrize("name", list(TARGETS))
    def test_fuzz_target_with_builtin_driver(name: str) -> None:
        ran = fuzz(TARGETS[name], seeds(name), RUNS // 4, time_limit=60, max_len=max_len(name))
        assert ran > 0
