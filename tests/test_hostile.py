"""Hostile peers (issue 6, item 5): a client resisting a hostile server, and a
server whose logs and error pages a hostile client cannot use.

Client side: every bad opening handshake ends in a typed exception within
``open_timeout``, with the socket closed and no task left behind; every bad
frame after it fails the connection with the right close code.

Server side: log lines escape what the peer sent (no forged lines), error
responses never reflect request data, the Origin allow-list is exact and the
default Origin policy is same-origin, Sec-WebSocket-Protocol / -Extensions are
capped before they are parsed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import re
import struct
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import wsjet
from wsjet.core import handshake as core_handshake
from wsjet.core.http import HTTPLimits
from wsjet.exceptions import (
    ConnectionClosedError,
    HeadersTooLarge,
    InvalidHandshake,
    InvalidHeader,
    InvalidMessage,
    InvalidStatus,
    InvalidUpgrade,
    NegotiationError,
)

from .utils import UNIT

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OPEN_TIMEOUT = 40 * UNIT

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[None]]


def accept_for(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def response(
    key: bytes, *extra: bytes, accept: bytes | None = None, status: bytes = b"101"
) -> bytes:
    lines = [
        b"HTTP/1.1 " + status + b" Switching Protocols",
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Accept: " + (accept_for(key) if accept is None else accept),
        *extra,
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n"


class Hostile:
    """A scripted server on 127.0.0.1; records whether the client closed its socket."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.client_closed = asyncio.Event()
        self.received = b""
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            key = next(
                line.split(b":", 1)[1].strip()
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            await self.script(reader, writer, key)
            while data := await reader.read(65536):
                self.received += data
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # the server closed under us; a cancelled handler makes asyncio log an error
        finally:
            self.client_closed.set()
            writer.transport.abort()


@contextlib.asynccontextmanager
async def hostile(script: Script) -> AsyncIterator[Hostile]:
    peer = Hostile(script)
    server = await asyncio.start_server(peer.handle, "127.0.0.1", 0)
    peer.port = server.sockets[0].getsockname()[1]
    try:
        yield peer
    finally:
        server.close()
        await server.wait_closed()


def other_tasks() -> set[asyncio.Task[object]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


async def assert_no_leak(before: set[asyncio.Task[object]]) -> None:
    for _ in range(5):
        await asyncio.sleep(0)
    leaked = {t for t in other_tasks() - before if not t.done()}
    assert not leaked, leaked


# --- the opening handshake ------------------------------------------------------------------


def send(data: Callable[[bytes], bytes]) -> Script:
    async def script(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: bytes
    ) -> None:
        writer.write(data(key))

    return script


def send_then_close(data: Callable[[bytes], bytes]) -> Script:
    async def script(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: bytes
    ) -> None:
        writer.write(data(key))
        writer.transport.abort()

    return script


BAD_HANDSHAKES: dict[str, tuple[Script, type[Exception], dict[str, object]]] = {
    "wrong Sec-WebSocket-Accept": (
        send(lambda key: response(key, accept=base64.b64encode(b"x" * 20))),
        InvalidHeader,
        {},
    ),
    "missing Sec-WebSocket-Accept": (
        send(lambda key: response(key).replace(b"Sec-WebSocket-Accept", b"X-Nope")),
        InvalidHeader,
        {},
    ),
    "two Sec-WebSocket-Accept": (
        send(lambda key: response(key, b"Sec-WebSocket-Accept: " + accept_for(key))),
        InvalidHeader,
        {},
    ),
    "server_max_window_bits=16": (
        send(
            lambda key: response(
                key, b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=16"
            )
        ),
        NegotiationError,
        {},
    ),
    "server_max_window_bits=7": (
        send(
            lambda key: response(
                key, b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=7"
            )
        ),
        NegotiationError,
        {},
    ),
    "server_max_window_bits=012": (
        send(
            lambda key: response(
                key, b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=012"
            )
        ),
        NegotiationError,
        {},
    ),
    "server_max_window_bits without value": (
        send(
            lambda key: response(
                key, b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits"
            )
        ),
        NegotiationError,
        {},
    ),
    "client_max_window_bits=99999999999999999999": (
        send(
            lambda key: response(
                key,
                b"Sec-WebSocket-Extensions: permessage-deflate; "
                b"client_max_window_bits=99999999999999999999",
            )
        ),
        NegotiationError,
        {},
    ),
    "unsolicited extension": (
        send(lambda key: response(key, b"Sec-WebSocket-Extensions: x-webkit-deflate-frame")),
        NegotiationError,
        {},
    ),
    "permessage-deflate twice": (
        send(
            lambda key: response(
                key, b"Sec-WebSocket-Extensions: permessage-deflate, permessage-deflate"
            )
        ),
        NegotiationError,
        {},
    ),
    "deflate not offered": (
        send(lambda key: response(key, b"Sec-WebSocket-Extensions: permessage-deflate")),
        NegotiationError,
        {"compression": None},
    ),
    "unknown deflate parameter": (
        send(
            lambda key: response(key, b"Sec-WebSocket-Extensions: permessage-deflate; constructor")
        ),
        NegotiationError,
        {},
    ),
    "unsolicited subprotocol": (
        send(lambda key: response(key, b"Sec-WebSocket-Protocol: __proto__")),
        NegotiationError,
        {},
    ),
    "subprotocol not offered": (
        send(lambda key: response(key, b"Sec-WebSocket-Protocol: admin")),
        NegotiationError,
        {"subprotocols": ["chat"]},
    ),
    "Upgrade: h2c": (
        send(lambda key: response(key).replace(b"Upgrade: websocket", b"Upgrade: h2c")),
        InvalidUpgrade,
        {},
    ),
    "status 200": (
        send(lambda key: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        InvalidStatus,
        {},
    ),
    "HTTP/1.0 101": (
        send(lambda key: response(key).replace(b"HTTP/1.1", b"HTTP/1.0")),
        InvalidMessage,
        {},
    ),
    "70 KB of headers": (
        send(lambda key: response(key, *[b"X-Pad: " + b"p" * 7000] * 10)),
        HeadersTooLarge,
        {},
    ),
    "9 KB status line": (
        send(lambda key: b"HTTP/1.1 101 " + b"r" * 9000 + b"\r\n\r\n"),
        InvalidMessage,
        {},
    ),
    "endless body": (
        send(lambda key: b"HTTP/1.1 403 Forbidden\r\n\r\n" + b"b" * 100_000),
        InvalidMessage,
        {},
    ),
    "control character in a header": (
        send(lambda key: response(key, b"X-Evil: a\x1bb")),
        InvalidMessage,
        {},
    ),
    "bare LF": (
        send(lambda key: response(key).replace(b"\r\n", b"\n")),
        InvalidMessage,
        {},
    ),
    "obs-fold": (
        send(lambda key: response(key, b"X-Fold: a", b" b")),
        InvalidMessage,
        {},
    ),
    "closed mid-response": (
        send_then_close(lambda key: response(key)[:30]),
        InvalidMessage,
        {},
    ),
}


@pytest.mark.parametrize("name", list(BAD_HANDSHAKES))
async def test_bad_handshake_is_a_typed_error_in_time(name: str) -> None:
    script, error, options = BAD_HANDSHAKES[name]
    before = other_tasks()
    async with hostile(script) as peer:
        start = time.monotonic()
        with pytest.raises(error) as info:
            await wsjet.connect(
                f"ws://127.0.0.1:{peer.port}/", open_timeout=OPEN_TIMEOUT, **options
            )
        assert isinstance(info.value, InvalidHandshake)
        assert time.monotonic() - start < OPEN_TIMEOUT
        # The client closed its socket: the hostile server sees EOF.
        await asyncio.wait_for(peer.client_closed.wait(), OPEN_TIMEOUT)
    await assert_no_leak(before)


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: bytes) -> None:
    await reader.read()  # says nothing, until the client gives up


async def dripping(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: bytes) -> None:
    for byte in response(key, b"X-Pad: " + b"p" * 1000):
        if writer.is_closing():
            return
        writer.write(bytes([byte]))
        await asyncio.sleep(UNIT)


@pytest.mark.parametrize("script", [silent, dripping], ids=["silent", "dripping"])
async def test_slow_server_times_out_at_open_timeout(script: Script) -> None:
    before = other_tasks()
    timeout = 10 * UNIT
    async with hostile(script) as peer:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            await wsjet.connect(f"ws://127.0.0.1:{peer.port}/", open_timeout=timeout)
        elapsed = time.monotonic() - start
        # uvloop's timers may fire a fraction of a millisecond early.
        assert timeout - 0.01 <= elapsed < timeout + 20 * UNIT
        await asyncio.wait_for(peer.client_closed.wait(), OPEN_TIMEOUT)
    await assert_no_leak(before)


# --- after the handshake: frames from a hostile server ---------------------------------------


def server_header(opcode: int, length: int, *, fin: bool = True, rsv1: bool = False) -> bytes:
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    if length < 126:
        return struct.pack("!BB", first, length)
    if length < 65536:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)


def zeros_bomb(size: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -9)
    segment = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return (segment * (size >> 20))[:-4]


BOMB = zeros_bomb(256 << 20)
DEFLATE = b"Sec-WebSocket-Extensions: permessage-deflate"

BAD_FRAMES: dict[str, tuple[bytes, bytes, int]] = {
    # name: (extra response header, frames after the 101, close code the client sends)
    "length with MSB set": (b"", struct.pack("!BBQ", 0x82, 127, (1 << 63) | 3), 1002),
    "length 2**63-1": (b"", struct.pack("!BBQ", 0x82, 127, (1 << 63) - 1), 1009),
    "length 2**53": (b"", struct.pack("!BBQ", 0x82, 127, 1 << 53), 1009),
    "length max_size+1": (b"", server_header(0x2, (1 << 20) + 1), 1009),
    "length 2**63-1 compressed": (
        DEFLATE,
        struct.pack("!BBQ", 0xC2, 127, (1 << 63) - 1),
        1009,
    ),
    "non-minimal length": (b"", struct.pack("!BBH", 0x82, 126, 5) + b"hello", 1002),
    "masked server frame": (b"", b"\x81\x85abcd" + bytes(5), 1002),
    "unknown opcode": (b"", b"\x83\x00", 1002),
    "RSV1 without deflate": (b"", b"\xc1\x01a", 1002),
    "fragmented ping": (b"", b"\x09\x00", 1002),
    "invalid UTF-8": (b"", b"\x81\x02\xc3\x28", 1007),
    "bomb, one frame": (DEFLATE, server_header(0x2, len(BOMB), rsv1=True) + BOMB, 1009),
    "bomb, 64 KiB fragments": (
        DEFLATE,
        b"".join(
            server_header(
                0x2 if i == 0 else 0x0,
                len(BOMB[i : i + 65536]),
                fin=i + 65536 >= len(BOMB),
                rsv1=i == 0,
            )
            + BOMB[i : i + 65536]
            for i in range(0, len(BOMB), 65536)
        ),
        1009,
    ),
    "131,073 empty fragments": (
        b"",
        server_header(0x2, 0, fin=False) + server_header(0x0, 0, fin=False) * 131_072,
        1009,
    ),
}


@pytest.mark.parametrize("name", list(BAD_FRAMES))
async def test_bad_frames_from_server_fail_the_connection(name: str) -> None:
    extra, frames, code = BAD_FRAMES[name]
    before = other_tasks()

    async def script(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: bytes
    ) -> None:
        writer.write(response(key, *([extra] if extra else [])) + frames)

    async with hostile(script) as peer:
        ws = await wsjet.connect(
            f"ws://127.0.0.1:{peer.port}/", open_timeout=OPEN_TIMEOUT, close_timeout=10 * UNIT
        )
        start = time.monotonic()
        with pytest.raises(ConnectionClosedError) as info:
            await asyncio.wait_for(ws.recv(), 100 * UNIT)
        # Promptly, not by a timeout: parsing 131,073 frames takes about 0.7 s on the
        # pure path, 2-3 s under coverage's tracer, where a quadratic parse would take
        # hours (so the bound is generous, for a loaded machine).
        assert time.monotonic() - start < 100 * UNIT
        assert info.value.sent is not None and info.value.sent.code == code
        await ws.close()
        await asyncio.wait_for(peer.client_closed.wait(), OPEN_TIMEOUT)
        # The client's close frame (masked) carries the code.
        assert len(peer.received) >= 8 and peer.received[0] == 0x88
        mask, payload = peer.received[2:6], peer.received[6:8]
        assert bytes(b ^ mask[i] for i, b in enumerate(payload)) == struct.pack("!H", code)
    await assert_no_leak(before)


# --- backpressure between two healthy wsjet peers ---------------------------------------------


async def test_bidirectional_streaming_does_not_deadlock() -> None:
    """A client streams while it reads the echoes: neither side may stop reading for good.

    Pausing reading whenever writing is paused deadlocks two such peers: each
    one's writes wait for the other to read, and neither reads.
    """

    async def echo(ws: wsjet.WebSocketServerProtocol) -> None:
        async for message in ws:
            await ws.send(message)

    count, chunk = 200, b"s" * 65536
    async with wsjet.serve(echo, "127.0.0.1", 0, compression=None, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        async with wsjet.connect(
            f"ws://127.0.0.1:{port}/", compression=None, ping_interval=None
        ) as ws:

            async def reader() -> int:
                for _ in range(count):
                    assert await ws.recv() == chunk
                return count

            task = asyncio.create_task(reader())
            try:
                async with asyncio.timeout(200 * UNIT):
                    for _ in range(count):
                        await ws.send(chunk)
                    assert await task == count
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


# --- server side: logs, error pages, Origin ---------------------------------------------------

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def handshake(*extra: bytes, first: bytes = b"GET / HTTP/1.1", key: bytes = KEY) -> bytes:
    lines = [
        first,
        b"Host: 127.0.0.1",
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Key: " + key,
        b"Sec-WebSocket-Version: 13",
        *extra,
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        answer = b""
        async with asyncio.timeout(40 * UNIT):
            while chunk := await reader.read(65536):
                answer += chunk
                if answer.startswith(b"HTTP/1.1 101") and b"\r\n\r\n" in answer:
                    break
        return answer
    finally:
        writer.transport.abort()


MARK = b"R3FL3CT"
# Requests a client can forge to put its own bytes in a log line or an error page.
FORGED = [
    handshake(b"X-Evil: \x1b[2J" + MARK),  # control character in a value
    handshake(b"Sec-WebSocket-Version: 13\x85" + MARK),  # NEL, a line break for some readers
    handshake(key=MARK + b"\x85\nINFO fake line"),
    handshake(b"Sec-WebSocket-Extensions: " + MARK + b"; a=\xe2\x80\xa8"),  # U+2028 as UTF-8
    handshake(b"Sec-WebSocket-Protocol: a b " + MARK),
    handshake(b"Origin: https://" + MARK + b".\x85evil"),
    handshake(first=b"GET /" + MARK + b" HTTP/1.0"),
    handshake(first=b"G\xc2\x85T /" + MARK + b" HTTP/1.1"),
    handshake(b"Upgrade: " + MARK + b"\x9b31m"),
    handshake(MARK + b"\x85: value"),
    handshake(b"Host: " + MARK, b"X-Long: " + MARK * 2000),
]


def printable(text: str) -> bool:
    """No C0/C1 control character and no Unicode line or paragraph separator."""
    return not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c in "\u2028\u2029" for c in text)


async def test_log_lines_cannot_be_forged(caplog: pytest.LogCaptureFixture) -> None:
    async def echo(ws: wsjet.WebSocketServerProtocol) -> None:
        async for message in ws:
            await ws.send(message)

    with caplog.at_level(logging.DEBUG, logger="wsjet"):
        async with wsjet.serve(echo, "127.0.0.1", 0, origins=["https://example.com"]) as server:
            port = server.sockets[0].getsockname()[1]
            for data in FORGED:
                await exchange(port, data)
            # A text frame and a close reason with control characters, logged at DEBUG.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(handshake(b"Origin: https://example.com"))
            await reader.readuntil(b"\r\n\r\n")
            payload = "evil\x1b[2J\n\u2028line".encode()
            writer.write(bytes([0x81, 0x80 | len(payload)]) + bytes(4) + payload)
            reason = b"\x03\xe8bye\r\nINFO forged"
            writer.write(bytes([0x88, 0x80 | len(reason)]) + bytes(4) + reason)
            await asyncio.wait_for(reader.read(), 40 * UNIT)
            writer.close()
            await writer.wait_closed()
    records = [r for r in caplog.records if r.name.startswith("wsjet")]
    assert records  # the failures above were logged
    for record in records:
        message = record.getMessage()
        assert printable(message), repr(message)


async def test_error_responses_reflect_no_request_data() -> None:
    async with wsjet.serve(None, "127.0.0.1", 0, origins=["https://example.com"]) as server:
        port = server.sockets[0].getsockname()[1]
        for data in FORGED:
            answer = await exchange(port, data)
            assert answer.startswith(b"HTTP/1.1 4"), (data[:60], answer[:60])
            assert MARK not in answer, answer
            assert b"\x85" not in answer and b"\x1b" not in answer


@pytest.mark.parametrize(
    "origin",
    [
        b"https://evil-example.com",
        b"https://example.com.evil.com",
        b"https://example.comx",
        b"http://example.com",
        b"https://example.com:443",
        b"null",
        b"",
        None,
    ],
)
async def test_origin_allow_list_rejects_lookalikes(origin: bytes | None) -> None:
    async with wsjet.serve(None, "127.0.0.1", 0, origins=["https://example.com"]) as server:
        port = server.sockets[0].getsockname()[1]
        extra = [] if origin is None else [b"Origin: " + origin]
        answer = await exchange(port, handshake(*extra))
        assert answer.startswith(b"HTTP/1.1 403 "), answer[:40]
        answer = await exchange(port, handshake(b"Origin: https://example.com"))
        assert answer.startswith(b"HTTP/1.1 101 "), answer[:40]


@pytest.mark.parametrize(
    "origin",
    [b"https://evil-example.com", b"https://example.com.evil.com", b"https://a.example.com:1"],
)
async def test_origin_pattern_matches_in_full(origin: bytes) -> None:
    pattern = re.compile(r"https://([a-z0-9-]+\.)?example\.com")
    async with wsjet.serve(None, "127.0.0.1", 0, origins=[pattern]) as server:
        port = server.sockets[0].getsockname()[1]
        answer = await exchange(port, handshake(b"Origin: " + origin))
        assert answer.startswith(b"HTTP/1.1 403 "), answer[:40]
        answer = await exchange(port, handshake(b"Origin: https://app.example.com"))
        assert answer.startswith(b"HTTP/1.1 101 "), answer[:40]


async def test_default_origin_policy_refuses_other_sites() -> None:
    """CSWSH with no ``origins`` given: another site's page gets 403, the Origin not echoed."""
    async with wsjet.serve(None, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        for origin in [b"https://" + MARK + b".example", b"http://127.0.0.1:1", b"null"]:
            answer = await exchange(port, handshake(b"Origin: " + origin))
            assert answer.startswith(b"HTTP/1.1 403 "), (origin, answer[:40])
            assert MARK not in answer
        # The Host here is "127.0.0.1" (port 80 implied): its own origin passes, and
        # so does a client without Origin.
        for extra in [[b"Origin: http://127.0.0.1"], [b"Origin: http://127.0.0.1:80"], []]:
            answer = await exchange(port, handshake(*extra))
            assert answer.startswith(b"HTTP/1.1 101 "), (extra, answer[:40])
        answer = await exchange(
            port, handshake(b"Origin: http://127.0.0.1", b"Origin: https://evil.example")
        )
        assert answer.startswith(b"HTTP/1.1 403 "), answer[:40]


NEGOTIATION = [b"Sec-WebSocket-Protocol", b"Sec-WebSocket-Extensions"]


@pytest.mark.parametrize("name", NEGOTIATION, ids=lambda n: n.decode())
async def test_negotiation_headers_are_capped_before_parsing(
    name: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Header-parser CPU: beyond 4096 bytes (all lines combined) these headers get 431,
    naming the header, without reflecting it, and without being parsed at all."""
    parsed: list[str] = []
    for function in ("parse_subprotocols", "parse_extensions"):
        original = getattr(core_handshake, function)

        def spy(headers: wsjet.Headers, original: Any = original, function: str = function) -> Any:
            parsed.append(function)
            return original(headers)

        monkeypatch.setattr(core_handshake, function, spy)
    # One token: a valid offer of any length (neither offer is accepted).
    at_limit = name + b": x-" + MARK + b"a" * (4096 - 2 - len(MARK))
    assert len(at_limit) - len(name) - 2 == 4096
    too_large = [
        [at_limit + b"a"],  # one line, one byte over
        [name + b": " + b"a" * 2049, name + b": " + b"b" * 2048],  # two lines, 4097 bytes
        [name + b": " + MARK + b"x" * (8192 - len(name) - 2 - len(MARK))] * 7,  # 64 KiB block
    ]
    expected = b"Failed to open a WebSocket connection: " + name + b" header too large.\n"
    async with wsjet.serve(None, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        answer = await exchange(port, handshake(at_limit))
        assert answer.startswith(b"HTTP/1.1 101 "), answer[:40]
        assert parsed, "an offer within the limit is parsed"
        parsed.clear()
        for lines in too_large:
            answer = await exchange(port, handshake(*lines))
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 431 "), (len(lines), answer[:60])
            assert body == expected
            assert MARK not in answer
        assert parsed == []
    # http_limits raises (or lowers) the cap; the keyword wins over the default.
    limits = HTTPLimits(max_negotiation_bytes=5000)
    async with wsjet.serve(None, "127.0.0.1", 0, http_limits=limits) as server:
        port = server.sockets[0].getsockname()[1]
        answer = await exchange(port, handshake(at_limit + b"a"))
        assert answer.startswith(b"HTTP/1.1 101 "), answer[:40]


async def test_server_wide_connection_limit_answers_503() -> None:
    """Beyond ``max_connections`` a server answers 503, not an accepted socket that hangs."""

    async def idle(ws: wsjet.WebSocketServerProtocol) -> None:
        await ws.wait_closed()

    async with wsjet.serve(idle, "127.0.0.1", 0, max_connections=2) as server:
        port = server.sockets[0].getsockname()[1]
        uri = f"ws://127.0.0.1:{port}/"
        async with wsjet.connect(uri), wsjet.connect(uri):
            answer = await exchange(port, handshake())
            assert answer.startswith(b"HTTP/1.1 503 "), answer[:40]


def test_no_secret_compared_with_equality() -> None:
    """Timing-attack guard (the class of websockets CVE-2021-33880): credentials are
    compared with ``hmac.compare_digest`` in wsjet.auth, and nowhere with ``==``."""
    import pathlib
    import re

    root = pathlib.Path(wsjet.__file__).parent
    assert "hmac.compare_digest" in (root / "auth.py").read_text()
    naive = re.compile(r"(password|passwd|secret|credential|token)\w*\s*[!=]=\s*\w", re.I)
    for path in root.rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            assert not naive.search(code), f"{path}:{number}: {line.strip()}"


# --- failing a connection whose peer keeps sending -------------------------------------------


async def flood(writer: asyncio.StreamWriter, first: bytes, junk: bytes, count: int) -> None:
    """Write ``first``, then ``junk`` ``count`` times, as fast as the peer reads."""
    writer.write(first)
    with contextlib.suppress(ConnectionError):
        for _ in range(count):
            writer.write(junk)
            await writer.drain()


@pytest.mark.parametrize("face", ["coroutine", "callback"])
async def test_failing_server_delivers_its_close_frame_to_a_flooding_peer(face: str) -> None:
    """A protocol error, then a flood the server will never parse: the 1002 arrives.

    Closing a socket with unread input makes the kernel send a reset, which may
    destroy the close frame still in flight: the server half-closes instead and
    discards the rest (RFC 6455 §7.1.7); the peer sees the close frame, then EOF.
    """

    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    if face == "coroutine":
        context: Any = wsjet.serve(echo, "127.0.0.1", 0, compression=None)
    else:
        context = wsjet.WebSocketServer("127.0.0.1", 0, compression=None)
    # A masked binary frame of 64 KiB, sent 64 times (4 MiB, more than the socket
    # buffers hold): what the server reads after failing.
    junk = struct.pack("!BBQ", 0x82, 0xFF, 65536) + bytes(4) + bytes(65536)
    reserved_opcode = bytes([0x83, 0x80]) + bytes(4)  # FIN, opcode 3, masked, empty
    async with context as server:
        port = server.sockets[0].getsockname()[1]
        for _ in range(5):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(handshake(key=base64.b64encode(bytes(16))))
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 101 ")

                flooding = asyncio.create_task(flood(writer, reserved_opcode, junk, 64))
                async with asyncio.timeout(40 * UNIT):
                    frame = await reader.readexactly(4)
                    rest = await reader.read()  # then EOF, not a reset
                flooding.cancel()
                await asyncio.gather(flooding, return_exceptions=True)
            finally:
                writer.transport.abort()
            assert frame[0] == 0x88, frame  # FIN + close
            assert struct.unpack("!H", frame[2:4]) == (1002,)
            assert len(rest) == frame[1] - 2  # the reason, then nothing
