"""Interop on loopback with an independent peer: the `websockets` package.

wsjet server <-> websockets client, and websockets server <-> wsjet client:
text, binary, fragmented messages, ping/pong and close codes, both ways.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import websockets
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import serve as ws_serve

import wsjet

MESSAGES: list[str | bytes] = [
    "hello",
    "café ☕",
    b"\x00\x01\xff",
    b"",
    "",
    "x" * 70_000,
    b"y" * 200_000,
]


async def echo(ws: wsjet.WebSocketServerProtocol) -> None:
    async for message in ws:
        await ws.send(message)


@pytest.fixture
async def wsjet_echo_port() -> AsyncIterator[int]:
    async with wsjet.serve(echo, "127.0.0.1", 0, compression=None) as server:
        yield server.sockets[0].getsockname()[1]


async def test_websockets_client_to_wsjet_server(wsjet_echo_port: int) -> None:
    async with ws_connect(f"ws://127.0.0.1:{wsjet_echo_port}/", compression=None) as client:
        for message in MESSAGES:
            await client.send(message)
            assert await client.recv() == message
        # Fragmented messages, sent by websockets as continuation frames.
        await client.send(["frag", "ment", "ed"])
        assert await client.recv() == "fragmented"
        await client.send([b"a", b"b", b"c"])
        assert await client.recv() == b"abc"
        latency = await (await client.ping(b"ping!"))
        assert latency >= 0


async def test_wsjet_server_close_codes_seen_by_websockets() -> None:
    async def handler(ws: wsjet.WebSocketServerProtocol) -> None:
        code = int(await ws.recv())
        await ws.close(code, f"closing {code}")

    async with wsjet.serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        for code in (1000, 1001, 1003, 1008, 3000, 4999):
            async with ws_connect(f"ws://127.0.0.1:{port}/") as client:
                await client.send(str(code))
                with pytest.raises(websockets.ConnectionClosed) as info:
                    await client.recv()
                assert info.value.rcvd is not None
                assert info.value.rcvd.code == code
                assert info.value.rcvd.reason == f"closing {code}"


async def test_websockets_client_close_code_seen_by_wsjet() -> None:
    seen: asyncio.Future[tuple[int | None, str | None]] = asyncio.get_running_loop().create_future()

    async def handler(ws: wsjet.WebSocketServerProtocol) -> None:
        with pytest.raises(wsjet.ConnectionClosed):
            await ws.recv()
        seen.set_result((ws.close_code, ws.close_reason))

    async with wsjet.serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        async with ws_connect(f"ws://127.0.0.1:{port}/") as client:
            await client.close(4001, "custom")
        await ws_wait(seen)
    assert seen.result() == (4001, "custom")


async def ws_wait(future: asyncio.Future[object]) -> None:
    await asyncio.wait_for(future, 5)


@pytest.fixture
async def websockets_echo_port() -> AsyncIterator[int]:
    async def handler(ws: websockets.ServerConnection) -> None:
        async for message in ws:
            if message == "close 4002":
                await ws.close(4002, "asked")
                return
            await ws.send(message)

    async with ws_serve(handler, "127.0.0.1", 0, compression=None) as server:
        yield next(iter(server.sockets)).getsockname()[1]


async def test_wsjet_client_to_websockets_server(websockets_echo_port: int) -> None:
    uri = f"ws://127.0.0.1:{websockets_echo_port}/path?q=1"
    async with wsjet.connect(uri, compression=None) as client:
        assert client.path == "/path?q=1"
        for message in MESSAGES:
            await client.send(message)
            assert await client.recv() == message
        await client.send(["frag", "ment", "ed"])
        assert await client.recv() == "fragmented"

        async def chunks() -> AsyncIterator[bytes]:
            for part in (b"async ", b"frag"):
                yield part

        await client.send(chunks())
        assert await client.recv() == b"async frag"
        latency = await client.ping()
        assert latency >= 0 and client.latency == latency
        await client.pong(b"unsolicited")
    assert client.close_code == 1000


async def test_wsjet_client_sees_websockets_server_close(websockets_echo_port: int) -> None:
    async with wsjet.connect(f"ws://127.0.0.1:{websockets_echo_port}/", compression=None) as client:
        await client.send("close 4002")
        with pytest.raises(wsjet.ConnectionClosedError) as info:
            await client.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 4002
    assert info.value.rcvd.reason == "asked"
    assert client.close_code == 4002 and client.close_reason == "asked"


async def test_wsjet_client_close_code_seen_by_websockets() -> None:
    seen: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()

    async def handler(ws: websockets.ServerConnection) -> None:
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        seen.set_result(ws.close_code)

    async with ws_serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        client = await wsjet.connect(f"ws://127.0.0.1:{port}/", compression=None)
        await client.close(3333, "bye")
        await ws_wait(seen)
    assert seen.result() == 3333


async def test_wsjet_client_subprotocol_with_websockets_server() -> None:
    async def handler(ws: websockets.ServerConnection) -> None:
        await ws.send(ws.subprotocol or "none")

    async with ws_serve(handler, "127.0.0.1", 0, subprotocols=["chat"]) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with wsjet.connect(
            f"ws://127.0.0.1:{port}/", subprotocols=["superchat", "chat"], compression=None
        ) as client:
            assert client.subprotocol == "chat"
            assert await client.recv() == "chat"
