"""Every command-line script of ``bench/`` answers ``--help``.

The benchmark is run by hand, so nothing else in the suite would notice a
broken option: ``bench/run.py --help`` once crashed on a help text with a bare
``%`` (argparse formats help strings with ``%``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
#: plot.py needs matplotlib, which is in the ``bench`` extra, not in ``test``.
SCRIPTS = sorted(
    path.name
    for path in BENCH.glob("*.py")
    if "argparse" in path.read_text() and path.name != "plot.py"
)


def test_the_scripts_are_found() -> None:
    assert {"run.py", "servers.py", "clients.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script: str) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / script), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=BENCH,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout
