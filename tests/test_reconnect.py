"""Reconnecting: ``async for ws in connect(uri)`` and reconnecting() with its outbound buffer.

The server really goes away: it is closed in process, or it runs in a
subprocess that is killed (SIGKILL) and started again on the same port.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import wsjet
from wsjet.core.http import Headers, Request, Response
from wsjet.proxy import ProxyError
from wsjet.reconnect import is_transient

from .utils import UNIT

FAST = wsjet.Backoff(initial=UNIT, maximum=4 * UNIT)
#: Guard against hangs only; nothing is asserted about time.
PATIENCE = 200 * UNIT


def free_port() -> int:
    """A port nobody listens on (it was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def until(predicate: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(UNIT / 5)

    await asyncio.wait_for(poll(), PATIENCE)


async def echo(ws: wsjet.WebSocketServerProtocol) -> None:
    async for message in ws:
        await ws.send(message)


SERVER_SCRIPT = """
import asyncio, sys
import wsjet

async def echo(ws):
    async for message in ws:
        await ws.send(message)

async def main():
    async with wsjet.serve(echo, "127.0.0.1", int(sys.argv[1])) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.get_running_loop().create_future()

asyncio.run(main())
"""


class ServerProcess:
    """An echo server in a subprocess, killed and restarted on the same port."""

    def __init__(self) -> None:
        self.port = 0
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", SERVER_SCRIPT, str(self.port), stdout=asyncio.subprocess.PIPE
        )
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), PATIENCE)
        self.port = int(line)

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


@pytest.fixture
async def server_process() -> AsyncIterator[ServerProcess]:
    server = ServerProcess()
    await server.start()
    try:
        yield server
    finally:
        await server.kill()


# --- the async for iterator --------------------------------------------------------------


async def test_iterator_resumes_after_server_restart() -> None:
    server = await wsjet.serve(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    uri = f"ws://127.0.0.1:{port}/"
    rounds = 0
    restart: asyncio.Task[wsjet.Server] | None = None

    async def restart_later() -> wsjet.Server:
        await asyncio.sleep(3 * UNIT)  # the client retries meanwhile (connection refused)
        return await wsjet.serve(echo, "127.0.0.1", port)

    async def run() -> None:
        nonlocal rounds, restart
        async for ws in wsjet.connect(uri, backoff=FAST):
            rounds += 1
            await ws.send(f"round {rounds}")
            assert await ws.recv() == f"round {rounds}"
            if rounds == 1:
                server.close()  # the server goes away: 1001 for everyone
                await server.wait_closed()
                restart = asyncio.create_task(restart_later())
                with pytest.raises(wsjet.ConnectionClosed):
                    await ws.recv()
                continue
            await ws.close()
            break

    await asyncio.wait_for(run(), PATIENCE)
    assert rounds == 2
    assert restart is not None
    new_server = await restart
    new_server.close()
    await new_server.wait_closed()


async def test_iterator_survives_a_killed_server(server_process: ServerProcess) -> None:
    uri = f"ws://127.0.0.1:{server_process.port}/"
    seen: list[str | bytes] = []

    async def run() -> None:
        async for ws in wsjet.connect(uri, backoff=FAST):
            await ws.send(f"hello {len(seen)}")
            seen.append(await ws.recv())
            if len(seen) == 1:
                await server_process.kill()  # no closing handshake: 1006
                with pytest.raises(wsjet.ConnectionClosedError) as info:
                    await ws.recv()
                assert info.value.code == 1006
                await server_process.start()
                continue
            await ws.close()
            break

    await asyncio.wait_for(run(), PATIENCE)
    assert seen == ["hello 0", "hello 1"]


async def test_iterator_waits_for_a_server_that_is_not_up_yet() -> None:
    port = free_port()
    holder: list[wsjet.Server] = []

    async def start_later() -> None:
        await asyncio.sleep(4 * UNIT)
        holder.append(await wsjet.serve(echo, "127.0.0.1", port))

    starter = asyncio.create_task(start_later())
    try:

        async def first() -> str | bytes:
            async for ws in wsjet.connect(f"ws://127.0.0.1:{port}/", backoff=FAST):
                await ws.send("finally")
                message = await ws.recv()
                await ws.close()
                return message
            raise AssertionError("unreachable")

        assert await asyncio.wait_for(first(), PATIENCE) == "finally"
    finally:
        await starter
        for server in holder:
            server.close()
            await server.wait_closed()


def status_server(statuses: list[int]) -> tuple[Callable[..., Response | None], list[int]]:
    """A process_request answering the given statuses in turn, then upgrading."""
    answered: list[int] = []

    def process_request(ws: wsjet.WebSocketServerProtocol, request: Request) -> Response | None:
        if len(answered) < len(statuses):
            status = statuses[len(answered)]
            answered.append(status)
            return Response(status, "Nope", Headers([("Content-Length", "0")]))
        answered.append(101)
        return None

    return process_request, answered


async def test_iterator_retries_5xx_and_stops_on_4xx() -> None:
    hook, answered = status_server([503, 500])
    async with wsjet.serve(echo, "127.0.0.1", 0, process_request=hook) as server:
        uri = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"

        async def first() -> None:
            async for ws in wsjet.connect(uri, backoff=FAST):
                await ws.close()
                return

        await asyncio.wait_for(first(), PATIENCE)
        assert answered == [503, 500, 101]

    for status in (400, 401, 403, 404, 429):
        hook, answered = status_server([status])
        async with wsjet.serve(echo, "127.0.0.1", 0, process_request=hook) as server:
            uri = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
            with pytest.raises(wsjet.InvalidStatus) as info:
                async for _ in wsjet.connect(uri, backoff=FAST):
                    raise AssertionError("never connected")
            assert info.value.status_code == status
            assert answered == [status]  # asked once: not retried


async def test_iterator_stops_on_an_invalid_handshake() -> None:
    attempts = 0

    async def bad_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal attempts
        attempts += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: d3Jvbmc=\r\n\r\n"
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(bad_server, "127.0.0.1", 0)
    async with server:
        uri = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        with pytest.raises(wsjet.InvalidHeader):
            async for _ in wsjet.connect(uri, backoff=FAST):
                raise AssertionError("never connected")
    assert attempts == 1
    with pytest.raises(wsjet.InvalidURI):
        wsjet.connect("wss://")


async def test_server_dropping_during_handshake_is_retried() -> None:
    attempts = 0
    server_holder: list[wsjet.Server] = []

    async def flaky(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal attempts
        attempts += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.transport.abort()  # gone before answering

    server = await asyncio.start_server(flaky, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    uri = f"ws://127.0.0.1:{port}/"

    async def swap_after_two_failures() -> None:
        await until(lambda: attempts >= 2)
        server.close()
        await server.wait_closed()
        server_holder.append(await wsjet.serve(echo, "127.0.0.1", port))

    swapper = asyncio.create_task(swap_after_two_failures())
    try:

        async def first() -> None:
            async for ws in wsjet.connect(uri, backoff=FAST):
                await ws.send("made it")
                assert await ws.recv() == "made it"
                await ws.close()
                return

        await asyncio.wait_for(first(), PATIENCE)
    finally:
        await swapper
        for ws_server in server_holder:
            ws_server.close()
            await ws_server.wait_closed()
    assert attempts >= 2


def test_is_transient() -> None:
    def status(code: int) -> wsjet.InvalidStatus:
        return wsjet.InvalidStatus(Response(code, "", Headers()))

    eof = wsjet.InvalidMessage("connection closed during the opening handshake")
    eof.__cause__ = EOFError()
    transient: list[BaseException] = [
        ConnectionRefusedError(),
        ConnectionResetError(),
        socket.gaierror(),
        TimeoutError(),
        EOFError(),
        ssl.SSLEOFError(),
        status(500),
        status(503),
        eof,
        ProxyError("bad gateway", Response(502, "", Headers())),
        ProxyError("socks: host unreachable", transient=True),
    ]
    fatal: list[BaseException] = [
        status(400),
        status(401),
        status(404),
        status(302),
        wsjet.InvalidMessage("garbage"),
        wsjet.InvalidHeader("Sec-WebSocket-Accept", "x"),
        wsjet.InvalidURI("x", "bad"),
        wsjet.TooManyRedirects(Response(302, "", Headers()), "loop"),
        ssl.SSLCertVerificationError(),
        ssl.SSLError(),
        ProxyError("auth", Response(407, "", Headers())),
        wsjet.InvalidProxy("ftp://x", "bad scheme"),
        ImportError(),
        ValueError(),
    ]
    assert [is_transient(exc) for exc in transient] == [True] * len(transient)
    assert [is_transient(exc) for exc in fatal] == [False] * len(fatal)


def test_backoff_delays() -> None:
    exact = wsjet.Backoff(initial=1, factor=2, maximum=5, jitter=0).delays()
    assert [next(exact) for _ in range(5)] == [1, 2, 4, 5, 5]
    jittered = wsjet.Backoff(initial=1, factor=2, maximum=5, jitter=0.5).delays()
    for ceiling in [1, 2, 4, 5, 5, 5]:
        assert ceiling / 2 <= next(jittered) <= ceiling
    for bad in [{"factor": 0.5}, {"jitter": 2}, {"initial": -1}]:
        with pytest.raises(ValueError):
            wsjet.Backoff(**bad)


# --- reconnecting(): the outbound buffer -------------------------------------------------


async def test_buffered_messages_arrive_in_order_after_restart(
    server_process: ServerProcess,
) -> None:
    uri = f"ws://127.0.0.1:{server_process.port}/"
    connects = 0

    async def resubscribe(ws: wsjet.WebSocketClientProtocol) -> None:
        nonlocal connects
        connects += 1
        await ws.send(f"subscribe #{connects}")

    async with wsjet.reconnecting(
        uri, buffer_size=100, on_connect=resubscribe, backoff=FAST
    ) as client:
        await client.send("m0")  # maybe before the first connection: buffered, then flushed
        assert await client.recv() == "subscribe #1"
        assert await client.recv() == "m0"
        for i in range(1, 5):
            await client.send(f"m{i}")
        assert [await client.recv() for _ in range(4)] == ["m1", "m2", "m3", "m4"]

        await server_process.kill()
        await until(lambda: not client.connected)
        for i in range(5, 10):
            await client.send(f"m{i}")  # the server is down: kept in order
        assert client.pending == 5 and client.dropped == 0
        await server_process.start()  # same port

        received = [await asyncio.wait_for(client.recv(), PATIENCE) for _ in range(6)]
        assert received == ["subscribe #2", "m5", "m6", "m7", "m8", "m9"]
        assert client.pending == 0 and client.connected
        await client.send("live again")
        assert await client.recv() == "live again"


async def overflow_client(policy: Any, size: int) -> tuple[wsjet.ReconnectingClient, int]:
    port = free_port()
    client = wsjet.reconnecting(
        f"ws://127.0.0.1:{port}/", buffer_size=size, overflow=policy, backoff=FAST
    )
    client.start()
    return client, port


@pytest.mark.parametrize(
    ("policy", "kept"),
    [("drop_oldest", ["m2", "m3", "m4"]), ("drop_newest", ["m0", "m1", "m2"])],
)
async def test_overflow_drop_policies(policy: str, kept: list[str]) -> None:
    client, port = await overflow_client(policy, 3)
    received: list[str | bytes] = []

    async def record(ws: wsjet.WebSocketServerProtocol) -> None:
        async for message in ws:
            received.append(message)

    try:
        for i in range(5):
            await client.send(f"m{i}")
        assert client.pending == 3 and client.dropped == 2
        async with wsjet.serve(record, "127.0.0.1", port):
            await asyncio.wait_for(client.wait_connected(), PATIENCE)
            await client.send("after")
            await until(lambda: len(received) == 4)
            await client.close()
    finally:
        await client.close()
    assert received == [*kept, "after"]


async def test_overflow_error_and_zero_buffer() -> None:
    client, _ = await overflow_client("error", 2)
    try:
        await client.send("a")
        await client.send(bytearray(b"b"))
        with pytest.raises(wsjet.BufferFull):
            await client.send("c")
        assert client.pending == 2 and client.dropped == 0
    finally:
        await client.close()
    with pytest.raises(wsjet.InvalidState):
        await client.send("after close")

    client, _ = await overflow_client("drop_oldest", 0)
    try:
        await client.send("nowhere to keep it")
        assert client.pending == 0 and client.dropped == 1
    finally:
        await client.close()
    with pytest.raises(ValueError):
        wsjet.reconnecting("ws://h/", overflow="block")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        wsjet.reconnecting("ws://h/", buffer_size=-1)
    with pytest.raises(TypeError):
        await wsjet.reconnecting("ws://h/").send(42)  # type: ignore[arg-type]


async def test_fatal_error_stops_the_client() -> None:
    hook, answered = status_server([403])
    async with wsjet.serve(echo, "127.0.0.1", 0, process_request=hook) as server:
        uri = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        client = wsjet.reconnecting(uri, backoff=FAST)
        with pytest.raises(wsjet.InvalidStatus):
            async with client:
                await asyncio.wait_for(client.recv(), PATIENCE)
        assert isinstance(client.failure, wsjet.InvalidStatus)
        with pytest.raises(wsjet.InvalidStatus):
            await client.send("x")
        # Leaving the block without touching the client still reports the failure.
        hook2, _ = status_server([401])
    async with wsjet.serve(echo, "127.0.0.1", 0, process_request=hook2) as server:
        uri = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        with pytest.raises(wsjet.InvalidStatus) as info:
            async with wsjet.reconnecting(uri, backoff=FAST) as client:
                await until(lambda: client.failure is not None)
        assert info.value.status_code == 401
    assert answered == [403]


async def test_on_connect_failure_stops_the_client() -> None:
    async def broken(ws: wsjet.WebSocketClientProtocol) -> None:
        raise RuntimeError("cannot resubscribe")

    async with wsjet.serve(echo, "127.0.0.1", 0) as server:
        uri = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        with pytest.raises(RuntimeError, match="resubscribe"):
            async with wsjet.reconnecting(uri, on_connect=broken, backoff=FAST) as client:
                await asyncio.wait_for(client.wait_connected(), PATIENCE)
        await until(lambda: not server.connections)


async def test_iterating_messages_until_close_and_recv_across_reconnects() -> None:
    server = await wsjet.serve(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    servers = [server]
    messages: list[str | bytes] = []
    try:
        async with wsjet.reconnecting(f"ws://127.0.0.1:{port}/", backoff=FAST) as client:
            first = await asyncio.wait_for(client.wait_connected(), PATIENCE)
            assert client.connection is first

            async def consume() -> None:
                async for message in client:
                    messages.append(message)

            consumer = asyncio.create_task(consume())
            await client.send("one")
            await until(lambda: messages == ["one"])
            server.close()  # recv() waits through the reconnection
            await server.wait_closed()
            servers.append(await wsjet.serve(echo, "127.0.0.1", port))
            await client.send("two")  # buffered or sent, depending on timing: never lost
            await until(lambda: messages == ["one", "two"])
            assert client.connection is not first
            await client.close()
            await asyncio.wait_for(consumer, PATIENCE)  # the loop ended at close()
    finally:
        for ws_server in servers:
            ws_server.close()
            await ws_server.wait_closed()
    assert messages == ["one", "two"]
