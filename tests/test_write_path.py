"""Writing frames: what the engine hands the transport.

asyncio's own TCP transport before Python 3.12 inherits ``writelines()`` from
``asyncio.WriteTransport``, which joins every buffer into one bytes first: for
a 1 MiB frame, one more 1 MiB allocation per message. The engine detects such
a transport and writes a large payload as a view after its header
(``wsjet.engine._write_unjoined``); other transports get ``writelines()``.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

import wsjet
from wsjet.core.frames import Opcode, serialize_frame
from wsjet.engine import _write_unjoined

from .test_server import HANDSHAKE

TIMEOUT = 10
# wsjet.engine._SMALL_JOIN, a C constant (not importable) when the engine is compiled.
_SMALL_JOIN = 64 * 1024


class Recorder(asyncio.Transport):
    """Keeps a copy of every write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.kinds: list[type] = []

    def write(self, data: Any) -> None:
        self.kinds.append(type(data))
        self.writes.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        raise AssertionError("_write_unjoined must not call writelines()")


@pytest.mark.parametrize(
    "sizes",
    [
        [2],
        [2, 100],
        [4, 65_536],
        [4, 65_537],
        [10, 1_048_576],
        [10, 300_000, 2, 5, 10, 200_000, 4, 17],
        [200_000],
        [3, 4, 5],
    ],
)
def test_write_unjoined_writes_every_byte_in_order(sizes: list[int]) -> None:
    rng = random.Random(sum(sizes))
    output = [rng.randbytes(size) for size in sizes]
    transport = Recorder()
    _write_unjoined(transport, output)
    assert b"".join(transport.writes) == b"".join(output)
    small: list[bytes] = []  # the pieces since the last large one
    for piece in output:
        if len(piece) <= _SMALL_JOIN:
            small.append(piece)
            continue
        # The header before a large payload is never written alone: it goes out
        # with the payload's first _SMALL_JOIN bytes...
        assert b"".join(small) + piece[:_SMALL_JOIN] in transport.writes
        small = []
        # ...and the rest is a view, not a copy made by slicing the bytes.
        assert memoryview in transport.kinds
    # Small pieces alone: one write, as writelines() would have made.
    if all(len(piece) <= _SMALL_JOIN for piece in output):
        assert len(transport.writes) == 1


def _joins(transport: asyncio.BaseTransport) -> bool:
    return type(transport).writelines is asyncio.WriteTransport.writelines


async def test_protocol_knows_whether_writelines_joins() -> None:
    seen: list[wsjet.WebSocketServerProtocol] = []

    async def handler(ws: wsjet.WebSocketServerProtocol) -> None:
        seen.append(ws)
        async for message in ws:
            await ws.send(message)

    async with asyncio.timeout(TIMEOUT):
        async with wsjet.serve(handler, "127.0.0.1", 0, max_size=None) as server:
            port = server.sockets[0].getsockname()[1]
            async with wsjet.connect(f"ws://127.0.0.1:{port}", max_size=None) as client:
                # 3 MiB and back: through _write_unjoined where writelines() joins.
                message = random.Random(7).randbytes(3 * 2**20 + 5)
                await client.send(message)
                assert await client.recv() == message
                for protocol in (client, seen[0]):
                    assert protocol.transport is not None
                    assert protocol._writelines_joins == _joins(protocol.transport)


# --- replies to pipelined messages ------------------------------------------------------


class CountingTransport:
    """Forwards to a transport, counting the bytes of each write."""

    def __init__(self, transport: Any, writes: list[int]) -> None:
        self._transport = transport
        self._writes = writes

    def write(self, data: Any) -> None:
        self._writes.append(len(data))
        self._transport.write(data)

    def writelines(self, list_of_data: Any) -> None:
        data = list(list_of_data)
        self._writes.append(sum(map(len, data)))
        self._transport.writelines(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CountingProtocol(wsjet.WebSocketServerProtocol):
    """Counts the writes to its transport (uvloop's cannot be patched: wrapped)."""

    writes: list[int]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.writes = []
        self.transport = CountingTransport(transport, self.writes)  # type: ignore[assignment]


async def _echo_server_and_raw_peer(
    frames: int,
) -> tuple[list[CountingProtocol], list[int]]:
    """Send ``frames`` masked messages in one write; return the server's writes per echo."""
    seen: list[CountingProtocol] = []
    sizes: list[int] = []

    async def handler(ws: wsjet.WebSocketServerProtocol) -> None:
        assert isinstance(ws, CountingProtocol)
        seen.append(ws)
        async for message in ws:
            await ws.send(message)
            # What send() wrote by the time it returned.
            sizes.append(len(ws.writes))

    plan = [bytes([i]) * 20 for i in range(frames)]
    key = b"\x01\x02\x03\x04"
    async with wsjet.serve(
        handler, "127.0.0.1", 0, create_protocol=CountingProtocol, compression=None
    ) as server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(HANDSHAKE)
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
            while not seen:
                await asyncio.sleep(0.01)
            writer.write(b"".join(serialize_frame(Opcode.BINARY, m, mask_key=key) for m in plan))
            expected = b"".join(serialize_frame(Opcode.BINARY, m) for m in plan)
            assert await reader.readexactly(len(expected)) == expected
        finally:
            writer.close()
            await writer.wait_closed()
    return seen, sizes


async def test_replies_to_queued_messages_leave_in_one_write() -> None:
    async with asyncio.timeout(TIMEOUT):
        seen, _ = await _echo_server_and_raw_peer(50)
    # The 101 response, then the replies: 50 messages came in one read and
    # waited in the queue, so their replies went out together, not one by one.
    replies = seen[0].writes[1:]
    assert replies[0] == 50 * 22, replies


async def test_a_lone_reply_is_written_before_send_returns() -> None:
    async with asyncio.timeout(TIMEOUT):
        _, sizes = await _echo_server_and_raw_peer(1)
    assert sizes == [2]  # the 101 response and the reply: not held for later
