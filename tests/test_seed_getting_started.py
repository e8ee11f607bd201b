"""The "Getting Started" seed's examples, run as written with `websocket` renamed `wsjet`.

Only the seed's ``address, port`` placeholders get values (a free loopback
port). The server runs in the main thread exactly as the seed shows (``with
socket as server: loop.run_forever()``); the peer is the independent
`websockets` package, in a thread, which stops the loop when it is done.
"""

from __future__ import annotations

import asyncio
import os
import socket as socket_module
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from websockets.asyncio.client import connect as async_connect
from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as sync_connect

from wsjet.client import Client
from wsjet.server import WebSocketServer
from wsjet.stream.reader import WebSocketReader

address = "127.0.0.1"


def free_port() -> int:
    with socket_module.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def current_loop() -> Iterator[None]:
    """A current event loop for the seed's ``asyncio.get_event_loop()``."""
    if os.environ.get("WSJET_TEST_LOOP") == "uvloop":  # as tests/conftest.py
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    loop.close()
    asyncio.set_event_loop(None)


class Peer:
    """Runs ``session`` in a thread; if it fails, stops the loop so the test ends."""

    def __init__(self, loop: asyncio.AbstractEventLoop, session: Callable[[], None]) -> None:
        self.error: BaseException | None = None

        def run() -> None:
            try:
                session()
            except BaseException as exc:
                self.error = exc
                loop.call_soon_threadsafe(loop.stop)

        self.thread = threading.Thread(target=run)
        self.thread.start()

    def join(self) -> None:
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error


def connect(port: int) -> ClientConnection:
    """Connect, retrying while the main thread is still starting the server."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return sync_connect(f"ws://{address}:{port}/", open_timeout=5, compression=None)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def ready(ws: ClientConnection) -> None:
    """A ping round trip: the server has run everything this peer triggered before."""
    assert ws.ping().wait(10)


def drain(ws: ClientConnection) -> tuple[list[Any], int]:
    """Receive until the server closes; return the messages and the close code."""
    messages = []
    try:
        while True:
            messages.append(ws.recv(timeout=10))
    except ConnectionClosedOK as exc:
        assert exc.rcvd is not None
        return messages, exc.rcvd.code


# --- Creating the socket, on_connection, starting the server ------------------------------


def test_creating_and_starting_the_server(
    current_loop: None, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()

    loop = asyncio.get_event_loop()
    socket = WebSocketServer(address, port, loop=loop)

    @socket.connection
    async def on_connection(client: Client):  # type: ignore[no-untyped-def]
        print("We just got a new connection!")

    with socket as server:
        print(f"Serving on {server.sockets[0].getsockname()}")

    print("The server closed")

    assert capsys.readouterr().out == f"Serving on ('{address}', {port})\nThe server closed\n"


def test_run_forever_and_closing_with_1001(
    current_loop: None, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    loop = asyncio.get_event_loop()
    socket = WebSocketServer(address, port, loop=loop)

    @socket.connection
    async def on_connection(client: Client):  # type: ignore[no-untyped-def]
        print("We just got a new connection!")

    codes = []

    def session() -> None:
        with connect(port) as ws:
            ready(ws)
            loop.call_soon_threadsafe(loop.stop)
            codes.append(drain(ws)[1])  # leaving the with block closes us

    peer = Peer(loop, session)

    with socket as server:  # noqa: F841 - the seed's code, as written
        loop.run_forever()
        print("The server is going to close!")

    print("The server closed")

    peer.join()
    assert codes == [1001]
    assert capsys.readouterr().out == (
        "We just got a new connection!\nThe server is going to close!\nThe server closed\n"
    )


# --- The client object ---------------------------------------------------------------------


def test_client_addr_and_port(current_loop: None, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    loop = asyncio.get_event_loop()
    socket = WebSocketServer(address, port, loop=loop)

    @socket.connection
    async def on_connection(client: Client):  # type: ignore[no-untyped-def]
        print(f"We just got a new connection from {client.addr, client.port}!")

    peers = []

    def session() -> None:
        with connect(port) as ws:
            ready(ws)
            peers.append(ws.local_address[:2])
        loop.call_soon_threadsafe(loop.stop)

    peer = Peer(loop, session)
    with socket as server:  # noqa: F841 - the seed's code, as written
        loop.run_forever()
    peer.join()
    assert capsys.readouterr().out == f"We just got a new connection from {peers[0]}!\n"


def test_clients_holds_every_client_but_the_new_one(
    current_loop: None, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    loop = asyncio.get_event_loop()
    socket = WebSocketServer(address, port, loop=loop)

    @socket.connection
    async def on_connection(client: Client):  # type: ignore[no-untyped-def]
        for other in socket.clients.values():
            print(
                f"Client {other.addr, other.port} was connected before {client.addr, client.port}"
            )

    peers = []

    def session() -> None:
        with connect(port) as first, connect(port) as second, connect(port) as third:
            for ws in (first, second, third):
                ready(ws)
                peers.append(ws.local_address[:2])
        loop.call_soon_threadsafe(loop.stop)

    peer = Peer(loop, session)
    with socket as server:  # noqa: F841 - the seed's code, as written
        loop.run_forever()
    peer.join()
    first, second, third = peers
    assert capsys.readouterr().out.splitlines() == [
        f"Client {first} was connected before {second}",
        f"Client {first} was connected before {third}",
        f"Client {second} was connected before {third}",
    ]


# --- on_message and reading from the stream -----------------------------------------------


def test_registering_the_on_message_callback(
    current_loop: None, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    loop = asyncio.get_event_loop()
    socket = WebSocketServer(address, port, loop=loop)

    @socket.connection
    async def on_connection(client: Client):  # type: ignore[no-untyped-def]
        @client.message
        async def on_message(reader: WebSocketReader):  # type: ignore[no-untyped-def]
            print(f"The client {client.addr, client.port} sent an message.")

    peers = []

    def session() -> None:
        with connect(port) as ws:
            ws.send("one")
            ws.send(b"two")
            ready(ws)
            peers.append(ws.local_address[:2])
        loop.call_soon_threadsafe(loop.stop)

    peer = Peer(loop, session)
    with socket as server:  # noqa: F841 - the seed's code, as written
        loop.run_forever()
    peer.join()
    assert capsys.readouterr().out == f"The client {peers[0]} sent an message.\n" * 2


def test_reading_from_the_stream(current_loop: None, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    loop = asyncio.get_event_loop()
    socket = WebSocketServer(address, port, loop=loop)

    @socket.connection
    async def on_connection(client: Client):  # type: ignore[no-untyped-def]
        @client.message
        async def on_message(reader: WebSocketReader):  # type: ignore[no-untyped-def]
            msg = await reader.get()
            print(f"The client {client.addr, client.port} sent the message {msg}.")

    peers = []

    def session() -> None:
        with connect(port) as ws:
            ws.send("hello")
            ws.send(b"\x00\xff")
            ws.send(["frag", "ments"])
            ready(ws)
            peers.append(ws.local_address[:2])
        loop.call_soon_threadsafe(loop.stop)

    peer = Peer(loop, session)
    with socket as server:  # noqa: F841 - the seed's code, as written
        loop.run_forever()
    peer.join()
    binary = b"\x00\xff"
    assert capsys.readouterr().out.splitlines() == [
        f"The client {peers[0]} sent the message hello.",
        f"The client {peers[0]} sent the message {binary!r}.",
        f"The client {peers[0]} sent the message fragments.",
    ]


# --- Sending messages to the client ------------------------------------------------------


def test_sending_to_every_other_client(current_loop: None) -> None:
    port = free_port()
    loop = asyncio.get_event_loop()
    socket = WebSocketServer(address, port, loop=loop)

    @socket.connection
    async def on_connection(client: Client):  # type: ignore[no-untyped-def]
        for other in socket.clients.values():
            await other.writer.send("You are a client connected to my server.")

    received = {}

    def session() -> None:
        with connect(port) as first, connect(port) as second, connect(port) as third:
            for ws in (first, second, third):
                ready(ws)
            loop.call_soon_threadsafe(loop.stop)
            for name, ws in (("first", first), ("second", second), ("third", third)):
                received[name] = drain(ws)

    peer = Peer(loop, session)
    with socket as server:  # noqa: F841 - the seed's code, as written
        loop.run_forever()
    peer.join()
    greeting = "You are a client connected to my server."
    assert received == {
        "first": ([greeting, greeting], 1001),
        "second": ([greeting], 1001),
        "third": ([], 1001),
    }


def test_echo_with_a_preface(current_loop: None) -> None:
    port = free_port()
    loop = asyncio.get_event_loop()
    socket = WebSocketServer(address, port, loop=loop)

    @socket.connection
    async def on_connection(client: Client):  # type: ignore[no-untyped-def]
        @client.message
        async def on_message(reader: WebSocketReader):  # type: ignore[no-untyped-def]
            msg = await reader.get()
            await client.writer.send("You just send me the following message.")
            await client.writer.send(msg)

    replies = []

    def session() -> None:
        with connect(port) as ws:
            for message in ("hello", b"\x01\x02", "é" * 100_000):
                ws.send(message)
                replies.append((ws.recv(timeout=10), ws.recv(timeout=10)))
        loop.call_soon_threadsafe(loop.stop)

    peer = Peer(loop, session)
    with socket as server:  # noqa: F841 - the seed's code, as written
        loop.run_forever()
    peer.join()
    preface = "You just send me the following message."
    assert replies == [(preface, "hello"), (preface, b"\x01\x02"), (preface, "é" * 100_000)]


# --- the same, inside a running loop ----------------------------------------------------------


async def test_async_with_inside_a_running_loop() -> None:
    socket = WebSocketServer(address, 0)

    @socket.connection
    async def on_connection(client: Client) -> None:
        @client.message
        async def on_message(reader: WebSocketReader) -> None:
            msg = await reader.get()
            await client.writer.send("You just send me the following message.")
            await client.writer.send(msg)

    async with socket as server:
        port = server.sockets[0].getsockname()[1]
        ws = await async_connect(f"ws://{address}:{port}/")
        await ws.send("hi")
        assert await ws.recv() == "You just send me the following message."
        assert await ws.recv() == "hi"
    # Leaving the block closed the connection with 1001 (going away).
    await ws.wait_closed()
    assert ws.close_code == 1001
