"""The receive buffer: socket reads land in one buffer per thread (BufferedProtocol).

Every connection of a thread reads into the same buffer and parses frames where
they lie (``Connection.receive_from``). These tests check that the transports
really use it, that it is shared per thread, and that a connection never loses
bytes it had not parsed yet when another connection reads into the buffer.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import struct
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve

import wsjet
from wsjet.callbacks_client import Client
from wsjet.client import WebSocketClientProtocol
from wsjet.core.frames import Opcode, serialize_frame
from wsjet.engine import _thread_receive_buffer
from wsjet.server import WebSocketServer, WebSocketServerProtocol
from wsjet.stream.reader import WebSocketReader

from .test_server import HANDSHAKE

TIMEOUT = 10  # a bound: a hang fails instead of blocking; the tests take far less
MIB = 2**20

Message = str | bytes


async def echo(ws: wsjet.WebSocketServerProtocol) -> None:
    async for message in ws:
        await ws.send(message)


def port_of(server: wsjet.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


def random_message(rng: random.Random, size: int, text: bool) -> Message:
    if text:
        # Multi-byte characters, so that reads split some of them.
        return "".join(rng.choices("abcé☕𝄞", k=size // 2))
    return rng.randbytes(size)


class Counted:
    """Counts of the asyncio callbacks that hand the protocol its bytes."""

    def __init__(self) -> None:
        self.get_buffer = 0
        self.buffer_updated = 0
        self.data_received = 0
        self.views: set[int] = set()


def counting(base: type[Any], counts: Counted) -> type[Any]:
    """A subclass of ``base`` that counts get_buffer / buffer_updated / data_received."""

    class Counting(base):  # type: ignore[misc, valid-type]
        def get_buffer(self, sizehint: int) -> memoryview:
            counts.get_buffer += 1
            view: memoryview = super().get_buffer(sizehint)
            counts.views.add(id(view))
            return view

        def buffer_updated(self, nbytes: int) -> None:
            counts.buffer_updated += 1
            super().buffer_updated(nbytes)

        def data_received(self, data: bytes) -> None:
            counts.data_received += 1
            super().data_received(data)

    return Counting


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    async with wsjet.serve(echo, "127.0.0.1", 0, compression=None, max_size=None) as server:
        yield port_of(server)


# --- the protocol reads into the buffer -------------------------------------------------


async def test_both_sides_are_buffered_protocols() -> None:
    server_side: asyncio.Future[wsjet.WebSocketServerProtocol] = (
        asyncio.get_running_loop().create_future()
    )

    async def handler(ws: wsjet.WebSocketServerProtocol) -> None:
        server_side.set_result(ws)
        await echo(ws)

    async with asyncio.timeout(TIMEOUT):
        async with wsjet.serve(handler, "127.0.0.1", 0, compression=None) as server:
            async with wsjet.connect(f"ws://127.0.0.1:{port_of(server)}/") as client:
                await client.send("hi")
                assert await client.recv() == "hi"
                protocol = await server_side
                for side in (protocol, client):
                    assert isinstance(side, asyncio.BufferedProtocol)
                    assert side._read_view is _thread_receive_buffer()[1]
                    assert side._read_buffer is _thread_receive_buffer()[0]


async def test_transports_call_get_buffer_and_buffer_updated() -> None:
    server_counts, client_counts = Counted(), Counted()
    server_class = counting(WebSocketServerProtocol, server_counts)
    client_class = counting(WebSocketClientProtocol, client_counts)
    rng = random.Random(1)
    async with asyncio.timeout(TIMEOUT):
        async with wsjet.serve(
            echo, "127.0.0.1", 0, create_protocol=server_class, compression=None, max_size=None
        ) as server:
            uri = f"ws://127.0.0.1:{port_of(server)}/"
            async with wsjet.connect(
                uri, create_protocol=client_class, compression=None, max_size=None
            ) as client:
                assert type(client) is client_class
                for size in (10, 1000, 100_000, 600_000):
                    message = rng.randbytes(size)
                    await client.send(message)
                    assert await client.recv() == message
    view = _thread_receive_buffer()[1]
    for counts in (server_counts, client_counts):
        # The handshake and the messages came through the buffered callbacks only.
        assert counts.buffer_updated >= 3
        assert counts.get_buffer >= counts.buffer_updated
        assert counts.data_received == 0
        assert counts.views == {id(view)}


async def test_connections_of_a_thread_share_one_buffer(echo_port: int) -> None:
    uri = f"ws://127.0.0.1:{echo_port}/"
    buffer, view = _thread_receive_buffer()
    assert len(buffer) == 256 * 1024 and view.obj is buffer
    assert _thread_receive_buffer()[1] is view  # the same every time

    async with asyncio.timeout(TIMEOUT):
        async with wsjet.connect(uri) as one, wsjet.connect(uri) as two:
            for client in (one, two):
                await client.send("ping")
                assert await client.recv() == "ping"
            assert one._read_view is two._read_view is view
            assert one._read_buffer is two._read_buffer is buffer

            # Another thread, with its own event loop, reads into its own buffer.
            seen: dict[str, Any] = {}

            def in_thread() -> None:
                async def main() -> None:
                    async with wsjet.connect(uri) as other:
                        await other.send("from a thread")
                        seen["echo"] = await other.recv()
                        seen["view"] = other._read_view
                        seen["buffer"] = _thread_receive_buffer()

                asyncio.run(main())

            thread = threading.Thread(target=in_thread)
            thread.start()
            while thread.is_alive():
                await asyncio.sleep(0.01)
            thread.join()

    assert seen["echo"] == "from a thread"
    other_buffer, other_view = seen["buffer"]
    assert seen["view"] is other_view
    assert other_view is not view and other_buffer is not buffer
    assert len(other_buffer) == len(buffer)
    # This thread's buffer did not change meanwhile.
    assert _thread_receive_buffer()[0] is buffer
    assert _thread_receive_buffer()[1] is view


# --- a paused connection keeps its unparsed bytes ---------------------------------------


def slow_messages(rng: random.Random) -> list[tuple[Message, int]]:
    """Messages and how many fragments each is sent in: small, > 64 KiB, fragmented."""
    plan = [
        (60, False, 1),
        (100, True, 1),
        (80, False, 1),
        (70_000, False, 1),  # 64-bit length, assembled in place
        (200_000, False, 1),
        (100_000, True, 1),  # a text frame, streamed
        (5_000, False, 1),
        (150_000, False, 4),
        (90_000, True, 3),
        (1, True, 1),
        (300_000, False, 1),  # more than the whole receive buffer
        (20, False, 5),
        (0, False, 1),
        (66_000, True, 2),
    ]
    return [(random_message(rng, size, text), parts) for size, text, parts in plan]


def fragments(message: Message, parts: int) -> list[Message]:
    step = max(1, -(-len(message) // parts))
    return [message[i : i + step] for i in range(0, len(message), step)] or [message]


def raw_frames(messages: list[tuple[Message, int]], rng: random.Random) -> bytes:
    """All the messages as one client would frame them, with pings in between."""
    out: list[bytes] = []
    for message, parts in messages:
        opcode = Opcode.TEXT if isinstance(message, str) else Opcode.BINARY
        payload = message.encode() if isinstance(message, str) else message
        pieces = fragments(payload, parts)
        for i, piece in enumerate(pieces):
            first = opcode if i == 0 else Opcode.CONT
            last = i == len(pieces) - 1
            out.append(serialize_frame(first, piece, fin=last, mask_key=rng.randbytes(4)))
            if not last:
                out.append(serialize_frame(Opcode.PING, b"p", mask_key=rng.randbytes(4)))
    return b"".join(out)


async def test_paused_connections_keep_their_bytes_while_others_reuse_the_buffer() -> None:
    rng = random.Random(2024)
    expected = {"/slow-raw": slow_messages(rng), "/slow-wsjet": slow_messages(rng)}
    gates = {path: asyncio.Event() for path in expected}
    protocols: dict[str, wsjet.WebSocketServerProtocol] = {}
    received: dict[str, asyncio.Future[list[Message]]] = {
        path: asyncio.get_running_loop().create_future() for path in expected
    }

    async def handler(ws: wsjet.WebSocketServerProtocol) -> None:
        if ws.path == "/busy":
            await echo(ws)
            return
        protocols[ws.path] = ws
        await gates[ws.path].wait()  # not reading: the queue fills and reading pauses
        got = [await ws.recv() for _ in expected[ws.path]]
        received[ws.path].set_result(got)
        await ws.send("done")
        await ws.wait_closed()

    async def busy(client: wsjet.WebSocketClientProtocol, rounds: int) -> None:
        for _ in range(rounds):
            size = rng.choice([10, 1000, 20_000, 70_000, 150_000])
            message = random_message(rng, size, rng.random() < 0.3)
            if rng.random() < 0.3:
                await client.send(fragments(message, 3))
            else:
                await client.send(message)
            assert await client.recv() == message

    async with asyncio.timeout(TIMEOUT):
        async with wsjet.serve(
            handler, "127.0.0.1", 0, compression=None, max_size=None, max_queue=1
        ) as server:
            port = port_of(server)

            # One peer writes all its frames in one go: reads carry many messages.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(HANDSHAKE.replace(b"/chat", b"/slow-raw"))
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
            writer.write(raw_frames(expected["/slow-raw"], rng))

            # Another sends message by message (fragmented ones as iterables).
            uri = f"ws://127.0.0.1:{port}"
            async with (
                wsjet.connect(uri + "/slow-wsjet", compression=None, max_size=None) as slow,
                wsjet.connect(uri + "/busy", compression=None, max_size=None) as echoing,
            ):

                async def send_all() -> None:
                    for message, parts in expected["/slow-wsjet"]:
                        await slow.send(fragments(message, parts) if parts > 1 else message)

                sender = asyncio.create_task(send_all())
                # Both slow connections pause once their queue is full, holding bytes.
                while len(protocols) < 2 or not all(p._paused_reading for p in protocols.values()):
                    await busy(echoing, 1)
                raw = protocols["/slow-raw"]
                assert raw.connection is not None and raw.connection.held
                # Meanwhile another connection reads into the shared buffer a lot.
                await busy(echoing, 20)

                gates["/slow-raw"].set()
                await busy(echoing, 5)
                assert await received["/slow-raw"] == [m for m, _ in expected["/slow-raw"]]

                await busy(echoing, 10)
                gates["/slow-wsjet"].set()
                await busy(echoing, 5)
                await sender
                assert await received["/slow-wsjet"] == [m for m, _ in expected["/slow-wsjet"]]
                assert await slow.recv() == "done"

            writer.close()
            await writer.wait_closed()


async def test_callback_face_paused_reader_keeps_its_bytes() -> None:
    # The callback face pauses reading when its message readers hold read_limit
    # bytes: the same situation, through the streaming sink.
    rng = random.Random(99)
    slow_plan = [m for m, _ in slow_messages(rng)]
    gate = asyncio.Event()
    protocols: list[Any] = []

    async def on_connection(client: Client) -> None:
        if client.path == "/slow":
            protocols.append(client._protocol)

        @client.message
        async def on_message(reader: WebSocketReader) -> None:
            if client.path == "/slow":
                await gate.wait()
            await client.writer.send(await reader.get())

    socket = WebSocketServer(
        "127.0.0.1", 0, read_limit=4096, compression=None, max_size=None, ping_interval=None
    )
    socket.connection(on_connection)
    async with asyncio.timeout(TIMEOUT):
        server = await socket.__aenter__()
        try:
            uri = f"ws://127.0.0.1:{port_of(server)}"
            async with (
                ws_connect(uri + "/slow", compression=None, max_size=None) as slow,
                ws_connect(uri + "/busy", compression=None, max_size=None) as busy,
            ):
                for message in slow_plan:
                    await slow.send(message)
                while not protocols or not protocols[0]._paused_reading:
                    message = rng.randbytes(rng.choice([100, 50_000, 120_000]))
                    await busy.send(message)
                    assert await busy.recv() == message
                for _ in range(20):
                    message = random_message(rng, rng.choice([100, 50_000, 120_000]), True)
                    await busy.send(message)
                    assert await busy.recv() == message
                gate.set()
                assert [await slow.recv() for _ in slow_plan] == slow_plan
        finally:
            await socket.close()


async def test_callback_face_message_queued_during_a_synchronous_callback() -> None:
    # The first message fills the readers past read_limit: reading pauses, the
    # next two wait, held, in the connection. Its callback runs at once, reads it
    # whole (which resumes reading and queues the next two), and finishes without
    # suspending: the two queued messages must still get their callback.
    plan = [b"m" * 5000, b"second", b"third"]

    async def on_connection(client: Client) -> None:
        @client.message
        async def on_message(reader: WebSocketReader) -> None:
            await client.writer.send(await reader.get())

    socket = WebSocketServer(
        "127.0.0.1",
        0,
        read_limit=1000,
        compression=None,
        ping_interval=None,
        close_timeout=0.1,
    )
    socket.connection(on_connection)
    server = await socket.__aenter__()
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
    try:
        writer.write(HANDSHAKE)
        async with asyncio.timeout(TIMEOUT):
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        await asyncio.sleep(0.05)  # the connection callback has returned
        key = b"\x0f\x0e\x0d\x0c"
        writer.write(b"".join(serialize_frame(Opcode.BINARY, m, mask_key=key) for m in plan))
        expected = b"".join(serialize_frame(Opcode.BINARY, m) for m in plan)
        async with asyncio.timeout(1):
            assert await reader.readexactly(len(expected)) == expected
    finally:
        writer.close()
        await writer.wait_closed()
        await socket.close()


# --- large messages, with an independent peer -------------------------------------------


def large_messages() -> list[Message]:
    rng = random.Random(3)
    return [
        random_message(rng, 2 * MIB, text=True),  # 1 MiB of characters (UTF-8: more bytes)
        rng.randbytes(MIB),
        rng.randbytes(3 * MIB),
        "x" * (3 * MIB),
        rng.randbytes(MIB + 1),
    ]


async def test_large_messages_websockets_client_to_wsjet_server() -> None:
    async with asyncio.timeout(TIMEOUT):
        async with wsjet.serve(echo, "127.0.0.1", 0, compression=None, max_size=None) as server:
            uri = f"ws://127.0.0.1:{port_of(server)}/"
            async with ws_connect(uri, compression=None, max_size=None) as client:
                for message in large_messages():
                    await client.send(message)
                    assert await client.recv() == message
                # Fragmented by the peer, in large frames.
                message = random.Random(4).randbytes(3 * MIB)
                await client.send([message[:MIB], message[MIB : 2 * MIB], message[2 * MIB :]])
                assert await client.recv() == message


async def test_large_messages_wsjet_client_to_websockets_server() -> None:
    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async with asyncio.timeout(TIMEOUT):
        async with ws_serve(handler, "127.0.0.1", 0, compression=None, max_size=None) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            uri = f"ws://127.0.0.1:{port}/"
            async with wsjet.connect(uri, compression=None, max_size=None) as client:
                for message in large_messages():
                    await client.send(message)
                    assert await client.recv() == message
                assert client._read_view is _thread_receive_buffer()[1]


# --- TLS --------------------------------------------------------------------------------


async def test_tls_echo_through_the_buffer(tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    counts = Counted()
    rng = random.Random(5)
    async with asyncio.timeout(TIMEOUT):
        async with wsjet.serve(
            echo,
            "127.0.0.1",
            0,
            ssl=server_context,
            compression=None,
            max_size=None,
            create_protocol=counting(WebSocketServerProtocol, counts),
        ) as server:
            uri = f"wss://localhost:{port_of(server)}/"
            async with wsjet.connect(
                uri, ssl=client_context, compression=None, max_size=None
            ) as client:
                for message in (
                    rng.randbytes(300 * 1024),
                    random_message(rng, 600 * 1024, text=True),
                    rng.randbytes(MIB + 7),
                    "small",
                ):
                    await client.send(message)
                    assert await client.recv() == message
                assert client._read_view is _thread_receive_buffer()[1]
    assert counts.buffer_updated >= 3 and counts.data_received == 0


# --- control frames and a close inside one buffered read --------------------------------


async def test_messages_ping_and_close_in_one_read() -> None:
    got: asyncio.Future[list[Message]] = asyncio.get_running_loop().create_future()

    async def handler(ws: wsjet.WebSocketServerProtocol) -> None:
        got.set_result([message async for message in ws])

    def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
        return serialize_frame(opcode, payload, fin=fin, mask_key=b"\x01\x02\x03\x04")

    async with asyncio.timeout(TIMEOUT):
        async with wsjet.serve(handler, "127.0.0.1", 0, compression=None) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
            writer.write(HANDSHAKE)
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
            writer.write(
                frame(Opcode.TEXT, b"one")
                + frame(Opcode.PING, b"are you there")
                + frame(Opcode.BINARY, b"t", fin=False)
                + frame(Opcode.CONT, b"wo")
                + frame(Opcode.CLOSE, struct.pack("!H", 1000) + b"bye")
                + frame(Opcode.TEXT, b"ignored after close")
            )
            answer = await reader.read()  # until the server closes TCP
            writer.close()
            await writer.wait_closed()
            assert await got == ["one", b"two"]
    # The pong, then the close frame echoed (its code; the reason is not echoed).
    pong = serialize_frame(Opcode.PONG, b"are you there")
    assert answer.startswith(pong)
    close = answer[len(pong) :]
    assert close[0] == 0x88 and close[2:4] == struct.pack("!H", 1000)
    assert len(close) == 2 + close[1]
