"""A finished connection leaves no reference cycle behind: reference counting frees it.

Objects caught in a cycle live until the garbage collector's next pass over their
generation; a server's connections usually survive a few young collections, so
their cycles wait for a full collection, which may be far away. Under a flood of
malformed handshakes or churn, that garbage grows the heap (issue 6's malformed
handshake row: +3.2 MiB of RSS with cycles, +0.7 MiB without).

Each test runs one connection with the garbage collector disabled, then collects
with ``gc.DEBUG_SAVEALL`` and asserts that none of the unreachable objects is one
of wsjet's, or a task, a future, a frame, a traceback or an exception: those
would come from wsjet's cycles. (asyncio's own selector transport refers to
itself through a bound method; those few objects are not wsjet's to free.)
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import types
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import wsjet
from wsjet.stream.reader import WebSocketReader
from wsjet.stream.writer import WebSocketWriter

from .stress._util import request

Session = Callable[[int], Awaitable[None]]


async def raw_request(port: int, data: bytes) -> None:
    """Send ``data`` on a plain TCP connection; read until the server closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        while await reader.read(65536):
            pass
    finally:
        writer.transport.abort()


async def post_request(port: int) -> None:
    await raw_request(port, request().replace(b"GET ", b"POST "))


async def no_upgrade(port: int) -> None:
    await raw_request(port, request().replace(b"Upgrade: websocket\r\n", b""))


async def exchange(port: int) -> None:
    async with wsjet.connect(f"ws://127.0.0.1:{port}/", compression=None) as ws:
        for message in ("hello", b"bytes"):
            await ws.send(message)
            assert await ws.recv() == message


async def abort_after_exchange(port: int) -> None:
    ws = await wsjet.connect(f"ws://127.0.0.1:{port}/", compression="deflate")
    await ws.send("hello")
    assert await ws.recv() == "hello"
    assert ws.transport is not None
    ws.transport.abort()
    await ws.wait_closed()


async def handler_fails(port: int) -> None:
    async with wsjet.connect(f"ws://127.0.0.1:{port}/", compression=None) as ws:
        await ws.send("fail")
        await ws.wait_closed()
    assert ws.close_code == 1011


async def client_rejected(port: int) -> None:
    # A cross-origin request: the server's same-origin default answers 403.
    with pytest.raises(wsjet.InvalidStatus):
        await wsjet.connect(f"ws://127.0.0.1:{port}/", origin="http://evil.example")


SESSIONS: dict[str, Session] = {
    "POST": post_request,
    "no Upgrade": no_upgrade,
    "exchange": exchange,
    "abort after exchange": abort_after_exchange,
    "handler fails": handler_fails,
    "client rejected": client_rejected,
}


async def coroutine_handler(ws: Any) -> None:
    async for message in ws:
        if message == "fail":
            raise RuntimeError("the handler failed (expected by the test)")
        await ws.send(message)


async def on_connection(client: wsjet.Client) -> None:
    writer: WebSocketWriter = client.writer

    @client.message
    async def on_message(reader: WebSocketReader) -> None:
        message = await reader.get()
        if message == "fail":
            raise RuntimeError("the callback failed (expected by the test)")
        await writer.send(message)

    @client.closed
    async def on_closed(code: int, reason: str) -> None:
        assert client.close_code == code


@contextlib.asynccontextmanager
async def coroutine_server() -> AsyncIterator[tuple[int, Callable[[], bool]]]:
    async with wsjet.serve(coroutine_handler, "127.0.0.1", 0, ping_interval=None) as server:
        yield server.sockets[0].getsockname()[1], lambda: not server.connections


@contextlib.asynccontextmanager
async def callback_server() -> AsyncIterator[tuple[int, Callable[[], bool]]]:
    socket = wsjet.WebSocketServer("127.0.0.1", 0, ping_interval=None)
    socket.connection(on_connection)
    async with socket as server:
        yield server.sockets[0].getsockname()[1], lambda: not socket.clients


FACES = {"coroutine": coroutine_server, "callback": callback_server}


async def settle(idle: Callable[[], bool]) -> None:
    """Wait until the server let go of every connection and only this test's task runs."""
    deadline = asyncio.get_running_loop().time() + 10
    while not (idle() and len(asyncio.all_tasks()) == 1):
        assert asyncio.get_running_loop().time() < deadline, asyncio.all_tasks()
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # the last callbacks of the closing


def cyclic_garbage() -> list[str]:
    """Collect; describe the unreachable objects that wsjet could have freed itself."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = list(gc.garbage)
    finally:
        gc.garbage.clear()
        gc.set_debug(0)
    ours = (
        asyncio.Future,
        asyncio.Task,
        types.CoroutineType,
        types.FrameType,
        types.TracebackType,
        BaseException,
    )
    return sorted(
        f"{type(obj).__module__}.{type(obj).__qualname__}"
        for obj in found
        if type(obj).__module__.startswith("wsjet") or isinstance(obj, ours)
    )


@pytest.mark.parametrize("face", sorted(FACES))
@pytest.mark.parametrize("session", list(SESSIONS))
async def test_no_cycles_left_by_a_connection(face: str, session: str) -> None:
    run = SESSIONS[session]
    async with FACES[face]() as (port, idle):
        await run(port)  # warm-up: imports and caches are not garbage
        await settle(idle)
        gc.collect()
        gc.disable()
        try:
            await run(port)
            await settle(idle)
            assert cyclic_garbage() == []
        finally:
            gc.enable()
