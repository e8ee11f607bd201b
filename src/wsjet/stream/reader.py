"""One incoming WebSocket message as a stream: :class:`WebSocketReader`.

The callback face hands each message to the ``@client.message`` callback as a
:class:`WebSocketReader` as soon as its first piece arrives, so the callback
can read a large message while it is still arriving. :class:`FlowControl`
bounds what the readers of one connection hold unread: above its limit the
connection stops reading the socket until the callback catches up.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from ..awaitable import Completed
from .buffer import _UNTIL_EOF, Buffer

__all__ = ["DEFAULT_READ_LIMIT", "FlowControl", "WebSocketReader"]

#: Default high-water mark, in bytes, of data buffered unread per connection.
DEFAULT_READ_LIMIT = 2**18


#: The chunks of a reader made by :func:`whole_message`: a shared, always empty
#: deque (``maxlen=0``), so that the hot path makes no deque per message. The
#: message waits in ``_whole`` (binary) or ``_text`` instead; ``_prepare()``
#: gives the reader a deque of its own before any byte-level read, the only
#: reads that use chunks (a whole message is never fed more data).
_NO_CHUNKS: collections.deque[bytes] = collections.deque(maxlen=0)


def _nothing() -> None:
    """The pause and resume of a detached flow control."""


class FlowControl:
    """Pauses a connection's reading while its readers hold too much unread data.

    Reading pauses when more than ``limit`` bytes are buffered unread (unless a
    read waits for more than that, e.g. :meth:`WebSocketReader.get` or a large
    :meth:`~wsjet.stream.buffer.Buffer.readexactly`), or when ``max_queue``
    messages wait for their callback. It resumes once the callback has read
    the buffer down to half the limit (hysteresis: no pause/resume per read).

    Args:
        pause: stops reading the socket.
        resume: starts reading the socket again.
        limit: high-water mark in bytes.
        max_queue: most messages waiting for their callback; ``None`` for no limit.

    Attributes:
        buffered: bytes (characters for undecoded text) held unread.
        queued: messages waiting for their callback.
        allowance: bytes the reader being read waits to have buffered.
        paused: whether reading is paused by this flow control.
    """

    __slots__ = (
        "_pause",
        "_resume",
        "allowance",
        "buffered",
        "limit",
        "max_queue",
        "paused",
        "queued",
    )

    def __init__(
        self,
        pause: Callable[[], None],
        resume: Callable[[], None],
        limit: int = DEFAULT_READ_LIMIT,
        max_queue: int | None = None,
    ) -> None:
        if limit <= 0:
            raise ValueError("limit must be positive")
        self._pause = pause
        self._resume = resume
        self.limit = limit
        self.max_queue = max_queue
        self.buffered = 0
        self.queued = 0
        self.allowance = 0
        self.paused = False

    def add(self, n: int) -> None:
        """Account for ``n`` more bytes buffered."""
        self.buffered += n
        if self.buffered > self.limit and not self.paused:
            self.update()

    def remove(self, n: int) -> None:
        """Account for ``n`` bytes read or discarded."""
        self.buffered -= n
        if self.paused:
            self.update()

    def release(self) -> None:
        """Stop bounding for good, and resume: the connection is closing.

        The peer's close frame must get through even if nobody reads.
        """
        self.limit = _UNTIL_EOF
        self.max_queue = None
        if self.paused:
            self.paused = False
            self._resume()

    def detach(self) -> None:
        """Forget the pause and resume callables: the connection is over.

        They are usually bound methods of the object that owns this flow
        control, a reference cycle that reference counting could not free.
        """
        self._pause = self._resume = _nothing
        self.paused = False

    def update(self) -> None:
        """Pause or resume reading according to the current figures."""
        buffered = self.buffered
        over = (buffered > self.limit and buffered > self.allowance) or (
            self.max_queue is not None and self.queued >= self.max_queue
        )
        if over:
            if not self.paused:
                self.paused = True
                self._pause()
        elif self.paused and (buffered <= self.limit // 2 or buffered < self.allowance):
            self.paused = False
            self._resume()


class WebSocketReader(Buffer):
    """One incoming message, readable while it arrives.

    Byte-level reads come from :class:`~wsjet.stream.buffer.Buffer`; on a text
    message they return its UTF-8 encoding. :meth:`get` returns the whole
    (remaining) message as ``str`` for text, ``bytes`` for binary.

    When the message callback returns, whatever it left unread is discarded,
    and so is the rest of the message if it is still arriving.

    Args:
        text: whether the message is a text message.
        limit: the line limit of :meth:`readuntil`; defaults to the flow
            control's limit.
        flow: the connection's flow control, if any.
    """

    __slots__ = ("_discarded", "_flow", "_text", "_text_size", "_whole", "is_text")

    def __init__(
        self,
        text: bool,
        *,
        limit: int | None = None,
        flow: FlowControl | None = None,
    ) -> None:
        if limit is None:
            limit = DEFAULT_READ_LIMIT if flow is None else flow.limit
        super().__init__(limit)
        #: Whether this is a text message (else binary).
        self.is_text = bool(text)
        # Text stays decoded until a byte-level read asks for bytes: get() on a
        # text message then costs no encode/decode round trip.
        self._text: list[str] | None = [] if text else None
        self._text_size = 0
        # A binary message made by whole_message(), until a read takes it.
        self._whole: bytes | None = None
        self._flow = flow
        self._discarded = False

    @property
    def kind(self) -> Literal["text", "binary"]:
        """``"text"`` or ``"binary"``: the message's type."""
        return "text" if self.is_text else "binary"

    def __repr__(self) -> str:
        state = "eof" if self._eof else "open"
        size = self._size + self._text_size
        return f"<WebSocketReader {self.kind} {state}, {size} buffered>"

    # --- producer side ----------------------------------------------------------------

    def feed_data(self, data: str | bytes) -> None:
        """Append a piece of the message: ``str`` (text) or ``bytes``."""
        if self._eof:
            if self._discarded:
                return  # the callback is gone: the rest of the message is dropped
            raise RuntimeError("feed_data() after feed_eof()")
        if not data:
            return
        text = self._text
        if isinstance(data, str):
            if text is not None:
                text.append(data)
                size = len(data)
                self._text_size += size
                if self._flow is not None:
                    self._flow.add(size)
                self._wake()
                return
            data = data.encode()
        elif text is not None:
            self._to_bytes()
        self._chunks.append(data)
        self._size += len(data)
        if self._flow is not None:
            self._flow.add(len(data))
        self._wake()

    def feed_eof(self) -> None:
        """Mark the end of the message."""
        if not self._discarded:
            super().feed_eof()

    def set_exception(self, exc: BaseException) -> None:
        """Make reads raise ``exc``: the message will not be complete."""
        if not self._discarded:
            super().set_exception(exc)

    def discard(self) -> None:
        """Drop the unread data and the rest of the message; reads then see the end."""
        if self._discarded:
            return
        self._discarded = True
        dropped = self._size + self._text_size
        if not dropped and self._eof:
            # Read to the end, the common case: nothing to drop or wake.
            if self._flow is not None:
                self._flow.allowance = 0
            return
        self._chunks.clear()
        self._whole = None
        self._pos = self._size = self._text_size = 0
        if self._text is not None:
            self._text.clear()
        self._eof = True
        self._wake()
        flow = self._flow
        if flow is not None:
            flow.allowance = 0
            flow.remove(dropped)

    # --- consumer side ----------------------------------------------------------------

    def at_eof(self) -> bool:
        """Whether the whole message arrived and was read."""
        return self._eof and not self._size and not self._text_size

    def get(self) -> Coroutine[Any, Any, str | bytes]:
        """Return the whole (remaining) message: ``str`` for text, ``bytes`` for binary.

        Waits until the message is complete; it is then held in memory at
        once (``max_size`` bounds it). After byte-level reads of a text
        message, the rest must start on a character boundary.

        A message that has already arrived in full (the usual case in a
        message callback) is taken by the call itself, which returns a
        :class:`~wsjet.awaitable.Completed`: awaiting it gives the message
        without suspending. Otherwise the call returns a coroutine that waits.

        Raises:
            ConnectionClosed: the connection closed before the message was complete.
        """
        if self._eof and (self._text is not None or self._whole is not None or not self.is_text):
            # Taking it cannot fail: the decoding of a text message read as bytes
            # can, and its error is raised by the coroutine, when awaited.
            return Completed(self._take_message())
        return self._get_when_complete()

    async def _get_when_complete(self) -> str | bytes:
        while not self._eof:
            await self._wait(_UNTIL_EOF)
        return self._take_message()

    def _take_message(self) -> str | bytes:
        """Take what is left of the complete message (``get()``'s result)."""
        text = self._text
        if text is not None:
            size = self._text_size
            if not text:
                return ""
            message = text[0] if len(text) == 1 else "".join(text)
            text.clear()
            self._text_size = 0
            flow = self._flow
            if flow is not None:  # _consumed(), inlined: this is the hot path
                flow.allowance = 0
                flow.buffered -= size
                if flow.paused:
                    flow.update()
            return message
        whole = self._whole
        if whole is not None:
            # A binary message that arrived in one piece: the hot path.
            self._whole = None
            self._size = 0
            self._consumed(len(whole))
            return whole
        data = self._take(self._size) if self._size else b""
        return data.decode() if self.is_text else data

    # --- hooks ------------------------------------------------------------------------

    def _prepare(self) -> None:
        if self._chunks is _NO_CHUNKS:
            self._chunks = collections.deque()
            whole = self._whole
            if whole is not None:
                self._whole = None
                self._chunks.append(whole)
        if self._text is not None:
            self._to_bytes()

    def _to_bytes(self) -> None:
        """Switch a text message to bytes, for byte-level reads."""
        text = self._text
        assert text is not None
        self._text = None
        before = self._text_size
        self._text_size = 0
        after = 0
        for piece in text:
            data = piece.encode()
            self._chunks.append(data)
            after += len(data)
        self._size += after
        if self._flow is not None:
            # Characters were counted; count bytes from now on.
            self._flow.buffered += after - before
            self._flow.update()

    def _consumed(self, n: int) -> None:
        flow = self._flow
        if flow is not None:
            flow.allowance = 0
            flow.remove(n)

    def _waiting(self, wanted: int) -> None:
        flow = self._flow
        if flow is not None:
            flow.allowance = wanted
            if flow.paused:
                flow.update()


def whole_message(data: str | bytes, flow: FlowControl) -> WebSocketReader:
    """Make the reader of a message that arrived in one piece (the hot path).

    Equivalent to ``WebSocketReader(...)``, ``feed_data`` and ``feed_eof``, at
    a fraction of the cost.
    """
    if flow is None:  # compiled, a None would not fail on its own
        raise TypeError("whole_message() needs a FlowControl")
    self = WebSocketReader.__new__(WebSocketReader)
    self._limit = flow.limit
    self._pos = 0
    self._eof = True
    self._exception = None
    self._waiter = None
    self._flow = flow
    self._discarded = False
    self._chunks = _NO_CHUNKS
    size = len(data)
    if isinstance(data, str):
        self.is_text = True
        self._text = [data] if size else []
        self._text_size = size
        self._whole = None
        self._size = 0
    else:
        self.is_text = False
        self._text = None
        self._text_size = 0
        self._whole = data if size else None
        self._size = size
    if size:
        flow.buffered += size  # flow.add(), inlined
        if flow.buffered > flow.limit and not flow.paused:
            flow.update()
    return self
