"""Logging on the `wsjet` logger, as the cheat sheet describes."""

from __future__ import annotations

import logging

import pytest
from websockets.asyncio.client import connect as ws_connect

import wsjet


async def echo(ws: wsjet.WebSocketServerProtocol) -> None:
    async for message in ws:
        await ws.send(message)


async def test_frames_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="wsjet"):
        async with wsjet.serve(echo, "127.0.0.1", 0, compression=None) as server:
            port = server.sockets[0].getsockname()[1]
            async with ws_connect(f"ws://127.0.0.1:{port}/", compression=None) as client:
                await client.send("hello\nworld")
                await client.recv()
                await client.send(b"\x01\x02" * 40)
                await client.recv()
    lines = [r.getMessage() for r in caplog.records if r.name == "wsjet.server"]
    # Direction, opcode, a short preview (control characters escaped) and the length.
    assert "> TEXT 'hello\\nworld' (11 bytes)" in lines
    assert any(line.startswith("> BINARY 01 02 01 02") and "(80 bytes)" in line for line in lines)
    assert "< TEXT 'hello\\nworld' (11 bytes)" in lines
    assert any(line.startswith("> CLOSE") for line in lines)


async def test_nothing_logged_below_info_when_debug_is_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="wsjet"):
        async with wsjet.serve(echo, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with ws_connect(f"ws://127.0.0.1:{port}/") as client:
                await client.send("quiet")
                await client.recv()
    assert not [r for r in caplog.records if r.name.startswith("wsjet")]
