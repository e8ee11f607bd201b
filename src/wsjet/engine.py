"""The hot path of the asyncio engine: bytes in, events to the sink, bytes out.

:class:`Engine` is the base of :class:`~wsjet.protocol.WebSocketCommonProtocol`
and holds what runs for every message: feeding a socket read to the Sans-I/O
:class:`~wsjet.core.connection.Connection`, handing its events to the sink,
assembling messages for ``recv()``, framing a message to send, and writing
what the connection produced. Timers, waiting and the public API stay in
:mod:`wsjet.protocol`.

It is a module of its own so that Cython can compile it, typed by
``engine.pxd``, like the core ("pure Python mode": this file is both the
specification and the pure-Python path). Compiled, :class:`Engine` is an
extension type whose fields are C fields and which calls the connection's
methods as C functions; the protocol subclasses it in Python.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any

from .awaitable import Completed
from .core.connection import Connection, State
from .core.events import CloseReceived, DataReceived, PingReceived, PongReceived
from .core.frames import Opcode
from .exceptions import ConcurrencyError, ConnectionClosed, ConnectionClosedOK

__all__ = ["Engine"]

Data = str | bytes

# While a read is processed, replies are held back until this many bytes wait.
_CORK_LIMIT = 64 * 1024

# Where writelines() joins buffers, buffers up to this size are joined (_write_unjoined).
_SMALL_JOIN = 64 * 1024

# Pieces of a message shorter than this are merged, _SMALL_BATCH at a time.
_SMALL_PIECE, _SMALL_BATCH = 1024, 256

# Reasons to stop reading the socket; reading resumes when none is left. The
# handshake's: bytes that arrived after the handshake and before the
# connection opened are kept for it, up to a bound.
_PAUSED_BY_QUEUE, _PAUSED_BY_HANDSHAKE, _PAUSED_BY_SINK = 1, 2, 4

# The receive buffer: socket reads land here (BufferedProtocol) and frames are
# parsed in place. There is one per thread, shared by the connections of the
# thread's event loop: the loop hands each read over (buffer_updated) before it
# does anything else, so no two connections use it at once, the connection
# keeps no reference to it (Connection.receive_from), and an idle connection
# costs no buffer at all.
_RECEIVE_BUFFER_SIZE = 256 * 1024
_receive_buffers = threading.local()


def _thread_receive_buffer() -> tuple[bytearray, memoryview]:
    """This thread's receive buffer, and the view of it handed to the transport."""
    try:
        found: tuple[bytearray, memoryview] = _receive_buffers.buffer
    except AttributeError:
        buffer = bytearray(_RECEIVE_BUFFER_SIZE)
        # A view, so that nobody can resize the buffer through what get_buffer returns.
        found = _receive_buffers.buffer = (buffer, memoryview(buffer))
    return found


# Frame opcodes (RFC 6455 §5.2) of the messages send() frames itself, and the
# state it checks: module constants, which the compiled engine reads as C values.
_TEXT, _BINARY = int(Opcode.TEXT), int(Opcode.BINARY)
_OPEN = State.OPEN
#: What send_now() returns for a message it wrote: awaiting it gives None at once.
_SENT = Completed(None)


async def _raise(exc: Exception) -> None:
    """Raise ``exc`` when awaited (send_now()'s errors, as send() raises them)."""
    try:
        raise exc
    finally:
        del exc  # the traceback holds this frame: no cycle through the local


class Engine:
    """The per-message work of a connection (base of ``WebSocketCommonProtocol``).

    Not meant to be used alone: the protocol sets every attribute below in its
    ``__init__`` and provides the hooks (``receive_handshake_data``,
    ``on_ping``, ``on_close_frame``, ``on_closing``, ``_linger``, ...).
    """

    # The attributes and hooks the protocol provides, for mypy (Cython sees the
    # fields in engine.pxd).
    if TYPE_CHECKING:
        connection: Connection | None
        transport: asyncio.Transport | None
        loop: asyncio.AbstractEventLoop
        logger: Any
        max_queue: int | None
        close_timeout: float
        _lost: bool
        _last_data: float
        _awaiting_pong: bool
        _paused_reading: int
        _writing_paused: bool
        _corked: bool
        _eof_written: bool
        _logged_failure: bool
        _close_timer: asyncio.TimerHandle | None
        _sink: Callable[[DataReceived], None]
        _messages: collections.deque[Data] | None
        _pieces: list[Data] | None
        _small: list[Data] | None
        _recv_waiter: asyncio.Future[Data] | None
        _writelines_joins: bool
        _write_target: asyncio.Transport | None
        _write: Callable[[bytes], object] | None
        _read_buffer: bytearray | None
        _read_view: memoryview | None
        _sending_fragments: bool
        _fragment_lock: asyncio.Lock | None

        def receive_handshake_data(self, data: bytes) -> None: ...
        def on_ping(self, data: bytes) -> None: ...
        def on_close_frame(self, close: Any) -> None: ...
        def on_closing(self) -> None: ...
        def _receive_pong(self, data: bytes) -> None: ...
        def _linger(self, transport: asyncio.Transport) -> None: ...
        def _close_timed_out(self) -> None: ...
        def _closed_error(self) -> ConnectionClosed: ...
        def _pause_reading(self, reason: int) -> None: ...
        def _resume_reading(self, reason: int) -> None: ...
        async def wait_closed(self) -> None: ...
        async def _drain(self) -> None: ...
        async def _send_iterable(self, message: Any, compress: bool | None) -> None: ...

    # --- receiving ------------------------------------------------------------------------

    async def recv(self) -> Data:
        """Receive the next message: ``str`` for text, ``bytes`` for binary.

        Raises:
            ConnectionClosed: when the connection is closed and no message is left.
            ConcurrencyError: when another coroutine is already waiting in recv().
        """
        messages = self._messages
        if messages:
            message = messages.popleft()
            if self._paused_reading & _PAUSED_BY_QUEUE:
                low = 0 if self.max_queue is None else self.max_queue // 4
                if len(messages) <= low:
                    self._resume_reading(_PAUSED_BY_QUEUE)
            return message
        if self._recv_waiter is not None:
            raise ConcurrencyError("another coroutine is already waiting for the next message")
        if self._lost or (self.connection is not None and self.connection.close_rcvd):
            await self.wait_closed()
            raise self._closed_error()
        waiter: asyncio.Future[Data] = self.loop.create_future()
        self._recv_waiter = waiter
        try:
            return await waiter
        except asyncio.CancelledError:
            # A message handed over just before the cancellation must not be lost.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._queue().appendleft(waiter.result())
            raise
        finally:
            self._recv_waiter = None
            # The future holds the exception that holds this frame's traceback: drop
            # the frame's reference to the future so that no cycle outlives the call.
            del waiter

    def __aiter__(self) -> AsyncIterator[Data]:
        return self

    async def __anext__(self) -> Data:
        """Return the next message; end the iteration on a normal close (1000/1001)."""
        try:
            return await self.recv()
        except ConnectionClosedOK:
            raise StopAsyncIteration from None

    # --- the socket's side ---------------------------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        """asyncio callback (``BufferedProtocol``): where the next read goes.

        Always the thread's receive buffer (see ``_RECEIVE_BUFFER_SIZE``); the
        size hint is ignored.
        """
        view = self._read_view
        if view is None:
            self._read_buffer, view = _thread_receive_buffer()
            self._read_view = view
        return view

    def buffer_updated(self, nbytes: int) -> None:
        """asyncio callback (``BufferedProtocol``): ``nbytes`` were read into the buffer."""
        if self._awaiting_pong:
            # Only a keepalive waiting for its pong asks when bytes last came
            # (_ping_timed_out): reading the clock on every read would cost more.
            self._last_data = self.loop.time()
        connection = self.connection
        buffer = self._read_buffer
        assert buffer is not None  # get_buffer came first
        if connection is None:
            view = self._read_view
            assert view is not None
            self.receive_handshake_data(bytes(view[:nbytes]))
            return
        # Parsed where it lies: no bytes object per read, no copy into the
        # connection's own buffer unless a frame is incomplete.
        connection.receive_from(buffer, nbytes)
        self._process()

    def data_received(self, data: bytes) -> None:
        """asyncio callback, for transports that hand over ``bytes`` instead."""
        if self._awaiting_pong:
            self._last_data = self.loop.time()
        connection = self.connection
        if connection is None:
            self.receive_handshake_data(data)
            return
        connection.receive_data(data)
        self._process()

    def _process(self) -> None:
        """Dispatch the connection's events; then write what they made us send."""
        connection = self.connection
        assert connection is not None
        # Corked: what the events of this read make us send (pongs, and replies that
        # callbacks send at once) goes out in one write when the read is done, not
        # in one system call per message.
        corked = self._corked
        self._corked = True
        try:
            while True:
                for event in connection.events_received():
                    if type(event) is DataReceived:
                        self._sink(event)
                    elif type(event) is PongReceived:
                        self._receive_pong(event.data)
                    elif type(event) is PingReceived:
                        self.on_ping(event.data)
                    elif type(event) is CloseReceived:
                        self.on_close_frame(event.close)
                # Parse the rest of the read only while nothing asks to pause.
                if not connection.held or self._paused_reading or self._lost:
                    break
                connection.receive_data(b"")
        finally:
            self._corked = corked
            if not corked:
                self._flush()

    def _assemble(self, event: DataReceived) -> None:
        """The coroutine face's sink: whole messages for ``recv()``."""
        data = event.data
        if event.fin and event.first:
            message = data
        else:
            if event.first:
                self._pieces = []
                self._small = []
            pieces, small = self._pieces, self._small
            assert pieces is not None and small is not None  # made by the first piece
            if len(data) >= _SMALL_PIECE:
                if small:
                    pieces.append(_join(small))
                    small = self._small = []
                pieces.append(data)
            else:
                # Tiny frames (or tiny reads) are merged as they come: a message of
                # 131,072 one-byte frames must not keep 131,072 objects.
                small.append(data)
                if len(small) >= _SMALL_BATCH:
                    pieces.append(_join(small))
                    small = self._small = []
            if not event.fin:
                return
            if small:
                pieces.append(_join(small))
            message = _join(pieces)
            # Nothing kept between messages (an idle connection holds no lists).
            self._pieces = self._small = None
        waiter = self._recv_waiter
        if waiter is not None and not waiter.done():
            # Hand the message straight to the waiting recv(): no queue, no copy.
            waiter.set_result(message)
            self._recv_waiter = None
            return
        queue = self._queue()
        if self.max_queue is not None and len(queue) >= self.max_queue:
            if self._close_timer is not None:
                # Closing: nobody will read this far; keep the queue bounded.
                self.logger.debug("closing: dropped a message past max_queue")
                return
            queue.append(message)
            self._pause_reading(_PAUSED_BY_QUEUE)
            return
        queue.append(message)

    def _queue(self) -> collections.deque[Data]:
        """The messages waiting for recv(), made on first use."""
        if self._messages is None:
            self._messages = collections.deque()
        return self._messages

    # --- sending --------------------------------------------------------------------------

    async def send(
        self,
        message: Data | bytearray | memoryview | Iterable[Data] | AsyncIterable[Data],
        *,
        compress: bool | None = None,
    ) -> None:
        """Send a message: ``str`` as text, bytes-like as binary.

        An iterable or async iterable of ``str`` or of bytes-like sends one
        fragmented message, a frame per item. ``compress=False`` sends this
        message uncompressed even when permessage-deflate is negotiated.

        Raises:
            ConnectionClosed: when the connection is closing or closed.
            TypeError: for any other type of message.
        """
        if self._sending_fragments:
            assert self._fragment_lock is not None  # made before _sending_fragments is set
            async with self._fragment_lock:
                pass  # wait for the fragmented message to finish
        self._cork_if_behind()
        if self._send_message(message, compress):
            if self._writing_paused:
                await self._drain()
            return
        await self._send_iterable(message, compress)

    def send_now(
        self,
        message: Data | bytearray | memoryview | Iterable[Data] | AsyncIterable[Data],
        compress: bool | None = None,
    ) -> Coroutine[Any, Any, None]:
        """:meth:`send`, done by the call itself when nothing stands in its way.

        A whole ``str`` or bytes-like message, on an open connection with no
        fragmented message in progress, is framed and written before this
        returns; the result is then :data:`~wsjet.awaitable.Completed` (or the
        wait for the write buffer to drain, when it went over its limit).
        Anything else gets :meth:`send`'s coroutine, which reports a closing
        connection or a wrong type when awaited, as :meth:`send` does.
        """
        if (
            self._sending_fragments
            or not self._can_send()
            or not (type(message) is bytes or isinstance(message, (str, bytearray, memoryview)))
        ):
            return self.send(message, compress=compress)
        self._cork_if_behind()
        try:
            self._send_message(message, compress)
        except Exception as exc:  # a str that cannot be encoded, say
            # Raised when awaited, as send() raises it.
            return _raise(exc)
        if self._writing_paused:
            return self._drain()
        return _SENT

    def _cork_if_behind(self) -> None:
        if self._messages and not self._corked:
            # Messages wait for recv(): the handler is behind a peer that sent
            # many before waiting for replies. Hold what is sent during this turn
            # of the event loop and write it at once: one system call, not one
            # per message (a lone request still gets its reply written at once).
            self._corked = True
            self.loop.call_soon(self._uncork)

    def _send_message(self, message: Any, compress: bool | None) -> bool:
        """Frame and write one whole message: ``str`` as text, bytes-like as binary.

        Returns False, sending nothing, for any other type (the caller handles
        iterables and reports the rest).

        Raises:
            ConnectionClosed: when the connection is closing or closed.
        """
        connection = self._open_connection()
        # _send_data is what send_binary() and send_text() call: called directly,
        # the compiled engine reaches it as a C function.
        if type(message) is bytes:  # the most common case, without isinstance() chains
            connection._send_data(_BINARY, message, True, compress)
        elif isinstance(message, str):
            connection._send_data(_TEXT, message.encode(), True, compress)
        elif isinstance(message, bytes | bytearray | memoryview):
            connection._send_data(_BINARY, message, True, compress)
        else:
            return False
        self._flush()
        return True

    def _uncork(self) -> None:
        """Write what send() held back during the last turn of the event loop."""
        self._corked = False
        self._flush()

    def _can_send(self) -> bool:
        """Whether messages can be sent: open, no close frame sent, TCP up."""
        connection = self.connection
        return (
            connection is not None
            and not self._lost
            and connection.close_sent is None
            and connection.state is _OPEN
        )

    def _open_connection(self) -> Connection:
        """The connection, if messages can be sent on it; else raise ConnectionClosed."""
        connection = self.connection
        if connection is None or not self._can_send():
            raise self._closed_error()
        return connection

    def _flush(self) -> None:
        """Write what the connection produced; end TCP when the protocol says so."""
        connection = self.connection
        transport = self.transport
        if connection is None or transport is None:
            return
        if self._corked and connection.output_size() < _CORK_LIMIT:
            return  # _process writes it all at once after this read
        output = connection.data_to_send()
        if output and not self._lost:
            if len(output) == 1:
                # The bound method, looked up once per transport: looking it up by
                # name cost about 120 instructions per message on uvloop's (callgrind).
                write = self._write
                if transport is not self._write_target or write is None:
                    write = self._write = transport.write
                    self._write_target = transport
                write(output[0])
            elif self._writelines_joins:
                _write_unjoined(transport, output)
            else:
                transport.writelines(output)
        if not connection.close_expected() and not connection.wants_eof():
            return  # the connection is open: nothing else to do (the hot path)
        if connection.failure is not None and not self._logged_failure:
            self._logged_failure = True
            self.logger.info("failing connection: %s", connection.failure)
        if connection.wants_eof() and not self._eof_written:
            self._eof_written = True
            if connection.failure is not None and transport.can_write_eof():
                self._linger(transport)
            else:
                transport.close()  # flushes the buffer, then closes the socket
        if connection.close_expected() and self._close_timer is None and not self._lost:
            self._close_timer = self.loop.call_later(self.close_timeout, self._close_timed_out)
            # The peer's close frame may sit behind a full queue: read on, or the
            # close would wait for close_timeout and end as 1006. Messages past the
            # queue limit are dropped from now on (_assemble), so memory stays bounded.
            self._resume_reading(_PAUSED_BY_QUEUE)
            self.on_closing()


def _write_unjoined(transport: asyncio.Transport, output: list[bytes]) -> None:
    """Write ``output`` where ``writelines()`` would join it all into one bytes.

    Joining a 1 MiB frame allocates 1 MiB more per message, which glibc maps
    and unmaps each time (page faults: it made the callback face 2x slower at
    1 MiB on asyncio's loop). Writing each piece would send a frame header in a
    TCP segment of its own. So small pieces are joined with the first
    ``_SMALL_JOIN`` bytes of a large one, and the rest of it is written as a view.
    """
    pending: list[bytes | memoryview] = []
    for piece in output:
        if len(piece) <= _SMALL_JOIN:
            pending.append(piece)
            continue
        view = memoryview(piece)
        pending.append(view[:_SMALL_JOIN])
        transport.write(b"".join(pending))
        pending = []
        # A view: the transport copies what it cannot send at once, from the view,
        # without slicing a copy of the bytes first.
        transport.write(view[_SMALL_JOIN:])
    if pending:
        transport.write(b"".join(pending))


def _join(pieces: list[Data]) -> Data:
    """Join message pieces, all ``str`` or all ``bytes``."""
    if isinstance(pieces[0], str):
        return "".join(pieces)  # type: ignore[arg-type]
    return b"".join(pieces)  # type: ignore[arg-type]
