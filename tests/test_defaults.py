"""Environment overrides of the default limits (docs/security.md)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from websockets.asyncio.client import connect as ws_connect

import wsjet


def run_with_env(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WSJET_")}
    return subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True
    )


def test_built_in_defaults() -> None:
    result = run_with_env(
        "from wsjet.core import defaults as d\n"
        "print(d.MAX_SIZE, d.MAX_QUEUE, d.MAX_LINE, d.PING_INTERVAL, d.MAX_CONNECTIONS)"
    )
    assert result.stdout.split() == ["1048576", "32", "8192", "20.0", "None"]


def test_overrides_reach_the_api() -> None:
    code = (
        "import inspect, wsjet, wsjet.server\n"
        "from wsjet.core.http import HTTPLimits\n"
        "p = inspect.signature(wsjet.WebSocketCommonProtocol.__init__).parameters\n"
        "print(p['max_size'].default, p['max_queue'].default, p['ping_interval'].default,\n"
        "      p['max_fragments'].default, HTTPLimits().max_headers, wsjet.server.SHUTDOWN_GRACE)"
    )
    result = run_with_env(
        code,
        WSJET_MAX_SIZE="none",
        WSJET_MAX_QUEUE="4",
        WSJET_PING_INTERVAL="none",
        WSJET_MAX_FRAGMENTS="1000",
        WSJET_MAX_HEADERS="16",
        WSJET_SHUTDOWN_GRACE="0.5",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["None", "4", "None", "1000", "16", "0.5"]


@pytest.mark.parametrize(
    ("name", "value"),
    [("WSJET_MAX_SIZE", "1MB"), ("WSJET_CLOSE_TIMEOUT", "-1"), ("WSJET_PING_TIMEOUT", "nan")],
)
def test_bad_values_fail_at_import_naming_the_variable(name: str, value: str) -> None:
    result = run_with_env("import wsjet.core.defaults", **{name: value})
    assert result.returncode != 0
    assert name in result.stderr and "ValueError" in result.stderr


async def test_max_fragments_keyword() -> None:
    async def echo(ws: wsjet.WebSocketServerProtocol) -> None:
        async for message in ws:
            await ws.send(message)

    # websockets sends an iterable as one frame per item plus a final empty frame.
    async with wsjet.serve(echo, "127.0.0.1", 0, max_fragments=4) as server:
        port = server.sockets[0].getsockname()[1]
        async with ws_connect(f"ws://127.0.0.1:{port}/") as client:
            await client.send(["a", "b", "c"])
            assert await client.recv() == "abc"
            await client.send(["a", "b", "c", "d"])
            await client.wait_closed()
        assert client.close_code == 1009
