from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Make the harness importable whatever pytest's import mode is.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


def pytest_configure(config: pytest.Config) -> None:
    # Also declared in pyproject.toml ([tool.pytest.ini_options] markers); registering
    # here too keeps --strict-markers happy when this directory is run on its own.
    config.addinivalue_line(
        "markers", "autobahn: Autobahn TestSuite conformance run via kosoku (slow)"
    )
