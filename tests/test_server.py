"""serve() and WebSocketServerProtocol on loopback sockets."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import connect as ws_connect

import wsjet
from wsjet.core.http import Headers, Request, Response

from .utils import UNIT


async def echo(ws: wsjet.WebSocketServerProtocol) -> None:
    async for message in ws:
        await ws.send(message)


def port_of(server: wsjet.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


async def raw_exchange(port: int, data: bytes, read_until_close: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        return await asyncio.wait_for(reader.read(), 5) if read_until_close else b""
    finally:
        writer.close()


HANDSHAKE = (
    b"GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


@pytest.fixture
async def echo_server() -> AsyncIterator[wsjet.Server]:
    async with wsjet.serve(echo, "127.0.0.1", 0, compression=None) as server:
        yield server


async def test_handler_with_path_and_partial() -> None:
    seen: list[tuple[str, str]] = []

    async def handler(ws: wsjet.WebSocketServerProtocol, path: str, extra: str) -> None:
        seen.append((path, extra))

    async with wsjet.serve(functools.partial(handler, extra="spam"), "127.0.0.1", 0) as server:
        async with ws_connect(f"ws://127.0.0.1:{port_of(server)}/a/b?c=d") as client:
            await client.wait_closed()
        assert client.close_code == 1000
    assert seen == [("/a/b?c=d", "spam")]


async def test_handler_exception_logged_and_closed_1011(caplog: pytest.LogCaptureFixture) -> None:
    async def handler(ws: wsjet.WebSocketServerProtocol) -> None:
        await ws.recv()
        raise RuntimeError("boom")

    async with wsjet.serve(handler, "127.0.0.1", 0) as server:
        port = port_of(server)
        with caplog.at_level(logging.ERROR, logger="wsjet"):
            async with ws_connect(f"ws://127.0.0.1:{port}/") as client:
                await client.send("go")
                await client.wait_closed()
            assert client.close_code == 1011
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1 and errors[0].exc_info is not None
        assert "boom" in str(errors[0].exc_info[1])
        # The server keeps serving.
        async with ws_connect(f"ws://127.0.0.1:{port}/") as client:
            await client.send("again")


async def test_server_attributes(echo_server: wsjet.Server) -> None:
    seen: dict[str, object] = {}

    async def handler(ws: wsjet.WebSocketServerProtocol) -> None:
        seen.update(
            state=ws.state,
            path=ws.path,
            header=ws.request_headers.get("X-Test"),
            local=ws.local_address,
            remote=ws.remote_address,
            subprotocol=ws.subprotocol,
            response=ws.response_headers.get("Sec-WebSocket-Protocol"),
        )

    async with wsjet.serve(handler, "127.0.0.1", 0, subprotocols=["b", "a"]) as server:
        port = port_of(server)
        async with ws_connect(
            f"ws://127.0.0.1:{port}/p", additional_headers={"X-Test": "1"}, subprotocols=["a", "b"]
        ) as client:
            await client.wait_closed()
    assert seen["state"] is wsjet.State.OPEN
    assert seen["path"] == "/p" and seen["header"] == "1"
    assert seen["local"][1] == port  # type: ignore[index]
    assert seen["remote"] == client.local_address
    assert seen["subprotocol"] == "b" and seen["response"] == "b"


async def test_max_size_closes_1009() -> None:
    async with wsjet.serve(echo, "127.0.0.1", 0, max_size=1000) as server:
        async with ws_connect(f"ws://127.0.0.1:{port_of(server)}/") as client:
            await client.send("x" * 1000)
            assert await client.recv() == "x" * 1000
            await client.send("x" * 1001)
            await client.wait_closed()
        assert client.close_code == 1009


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (HANDSHAKE.replace(b"Upgrade: websocket\r\n", b""), 400),
        (HANDSHAKE.replace(b"Version: 13", b"Version: 8"), 426),
        (HANDSHAKE.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"short"), 400),
        (HANDSHAKE.replace(b"GET", b"POST"), 405),
        (HANDSHAKE.replace(b"HTTP/1.1", b"HTTP/1.0"), 400),
        (b"GET /" + b"x" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 129 + b"\r\n", 431),
        (b"\x16\x03\x01\x02\x00random bytes\r\n\r\n", 400),
        (HANDSHAKE.replace(b"\r\n", b"\n"), 400),
    ],
)
async def test_bad_handshakes_get_http_errors(
    echo_server: wsjet.Server, request_bytes: bytes, status: int
) -> None:
    answer = await raw_exchange(port_of(echo_server), request_bytes)
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:80]
    if status == 426:
        assert b"Sec-WebSocket-Version: 13" in answer
    # Nothing of the request is reflected in the error page.
    assert b"xxxxxxxx" not in answer and b"random" not in answer


async def test_golden_handshake_response(echo_server: wsjet.Server) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(echo_server))
    writer.write(HANDSHAKE)
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head
    # A masked "Hello" (RFC 6455 §5.7), echoed unmasked.
    writer.write(b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58")
    assert await reader.readexactly(7) == b"\x81\x05Hello"
    # An unmasked client frame fails the connection with 1002.
    writer.write(b"\x81\x02hi")
    close = await reader.read()
    assert close[:4] == b"\x88" + bytes([len(close) - 2]) + b"\x03\xea"
    writer.close()


async def test_open_timeout_drops_silent_connections() -> None:
    async with wsjet.serve(echo, "127.0.0.1", 0, open_timeout=2 * UNIT) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
        writer.write(b"GET / HTTP/1.1\r\n")  # and then nothing
        assert await asyncio.wait_for(reader.read(), 20 * UNIT) == b""
        writer.close()
        await asyncio.sleep(UNIT)
        assert not server.connections


async def test_process_request_answers_plain_http() -> None:
    def health(ws: wsjet.WebSocketServerProtocol, request: Request) -> Response | None:
        if request.path == "/healthz":
            return Response(200, "OK", Headers([("Content-Length", "3")]), b"OK\n")
        return None

    async with wsjet.serve(echo, "127.0.0.1", 0, process_request=health) as server:
        answer = await raw_exchange(port_of(server), b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"OK\n")
        async with ws_connect(f"ws://127.0.0.1:{port_of(server)}/") as client:
            await client.send("still a websocket server")
            assert await client.recv() == "still a websocket server"


async def test_origins() -> None:
    async with wsjet.serve(echo, "127.0.0.1", 0, origins=["https://good.example"]) as server:
        uri = f"ws://127.0.0.1:{port_of(server)}/"
        async with ws_connect(uri, origin="https://good.example") as client:  # type: ignore[arg-type]
            await client.send("ok")
        with pytest.raises(websockets.InvalidStatus) as info:
            await ws_connect(uri, origin="https://good.example.evil")  # type: ignore[arg-type]
        assert info.value.response.status_code == 403


async def test_server_close_sends_1001_and_waits() -> None:
    server = await wsjet.serve(echo, "127.0.0.1", 0)
    client = await ws_connect(f"ws://127.0.0.1:{port_of(server)}/")
    await client.send("before")
    assert await client.recv() == "before"
    server.close()
    await asyncio.wait_for(server.wait_closed(), 5)
    await client.wait_closed()
    assert client.close_code == 1001
    assert not server.connections and not server.is_serving()


async def shutdown_seconds(handler: Callable[[Any], Awaitable[None]]) -> float:
    """Serve ``handler`` to one client, then shut down: the seconds it took (client saw 1001)."""
    server = await wsjet.serve(handler, "127.0.0.1", 0, close_timeout=2 * UNIT)
    client = await ws_connect(f"ws://127.0.0.1:{port_of(server)}/")
    loop = asyncio.get_running_loop()
    start = loop.time()
    server.close()
    await asyncio.wait_for(server.wait_closed(), 5)
    took = loop.time() - start
    await client.wait_closed()
    assert client.close_code == 1001
    return took


async def test_shutdown_bounded_when_handler_ignores_close() -> None:
    async def stubborn(ws: wsjet.WebSocketServerProtocol) -> None:
        await asyncio.sleep(3600)

    assert await shutdown_seconds(stubborn) < 2 * UNIT + wsjet.server.SHUTDOWN_GRACE + 1


async def test_shutdown_bounded_when_handler_ignores_cancellation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()
    cancellations = 0

    async def defiant(ws: wsjet.WebSocketServerProtocol) -> None:
        nonlocal cancellations
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                cancellations += 1  # swallowed: a bug in the handler, not in wsjet

    took = await shutdown_seconds(defiant)
    # close_timeout for the closing handshakes, the grace, close_timeout after cancelling.
    assert took < 4 * UNIT + wsjet.server.SHUTDOWN_GRACE + 1
    assert cancellations == 1
    assert "1 handler(s) ignored their cancellation" in caplog.text
    release.set()
    await asyncio.sleep(0)


async def test_keepalive_ping_timeout_closes_1011() -> None:
    # A raw peer that completes the handshake and never answers pings.
    async with wsjet.serve(
        echo, "127.0.0.1", 0, ping_interval=2 * UNIT, ping_timeout=2 * UNIT, close_timeout=2 * UNIT
    ) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
        writer.write(HANDSHAKE)
        await reader.readuntil(b"\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 40 * UNIT)
        assert data[:2] == b"\x89\x04"  # a ping with 4 random bytes came first
        assert data[6] == 0x88 and data[8:10] == b"\x03\xf3"  # then a close with 1011
        writer.close()


async def test_keepalive_waits_while_data_flows_then_closes_1011() -> None:
    # A peer that never answers pings but keeps sending messages is alive: its
    # pong may wait behind data. Once it goes quiet, ping_timeout later it's closed.
    async def sink(ws: wsjet.WebSocketServerProtocol) -> None:
        async for _ in ws:
            pass

    timeout = 4 * UNIT
    async with wsjet.serve(
        sink, "127.0.0.1", 0, ping_interval=UNIT, ping_timeout=timeout, close_timeout=2 * UNIT
    ) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
        try:
            writer.write(HANDSHAKE)
            await reader.readuntil(b"\r\n\r\n")
            loop = asyncio.get_running_loop()
            start = quiet_since = loop.time()
            while quiet_since - start < 3 * timeout:
                # A masked binary frame of 1 byte, key 0: well past one ping_timeout.
                writer.write(b"\x82\x81\x00\x00\x00\x00x")
                # Quiet from the last write on, not from the end of the sleep after
                # it: a loaded CI machine once stalled that sleep past ping_timeout.
                quiet_since = loop.time()
                await asyncio.sleep(UNIT / 2)
            data = await asyncio.wait_for(reader.read(), 40 * UNIT)
            closed_after = loop.time() - quiet_since
            assert data[:2] == b"\x89\x04"  # the unanswered ping
            assert data[6] == 0x88 and data[8:10] == b"\x03\xf3"  # then a close with 1011
            assert closed_after >= timeout / 2
        finally:
            writer.close()


async def test_keepalive_waits_while_the_application_does_not_read() -> None:
    # The handler reads nothing for a while: its queue fills and reading pauses,
    # with the peer's pong unread behind the queued messages. The peer is not at
    # fault: no 1011 (RFC 6455 §5.5.3 lets a pong answer late); the connection
    # goes on once the handler reads again.
    timeout = 2 * UNIT

    async def late_reader(ws: wsjet.WebSocketServerProtocol) -> None:
        await asyncio.sleep(10 * timeout)
        messages = [await ws.recv() for _ in range(3)]
        await ws.send(f"read {len(messages)}")
        await ws.wait_closed()

    async with wsjet.serve(
        late_reader, "127.0.0.1", 0, ping_interval=UNIT, ping_timeout=timeout, max_queue=1
    ) as server:
        async with ws_connect(f"ws://127.0.0.1:{port_of(server)}/", ping_interval=None) as ws:
            for i in range(3):
                await ws.send(f"message {i}")
            assert await asyncio.wait_for(ws.recv(), 40 * timeout) == "read 3"
        assert ws.close_code == 1000


async def test_keepalive_measures_latency() -> None:
    latencies: list[float] = []

    async def handler(ws: wsjet.WebSocketServerProtocol) -> None:
        await asyncio.sleep(5 * UNIT)
        latencies.append(ws.latency)

    async with wsjet.serve(handler, "127.0.0.1", 0, ping_interval=UNIT) as server:
        async with ws_connect(f"ws://127.0.0.1:{port_of(server)}/") as client:
            await client.wait_closed()
    assert latencies and latencies[0] > 0


async def test_write_flow_control_send_waits_for_slow_reader() -> None:
    sent = 0
    blocked = asyncio.Event()

    async def producer(ws: wsjet.WebSocketServerProtocol) -> None:
        nonlocal sent
        while True:
            try:
                await asyncio.wait_for(ws.send(b"x" * 65536), 5 * UNIT)
            except TimeoutError:
                blocked.set()
                await ws.wait_closed()
                return
            sent += 1

    async with wsjet.serve(
        producer, "127.0.0.1", 0, write_limit=65536, close_timeout=UNIT
    ) as server:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server), limit=1024)
        writer.transport.pause_reading()  # type: ignore[attr-defined]
        writer.write(HANDSHAKE)
        await asyncio.wait_for(blocked.wait(), 100 * UNIT)
        # send() blocked after the kernel and transport buffers filled: far less than
        # everything a non-blocking send would have queued in 5 units of time.
        assert sent < 400
        writer.transport.abort()  # type: ignore[attr-defined]


async def test_max_queue_pauses_reading() -> None:
    release = asyncio.Event()
    received: list[str | bytes] = []

    async def lazy(ws: wsjet.WebSocketServerProtocol) -> None:
        await release.wait()
        async for message in ws:
            received.append(message)

    async with wsjet.serve(lazy, "127.0.0.1", 0, max_queue=4, compression=None) as server:
        async with ws_connect(f"ws://127.0.0.1:{port_of(server)}/") as client:
            for i in range(200):
                await client.send(f"{i:04d}" + "y" * 10000)
            await asyncio.sleep(2 * UNIT)
            (protocol,) = server.connections
            # Reading paused once 4 messages waited; what one socket read (at most
            # 256 KiB here, ~26 messages) already held is queued too, nothing more.
            assert protocol._paused_reading
            assert 4 <= len(protocol._messages) <= 4 + 27
            release.set()
            await asyncio.sleep(4 * UNIT)
    assert [m[:4] for m in received] == [f"{i:04d}" for i in range(200)]


async def test_close_with_a_full_queue_completes_the_handshake() -> None:
    # The handler never reads; the queue fills and reading pauses. Closing must still
    # read the client's close frame instead of waiting for close_timeout (1006).
    async def closer(ws: wsjet.WebSocketServerProtocol) -> None:
        await asyncio.sleep(4 * UNIT)
        await ws.close(1000, "done")
        closed.append(ws.close_code)

    closed: list[int | None] = []
    async with wsjet.serve(closer, "127.0.0.1", 0, max_queue=2, close_timeout=60) as server:
        async with ws_connect(f"ws://127.0.0.1:{port_of(server)}/") as client:
            for _ in range(100):
                await client.send("x" * 10000)
            await asyncio.wait_for(client.wait_closed(), 30 * UNIT)
        assert client.close_code == 1000
    assert closed == [1000]
