"""An asynchronous byte buffer with stream-style reads: :class:`Buffer`.

A producer feeds bytes (:meth:`Buffer.feed_data`) and finally an end
(:meth:`Buffer.feed_eof`) or an error (:meth:`Buffer.set_exception`); a
consumer reads with the familiar :class:`asyncio.StreamReader` vocabulary
(``read``, ``readexactly``, ``readuntil``, ``readline``, ``at_eof``) or
iterates over the chunks as they arrive.

:class:`~wsjet.stream.reader.WebSocketReader` builds one incoming WebSocket
message on it.
"""

from __future__ import annotations

import asyncio
import collections
import sys
from collections.abc import AsyncIterator

__all__ = ["Buffer"]

#: The ``wanted`` value of a read that needs everything up to the end.
_UNTIL_EOF = sys.maxsize


class Buffer:
    """Bytes fed by a producer, read by one consumer coroutine at a time.

    Reads never copy a fed chunk that they return whole. Reading methods may
    be called only from one coroutine at a time, like
    :class:`asyncio.StreamReader`.

    Args:
        limit: the longest line :meth:`readuntil` and :meth:`readline` look
            through before giving up with :exc:`asyncio.LimitOverrunError`.
    """

    __slots__ = ("_chunks", "_eof", "_exception", "_limit", "_pos", "_size", "_waiter")

    def __init__(self, limit: int = 2**16) -> None:
        if limit <= 0:
            raise ValueError("limit must be positive")
        self._limit = limit
        self._chunks: collections.deque[bytes] = collections.deque()
        # Bytes of ``_chunks[0]`` already read: slicing the head chunk on every
        # read would copy its tail each time.
        self._pos = 0
        self._size = 0
        self._eof = False
        self._exception: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        state = "eof" if self._eof else "open"
        return f"<{type(self).__name__} {state}, {self._size} bytes buffered>"

    # --- producer side ----------------------------------------------------------------

    def feed_data(self, data: bytes) -> None:
        """Append ``data``; wake the reader waiting for it.

        Raises:
            RuntimeError: after :meth:`feed_eof`.
        """
        if self._eof:
            raise RuntimeError("feed_data() after feed_eof()")
        if data:
            self._chunks.append(data)
            self._size += len(data)
            self._wake()

    def feed_eof(self) -> None:
        """Mark the end of the data: reads return what is left, then stop."""
        self._eof = True
        self._wake()

    def set_exception(self, exc: BaseException) -> None:
        """Make reads raise ``exc`` once the buffered data is read."""
        self._exception = exc
        self._wake()

    def exception(self) -> BaseException | None:
        """The exception set by :meth:`set_exception`, if any."""
        return self._exception

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- consumer side ----------------------------------------------------------------

    def at_eof(self) -> bool:
        """Whether the end was fed and every byte was read."""
        return self._eof and not self._size

    async def read(self, n: int = -1) -> bytes:
        """Read up to ``n`` bytes; with ``n < 0``, read everything until the end.

        Waits until at least one byte is buffered. Returns ``b""`` at the end.
        Reading until the end holds all the remaining data in memory at once.
        """
        if n == 0:
            return b""
        self._prepare()
        if n < 0:
            while not self._eof:
                await self._wait(_UNTIL_EOF)
            return self._take(self._size) if self._size else b""
        while not self._size:
            if self._eof:
                return b""
            await self._wait(1)
        return self._take(min(n, self._size))

    async def readexactly(self, n: int) -> bytes:
        """Read exactly ``n`` bytes.

        Raises:
            asyncio.IncompleteReadError: the end came first; ``partial`` holds
                the bytes that were left.
            ValueError: ``n`` is negative.
        """
        if n < 0:
            raise ValueError("readexactly size can not be less than zero")
        if n == 0:
            return b""
        self._prepare()
        while self._size < n:
            if self._eof:
                partial = self._take(self._size) if self._size else b""
                raise asyncio.IncompleteReadError(partial, n)
            await self._wait(n)
        return self._take(n)

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        """Read up to and including ``separator``.

        Raises:
            asyncio.IncompleteReadError: the end came before the separator;
                ``partial`` holds the bytes that were left.
            asyncio.LimitOverrunError: the separator is not within ``limit``
                bytes; the data stays buffered.
            ValueError: ``separator`` is empty.
        """
        if not separator:
            raise ValueError("separator should be at least one-byte string")
        self._prepare()
        seplen = len(separator)
        offset = 0
        while True:
            if self._size:
                data = self._coalesce()
                index = data.find(separator, offset)
                if index >= 0:
                    end = index + seplen
                    if end > self._limit:
                        raise asyncio.LimitOverrunError(
                            "Separator is found, but chunk is longer than limit", index
                        )
                    return self._take(end)
                # The separator may straddle what is buffered and what comes next.
                offset = max(0, len(data) + 1 - seplen)
                if len(data) > self._limit:
                    raise asyncio.LimitOverrunError(
                        "Separator is not found, and chunk exceed the limit", offset
                    )
            if self._eof:
                partial = self._take(self._size) if self._size else b""
                raise asyncio.IncompleteReadError(partial, None)
            await self._wait(self._size + 1)

    async def readline(self) -> bytes:
        """Read one line, ``\\n`` included; at the end, the unterminated rest.

        Raises:
            asyncio.LimitOverrunError: the line is longer than ``limit``.
        """
        try:
            return await self.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            return exc.partial

    def __aiter__(self) -> AsyncIterator[bytes]:
        """Iterate over the data in chunks as they arrive, until the end."""
        return self._iterate_chunks()

    async def _iterate_chunks(self) -> AsyncIterator[bytes]:
        self._prepare()
        while True:
            while not self._size:
                if self._eof:
                    return
                await self._wait(1)
            head = self._chunks[0]
            yield self._take(len(head) - self._pos)

    # --- internals --------------------------------------------------------------------

    async def _wait(self, wanted: int) -> None:
        """Wait for more data; ``wanted`` is how many bytes the read needs buffered."""
        if self._exception is not None:
            raise self._exception
        if self._waiter is not None:
            raise RuntimeError("another coroutine is already waiting for data")
        waiter = asyncio.get_running_loop().create_future()
        # Set before _waiting(): resuming the producer may feed data at once.
        self._waiter = waiter
        try:
            self._waiting(wanted)
            await waiter
        finally:
            self._waiter = None

    def _take(self, n: int) -> bytes:
        """Remove and return up to ``n`` bytes; at least one byte is buffered."""
        chunks = self._chunks
        head = chunks[0]
        pos = self._pos
        available = len(head) - pos
        if available > n:
            self._pos = pos + n
            data = head[pos : pos + n]
        elif available == n or len(chunks) == 1:
            chunks.popleft()
            self._pos = 0
            data = head[pos:] if pos else head
        else:
            parts = []
            need = n
            while chunks and need:
                head = chunks[0]
                available = len(head) - pos
                if available <= need:
                    parts.append(head[pos:] if pos else head)
                    chunks.popleft()
                    need -= available
                    pos = 0
                else:
                    parts.append(head[pos : pos + need])
                    pos += need
                    need = 0
            self._pos = pos
            data = b"".join(parts)
        self._size -= len(data)
        self._consumed(len(data))
        return data

    def _coalesce(self) -> bytes:
        """Join the buffered chunks into one, so a search sees them all at once."""
        chunks = self._chunks
        if len(chunks) > 1 or self._pos:
            head = chunks.popleft()
            joined = b"".join([head[self._pos :], *chunks])
            chunks.clear()
            chunks.append(joined)
            self._pos = 0
        return chunks[0]

    # --- hooks for subclasses ---------------------------------------------------------

    def _prepare(self) -> None:
        """Called before a byte-level read: a subclass may convert what it holds."""

    def _consumed(self, n: int) -> None:
        """Called after ``n`` bytes left the buffer: a subclass may resume its producer."""

    def _waiting(self, wanted: int) -> None:
        """Called before waiting until ``wanted`` bytes are buffered (flow control)."""
