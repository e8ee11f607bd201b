"""The callback face: WebSocketServer and Client callbacks, against the `websockets` package."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed as WsConnectionClosed
from websockets.sync.client import connect as sync_connect

import wsjet
from wsjet import awaitable
from wsjet.client import Client
from wsjet.exceptions import ConnectionClosed
from wsjet.server import WebSocketServer
from wsjet.stream.reader import WebSocketReader

from .utils import UNIT

OnConnection = Callable[[Client], Coroutine[Any, Any, None]]


class Running:
    """A started WebSocketServer and its port."""

    def __init__(self, socket: WebSocketServer, port: int) -> None:
        self.socket = socket
        self.port = port
        self.uri = f"ws://127.0.0.1:{port}/"

    def connect(self, **kwargs: Any) -> Any:
        kwargs.setdefault("compression", None)
        return ws_connect(self.uri, **kwargs)


@pytest.fixture
async def start() -> AsyncIterator[Callable[..., Coroutine[Any, Any, Running]]]:
    """Start a server running the given connection callback; stop it after the test."""
    listeners: list[WebSocketServer] = []

    async def starter(on_connection: OnConnection, **options: Any) -> Running:
        options.setdefault("compression", None)
        options.setdefault("ping_interval", None)
        listener = WebSocketServer("127.0.0.1", 0, **options)
        listener.connection(on_connection)
        server = await listener.__aenter__()
        listeners.append(listener)
        return Running(listener, server.sockets[0].getsockname()[1])

    yield starter
    for listener in listeners:
        await listener.close()


async def roundtrip(ws: ClientConnection) -> None:
    """A ping and its pong: the server has processed everything sent before."""
    await (await ws.ping())


async def closed_with(ws: ClientConnection) -> tuple[int | None, str | None]:
    await ws.wait_closed()
    return ws.close_code, ws.close_reason


# --- the client's attributes and the server's clients -----------------------------------


async def test_client_attributes(start: Any) -> None:
    seen: list[Client] = []

    async def on_connection(client: Client) -> None:
        seen.append(client)
        assert client.open
        assert "OPEN" in repr(client)

    running = await start(on_connection, subprotocols=["chat"])
    async with running.connect(subprotocols=["chat"], additional_headers={"X-Test": "1"}) as ws:
        await ws.send("sync")  # the message is dropped: no message callback
        await roundtrip(ws)
        client = seen[0]
        host, port = ws.local_address[:2]
        assert (client.addr, client.port) == (host, port)
        assert running.socket.clients == {(host, port): client}
        assert client.path == "/"
        assert client.headers["X-Test"] == "1"
        assert client.subprotocol == "chat"
        assert client.close_code is None and client.close_reason is None
    await asyncio.sleep(UNIT)
    assert client.close_code == 1000 and client.close_reason == ""
    assert running.socket.clients == {}


async def test_clients_excludes_the_new_client_during_its_callback(start: Any) -> None:
    during: list[set[tuple[str, int]]] = []
    release = asyncio.Event()

    async def on_connection(client: Client) -> None:
        during.append(set(running.socket.clients))
        assert (client.addr, client.port) not in running.socket.clients
        if len(during) == 2:
            await release.wait()

    running = await start(on_connection)
    async with running.connect() as first, running.connect() as second:
        await roundtrip(first)
        key1 = first.local_address[:2]
        key2 = second.local_address[:2]
        await asyncio.sleep(UNIT)
        assert during == [set(), {key1}]
        assert set(running.socket.clients) == {key1}  # the second callback hasn't returned
        release.set()
        await roundtrip(second)
        await asyncio.sleep(UNIT)
        assert set(running.socket.clients) == {key1, key2}


async def test_clients_dict_held_by_the_caller_never_changes(start: Any) -> None:
    async def on_connection(client: Client) -> None:
        pass

    running = await start(on_connection)
    empty = running.socket.clients
    async with running.connect() as first:
        await roundtrip(first)
        one = running.socket.clients
        assert running.socket.clients is one  # no change, no new copy
        async with running.connect() as second:
            await roundtrip(second)
            two = running.socket.clients
        await asyncio.sleep(UNIT)
        assert running.socket.clients == one
        assert running.socket.clients is not one  # the set changed in between
    await asyncio.sleep(UNIT)
    assert empty == {}
    assert len(two) == 2
    assert running.socket.clients == {}


async def test_disconnection_callback(start: Any) -> None:
    left: list[tuple[Client, bool, int | None]] = []

    async def on_connection(client: Client) -> None:
        pass

    running: Running = await start(on_connection)

    @running.socket.disconnection
    async def on_disconnection(client: Client) -> None:
        left.append((client, client in running.socket.clients.values(), client.close_code))

    async with running.connect() as ws:
        await roundtrip(ws)
        (client,) = running.socket.clients.values()
        await ws.close(4001, "bye")
    await asyncio.sleep(UNIT)
    assert left == [(client, False, 4001)]


# --- message callbacks --------------------------------------------------------------------


async def test_messages_run_one_at_a_time_in_order(start: Any) -> None:
    events: list[str] = []

    async def on_connection(client: Client) -> None:
        @client.message
        async def on_message(reader: WebSocketReader) -> None:
            message = await reader.get()
            assert isinstance(message, str)
            events.append(f"start {message}")
            if message in ("0", "3"):
                await asyncio.sleep(UNIT)  # later messages queue meanwhile
            events.append(f"end {message}")
            await client.writer.send(message)

    running = await start(on_connection)
    async with running.connect() as ws:
        for i in range(6):
            await ws.send(str(i))
        assert [await ws.recv() for _ in range(6)] == [str(i) for i in range(6)]
    assert events == [f"{what} {i}" for i in range(6) for what in ("start", "end")]


def numbered(i: int) -> bytes:
    """A 1,000-byte message of its own: the compiled core reuses such objects."""
    return i.to_bytes(4, "big") * 250


async def test_messages_kept_and_replies_waiting_are_never_overwritten(start: Any) -> None:
    # The compiled core writes a new message or frame into an old bytes object of
    # the same size when nobody else holds it (tests/core/test_recycled_bytes.py).
    # Here messages the callback keeps, and replies waiting in the transport
    # (the peer reads slower than the server writes), must stay as they were.
    kept: list[bytes] = []
    waiting: list[bool] = []
    flood = 6000  # 6 MB: more than the sockets' buffers hold

    async def on_connection(client: Client) -> None:
        @client.message
        async def on_message(reader: WebSocketReader) -> None:
            message = await reader.get()
            assert isinstance(message, bytes)
            if message != b"flood":
                kept.append(message)
                await client.writer.send(message)
                return
            for i in range(flood):
                sending = client.writer.send(numbered(i))
                # Not a Completed: writing is paused, the frame waits in the transport.
                waiting.append(not isinstance(sending, awaitable.Completed))
                await sending

    running = await start(on_connection)
    # A small receive buffer and a short queue: the peer soon stops taking data,
    # and the server's replies pile up in its transport, whatever the kernel's
    # autotuned buffers would otherwise absorb.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    sock.connect(("127.0.0.1", running.port))
    sock.setblocking(False)
    async with running.connect(max_queue=4, sock=sock) as ws:
        sent = [numbered(i) for i in range(300)]
        for message in sent:
            await ws.send(message)
        assert [await ws.recv() for _ in sent] == sent
        await ws.send(b"flood")
        await asyncio.sleep(UNIT)  # the server writes while nobody reads
        received = [await ws.recv() for _ in range(flood)]
    assert kept == sent
    assert any(waiting)  # replies did wait in the transport
    assert received == [numbered(i) for i in range(flood)]


async def test_unread_data_is_discarded(start: Any) -> None:
    readers: list[WebSocketReader] = []

    async def on_connection(client: Client) -> None:
        @client.message
        async def on_message(reader: WebSocketReader) -> None:
            readers.append(reader)
            head = await reader.readexactly(3)
            await client.writer.send(head)

    running = await start(on_connection)
    async with running.connect() as ws:
        await ws.send(b"abcdefghij")
        await ws.send(b"klmnopqrst")
        await ws.send([b"uvw", b"xyz", b"..."])  # still arriving when the callback returns
        await ws.send(b"next")
        assert [await ws.recv() for _ in range(4)] == [b"abc", b"klm", b"uvw", b"nex"]
    assert all(reader.at_eof() for reader in readers)
    assert await readers[0].read() == b""


async def test_message_arriving_during_connection_callback_waits(start: Any) -> None:
    async def on_connection(client: Client) -> None:
        await asyncio.sleep(UNIT)  # the client's first message arrives meanwhile

        @client.message
        async def on_message(reader: WebSocketReader) -> None:
            await client.writer.send(await reader.get())

    running = await start(on_connection)
    async with running.connect() as ws:
        await ws.send("early")
        assert await ws.recv() == "early"


async def test_text_and_binary_kinds(start: Any) -> None:
    async def on_connection(client: Client) -> None:
        @client.message
        async def on_message(reader: WebSocketReader) -> None:
            await client.writer.send(f"{reader.kind} {reader.is_text}")

    running = await start(on_connection)
    async with running.connect() as ws:
        await ws.send("t")
        await ws.send(b"b")
        assert await ws.recv() == "text True"
        assert await ws.recv() == "binary False"


async def test_a_stuck_callback_pauses_reading(start: Any) -> None:
    release = asyncio.Event()
    received: list[bytes] = []
    clients: list[Client] = []

    async def on_connection(client: Client) -> None:
        clients.append(client)

        @client.message
        async def on_message(reader: WebSocketReader) -> None:
            received.append(await reader.read())
            if len(received) == 1:
                await release.wait()

    running = await start(on_connection, read_limit=2**14, max_queue=4)
    async with running.connect() as ws:
        for i in range(50):
            await ws.send(bytes([i]) * 4096)
        await asyncio.sleep(UNIT)
        protocol = clients[0]._protocol
        assert protocol._paused_reading  # the queue is bounded: the socket waits
        assert len(received) == 1
        release.set()
        await ws.send(b"last")
        await roundtrip(ws)
        while len(received) < 51:
            await asyncio.sleep(UNIT / 5)
        assert received[:50] == [bytes([i]) * 4096 for i in range(50)]
        assert received[50] == b"last"
        assert not protocol._paused_reading


# --- speed: no task for a callback that finishes without waiting ---------------------------


async def count_tasks_during(action: Callable[[], Any]) -> int:
    """Run the blocking ``action`` in a thread; count the tasks the loop made meanwhile."""
    loop = asyncio.get_running_loop()
    created = 0

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        nonlocal created
        created += 1
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(factory)
    try:
        await asyncio.to_thread(action)
    finally:
        loop.set_task_factory(None)
    return created


async def test_callback_finishing_at_once_costs_no_task(start: Any) -> None:
    async def on_connection(client: Client) -> None:
        @client.message
        async def on_message(reader: WebSocketReader) -> None:
            message = await reader.get()
            if message == "suspend":
                await asyncio.sleep(0)
            await client.writer.send(message)

    running = await start(on_connection)

    def session(message: str, count: int) -> None:
        with sync_connect(running.uri, compression=None) as ws:
            for _ in range(count):
                ws.send(message)
                assert ws.recv(timeout=10) == message

    # Per connection: the engine's handshake task that then runs the
    # connection callback (and, on asyncio's loop, one for the accept).
    per_connection = await count_tasks_during(lambda: session("echo", 0))
    assert per_connection in (1, 2)
    # None per message.
    assert await count_tasks_during(lambda: session("echo", 100)) == per_connection
    # A callback that does wait is resumed by one task per message.
    assert await count_tasks_during(lambda: session("suspend", 10)) == per_connection + 10


async def test_contextvars_survive_the_handover_to_a_task(start: Any) -> None:
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def on_connection(client: Client) -> None:
        @client.message
        async def on_message(reader: WebSocketReader) -> None:
            message = await reader.get()
            assert isinstance(message, str)
            var.set(message)
            await asyncio.sleep(0)
            assert asyncio.current_task() is not None
            await client.writer.send(var.get())

    running = await start(on_connection)
    async with running.connect() as ws:
        await ws.send("a")
        await ws.send("b")
        assert [await ws.recv(), await ws.recv()] == ["a", "b"]
    assert var.get() == "unset"


class OtherCoroutine(Coroutine[Any, Any, None]):
    """A coroutine that is not a native one (as a compiled ``async def`` makes)."""

    def __init__(self, inner: Coroutine[Any, Any, None]) -> None:
        self._inner = inner

    def send(self, value: Any) -> Any:
        return self._inner.send(value)

    def throw(self, *args: Any) -> Any:
        return self._inner.throw(*args)

    def close(self) -> None:
        self._inner.close()

    def __await__(self) -> Any:
        return self


async def test_message_callback_may_return_another_kind_of_coroutine(start: Any) -> None:
    # Native coroutines are started through their am_send slot (PyIter_Send, by
    # wsjet.awaitable.send_in_context); any other by its own send(): both must
    # run alike, finishing at once or suspending, each message in a context of
    # its own.
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def body(client: Client, reader: WebSocketReader) -> None:
        message = await reader.get()
        assert isinstance(message, str)
        seen = var.get()
        var.set(message)
        if message.startswith("suspend"):
            await asyncio.sleep(0)
        await client.writer.send(f"{message} {seen}")

    async def on_connection(client: Client) -> None:
        def on_message(reader: WebSocketReader) -> OtherCoroutine:
            return OtherCoroutine(body(client, reader))

        client.message(on_message)  # type: ignore[arg-type]

    running = await start(on_connection)
    async with running.connect() as ws:
        for message in ["now 1", "suspend 1", "now 2", "suspend 2"]:
            await ws.send(message)
            assert await ws.recv() == f"{message} unset"
    assert var.get() == "unset"


async def test_get_and_send_complete_at_once_and_wait_otherwise(start: Any) -> None:
    """A message that arrived gives a Completed; a fragmented one still arriving
    gives a coroutine that waits for the rest. A send on an open connection is
    written by the call, before any await; one on a closed connection raises
    ConnectionClosed when awaited, as the coroutine of send() does."""
    kinds: list[tuple[str, bool, object]] = []
    done = asyncio.Event()
    sent_early: list[asyncio.Future[Any]] = []

    async def on_connection(client: Client) -> None:
        @client.message
        async def on_message(reader: WebSocketReader) -> None:
            get = reader.get()
            kinds.append(("get", isinstance(get, awaitable.Completed), await get))
            message = kinds[-1][2]
            if message == "unawaited":
                # Written by the call: dropping the awaitable loses nothing.
                client.writer.send("sent without await")
                return
            send = client.writer.send(f"echo {message}")
            kinds.append(("send", isinstance(send, awaitable.Completed), None))
            await send

        @client.closed
        async def on_closed(code: int, reason: str) -> None:
            late = client.writer.send("too late")
            kinds.append(("late send", isinstance(late, awaitable.Completed), None))
            sent_early.append(asyncio.ensure_future(late))
            done.set()

    running = await start(on_connection)
    async with running.connect() as ws:
        await ws.send("whole")
        assert await ws.recv() == "echo whole"
        await ws.send(["frag", "mented"])  # the callback starts at the first fragment
        assert await ws.recv() == "echo fragmented"
        await ws.send("unawaited")
        assert await ws.recv() == "sent without await"
    await asyncio.wait_for(done.wait(), 5)
    with pytest.raises(ConnectionClosed):
        await sent_early[0]
    assert kinds[:4] == [
        ("get", True, "whole"),
        ("send", True, None),
        ("get", False, "fragmented"),
        ("send", True, None),
    ]
    assert kinds[4:] == [("get", True, "unawaited"), ("late send", False, None)]


async def test_send_errors_are_raised_when_awaited(start: Any) -> None:
    outcome: list[object] = []

    async def on_connection(client: Client) -> None:
        @client.message
        async def on_message(reader: WebSocketReader) -> None:
            await reader.get()
            pending = client.writer.send("\udc80")  # a lone surrogate: not UTF-8
            outcome.append("called")
            try:
                await pending
            except UnicodeEncodeError as exc:
                outcome.append(type(exc))
            await client.writer.send("after")

    running = await start(on_connection)
    async with running.connect() as ws:
        await ws.send("go")
        assert await ws.recv() == "after"
    assert outcome == ["called", UnicodeEncodeError]


# --- other callbacks ----------------------------------------------------------------------


async def test_closed_callback(start: Any) -> None:
    closed: list[tuple[int, str]] = []

    async def on_connection(client: Client) -> None:
        @client.closed
        async def on_closed(code: int, reason: str) -> None:
            closed.append((code, reason))

    running = await start(on_connection)
    async with running.connect() as ws:
        await ws.close(4000, "see you")
    await asyncio.sleep(UNIT)
    assert closed == [(4000, "see you")]


async def test_closed_callback_after_tcp_drop(start: Any) -> None:
    closed: list[tuple[int, str]] = []

    async def on_connection(client: Client) -> None:
        @client.closed
        async def on_closed(code: int, reason: str) -> None:
            closed.append((code, reason))

    running = await start(on_connection)
    async with running.connect() as ws:
        await roundtrip(ws)
        ws.transport.abort()
    await asyncio.sleep(UNIT)
    assert closed == [(1006, "")]


async def test_ping_and_pong_callbacks(start: Any) -> None:
    pings: list[bytes] = []
    pongs: list[bytes] = []

    async def on_connection(client: Client) -> None:
        @client.ping
        async def on_ping(data: bytes) -> None:
            pings.append(data)
            await asyncio.sleep(0)  # one that suspends, too
            await client.writer.ping(b"back at you")

        @client.pong
        async def on_pong(data: bytes) -> None:
            pongs.append(data)

    running = await start(on_connection)
    async with running.connect() as ws:
        await ws.ping(b"hello")
        await asyncio.sleep(UNIT)
    assert pings == [b"hello"]
    assert pongs == [b"back at you"]


@pytest.mark.parametrize("where", ["message", "connection", "ping", "pong"])
async def test_callback_exception_logs_closes_1011_and_server_goes_on(
    start: Any, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    errors: list[Exception] = []

    async def boom(*args: Any) -> None:
        raise ValueError(f"boom in {where}")

    async def on_connection(client: Client) -> None:
        @client.error
        async def on_error(exc: Exception) -> None:
            errors.append(exc)

        @client.message
        async def on_message(reader: WebSocketReader) -> None:
            message = await reader.get()
            if message == "fail":
                await boom()
            await client.writer.send(message)

        client.ping(boom) if where == "ping" else None
        client.pong(boom) if where == "pong" else None
        if where == "connection" and not errors:
            await boom()

    running = await start(on_connection)
    with caplog.at_level(logging.ERROR, logger="wsjet.server"):
        async with running.connect() as ws:
            if where == "message":
                await ws.send("fail")
            elif where == "ping":
                await ws.ping()
            elif where == "pong":
                await ws.pong()
            assert await closed_with(ws) == (1011, "internal error")
    await asyncio.sleep(UNIT)
    assert [str(exc) for exc in errors] == [f"boom in {where}"]
    (record,) = [r for r in caplog.records if r.name == "wsjet.server"]
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert running.socket.clients == {}
    # The server keeps serving.
    async with running.connect() as ws:
        await ws.send("still there")
        assert await ws.recv() == "still there"


async def test_error_callback_failure_is_only_logged(
    start: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def on_connection(client: Client) -> None:
        @client.error
        async def on_error(exc: Exception) -> None:
            await asyncio.sleep(0)
            raise RuntimeError("error callback broke too")

        @client.message
        async def on_message(reader: WebSocketReader) -> None:
            raise ValueError("first")

    running = await start(on_connection)
    with caplog.at_level(logging.ERROR, logger="wsjet.server"):
        async with running.connect() as ws:
            await ws.send("x")
            assert (await closed_with(ws))[0] == 1011
        await asyncio.sleep(UNIT)
    messages = [r.getMessage() for r in caplog.records if r.name == "wsjet.server"]
    assert messages == ["message callback failed", "error callback failed"]


async def test_protocol_error_reaches_the_error_callback(start: Any) -> None:
    errors: list[Exception] = []

    async def on_connection(client: Client) -> None:
        @client.error
        async def on_error(exc: Exception) -> None:
            errors.append(exc)

    running = await start(on_connection)
    async with running.connect() as ws:
        await roundtrip(ws)
        ws.transport.write(b"\x81\x00")  # an unmasked frame from a client: §5.1
        with pytest.raises(WsConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1002
    await asyncio.sleep(UNIT)
    assert len(errors) == 1 and isinstance(errors[0], wsjet.ProtocolError)


async def test_connection_closed_in_a_callback_is_not_an_error(
    start: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def on_connection(client: Client) -> None:
        @client.message
        async def on_message(reader: WebSocketReader) -> None:
            await client.writer.close()
            await client.writer.send("too late")  # raises ConnectionClosed

    running = await start(on_connection)
    with caplog.at_level(logging.DEBUG, logger="wsjet.server"):
        async with running.connect() as ws:
            await ws.send("x")
            assert (await closed_with(ws))[0] == 1000
        await asyncio.sleep(UNIT)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_disconnection_and_closed_callback_failures_are_logged(
    start: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def on_connection(client: Client) -> None:
        @client.closed
        async def on_closed(code: int, reason: str) -> None:
            raise ValueError("closed")

    running: Running = await start(on_connection)

    @running.socket.disconnection
    async def on_disconnection(client: Client) -> None:
        raise ValueError("disconnection")

    with caplog.at_level(logging.ERROR, logger="wsjet.server"):
        async with running.connect() as ws:
            await roundtrip(ws)
        await asyncio.sleep(UNIT)
    messages = [r.getMessage() for r in caplog.records if r.name == "wsjet.server"]
    assert messages == ["closed callback failed", "disconnection callback failed"]


# --- the server's life cycle --------------------------------------------------------------


async def test_leaving_closes_clients_with_1001() -> None:
    socket = WebSocketServer("127.0.0.1", 0, compression=None, close_timeout=UNIT * 20)
    assert "stopped" in repr(socket) and socket.server is None and socket.sockets == ()

    async with socket as server:
        assert socket.server is server and socket.sockets
        assert "listening" in repr(socket)
        port = server.sockets[0].getsockname()[1]
        ws = await ws_connect(f"ws://127.0.0.1:{port}/")
        await roundtrip(ws)
        with pytest.raises(RuntimeError):
            await socket.start()
    assert await closed_with(ws) == (1001, "")


async def test_serve_forever_until_cancelled() -> None:
    socket = WebSocketServer("127.0.0.1", 0, compression=None)
    serving = asyncio.ensure_future(socket.serve_forever())
    while socket.server is None:
        await asyncio.sleep(UNIT / 10)
    port = socket.sockets[0].getsockname()[1]
    async with ws_connect(f"ws://127.0.0.1:{port}/") as ws:
        serving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await serving
        assert await closed_with(ws) == (1001, "")
    assert socket.server is None


async def test_sync_form_refuses_a_running_loop() -> None:
    socket = WebSocketServer("127.0.0.1", 0)
    with pytest.raises(RuntimeError), socket:
        pass
    loop_socket = WebSocketServer("127.0.0.1", 0, loop=asyncio.get_running_loop())
    with pytest.raises(RuntimeError), loop_socket:
        pass


def test_bad_arguments() -> None:
    with pytest.raises(TypeError):
        WebSocketServer("127.0.0.1", 0, create_protocol=object)
    with pytest.raises(ValueError):
        WebSocketServer("127.0.0.1", 0, read_limit=0)


def test_seed_module_paths() -> None:
    import wsjet.client
    import wsjet.server
    import wsjet.stream.buffer
    import wsjet.stream.reader
    import wsjet.stream.writer

    assert wsjet.server.WebSocketServer is wsjet.WebSocketServer
    assert wsjet.client.Client is wsjet.Client
    assert wsjet.WebSocketServer.__module__ == "wsjet.server"
    assert wsjet.Client.__module__ == "wsjet.client"
    assert issubclass(wsjet.stream.reader.WebSocketReader, wsjet.stream.buffer.Buffer)
    assert wsjet.WebSocketWriter is wsjet.stream.writer.WebSocketWriter


async def test_closing_while_reading_is_paused(start: Any) -> None:
    closed: list[int | None] = []

    async def on_connection(client: Client) -> None:
        @client.message
        async def on_message(reader: WebSocketReader) -> None:
            await reader.readexactly(10)
            while not client._flow.paused:  # the rest piles up: reading pauses
                await asyncio.sleep(UNIT / 10)
            await client.writer.close(1009, "too big for me")
            closed.append(client.close_code)
            with pytest.raises(wsjet.ConnectionClosed):
                await reader.read()  # the message was cut short

    # The close must not wait for close_timeout: the peer's close frame gets in.
    running = await start(on_connection, read_limit=2**16, max_size=None, close_timeout=60)
    async with running.connect() as ws:
        # The close may come back before the whole message is written.
        with contextlib.suppress(WsConnectionClosed):
            await ws.send(b"x" * 2**24)
        assert await closed_with(ws) == (1009, "too big for me")
    await asyncio.sleep(UNIT)
    assert closed == [1009]  # the peer's close frame came back: a clean close


async def test_shutdown_cancels_a_stuck_callback(
    start: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wsjet.server

    monkeypatch.setattr(wsjet.server, "SHUTDOWN_GRACE", 0)
    cleaned: list[str] = []

    async def on_connection(client: Client) -> None:
        @client.message
        async def on_message(reader: WebSocketReader) -> None:
            try:
                await asyncio.Event().wait()
            finally:
                cleaned.append(str(await reader.get()))

    running: Running = await start(on_connection, close_timeout=UNIT)
    async with running.connect() as ws:
        await ws.send("stuck")
        await ws.send("never delivered")
        await roundtrip(ws)
        await running.socket.close()
    assert cleaned == ["stuck"]


async def test_resumed_coroutine_is_driven_like_a_task() -> None:
    from wsjet.callbacks_client import _Resumed

    steps: list[str] = []

    async def callback() -> str:
        try:
            await asyncio.sleep(0)
            steps.append("resumed")
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            steps.append("cancelled")
            raise
        return "unreachable"

    coro = callback()
    first = coro.send(None)  # started eagerly, as the sink does
    task = asyncio.get_running_loop().create_task(_Resumed(coro, first))
    assert "callback" in repr(task)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert steps == ["resumed", "cancelled"]

    async def returns() -> int:
        await asyncio.sleep(0)
        return 42

    coro2 = returns()
    resumed = _Resumed(coro2, coro2.send(None))
    assert not resumed.cr_running and resumed.cr_code is not None
    assert await resumed == 42
    assert resumed.cr_frame is None

    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("inside")

    coro3 = fails()
    with pytest.raises(ValueError):
        await _Resumed(coro3, coro3.send(None))
    coro4 = returns()
    closing = _Resumed(coro4, coro4.send(None))
    closing.close()


# --- replies to one read go out in one write ------------------------------------------


class CountingTransport:
    """Stands in front of a server-side transport and counts the writes."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.writes: list[int] = []

    def write(self, data: bytes) -> None:
        self.writes.append(len(data))
        self.transport.write(data)

    def writelines(self, chunks: Any) -> None:
        chunks = list(chunks)
        self.writes.append(sum(len(chunk) for chunk in chunks))
        self.transport.writelines(chunks)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


MessageFactory = Callable[[Client], Callable[[WebSocketReader], Coroutine[Any, Any, None]]]


async def counted_server(
    start: Any, make_on_message: MessageFactory
) -> tuple[Running, list[CountingTransport]]:
    """A server whose connections count their writes; ``make_on_message(client)``."""
    counted: list[CountingTransport] = []

    async def on_connection(client: Client) -> None:
        protocol = client._protocol
        counter = CountingTransport(protocol.transport)
        protocol.transport = counter
        counted.append(counter)
        client.message(make_on_message(client))

    return await start(on_connection), counted


def echo(client: Client) -> Callable[[WebSocketReader], Coroutine[Any, Any, None]]:
    async def on_message(reader: WebSocketReader) -> None:
        await client.writer.send(await reader.get())

    return on_message


def send_640_kib(client: Client) -> Callable[[WebSocketReader], Coroutine[Any, Any, None]]:
    async def on_message(reader: WebSocketReader) -> None:
        await reader.get()
        for _ in range(40):
            await client.writer.send(bytes(16 * 1024))

    return on_message


async def test_replies_to_one_read_go_out_in_one_write(start: Any) -> None:
    from .stress._util import frame, open_raw, read_frame

    running, counted = await counted_server(start, echo)
    reader, writer, _ = await open_raw(running.port)
    try:
        await asyncio.wait_for(_until(lambda: counted), 10 * UNIT)
        batch = b"".join(frame(0x2, b"%03d" % i) for i in range(50))
        writer.write(batch)  # one TCP segment: one read on the server
        echoed = [await asyncio.wait_for(read_frame(reader), 10 * UNIT) for _ in range(50)]
        assert [payload for _, _, payload in echoed] == [b"%03d" % i for i in range(50)]
        # 50 replies, 5 + 3 bytes each; far fewer writes than replies.
        assert sum(counted[0].writes) == 50 * 5
        assert len(counted[0].writes) <= 5
    finally:
        writer.transport.abort()


async def test_held_back_replies_are_bounded(start: Any) -> None:
    # A callback that sends a lot without ever waiting must not pile it all up.
    from .stress._util import frame, open_raw

    running, counted = await counted_server(start, send_640_kib)
    _, writer, _ = await open_raw(running.port)
    try:
        await asyncio.wait_for(_until(lambda: counted), 10 * UNIT)
        writer.write(frame(0x2, b"go"))
        await asyncio.wait_for(
            _until(lambda: sum(counted[0].writes) >= 40 * (16 * 1024 + 4)), 10 * UNIT
        )
        # Written in pieces of about 64 KiB, not in one 640 KiB write at the end.
        assert len(counted[0].writes) >= 8
        assert max(counted[0].writes) <= 96 * 1024
    finally:
        writer.transport.abort()


async def _until(condition: Callable[[], Any]) -> None:
    while not condition():
        await asyncio.sleep(0.005)
