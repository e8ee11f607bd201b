"""The asyncio engine: :class:`WebSocketCommonProtocol` drives a Sans-I/O connection.

One instance per connection, for both roles and both public faces. It owns
everything that needs a clock or a socket: the open / close / keepalive timers,
read flow control (``max_queue``), write flow control (``write_limit``), and
waking the coroutines that wait on the connection.

Incoming message pieces go to a *sink*. The coroutine face's sink assembles
messages for :meth:`recv`; the callback face (:mod:`wsjet.client`) installs its
own sink that streams pieces into a :class:`~wsjet.stream.reader.WebSocketReader`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, cast

from .core import defaults
from .core.connection import Connection, MessageCodec, Side, State
from .core.events import DataReceived
from .core.frames import Close, CloseCode
from .core.http import Headers
from .engine import _PAUSED_BY_HANDSHAKE, Data, Engine
from .exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
)

if TYPE_CHECKING:
    from .pubsub import Topics

__all__ = ["Data", "WebSocketCommonProtocol"]

# The default loggers, looked up once (getLogger takes a lock on every call).
_CLIENT_LOGGER: Final = logging.getLogger("wsjet.client")
_SERVER_LOGGER: Final = logging.getLogger("wsjet.server")

_OK_CODES: Final = frozenset(
    {CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY, CloseCode.NO_STATUS_RCVD}
)


def _dict_and_weakref_slots(base: type) -> tuple[str, ...]:
    """The ``__slots__`` entries giving a subclass of ``base`` an instance dict and weakrefs.

    The compiled bases (``Engine``, ``MessageDelivery``) have neither; their
    pure-Python twins have both, and Python refuses to declare them twice.
    """
    wanted = (("__dict__", base.__dictoffset__), ("__weakref__", base.__weakrefoffset__))
    return tuple(name for name, offset in wanted if not offset)


class WebSocketCommonProtocol(Engine, asyncio.BufferedProtocol):
    """A WebSocket connection, once its opening handshake is done.

    Server and client subclasses (:class:`~wsjet.server.WebSocketServerProtocol`,
    :class:`~wsjet.client.WebSocketClientProtocol`) add the opening handshake.

    Args:
        ping_interval: seconds between keepalive pings; ``None`` disables them.
        ping_timeout: seconds to wait for the pong before failing the
            connection with 1011; ``None`` waits forever.
        close_timeout: seconds to wait for the closing handshake and for TCP to
            close before dropping the connection.
        max_size: largest incoming message in bytes; ``None`` for no limit.
        max_queue: most complete messages buffered before reading pauses;
            ``None`` for no limit.
        write_limit: bytes buffered for sending above which :meth:`send`
            waits for the transport to drain. Reading goes on meanwhile, with
            pongs coalesced, or two peers streaming at each other would each
            wait for the other to read.
        max_fragments: most frames one incoming message may take (close 1009 beyond).
        compression_threshold: messages shorter than this many bytes are sent
            uncompressed even when permessage-deflate is negotiated: deflating
            a tiny message costs more CPU than the bytes it saves. Off (0) by
            default: RFC 7692 allows it, but some peers mishandle uncompressed
            messages on a compressed connection (the kosoku Autobahn runner
            errors on them), so it is an opt-in.
        logger: logger for this connection; defaults to ``wsjet.server`` or
            ``wsjet.client``.
    """

    is_client: bool = False

    # The attributes every connection sets, in slots rather than an instance
    # dict: a dict of some 40 entries took 1.5 KiB per connection and most of
    # the cost of making the protocol object. An instance dict stays, empty
    # until used, for subclasses and applications (``ws.user = ...``), and so
    # do weak references. Attributes the engine uses per message are C fields
    # of Engine (engine.pxd), not slots.
    __slots__ = (
        *_dict_and_weakref_slots(Engine),
        "ping_interval",
        "ping_timeout",
        "max_size",
        "write_limit",
        "max_fragments",
        "compression_threshold",
        "path",
        "request_headers",
        "response_headers",
        "subprotocol",
        "latency",
        "_closed",
        "_keepalive_timer",
        "_pong_timer",
        "_drain_waiters",
        "_pings",
        "_early_data",
        "_subscriptions",
    )

    def __init__(
        self,
        *,
        ping_interval: float | None = defaults.PING_INTERVAL,
        ping_timeout: float | None = defaults.PING_TIMEOUT,
        close_timeout: float = defaults.CLOSE_TIMEOUT,
        max_size: int | None = defaults.MAX_SIZE,
        max_queue: int | None = defaults.MAX_QUEUE,
        write_limit: int = defaults.WRITE_LIMIT,
        max_fragments: int = defaults.MAX_FRAGMENTS,
        compression_threshold: int = 0,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.max_size = max_size
        self.max_queue = max_queue
        self.write_limit = write_limit
        self.max_fragments = max_fragments
        self.compression_threshold = compression_threshold
        if logger is None:
            logger = _CLIENT_LOGGER if self.is_client else _SERVER_LOGGER
        self.logger = logger
        self.loop = asyncio.get_running_loop()

        self.transport: asyncio.Transport | None = None
        #: The Sans-I/O connection, once the opening handshake succeeded.
        self.connection: Connection | None = None
        #: Request path, request and response headers, negotiated subprotocol.
        self.path: str = ""
        self.request_headers = Headers()
        self.response_headers = Headers()
        self.subprotocol: str | None = None
        #: Round-trip time of the last ping, in seconds.
        self.latency = 0.0

        self._lost = False
        self._closed: asyncio.Future[None] = self.loop.create_future()
        self._close_timer: asyncio.TimerHandle | None = None
        self._keepalive_timer: asyncio.TimerHandle | None = None
        self._pong_timer: asyncio.TimerHandle | None = None
        self._last_data = 0.0  # loop.time() of the last bytes received, ...
        self._awaiting_pong = False  # ... kept while a keepalive ping waits for its pong
        self._paused_reading = 0
        self._writing_paused = False
        self._corked = False  # see Engine._process
        self._eof_written = False
        self._logged_failure = False
        # Made when a send first waits for the buffer to drain: every container an
        # idle connection holds is one more object for each garbage collection.
        self._drain_waiters: list[asyncio.Future[None]] | None = None
        self._pings: dict[bytes, tuple[asyncio.Future[float], float]] = {}
        self._fragment_lock: asyncio.Lock | None = None  # made by the first fragmented send
        self._sending_fragments = False

        # The coroutine face's sink: complete messages for recv().
        # Made on first use: an empty deque takes 760 bytes, most of an idle
        # connection's budget, and most connections hand every message straight
        # to a waiting recv().
        self._messages: collections.deque[Data] | None = None
        # The message being assembled: large pieces, and small ones merged in batches.
        # A message in several frames gathers its pieces here; None in between.
        self._pieces: list[Data] | None = None
        self._small: list[Data] | None = None
        self._recv_waiter: asyncio.Future[Data] | None = None
        self._writelines_joins = False  # set by connection_made
        # transport.write, and the transport it belongs to (Engine._flush).
        self._write_target: asyncio.Transport | None = None
        self._write: Callable[[bytes], object] | None = None
        # Bytes that arrive between the handshake and the opening of the connection
        # (the peer's first frames), kept for it: see _keep_early_data.
        self._early_data = bytearray()
        # The thread's receive buffer, looked up at the first read (Engine.get_buffer).
        self._read_buffer: bytearray | None = None
        self._read_view: memoryview | None = None
        self._sink: Callable[[DataReceived], None] = self._assemble
        # Topics this connection subscribed to (wsjet.pubsub), dropped when TCP closes.
        self._subscriptions: set[str] = set()

    # --- public attributes ----------------------------------------------------------------

    @property
    def state(self) -> State:
        """CONNECTING, OPEN, CLOSING or CLOSED."""
        if self._lost:
            return State.CLOSED
        if self.connection is None:
            return State.CONNECTING
        return self.connection.state

    @property
    def open(self) -> bool:
        """Whether messages can be sent: the connection is OPEN."""
        return self.state is State.OPEN

    @property
    def closed(self) -> bool:
        """Whether the connection is CLOSED."""
        return self.state is State.CLOSED

    @property
    def close_code(self) -> int | None:
        """Close code received, 1006 if TCP closed without one; ``None`` until CLOSED."""
        if not self._lost:
            return None
        rcvd = self.connection.close_rcvd if self.connection is not None else None
        return CloseCode.ABNORMAL_CLOSURE if rcvd is None else rcvd.code

    @property
    def close_reason(self) -> str | None:
        """Close reason received; ``None`` until CLOSED."""
        if not self._lost:
            return None
        rcvd = self.connection.close_rcvd if self.connection is not None else None
        return "" if rcvd is None else rcvd.reason

    @property
    def buffered_amount(self) -> int:
        """Bytes written but not sent yet: the transport's write buffer size."""
        transport = self.transport
        return 0 if transport is None else transport.get_write_buffer_size()

    @property
    def local_address(self) -> Any:
        """The local socket address, as ``socket.getsockname()`` gives it."""
        return None if self.transport is None else self.transport.get_extra_info("sockname")

    @property
    def remote_address(self) -> Any:
        """The remote socket address, as ``socket.getpeername()`` gives it."""
        return None if self.transport is None else self.transport.get_extra_info("peername")

    # --- sending --------------------------------------------------------------------------

    async def _send_iterable(self, message: Any, compress: bool | None) -> None:
        """The rest of :meth:`send`: a fragmented message from an iterable, or a TypeError."""
        if isinstance(message, dict):
            raise TypeError("data is a dict-like object")
        if isinstance(message, Iterable):
            await self._send_fragments(_aiter(message), compress)
            return
        if isinstance(message, AsyncIterable):
            await self._send_fragments(message.__aiter__(), compress)
            return
        raise TypeError(f"data must be str, bytes-like or iterable, not {type(message).__name__}")

    def _fragments_lock(self) -> asyncio.Lock:
        """The lock a fragmented message holds while it is sent (made on first use)."""
        lock = self._fragment_lock
        if lock is None:
            lock = self._fragment_lock = asyncio.Lock()
        return lock

    async def _send_fragments(self, chunks: AsyncIterator[Any], compress: bool | None) -> None:
        async with self._fragments_lock():
            self._sending_fragments = True
            try:
                try:
                    current = await chunks.__anext__()
                except StopAsyncIteration:
                    return  # an empty iterable sends nothing
                text = isinstance(current, str)
                first = True
                while True:
                    try:
                        following = await chunks.__anext__()
                    except StopAsyncIteration:
                        following, fin = None, True
                    else:
                        fin = False
                    if isinstance(current, str) is not text:
                        raise TypeError(
                            "fragments of one message must all be str or all bytes-like"
                        )
                    data = current.encode() if text else current
                    connection = self._open_connection()
                    if first:
                        send = connection.send_text if text else connection.send_binary
                        send(data, fin=fin, compress=compress)
                        first = False
                    else:
                        connection.send_continuation(data, fin=fin)
                    self._flush()
                    if self._writing_paused:
                        await self._drain()
                    if fin:
                        return
                    current = following
            except (TypeError, StopAsyncIteration):
                # A half-sent message cannot be completed: fail the connection (§7.1.7).
                if not first:
                    self._fail(CloseCode.INTERNAL_ERROR, "error while sending a fragmented message")
                raise
            finally:
                self._sending_fragments = False

    def ping(self, data: Data | None = None) -> Awaitable[float]:
        """Send a ping; the returned awaitable completes with the round-trip time.

        ``data`` defaults to 4 random bytes. A pong answers every ping sent
        before the one it echoes (RFC 6455 §5.5.3).

        Raises:
            ConnectionClosed: when the connection is closing or closed.
            ConcurrencyError: when a ping with the same data is still waiting.
        """
        payload = (
            os.urandom(4) if data is None else data.encode() if isinstance(data, str) else data
        )
        if payload in self._pings:
            raise ConcurrencyError("already waiting for a pong with the same data")
        self._open_connection().send_ping(payload)
        waiter: asyncio.Future[float] = self.loop.create_future()
        self._pings[payload] = (waiter, time.monotonic())
        self._flush()
        return waiter

    async def pong(self, data: Data = b"") -> None:
        """Send an unsolicited pong (RFC 6455 §5.5.3: a unidirectional heartbeat)."""
        self._open_connection().send_pong(data.encode() if isinstance(data, str) else data)
        self._flush()
        if self._writing_paused:
            await self._drain()

    # --- topics (wsjet.pubsub) -------------------------------------------------------------

    @property
    def subscriptions(self) -> frozenset[str]:
        """The topics this connection is subscribed to."""
        return frozenset(self._subscriptions)

    def subscribe(self, topic: str) -> None:
        """Receive the messages published to ``topic`` (``server.publish(topic, message)``).

        Subscribing twice is the same as once. Subscriptions end when the
        connection closes (TCP closed).

        Raises:
            ConnectionClosed: the connection is already closed.
            RuntimeError: the connection has no topics to subscribe to (only
                connections accepted by a wsjet server do).
        """
        if self._lost:
            raise self._closed_error()
        if topic not in self._subscriptions:
            self._topics().subscribe(self, topic)
            self._subscriptions.add(topic)

    def unsubscribe(self, topic: str) -> None:
        """Stop receiving the messages published to ``topic``; nothing if not subscribed."""
        if topic in self._subscriptions:
            self._subscriptions.discard(topic)
            self._topics().unsubscribe(self, topic)

    def _topics(self) -> Topics:
        """The topic registry of :meth:`subscribe`: a server's (see WebSocketServerProtocol)."""
        raise RuntimeError("only connections accepted by a wsjet server can subscribe to topics")

    # --- closing --------------------------------------------------------------------------

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Perform the closing handshake, then wait for TCP to close.

        Waits at most ``close_timeout`` for the peer; then drops the connection.
        Idempotent: closing a closed connection does nothing.
        """
        if self.connection is None:
            if self.transport is not None:
                self.transport.abort()
        elif not self._lost and self.connection.close_sent is None:
            self.connection.send_close(code, reason)
            self._flush()
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the connection is closed (TCP closed)."""
        if not self._closed.done():
            # Shielded: a cancelled waiter must not cancel the future others wait on.
            await asyncio.shield(self._closed)

    def _closed_error(self) -> ConnectionClosed:
        connection = self.connection
        if connection is None:
            return ConnectionClosedError(None, None)
        rcvd, sent = connection.close_rcvd, connection.close_sent
        ok = (
            rcvd is not None
            and sent is not None
            and rcvd.code in _OK_CODES
            and sent.code in _OK_CODES
        )
        cls = ConnectionClosedOK if ok else ConnectionClosedError
        error = cls(rcvd, sent, connection.close_rcvd_then_sent)
        error.__cause__ = connection.failure
        return error

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 §7.1.7) with a close frame if still possible."""
        if self.connection is None or self._lost:
            if self.transport is not None:
                self.transport.abort()
            return
        self.connection.fail(code, reason)
        self._flush()

    # --- the engine -----------------------------------------------------------------------

    def open_connection(self, codec: MessageCodec | None, leftover: bytes) -> None:
        """Start the open phase: called by subclasses once the handshake succeeded.

        Args:
            codec: the negotiated permessage-deflate codec, if any.
            leftover: bytes that arrived after the handshake (the first frames).
        """
        self.connection = connection = Connection(
            Side.CLIENT if self.is_client else Side.SERVER,
            max_size=self.max_size,
            max_fragments=self.max_fragments,
            codec=codec,
            compression_threshold=self.compression_threshold,
            logger=self.logger,
        )
        # One message at a time, so that reading can pause between two messages
        # of one socket read (compressed messages are small on the wire).
        connection.pause_after_message = True
        connection.defer_pongs = self._writing_paused
        if self.ping_interval is not None:
            self._keepalive_timer = self.loop.call_later(self.ping_interval, self._keepalive)
        if leftover:
            connection.receive_data(leftover)
            self._process()

    def _keep_early_data(self, data: bytes, limit: int) -> None:
        """Keep bytes that arrived after the handshake for the connection to come.

        The event loop may read again before the handshake's task opens the
        connection (uvloop reads on while a read fills the receive buffer; a
        client may send frames before the server's 101). Past ``limit`` bytes,
        reading pauses until the connection opens.
        """
        self._early_data += data
        if len(self._early_data) > limit:
            self._pause_reading(_PAUSED_BY_HANDSHAKE)

    def _open_with_early_data(self, codec: MessageCodec | None) -> None:
        """Open the connection, fed first with the bytes kept since the handshake."""
        early, self._early_data = bytes(self._early_data), bytearray()
        self._resume_reading(_PAUSED_BY_HANDSHAKE)
        self.open_connection(codec, early)

    def receive_handshake_data(self, data: bytes) -> None:
        """Handle bytes that arrive before the connection is open (subclasses)."""
        raise NotImplementedError

    def on_ping(self, data: bytes) -> None:
        """A ping arrived; the pong is already on its way. Overridable hook."""

    def on_pong(self, data: bytes) -> None:
        """A pong arrived. Overridable hook."""

    def on_close_frame(self, close: Close) -> None:
        """A close frame arrived. Overridable hook."""

    def on_closing(self) -> None:
        """The closing handshake started: a close frame was sent, or the connection failed.

        Overridable hook, called once. A sink that paused reading must let the
        peer's close frame in now, or the close waits for ``close_timeout``.
        """

    def _receive_pong(self, data: bytes) -> None:
        self.on_pong(data)
        if data not in self._pings:
            return
        now = time.monotonic()
        # §5.5.3: a pong acknowledges the ping it echoes and every earlier one.
        for key in list(self._pings):
            waiter, sent_at = self._pings.pop(key)
            if not waiter.done():
                waiter.set_result(now - sent_at)
            if key == data:
                self.latency = now - sent_at
                break

    def _linger(self, transport: asyncio.Transport) -> None:
        """Fail the connection without losing the close frame (RFC 6455 §7.1.7).

        The peer may still be sending. Closing a socket whose input was not all
        read makes the kernel answer with a reset, which can destroy the close
        frame still on its way (the peer then sees 1006 instead of the code). So
        this side half-closes (FIN after the close frame), reads on and discards
        (the connection stopped parsing) until the peer closes TCP; the close
        timer started below aborts a peer that never does.
        """
        transport.write_eof()
        if self._paused_reading:
            self._paused_reading = 0
            transport.resume_reading()

    def _close_timed_out(self) -> None:
        self._close_timer = None
        if self.transport is not None and not self._lost:
            self.logger.info("closing handshake timed out after %ss", self.close_timeout)
            self.transport.abort()

    def _keepalive(self) -> None:
        self._keepalive_timer = None
        if self.state is not State.OPEN or self.ping_interval is None:
            return
        waiter = self.ping()
        if self.ping_timeout is not None:
            self._awaiting_pong = True
            self._pong_timer = self.loop.call_later(self.ping_timeout, self._ping_timed_out)

        def pong_arrived(_: Any) -> None:
            self._awaiting_pong = False
            if self._pong_timer is not None:
                self._pong_timer.cancel()
                self._pong_timer = None
            if self.state is State.OPEN and self.ping_interval is not None:
                self._keepalive_timer = self.loop.call_later(self.ping_interval, self._keepalive)

        asyncio.ensure_future(waiter).add_done_callback(pong_arrived)

    def _ping_timed_out(self) -> None:
        self._pong_timer = None
        if self.state is not State.OPEN or self.ping_timeout is None:
            return
        # Bytes received within ping_timeout prove the peer alive: its pong may
        # wait behind data that flow control has not let us read yet. While this
        # side does not read at all (the application is behind: its queue or its
        # callbacks' buffer is full), the pong may sit unread in the socket. That
        # stall is ours, no sign of a dead peer: wait until reading resumes.
        quiet = 0.0 if self._paused_reading else self.loop.time() - self._last_data
        if quiet < self.ping_timeout:
            self._pong_timer = self.loop.call_later(self.ping_timeout - quiet, self._ping_timed_out)
            return
        self.logger.info("keepalive ping timeout: no pong within %ss", self.ping_timeout)
        self._fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")

    # --- flow control -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """asyncio callback: the TCP (or TLS) connection is up."""
        # uvloop's transports implement the interface without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=self.write_limit, low=self.write_limit // 4)
        # asyncio's own TCP transport before Python 3.12 keeps the base class's
        # writelines(), which joins the buffers into one bytes (see Engine._flush).
        self._writelines_joins = (
            type(self.transport).writelines is asyncio.WriteTransport.writelines
        )

    def pause_writing(self) -> None:
        """asyncio callback: the write buffer is above the high-water mark."""
        self._writing_paused = True
        # A peer that doesn't read must not make us buffer pongs forever: until the
        # buffer drains, answer only the latest ping. Reading goes on, or two
        # peers streaming both ways would each wait for the other to read.
        if self.connection is not None:
            self.connection.defer_pongs = True

    def resume_writing(self) -> None:
        """asyncio callback: the write buffer drained below the low-water mark."""
        self._writing_paused = False
        if self.connection is not None:
            self.connection.defer_pongs = False
            self.connection.flush_pong()
            self._flush()
        waiters, self._drain_waiters = self._drain_waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    async def _drain(self) -> None:
        if self._lost:
            raise self._closed_error()
        waiter: asyncio.Future[None] = self.loop.create_future()
        if self._drain_waiters is None:
            self._drain_waiters = []
        self._drain_waiters.append(waiter)
        await waiter

    def _pause_reading(self, reason: int) -> None:
        if not self._paused_reading and self.transport is not None and not self._lost:
            self.transport.pause_reading()
        self._paused_reading |= reason

    def _resume_reading(self, reason: int) -> None:
        if not self._paused_reading & reason:
            return
        self._paused_reading &= ~reason
        if self._paused_reading or self.transport is None or self._lost:
            return
        connection = self.connection
        if connection is not None and connection.held:
            # Messages of an earlier read are still buffered: deliver them first.
            connection.receive_data(b"")
            self._process()
            if self._paused_reading:
                return
        self.transport.resume_reading()

    def eof_received(self) -> bool | None:
        """asyncio callback: the peer closed its side of TCP; close ours too."""
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        """asyncio callback: TCP is closed; wake everything that waits."""
        self._lost = True
        if self.connection is not None:
            self.connection.receive_eof()
        for timer in (self._close_timer, self._keepalive_timer, self._pong_timer):
            if timer is not None:
                timer.cancel()
        self._close_timer = self._keepalive_timer = self._pong_timer = None
        # The error is made only when somebody waits (at a normal close, nobody does).
        if self._recv_waiter is not None or self._pings or self._drain_waiters:
            self._wake_waiters(self._closed_error())
        if not self._closed.done():
            self._closed.set_result(None)
        if self._subscriptions:
            topics, self._subscriptions = self._subscriptions, set()
            self._topics().drop(self, topics)
        self.on_connection_lost()
        # The sink is usually a bound method of this protocol (or of an object that
        # refers to it): a reference cycle. Breaking it lets reference counting free
        # the connection at once instead of at the next full garbage collection,
        # which keeps the heap small under handshake floods and churn.
        self._sink = _discard

    def _wake_waiters(self, error: ConnectionClosed) -> None:
        """Fail what waits for the connection (recv, pings, drains) with ``error``."""
        if self._recv_waiter is not None and not self._recv_waiter.done():
            self._recv_waiter.set_exception(error)
            self._recv_waiter = None
        for waiter, _ in self._pings.values():
            if not waiter.done():
                waiter.set_exception(error)
                waiter.exception()  # a ping nobody awaits must not log a warning
        self._pings.clear()
        drains, self._drain_waiters = self._drain_waiters, None
        for drain in drains or ():
            if not drain.done():
                drain.set_exception(error)
                drain.exception()

    def on_connection_lost(self) -> None:
        """TCP is closed and every waiter woken. Overridable hook."""


def _discard(event: DataReceived) -> None:
    """The sink of a closed connection: nothing can arrive after TCP closed."""


async def _aiter(items: Iterable[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item
