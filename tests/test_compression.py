"""permessage-deflate end to end, with the `websockets` package as the peer."""

from __future__ import annotations

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import serve as ws_serve
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)

import wsjet
from wsjet.core.deflate import DeflateOptions

TAKEOVER = [(False, False), (True, False), (False, True), (True, True)]
MESSAGES: list[str | bytes] = ["small", "json " * 2000, b"\x00" * 300_000, bytes(range(256)) * 50]


async def echo(ws: wsjet.WebSocketServerProtocol) -> None:
    async for message in ws:
        await ws.send(message)


@pytest.mark.parametrize(("server_nct", "client_nct"), TAKEOVER)
async def test_websockets_client_compressed_to_wsjet_server(
    server_nct: bool, client_nct: bool
) -> None:
    async with wsjet.serve(echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        factory = ClientPerMessageDeflateFactory(
            server_no_context_takeover=server_nct,
            client_no_context_takeover=client_nct,
            client_max_window_bits=True,
        )
        async with ws_connect(
            f"ws://127.0.0.1:{port}/", compression=None, extensions=[factory]
        ) as client:
            accepted = client.response.headers["Sec-WebSocket-Extensions"]  # type: ignore[union-attr]
            assert accepted.startswith("permessage-deflate")
            assert ("server_no_context_takeover" in accepted) is server_nct
            assert ("client_no_context_takeover" in accepted) is client_nct
            for _ in range(2):  # twice, so context takeover matters
                for message in MESSAGES:
                    await client.send(message)
                    assert await client.recv() == message


@pytest.mark.parametrize(("server_nct", "client_nct"), TAKEOVER)
async def test_wsjet_client_compressed_to_websockets_server(
    server_nct: bool, client_nct: bool
) -> None:
    async def handler(ws: object) -> None:
        async for message in ws:  # type: ignore[attr-defined]
            await ws.send(message)  # type: ignore[attr-defined]

    factory = ServerPerMessageDeflateFactory(
        server_no_context_takeover=server_nct, client_no_context_takeover=client_nct
    )
    async with ws_serve(handler, "127.0.0.1", 0, compression=None, extensions=[factory]) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with wsjet.connect(f"ws://127.0.0.1:{port}/") as client:
            assert client.response_headers["Sec-WebSocket-Extensions"].startswith(
                "permessage-deflate"
            )
            for _ in range(2):
                for message in MESSAGES:
                    await client.send(message)
                    assert await client.recv() == message
            await client.send("uncompressed on request " * 20, compress=False)
            assert await client.recv() == "uncompressed on request " * 20


async def test_compression_none_negotiates_nothing() -> None:
    async with wsjet.serve(echo, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        async with ws_connect(f"ws://127.0.0.1:{port}/") as client:  # offers deflate
            assert client.response is not None
            assert "Sec-WebSocket-Extensions" not in client.response.headers


async def test_custom_deflate_options_both_sides() -> None:
    options = DeflateOptions(server_max_window_bits=9, client_max_window_bits=10, compress_level=9)
    async with wsjet.serve(echo, "127.0.0.1", 0, compression=options) as server:
        port = server.sockets[0].getsockname()[1]
        async with wsjet.connect(f"ws://127.0.0.1:{port}/", compression=options) as client:
            header = client.response_headers["Sec-WebSocket-Extensions"]
            assert "server_max_window_bits=9" in header and "client_max_window_bits=10" in header
            for message in MESSAGES:
                await client.send(message)
                assert await client.recv() == message


async def test_decompressed_size_is_limited() -> None:
    async with wsjet.serve(echo, "127.0.0.1", 0, max_size=100_000) as server:
        port = server.sockets[0].getsockname()[1]
        async with ws_connect(f"ws://127.0.0.1:{port}/", max_size=None) as client:
            # 10 MB of zeros compresses to ~10 KB: the server must refuse it inflated.
            await client.send(b"\x00" * 10_000_000)
            await client.wait_closed()
        assert client.close_code == 1009
