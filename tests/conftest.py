"""Test-wide configuration: the event loop under test.

``WSJET_TEST_LOOP=uvloop`` runs every asyncio test on uvloop; the test command
runs the suite on both loops.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping

import pytest


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Pick the event loop implementation from ``WSJET_TEST_LOOP``."""
    if os.environ.get("WSJET_TEST_LOOP") == "uvloop":
        import uvloop

        return {"uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}
