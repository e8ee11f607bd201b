"""Shared test helpers."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

#: One unit of test delay in seconds; raise WSJET_TEST_UNIT on a slow machine.
UNIT = float(os.environ.get("WSJET_TEST_UNIT", "0.05"))


def import_compiled(name: str, twin: str) -> ModuleType:
    """Import the C extension ``name``, whose parity with ``twin`` a test checks.

    A missing extension fails the import loudly, in CI and locally alike: a
    parity test must never pass by comparing the pure twin with itself.
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:  # pragma: no cover - only when the build is broken
        raise ImportError(
            f"the C extension {name} is not built, so its parity with {twin} cannot be "
            "checked. Build it with `WSJET_BUILD_EXTENSION=required pip install -e .` "
            "and read the compiler error."
            + (" (CI=true: compiled modules are mandatory in CI.)" if os.environ.get("CI") else "")
        ) from exc
