"""The callback face's handle on one peer: :class:`Client` (``wsjet.client.Client``).

A :class:`Client` is the sink of its connection's engine
(:class:`~wsjet.protocol.WebSocketCommonProtocol`); the delivery of messages
to the ``@client.message`` callback is its compiled base,
:class:`~wsjet.delivery.MessageDelivery`.

Every callback is started *eagerly*, by driving its coroutine at once. When it
finishes without waiting (the usual case for a message that arrived whole), no
Task is ever made. Only when it awaits something not ready does a Task take
the suspended coroutine over (:class:`_Resumed`); Python 3.12 calls this an
eager task. Until that first suspension the callback runs
outside any task: :func:`asyncio.current_task` is ``None`` there, so
:func:`asyncio.timeout` or a :class:`asyncio.TaskGroup` must come after a
first real ``await`` (or use :func:`asyncio.wait_for`).
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import itertools
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

from .core.frames import Close, CloseCode
from .core.http import Headers
from .delivery import MessageCallback, MessageDelivery
from .engine import _PAUSED_BY_SINK
from .exceptions import ConnectionClosed
from .protocol import WebSocketCommonProtocol, _dict_and_weakref_slots
from .stream.reader import DEFAULT_READ_LIMIT, FlowControl, WebSocketReader
from .stream.writer import WebSocketWriter

__all__ = ["Client"]

ClosedCallback = Callable[[int, str], Coroutine[Any, Any, None]]
DataCallback = Callable[[bytes], Coroutine[Any, Any, None]]
ErrorCallback = Callable[[Exception], Coroutine[Any, Any, None]]

_M = TypeVar("_M", bound=MessageCallback)
_C = TypeVar("_C", bound=ClosedCallback)
_D = TypeVar("_D", bound=DataCallback)
_E = TypeVar("_E", bound=ErrorCallback)

_NOTHING: Any = object()


#: Numbers given to Unix socket peers as their ``port``.
_UNIX_PEERS = itertools.count(1)


class _Resumed(Coroutine[Any, Any, Any]):
    """A coroutine started eagerly, handed to a Task once it suspended.

    The Task drives this object like a coroutine: the first ``send`` yields
    again what the coroutine yielded when it suspended (the future it waits
    for), so the Task waits for it too; later calls go straight through.
    """

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self._coro = coro
        self._first = first

    def send(self, value: Any) -> Any:
        first = self._first
        if first is not _NOTHING:
            self._first = _NOTHING
            return first
        return self._coro.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self._first = _NOTHING
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)  # pragma: no cover - legacy signature

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, Any, Any]:
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                yielded = self.send(value) if error is None else self.throw(error)
            except StopIteration as stop:
                return stop.value
            try:
                value, error = (yield yielded), None
            except BaseException as exc:  # thrown in by the Task: pass it on
                error = exc

    # Task reprs and stacks show the callback, not this wrapper.
    @property
    def cr_frame(self) -> Any:
        return getattr(self._coro, "cr_frame", None)

    @property
    def cr_code(self) -> Any:
        return getattr(self._coro, "cr_code", None)

    @property
    def cr_running(self) -> bool:
        return bool(getattr(self._coro, "cr_running", False))


class Client(MessageDelivery):
    """One connected peer, as the callback face sees it.

    :class:`~wsjet.server.WebSocketServer` makes one per connection and
    passes it to the ``@socket.connection`` callback, which usually registers
    the client's own callbacks with the decorators below. Registering a
    callback again replaces it.

    Callbacks are ``async`` functions. One that raises is logged at ERROR
    (with its traceback) on the connection's logger (``wsjet.server``), the
    ``@client.error`` callback is told, and the connection is closed with
    1011; the server keeps serving. A :exc:`~wsjet.exceptions.ConnectionClosed`
    escaping a callback (a send that raced with a close) only ends that
    callback: it is logged at DEBUG.

    Attributes:
        addr: the peer's IP address.
        port: the peer's port.
        writer: sends messages to the peer.
    """

    # In slots, not an instance dict (see WebSocketCommonProtocol.__slots__);
    # an instance dict stays for application attributes.
    __slots__ = (
        *_dict_and_weakref_slots(MessageDelivery),
        "addr",
        "port",
        "writer",
        "_protocol",
        "_on_closed",
        "_on_error",
        "_on_ping",
        "_on_pong",
        "_tasks",
        "_leave",
        "_lost_waiter",
    )

    def __init__(
        self, protocol: WebSocketCommonProtocol, *, read_limit: int = DEFAULT_READ_LIMIT
    ) -> None:
        self._protocol = protocol
        self._loop = protocol.loop
        self.addr: str = ""
        self.port: int = 0
        self.writer = WebSocketWriter(protocol)
        self._on_message: MessageCallback | None = None
        self._on_closed: ClosedCallback | None = None
        self._on_ping: DataCallback | None = None
        self._on_pong: DataCallback | None = None
        self._on_error: ErrorCallback | None = None
        self._flow = FlowControl(self._pause, self._resume, read_limit, protocol.max_queue)
        # The message still arriving, if any, and the messages waiting for the
        # message callback. Delivery is held until ``_start`` (after on_connection).
        self._receiving: WebSocketReader | None = None
        # Made on first use (an empty deque takes 760 bytes per idle connection).
        self._queue: collections.deque[WebSocketReader] | None = None
        self._busy = True
        self._current: WebSocketReader | None = None
        self._task: asyncio.Task[Any] | None = None
        self._tasks: dict[asyncio.Task[Any], str] = {}
        # _failed: a callback failed, queued messages are dropped too;
        # _dropping: new messages are dropped (failed, or closing).
        self._failed = False
        self._dropping = False
        #: Called when the client leaves (close frame or connection lost).
        self._leave: Callable[[Client], None] | None = None
        # What _run waits on until the connection is lost (made by _run).
        self._lost_waiter: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"<Client {self.addr}:{self.port} {self._protocol.state.name}>"

    # --- attributes -------------------------------------------------------------------

    @property
    def path(self) -> str:
        """The request path of the opening handshake, e.g. ``/chat?room=1``."""
        return self._protocol.path

    @property
    def headers(self) -> Headers:
        """The HTTP headers of the opening handshake request."""
        return self._protocol.request_headers

    @property
    def subprotocol(self) -> str | None:
        """The negotiated subprotocol, if any."""
        return self._protocol.subprotocol

    @property
    def open(self) -> bool:
        """Whether the connection is OPEN."""
        return self._protocol.open

    @property
    def close_code(self) -> int | None:
        """The close code received (1006 when none came); ``None`` until closed."""
        return self._protocol.close_code

    @property
    def close_reason(self) -> str | None:
        """The close reason received; ``None`` until closed."""
        return self._protocol.close_reason

    @property
    def subscriptions(self) -> frozenset[str]:
        """The topics this client is subscribed to."""
        return self._protocol.subscriptions

    # --- topics -----------------------------------------------------------------------

    def subscribe(self, topic: str) -> None:
        """Receive what the server publishes to ``topic`` (``socket.publish(topic, message)``).

        Subscribing twice is the same as once; subscriptions end when the
        client disconnects.

        Raises:
            ConnectionClosed: the connection is already closed.
        """
        self._protocol.subscribe(topic)

    def unsubscribe(self, topic: str) -> None:
        """Stop receiving what is published to ``topic``; nothing if not subscribed."""
        self._protocol.unsubscribe(topic)

    # --- decorators -------------------------------------------------------------------

    def message(self, callback: _M) -> _M:
        """Register ``async def on_message(reader)``, called once per message, in order.

        The reader (:class:`~wsjet.stream.reader.WebSocketReader`) streams
        the message, which may still be arriving. The next message's callback
        starts after this one returns; what it left unread is discarded.
        """
        self._on_message = callback
        return callback

    def closed(self, callback: _C) -> _C:
        """Register ``async def on_closed(code, reason)``, called once the connection closed.

        ``code`` and ``reason`` are those the peer sent (1006 and ``""`` when
        TCP closed without a close frame). It runs after every other callback
        of the client returned.
        """
        self._on_closed = callback
        return callback

    def ping(self, callback: _D) -> _D:
        """Register ``async def on_ping(data)``, called for each ping received.

        The pong is already on its way. It runs as soon as the ping arrives,
        alongside message callbacks.
        """
        self._on_ping = callback
        return callback

    def pong(self, callback: _D) -> _D:
        """Register ``async def on_pong(data)``, called for each pong received."""
        self._on_pong = callback
        return callback

    def error(self, callback: _E) -> _E:
        """Register ``async def on_error(exc)``, told about errors on this connection.

        ``exc`` is the exception another callback raised (the connection is
        then closing with 1011), or the
        :class:`~wsjet.exceptions.ProtocolError` the peer made (told once the
        connection closed).
        """
        self._on_error = callback
        return callback

    def _resume_in_task(
        self, coro: Coroutine[Any, Any, Any], yielded: Any, context: contextvars.Context
    ) -> asyncio.Task[Any]:
        """Hand a callback that suspended to a Task, which finishes it."""
        return self._loop.create_task(_Resumed(coro, yielded), context=context)

    def _pause(self) -> None:
        self._protocol._pause_reading(_PAUSED_BY_SINK)

    def _resume(self) -> None:
        self._protocol._resume_reading(_PAUSED_BY_SINK)

    # --- other callbacks --------------------------------------------------------------

    def _spawn(
        self, callback: Callable[[Any], Coroutine[Any, Any, None]], arg: Any, what: str
    ) -> None:
        """Run a callback eagerly; a Task finishes it if it suspends."""
        context = contextvars.copy_context()
        try:
            coro = callback(arg)
            yielded = context.run(coro.send, None)
        except StopIteration:
            return
        except Exception as exc:
            self._callback_failed(exc, what)
            return
        task = self._resume_in_task(coro, yielded, context)
        self._tasks[task] = what
        task.add_done_callback(self._spawned_done)

    def _spawned_done(self, task: asyncio.Task[Any]) -> None:
        what = self._tasks.pop(task)
        if not task.cancelled():
            exc = task.exception()
            if isinstance(exc, Exception):
                self._callback_failed(exc, what)

    def _callback_failed(self, exc: Exception, what: str) -> None:
        """Log a callback's exception, tell the error callback, close with 1011."""
        protocol = self._protocol
        if isinstance(exc, ConnectionClosed):
            protocol.logger.debug("%s callback ended: %s", what, exc)
            return
        protocol.logger.error("%s callback failed", what, exc_info=exc)
        if what == "error":
            return  # an error callback's own failure is not reported to it
        self._failed = self._dropping = True
        while self._queue:
            self._dequeue().discard()
        connection = protocol.connection
        if protocol.open and connection is not None and connection.close_sent is None:
            connection.send_close(CloseCode.INTERNAL_ERROR, "internal error")
            protocol._flush()
        if self._on_error is not None:
            self._spawn(self._on_error, exc, "error")

    # --- hooks called by the protocol -----------------------------------------------------

    def _set_peer(self, peer: Any) -> None:
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.addr, self.port = str(peer[0]), int(peer[1])
        else:
            # A Unix socket peer has no address of its own: number it, so that
            # server.clients keys stay distinct.
            self.addr, self.port = str(peer or "unix"), next(_UNIX_PEERS)

    def _ping_received(self, data: bytes) -> None:
        if self._on_ping is not None:
            self._spawn(self._on_ping, data, "ping")

    def _pong_received(self, data: bytes) -> None:
        if self._on_pong is not None:
            self._spawn(self._on_pong, data, "pong")

    def _closing(self) -> None:
        """The closing handshake started: let the peer's close frame in.

        Messages complete already still reach the message callback; one still
        arriving is cut short (its reader raises ConnectionClosed once its
        buffered data is read); new ones are dropped.
        """
        self._dropping = True
        reader, self._receiving = self._receiving, None
        if reader is not None:
            reader.set_exception(self._protocol._closed_error())
        self._flow.release()

    def _close_frame_received(self, close: Close) -> None:
        if self._leave is not None:
            self._leave(self)

    def _connection_lost(self) -> None:
        waiter = self._lost_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        reader, self._receiving = self._receiving, None
        if reader is not None:
            # A message cut short must not look complete to its callback.
            reader.set_exception(self._protocol._closed_error())
        if self._leave is not None:
            self._leave(self)

    async def _run(self) -> None:
        """Wait until the connection closed and every callback returned; report the end."""
        protocol = self._protocol
        try:
            if not protocol._lost:
                # A future of our own rather than protocol.wait_closed(): this
                # task's cancellation must not reach the future others wait on,
                # and asyncio.shield() would cost a future and two callbacks more
                # per connection.
                self._lost_waiter = self._loop.create_future()
                await self._lost_waiter
            while True:
                pending = set(self._tasks)
                if self._task is not None:
                    pending.add(self._task)
                if not pending:
                    break
                await asyncio.wait(pending)
        except asyncio.CancelledError:
            # The server gave up waiting (shutdown): stop the callbacks too.
            self._failed = self._dropping = True
            tasks = [task for task in (self._task, *self._tasks) if task is not None]
            for task in tasks:
                task.cancel()
            if tasks:
                # Let them clean up, but a callback ignoring the cancellation
                # must not hold the shutdown forever.
                await asyncio.wait(tasks, timeout=protocol.close_timeout)
            raise
        connection = protocol.connection
        if connection is not None and connection.failure is not None and self._on_error:
            await self._call(self._on_error(connection.failure), "error")
        if self._on_closed is not None:
            code = protocol.close_code
            reason = protocol.close_reason
            await self._call(
                self._on_closed(CloseCode.ABNORMAL_CLOSURE if code is None else code, reason or ""),
                "closed",
            )

    def _release(self) -> None:
        """Forget the callbacks: the connection is over and every callback returned.

        A callback is usually a closure over this client, and the flow control
        calls this client's methods: reference cycles that would keep the
        connection's objects until the next full garbage collection.
        """
        self._on_message = self._on_closed = None
        self._on_ping = self._on_pong = None
        self._on_error = None
        self._leave = None
        self._flow.detach()

    async def _call(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        """Await a callback of a closed connection: failures can only be logged."""
        try:
            await coro
        except Exception:
            self._protocol.logger.error("%s callback failed", what, exc_info=True)


Client.__module__ = "wsjet.client"
