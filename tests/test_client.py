"""connect() and WebSocketClientProtocol against servers on loopback."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.server import serve as ws_serve

import wsjet
from wsjet.core.frames import Opcode, serialize_frame
from wsjet.core.handshake import accept_key

from .utils import UNIT


async def echo(ws: wsjet.WebSocketServerProtocol) -> None:
    async for message in ws:
        await ws.send(message)


async def test_wss_round_trip_wsjet_both_sides(tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    async with wsjet.serve(echo, "127.0.0.1", 0, ssl=server_context) as server:
        port = server.sockets[0].getsockname()[1]
        async with wsjet.connect(f"wss://localhost:{port}/", ssl=client_context) as client:
            await client.send("over TLS")
            assert await client.recv() == "over TLS"
        # Without trusting the certificate, the default context refuses it.
        with pytest.raises(ssl.SSLCertVerificationError):
            await wsjet.connect(f"wss://localhost:{port}/")


async def test_wss_with_websockets_server(tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)

    async def handler(ws: websockets.ServerConnection) -> None:
        await ws.send(ws.request.headers.get("User-Agent", "") if ws.request else "")

    async with ws_serve(handler, "127.0.0.1", 0, ssl=server_context) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        context = ssl.create_default_context(cafile=str(cert))
        async with wsjet.connect(f"wss://127.0.0.1:{port}/", ssl=context) as client:
            assert (await client.recv()).startswith("wsjet/")  # type: ignore[union-attr]


@pytest.fixture
async def http_server() -> AsyncIterator[int]:
    """A plain HTTP server that answers every request with 404."""

    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot here\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(respond, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def test_non_101_response_raises_invalid_status(http_server: int) -> None:
    with pytest.raises(wsjet.InvalidStatus) as info:
        await wsjet.connect(f"ws://127.0.0.1:{http_server}/")
    assert info.value.status_code == 404
    assert info.value.response.body == b"not here\n"


async def test_bad_accept_key_is_rejected() -> None:
    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(respond, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(wsjet.InvalidHeader, match="Sec-WebSocket-Accept"):
            await wsjet.connect(f"ws://127.0.0.1:{port}/")


async def test_open_timeout_on_silent_server() -> None:
    done = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up
        writer.close()
        done.set()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(TimeoutError):
            await wsjet.connect(f"ws://127.0.0.1:{port}/", open_timeout=2 * UNIT)
        await asyncio.wait_for(done.wait(), 5)  # the client dropped its socket


async def test_server_closing_during_handshake() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(wsjet.InvalidMessage):
            await wsjet.connect(f"ws://127.0.0.1:{port}/")


@pytest.mark.parametrize("uri", ["http://x/", "ws://", "ws://host/#frag", "wss://h:99999/"])
def test_invalid_uris(uri: str) -> None:
    with pytest.raises(wsjet.InvalidURI):
        wsjet.connect(uri)


async def test_connection_refused() -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(OSError):
        await wsjet.connect(f"ws://127.0.0.1:{port}/")


async def test_client_api_state_and_errors() -> None:
    # The client sends a foreign Origin: the server's same-origin default would refuse it.
    async with wsjet.serve(echo, "127.0.0.1", 0, origins=["https://o.example"]) as server:
        port = server.sockets[0].getsockname()[1]
        client = await wsjet.connect(
            f"ws://127.0.0.1:{port}/", extra_headers={"X-Hello": "1"}, origin="https://o.example"
        )
        assert client.state is wsjet.State.OPEN and client.open
        assert client.request_headers["X-Hello"] == "1"
        assert client.request_headers["Origin"] == "https://o.example"
        assert client.remote_address[1] == port
        with pytest.raises(TypeError):
            await client.send({"not": "allowed"})  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await client.send(42)  # type: ignore[arg-type]
        recv = asyncio.ensure_future(client.recv())
        await asyncio.sleep(0)
        with pytest.raises(wsjet.ConcurrencyError):
            await client.recv()
        await client.send("x")
        assert await recv == "x"
        await client.close()
        assert client.closed and client.close_code == 1000
        with pytest.raises(wsjet.ConnectionClosedOK):
            await client.send("late")
        with pytest.raises(wsjet.ConnectionClosedOK):
            await client.recv()
        await client.close()  # idempotent


async def test_pending_ping_fails_when_connection_drops() -> None:
    # A raw server that accepts the handshake, then drops TCP without answering pings.
    async def accept_then_drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        key = request.split(b"Sec-WebSocket-Key: ")[1].split(b"\r\n")[0].decode()
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n\r\n"
        )
        await reader.read(1)  # the ping's first byte
        writer.transport.abort()  # type: ignore[attr-defined]
        writer.close()

    server = await asyncio.start_server(accept_then_drop, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        client = await wsjet.connect(f"ws://127.0.0.1:{port}/", compression=None)
        waiter = client.ping(b"never answered")
        with pytest.raises(wsjet.ConnectionClosedError) as info:
            await waiter
        assert info.value.code == 1006
        assert client.close_code == 1006
        with pytest.raises(wsjet.ConnectionClosedError):
            await client.recv()


async def test_recv_cancellation_loses_nothing() -> None:
    async with wsjet.serve(echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with wsjet.connect(f"ws://127.0.0.1:{port}/") as client:
            for i in range(50):
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(client.recv(), 0)
                await client.send(str(i))
            received = [await client.recv() for _ in range(50)]
    assert received == [str(i) for i in range(50)]


def _pushing_server(frames: bytes) -> tuple[asyncio.Event, Any]:
    """A raw server that answers the handshake and sends ``frames`` in the same write."""
    done = asyncio.Event()

    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip().decode()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n\r\n" + frames
        )
        await writer.drain()
        await done.wait()
        writer.close()

    return done, respond


@pytest.mark.parametrize("tls", [False, True])
async def test_frames_sent_with_the_101_are_not_lost(
    tls: bool, tls_files: tuple[Path, Path]
) -> None:
    # The response and the server's first messages, more than one read's worth
    # (the receive buffer is 256 KiB), wait together in a large socket buffer
    # when the client reads them: uvloop reads on while a read fills the buffer,
    # before the handshake's task opens the connection. Nothing may be dropped
    # meanwhile (this failed on uvloop, plain and TLS, before the fix).
    big = bytes(range(256)) * 2400  # 600 KiB
    frames = serialize_frame(Opcode.BINARY, big) + serialize_frame(Opcode.TEXT, b"after")
    server_context = client_context = None
    if tls:
        cert, key = tls_files
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_context.load_cert_chain(cert, key)
        client_context = ssl.create_default_context(cafile=str(cert))
    done, respond = _pushing_server(frames)
    server = await asyncio.start_server(respond, "127.0.0.1", 0, ssl=server_context)
    async with server, asyncio.timeout(10):
        port = server.sockets[0].getsockname()[1]
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 2**20)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))

        async def stall() -> None:
            # Hold the event loop once the request is out, so that the response
            # and all the frames are in the socket buffer at the next read.
            await asyncio.sleep(0.05)
            time.sleep(0.3)  # blocking on purpose

        staller = asyncio.create_task(stall())
        uri = f"{'wss' if tls else 'ws'}://localhost:{port}/"
        client = await wsjet.connect(uri, sock=sock, ssl=client_context, max_size=None)
        await staller
        try:
            assert await client.recv() == big
            assert await client.recv() == "after"
        finally:
            done.set()
            client.transport.abort()  # type: ignore[union-attr]
