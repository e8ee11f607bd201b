"""broadcast(): one frame for many receivers, compression once, slow consumers.

Receivers are raw TCP clients here (:class:`RawClient`) where the test needs
the bytes on the wire (RSV1, exact frames) or must be cheap (200 readers of
10,000 messages), and the `websockets` package elsewhere.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import socket
import struct
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from websockets.asyncio.client import connect as ws_connect

import wsjet
from wsjet.broadcast import (
    DEFAULT_MAX_BUFFER,
    BroadcastResult,
    SlowConsumerPolicy,
    broadcast,
    slow_consumer_policy,
)
from wsjet.core.connection import Connection, Side, State
from wsjet.core.deflate import DeflateOptions, PerMessageDeflate
from wsjet.core.frames import Opcode, frame_header

from .utils import UNIT

#: A deadlock guard for waits that should end long before it.
PATIENCE = 30.0


# --- a raw client --------------------------------------------------------------------------


class RawClient(asyncio.Protocol):
    """A minimal WebSocket client on a raw socket: it shows the frames as they arrive.

    With ``parse=False`` it only counts and hashes the bytes after the
    handshake (cheap enough for hundreds of readers of thousands of messages).
    """

    def __init__(self, parse: bool = True) -> None:
        self.parse = parse
        self.transport: asyncio.Transport | None = None
        self.response = b""
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.buffer = bytearray()
        #: (fin, rsv1, opcode, payload) of each frame received.
        self.frames: list[tuple[bool, bool, int, bytes]] = []
        self.received = 0
        self.digest = hashlib.sha256()
        self.target: int | None = None
        self.reached: asyncio.Event = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.opened.done():
            self.response += data
            head, sep, rest = self.response.partition(b"\r\n\r\n")
            if not sep:
                return
            self.response = head
            self.opened.set_result(None)
            data = rest
            if not data:
                return
        if not self.parse:
            self.received += len(data)
            self.digest.update(data)
            if self.target is not None and self.received >= self.target:
                self.reached.set()
            return
        self.buffer += data
        while len(self.buffer) >= 2:
            first, second = self.buffer[0], self.buffer[1]
            length, start = second & 0x7F, 2
            if length == 126:
                if len(self.buffer) < 4:
                    return
                (length,), start = struct.unpack_from("!H", self.buffer, 2), 4
            elif length == 127:
                if len(self.buffer) < 10:
                    return
                (length,), start = struct.unpack_from("!Q", self.buffer, 2), 10
            if len(self.buffer) < start + length:
                return
            payload = bytes(self.buffer[start : start + length])
            del self.buffer[: start + length]
            self.frames.append((bool(first & 0x80), bool(first & 0x40), first & 0x0F, payload))
            self.reached.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)

    def send_frame(self, opcode: int, payload: bytes) -> None:
        """Send a masked frame."""
        assert self.transport is not None
        key = os.urandom(4)
        masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        self.transport.write(frame_header(opcode, len(payload), mask_key=key) + masked)

    async def next_frame(self) -> tuple[bool, bool, int, bytes]:
        while not self.frames:
            self.reached.clear()
            await asyncio.wait_for(self.reached.wait(), PATIENCE)
        return self.frames.pop(0)

    async def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        await asyncio.wait_for(asyncio.shield(self.lost), PATIENCE)


async def open_raw(
    port: int, *, extensions: str | None = None, rcvbuf: int | None = None, parse: bool = True
) -> RawClient:
    """Connect, send an opening handshake, wait for the 101."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    _, client = await loop.create_connection(lambda: RawClient(parse), sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    )
    if extensions is not None:
        request += f"Sec-WebSocket-Extensions: {extensions}\r\n"
    assert client.transport is not None
    client.transport.write((request + "\r\n").encode())
    try:
        await asyncio.wait_for(client.opened, PATIENCE)
    except BaseException:
        await client.close()
        raise
    assert client.response.startswith(b"HTTP/1.1 101"), client.response
    return client


def port_of(server: wsjet.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


async def wait_for(predicate: Callable[[], bool]) -> None:
    """Poll ``predicate`` every UNIT until it holds (PATIENCE at most)."""
    async with asyncio.timeout(PATIENCE):
        while not predicate():
            await asyncio.sleep(UNIT / 5)


async def park(ws: wsjet.WebSocketServerProtocol) -> None:
    """A handler that just keeps the connection open."""
    await ws.wait_closed()


def inflate(payload: bytes) -> bytes:
    return zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")


@pytest.fixture
async def parked() -> AsyncIterator[wsjet.Server]:
    async with wsjet.serve(park, "127.0.0.1", 0, compression=None) as server:
        yield server


# --- Connection.send_frame_bytes ---------------------------------------------------------


def test_send_frame_bytes_queues_the_frame_as_is() -> None:
    connection = Connection(Side.SERVER)
    frame = frame_header(Opcode.TEXT, 5) + b"hello"
    assert connection.send_frame_bytes(frame, opcode=Opcode.TEXT) is True
    assert connection.data_to_send() == [frame]
    binary = frame_header(Opcode.BINARY, 3) + b"\x00\x01\x02"
    assert connection.send_frame_bytes(binary, opcode=Opcode.BINARY) is True
    assert connection.data_to_send() == [binary]


def test_send_frame_bytes_refuses_without_raising_when_it_cannot_send() -> None:
    frame = frame_header(Opcode.TEXT, 2) + b"hi"
    # A fragmented message of ours is in progress: the frame would land inside it.
    connection = Connection(Side.SERVER)
    connection.send_text(b"part", fin=False)
    assert connection.send_frame_bytes(frame, opcode=Opcode.TEXT) is False
    connection.send_continuation(b"end", fin=True)
    connection.data_to_send()
    assert connection.send_frame_bytes(frame, opcode=Opcode.TEXT) is True
    # Closing, then closed.
    connection.send_close()
    connection.data_to_send()
    assert connection.state is State.CLOSING
    assert connection.send_frame_bytes(frame, opcode=Opcode.TEXT) is False
    connection.receive_eof()
    assert connection.send_frame_bytes(frame, opcode=Opcode.TEXT) is False
    assert connection.data_to_send() == []


def test_send_frame_bytes_rejects_frames_that_do_not_fit() -> None:
    connection = Connection(Side.SERVER)
    text = frame_header(Opcode.TEXT, 2) + b"hi"
    with pytest.raises(ValueError, match="TEXT or a BINARY"):
        connection.send_frame_bytes(frame_header(Opcode.PING, 0), opcode=Opcode.PING)
    with pytest.raises(ValueError, match="TEXT or a BINARY"):
        connection.send_frame_bytes(b"", opcode=Opcode.TEXT)
    with pytest.raises(ValueError, match="not a final"):
        connection.send_frame_bytes(text, opcode=Opcode.BINARY)
    with pytest.raises(ValueError, match="not a final"):
        connection.send_frame_bytes(frame_header(Opcode.TEXT, 2, fin=False) + b"hi", opcode=1)
    # RSV1 needs a negotiated codec.
    with pytest.raises(ValueError, match="not a final"):
        connection.send_frame_bytes(frame_header(Opcode.TEXT, 2, rsv1=True) + b"hi", opcode=1)
    compressed = Connection(Side.SERVER, codec=PerMessageDeflate(is_client=False))
    assert compressed.send_frame_bytes(frame_header(Opcode.TEXT, 2, rsv1=True) + b"hi", opcode=1)
    # A client masks every frame with a fresh key: no prebuilt frames.
    with pytest.raises(ValueError, match="masks"):
        Connection(Side.CLIENT).send_frame_bytes(text, opcode=Opcode.TEXT)
    assert connection.data_to_send() == []


def test_send_frame_bytes_logs_the_frame(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("wsjet.test.shared")
    log.setLevel(logging.DEBUG)
    connection = Connection(Side.SERVER, logger=log)
    with caplog.at_level(logging.DEBUG, logger="wsjet.test.shared"):
        payload = b"x" * 200
        connection.send_frame_bytes(frame_header(Opcode.TEXT, 200) + payload, opcode=1)
    assert any(
        "> TEXT 'xxxx" in r.getMessage() and "(200 bytes)" in r.getMessage() for r in caplog.records
    )


# --- policy and result -------------------------------------------------------------------


def test_slow_consumer_policy_values() -> None:
    assert slow_consumer_policy(None) == SlowConsumerPolicy()
    assert SlowConsumerPolicy().max_buffer == DEFAULT_MAX_BUFFER
    assert SlowConsumerPolicy().action == "skip"
    assert slow_consumer_policy("close").action == "close"
    assert slow_consumer_policy("close").close_code == 1013
    policy = SlowConsumerPolicy(10, "close", 1008)
    assert slow_consumer_policy(policy) is policy
    with pytest.raises(ValueError):
        slow_consumer_policy("drop")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        slow_consumer_policy(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SlowConsumerPolicy(-1)
    with pytest.raises(ValueError):
        SlowConsumerPolicy(close_code=1006)
    with pytest.raises(ValueError):
        SlowConsumerPolicy(close_code=1000)
    with pytest.raises(ValueError):
        SlowConsumerPolicy(reason="x" * 124)
    total = BroadcastResult(1, 2, 3)
    total += BroadcastResult(10, 20, 30)
    assert total == BroadcastResult(11, 22, 33)


async def test_broadcast_rejects_other_types(parked: wsjet.Server) -> None:
    with pytest.raises(TypeError, match="str or bytes-like"):
        broadcast(parked.connections, 42)  # type: ignore[arg-type]


# --- delivery -----------------------------------------------------------------------------


async def test_one_frame_for_every_receiver(parked: wsjet.Server) -> None:
    port = port_of(parked)
    clients = [await open_raw(port) for _ in range(5)]
    try:
        await wait_for(lambda: sum(p.open for p in parked.connections) == 5)
        assert broadcast(parked.connections, "héllo") == BroadcastResult(5, 0, 0)
        assert broadcast(parked.connections, bytearray(b"\x00\x01")) == BroadcastResult(5, 0, 0)
        assert broadcast(parked.connections, b"z" * 70_000).delivered == 5
        for client in clients:
            assert await client.next_frame() == (True, False, Opcode.TEXT, "héllo".encode())
            assert await client.next_frame() == (True, False, Opcode.BINARY, b"\x00\x01")
            assert await client.next_frame() == (True, False, Opcode.BINARY, b"z" * 70_000)
    finally:
        for client in clients:
            await client.close()


async def test_the_same_bytes_object_goes_to_every_transport(parked: wsjet.Server) -> None:
    port = port_of(parked)
    clients = [await open_raw(port) for _ in range(3)]
    try:
        await wait_for(lambda: sum(p.open for p in parked.connections) == 3)
        written: list[bytes] = []

        class Recorder:
            """Stands in front of a transport and records what is written."""

            def __init__(self, transport: Any) -> None:
                self.transport = transport

            def write(self, data: bytes) -> None:
                written.append(data)
                self.transport.write(data)

            def __getattr__(self, name: str) -> Any:
                return getattr(self.transport, name)

        for protocol in parked.connections:
            protocol.transport = Recorder(protocol.transport)  # type: ignore[assignment]
        broadcast(parked.connections, "once")
        for client in clients:
            assert await client.next_frame() == (True, False, Opcode.TEXT, b"once")
        assert len(written) == 3
        assert all(frame is written[0] for frame in written)
    finally:
        for client in clients:
            await client.close()


async def test_websockets_clients_receive_broadcasts(parked: wsjet.Server) -> None:
    port = port_of(parked)
    async with (
        ws_connect(f"ws://127.0.0.1:{port}/") as one,
        ws_connect(f"ws://127.0.0.1:{port}/") as two,
    ):
        await wait_for(lambda: sum(p.open for p in parked.connections) == 2)
        broadcast(parked.connections, "text")
        broadcast(parked.connections, b"bytes")
        for client in (one, two):
            assert await client.recv() == "text"
            assert await client.recv() == b"bytes"


async def test_receivers_that_cannot_take_it_are_skipped() -> None:
    entered = asyncio.Event()
    release = asyncio.Event()

    async def fragmenting(ws: wsjet.WebSocketServerProtocol) -> None:
        if ws.path == "/fragments":

            async def pieces() -> AsyncIterator[str]:
                yield "first "
                yield "middle "
                entered.set()  # the first frame is out, the message is not over
                await release.wait()
                yield "last"

            await ws.send(pieces())
        await ws.wait_closed()

    async with wsjet.serve(fragmenting, "127.0.0.1", 0, compression=None) as server:
        port = port_of(server)
        async with (
            ws_connect(f"ws://127.0.0.1:{port}/fragments") as busy,
            ws_connect(f"ws://127.0.0.1:{port}/") as idle,
            ws_connect(f"ws://127.0.0.1:{port}/") as leaving,
        ):
            await entered.wait()
            await wait_for(lambda: sum(p.open for p in server.connections) == 3)
            everybody = list(server.connections)
            closing = next(p for p in everybody if p.remote_address == leaving.local_address)
            await closing.close()
            # One in a fragmented message, one closed: only the idle one gets it.
            assert broadcast(everybody, "news") == BroadcastResult(1, 2, 0)
            assert broadcast(everybody, "more") == BroadcastResult(1, 2, 0)
            release.set()
            assert await busy.recv() == "first middle last"
            assert await idle.recv() == "news"
            assert await idle.recv() == "more"


async def test_callback_face_clients() -> None:
    joined: list[wsjet.Client] = []
    socket_server = wsjet.WebSocketServer("127.0.0.1", 0, compression=None)

    @socket_server.connection
    async def on_connection(client: wsjet.Client) -> None:
        joined.append(client)

    async with socket_server as listening:
        port = listening.sockets[0].getsockname()[1]
        async with (
            ws_connect(f"ws://127.0.0.1:{port}/") as one,
            ws_connect(f"ws://127.0.0.1:{port}/") as two,
        ):
            await wait_for(lambda: len(socket_server.clients) == 2)
            result = broadcast(socket_server.clients.values(), "to all clients")
            assert result == BroadcastResult(2, 0, 0)
            assert await one.recv() == "to all clients"
            assert await two.recv() == "to all clients"


async def test_client_connections_are_masked_one_by_one() -> None:
    received: list[str | bytes] = []

    async def collect(ws: wsjet.WebSocketServerProtocol) -> None:
        async for message in ws:
            received.append(message)

    async with (
        wsjet.serve(collect, "127.0.0.1", 0) as first,
        wsjet.serve(collect, "127.0.0.1", 0) as second,
        wsjet.connect(f"ws://127.0.0.1:{port_of(first)}/") as a,
        wsjet.connect(f"ws://127.0.0.1:{port_of(second)}/") as b,
    ):
        assert broadcast([a, b], "from a client") == BroadcastResult(2, 0, 0)
        assert broadcast([a, b], b"bytes", compress=False).delivered == 2
        await wait_for(lambda: len(received) == 4)
        await a.close()
        assert broadcast([a, b], "after").skipped == 1
        await wait_for(lambda: len(received) == 5)
    assert sorted(map(repr, received)) == sorted(
        map(repr, ["from a client", "from a client", b"bytes", b"bytes", "after"])
    )


# --- compression ------------------------------------------------------------------------------


async def test_compressed_once_per_group_uncompressed_with_context_takeover(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    encodes: list[int] = []
    original = PerMessageDeflate.encode

    def counting(self: PerMessageDeflate, data: Any, *, end_of_message: bool = True) -> bytes:
        encodes.append(self.local_max_window_bits)
        return original(self, data, end_of_message=end_of_message)

    async with wsjet.serve(park, "127.0.0.1", 0) as server:
        port = port_of(server)
        nct = "permessage-deflate; server_no_context_takeover"
        small = "permessage-deflate; server_no_context_takeover; server_max_window_bits=10"
        clients = {
            "nct": [await open_raw(port, extensions=nct) for _ in range(3)],
            "small": [await open_raw(port, extensions=small) for _ in range(2)],
            "takeover": [await open_raw(port, extensions="permessage-deflate") for _ in range(2)],
            "plain": [await open_raw(port)],
        }
        try:
            await wait_for(lambda: sum(p.open for p in server.connections) == 8)
            monkeypatch.setattr(PerMessageDeflate, "encode", counting)
            message = "a compressible message " * 40
            assert broadcast(server.connections, message).delivered == 8
            # Two groups (12-bit and 10-bit windows): two compressions for eight receivers.
            assert sorted(encodes) == [10, 12]
            for group in ("nct", "small"):
                for client in clients[group]:
                    fin, rsv1, opcode, payload = await client.next_frame()
                    assert (fin, rsv1, opcode) == (True, True, Opcode.TEXT)
                    assert len(payload) < len(message)
                    assert inflate(payload) == message.encode()
            for group in ("takeover", "plain"):
                for client in clients[group]:
                    assert await client.next_frame() == (True, False, Opcode.TEXT, message.encode())
            # compress=False: nobody gets it compressed.
            encodes.clear()
            assert broadcast(server.connections, message, compress=False).delivered == 8
            assert encodes == []
            for group in clients.values():
                for client in group:
                    assert (await client.next_frame())[1] is False
        finally:
            for group in clients.values():
                for client in group:
                    await client.close()


async def test_context_takeover_connections_still_work_after_a_broadcast() -> None:
    async def echo(ws: wsjet.WebSocketServerProtocol) -> None:
        async for message in ws:
            await ws.send(message)

    async with wsjet.serve(echo, "127.0.0.1", 0) as server:
        port = port_of(server)
        # websockets negotiates permessage-deflate with context takeover both ways.
        async with ws_connect(f"ws://127.0.0.1:{port}/") as client:
            await wait_for(lambda: any(p.open for p in server.connections))
            for round_ in range(3):
                await client.send(f"echo {round_} " * 20)
                assert await client.recv() == f"echo {round_} " * 20
                broadcast(server.connections, f"broadcast {round_} " * 20)
                assert await client.recv() == f"broadcast {round_} " * 20


async def test_no_context_takeover_server_compresses_for_websockets_clients() -> None:
    options = DeflateOptions(server_no_context_takeover=True)
    async with wsjet.serve(park, "127.0.0.1", 0, compression=options) as server:
        port = port_of(server)
        async with (
            ws_connect(f"ws://127.0.0.1:{port}/") as one,
            ws_connect(f"ws://127.0.0.1:{port}/") as two,
        ):
            await wait_for(lambda: sum(p.open for p in server.connections) == 2)
            for i in range(3):
                broadcast(server.connections, f"compressed {i} " * 30)
            for client in (one, two):
                for i in range(3):
                    assert await client.recv() == f"compressed {i} " * 30


async def test_compression_threshold_sends_small_messages_plain() -> None:
    async with wsjet.serve(park, "127.0.0.1", 0, compression_threshold=64) as server:
        nct = "permessage-deflate; server_no_context_takeover"
        client = await open_raw(port_of(server), extensions=nct)
        try:
            await wait_for(lambda: any(p.open for p in server.connections))
            broadcast(server.connections, "short")
            broadcast(server.connections, "long " * 20)
            assert (await client.next_frame())[1] is False
            assert (await client.next_frame())[1] is True
        finally:
            await client.close()


# --- slow consumers ---------------------------------------------------------------------------

READERS = 200
MESSAGES = 10_000
SIZE = 100
LIMIT = 64 * 1024
FRAME = 2 + SIZE  # header + payload of one message


def message_number(i: int) -> bytes:
    return i.to_bytes(4, "big") + bytes(SIZE - 4)


def shrink_send_buffer(protocol: wsjet.WebSocketServerProtocol) -> None:
    sock = protocol.transport.get_extra_info("socket") if protocol.transport else None
    assert sock is not None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)


@pytest.mark.parametrize(("action", "messages"), [("skip", MESSAGES), ("close", 2_000)])
async def test_one_slow_consumer_among_200_readers(action: str, messages: int) -> None:
    """Readers get every message; the one that never reads stays bounded, skipped or closed.

    With "close", the silent client is closed after a few hundred messages:
    2,000 are enough to show it and keep the test short.
    """

    async def subscriber(ws: wsjet.WebSocketServerProtocol) -> None:
        ws.subscribe("feed")
        await ws.wait_closed()

    policy = SlowConsumerPolicy(max_buffer=LIMIT, action=action)  # type: ignore[arg-type]
    async with wsjet.serve(
        subscriber,
        "127.0.0.1",
        0,
        compression=None,
        slow_consumer=policy,
        close_timeout=4 * UNIT,
        ping_interval=None,
    ) as server:
        port = port_of(server)
        readers = [await open_raw(port, parse=False) for _ in range(READERS)]
        slow = await open_raw(port, parse=False, rcvbuf=4096)
        try:
            assert slow.transport is not None
            slow.transport.pause_reading()  # it never reads again
            await wait_for(lambda: len(server.topics.subscribers("feed")) == READERS + 1)
            slow_port = slow.transport.get_extra_info("sockname")[1]
            slow_side = next(p for p in server.connections if p.remote_address[1] == slow_port)
            shrink_send_buffer(slow_side)

            for reader in readers:
                reader.target = messages * FRAME
            expected = hashlib.sha256()
            total = BroadcastResult()
            most_buffered = 0
            for i in range(messages):
                message = message_number(i)
                expected.update(frame_header(Opcode.BINARY, SIZE) + message)
                total += server.publish("feed", message)
                if i % 50 == 49:
                    most_buffered = max(most_buffered, slow_side.buffered_amount)
                    await asyncio.sleep(0)  # let the readers read
            most_buffered = max(most_buffered, slow_side.buffered_amount)

            async with asyncio.timeout(PATIENCE):
                for reader in readers:
                    await reader.reached.wait()
            assert all(r.received == messages * FRAME for r in readers)
            assert all(r.digest.digest() == expected.digest() for r in readers)

            # The slow one never held more than the bound.
            assert most_buffered <= LIMIT
            assert total.delivered >= READERS * messages
            if action == "skip":
                assert total.closed == 0
                missed = total.skipped
                assert missed > 0
                assert total.delivered + missed == (READERS + 1) * messages
                assert slow_side.open
                assert slow_side.buffered_amount <= LIMIT
            else:
                assert total.closed == 1
                assert slow_side.connection is not None
                assert slow_side.connection.close_sent is not None
                assert slow_side.connection.close_sent.code == 1013
                # Nobody reads the close frame: close_timeout drops the connection.
                await asyncio.wait_for(slow_side.wait_closed(), PATIENCE)
                assert slow_side.buffered_amount == 0
                assert "feed" not in slow_side.subscriptions
                assert len(server.topics.subscribers("feed")) == READERS
        finally:
            for reader in (*readers, slow):
                await reader.close()


async def test_policy_comes_from_the_receivers_server() -> None:
    async with (
        wsjet.serve(park, "127.0.0.1", 0, compression=None, slow_consumer="close") as closing,
        wsjet.serve(
            park, "127.0.0.1", 0, compression=None, slow_consumer=SlowConsumerPolicy(0)
        ) as skipping,
    ):
        one = await open_raw(port_of(closing))
        two = await open_raw(port_of(skipping))
        try:
            await wait_for(lambda: len(closing.connections) + len(skipping.connections) == 2)
            everybody = [*closing.connections, *skipping.connections]
            assert closing.slow_consumer.action == "close"
            # The bound of 1 MiB lets the first in; the bound of 0 bytes lets nothing in.
            assert broadcast(everybody, "x") == BroadcastResult(1, 1, 0)
            # An explicit policy wins over the servers'.
            assert broadcast(everybody, "x", slow_consumer=SlowConsumerPolicy(0, "close")) == (
                BroadcastResult(0, 0, 2)
            )
            assert broadcast(everybody, "x") == BroadcastResult(0, 2, 0)  # both closing now
        finally:
            await one.close()
            await two.close()


async def test_buffered_amount(parked: wsjet.Server) -> None:
    client = await open_raw(port_of(parked))
    try:
        await wait_for(lambda: any(p.open for p in parked.connections))
        (protocol,) = parked.connections
        assert protocol.buffered_amount == 0
    finally:
        await client.close()
    await wait_for(lambda: not parked.connections)
    assert protocol.buffered_amount == 0


async def test_wsjet_broadcast_is_callable_whichever_import_came_first(
    parked: wsjet.Server,
) -> None:
    import importlib

    import wsjet.broadcast as module

    # Importing the submodule may leave the module itself on the package.
    assert callable(wsjet.broadcast)
    assert callable(importlib.import_module("wsjet.broadcast"))
    client = await open_raw(port_of(parked))
    try:
        await wait_for(lambda: any(p.open for p in parked.connections))
        assert module(parked.connections, "via the module") == BroadcastResult(1, 0, 0)
        assert wsjet.broadcast(parked.connections, b"via the package").delivered == 1
        assert (await client.next_frame())[3] == b"via the module"
        assert (await client.next_frame())[3] == b"via the package"
    finally:
        await client.close()
