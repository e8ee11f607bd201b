"""Shared test helpers."""

from __future__ import annotations

import os

#: One unit of test delay in seconds; raise WSJET_TEST_UNIT on a slow machine.
UNIT = float(os.environ.get("WSJET_TEST_UNIT", "0.05"))
