"""Sending to one WebSocket peer: :class:`WebSocketWriter`.

The writer is a thin face over the engine
(:class:`~wsjet.protocol.WebSocketCommonProtocol`): whole messages and
fragmented messages from an iterable go through its ``send()``; a message
whose size is not known in advance is streamed with :meth:`WebSocketWriter.stream`.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Coroutine, Iterable
from types import TracebackType
from typing import Any

from ..core.frames import CloseCode
from ..protocol import Data, WebSocketCommonProtocol

__all__ = ["FragmentWriter", "WebSocketWriter"]


class WebSocketWriter:
    """Sends messages and control frames to one peer.

    Args:
        protocol: the connection to write to.
    """

    __slots__ = ("_protocol",)

    def __init__(self, protocol: WebSocketCommonProtocol) -> None:
        self._protocol = protocol

    def __repr__(self) -> str:
        return f"<WebSocketWriter {self._protocol.state.name}>"

    @property
    def open(self) -> bool:
        """Whether messages can be sent: the connection is OPEN."""
        return self._protocol.open

    def send(
        self,
        data: Data | bytearray | memoryview | Iterable[Data] | AsyncIterable[Data],
        *,
        compress: bool | None = None,
    ) -> Coroutine[Any, Any, None]:
        """Send a message; the frame type follows the data.

        ``str`` is sent as a text message, bytes-like as a binary message. An
        iterable or async iterable of ``str`` (or of bytes-like) sends one
        fragmented message, a frame per item. Waits while the peer reads
        slower than we write (above ``write_limit`` buffered).

        A whole message is framed and written by the call itself when nothing
        stands in its way (the connection is open, no fragmented message is
        being sent): the result is then a :class:`~wsjet.awaitable.Completed`,
        which returns at once when awaited.

        Args:
            data: the message.
            compress: ``False`` sends this message uncompressed even when
                permessage-deflate is negotiated.

        Raises:
            ConnectionClosed: the connection is closing or closed.
            TypeError: ``data`` has another type.
        """
        # A whole message is written by the call itself when it can be (the
        # result is then a Completed); otherwise this is the engine's coroutine.
        return self._protocol.send_now(data, compress)

    def stream(self, text: bool = False, *, compress: bool | None = None) -> FragmentWriter:
        """Send one message in fragments, written as they come.

        Use it as ``async with writer.stream() as message: await
        message.write(chunk)``: every write sends one frame and leaving the
        block sends the final one. Other sends wait until the message is done
        (pings, pongs and close frames may go in between, RFC 6455 §5.4).

        Args:
            text: send a text message (write ``str``) rather than binary
                (write bytes-like).
            compress: as for :meth:`send`.
        """
        return FragmentWriter(self._protocol, text, compress)

    def ping(self, data: Data | None = None) -> Awaitable[float]:
        """Send a ping; awaiting the result waits for the pong, giving the round trip time.

        Args:
            data: the payload, at most 125 bytes; 4 random bytes by default.

        Raises:
            ConnectionClosed: the connection is closing or closed.
        """
        return self._protocol.ping(data)

    async def pong(self, data: Data = b"") -> None:
        """Send an unsolicited pong (a one-way heartbeat, RFC 6455 §5.5.3)."""
        await self._protocol.pong(data)

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close the connection with ``code`` and ``reason``; wait until it is closed."""
        await self._protocol.close(code, reason)


class FragmentWriter:
    """One message being sent in fragments; made by :meth:`WebSocketWriter.stream`.

    Args:
        protocol: the connection to write to.
        text: whether the message is text (``str`` chunks) or binary.
        compress: as for :meth:`WebSocketWriter.send`.
    """

    def __init__(
        self, protocol: WebSocketCommonProtocol, text: bool, compress: bool | None
    ) -> None:
        self._protocol = protocol
        self._text = text
        self._compress = compress
        self._started = False
        self._entered = False

    async def __aenter__(self) -> FragmentWriter:
        protocol = self._protocol
        # The engine's discipline: whole-message sends wait on this lock while
        # a fragmented message is in progress (§5.4: no interleaving).
        await protocol._fragments_lock().acquire()
        protocol._sending_fragments = True
        self._entered = True
        return self

    async def write(self, data: Data | bytearray | memoryview) -> None:
        """Send ``data`` as the next fragment; empty chunks send nothing.

        Raises:
            ConnectionClosed: the connection is closing or closed.
            TypeError: ``data`` does not match the message type.
            RuntimeError: outside the ``async with`` block.
        """
        if not self._entered:
            raise RuntimeError("write() outside of 'async with writer.stream()'")
        if self._text:
            if not isinstance(data, str):
                raise TypeError(f"a text message takes str, not {type(data).__name__}")
            payload: bytes | bytearray | memoryview = data.encode()
        else:
            if not isinstance(data, bytes | bytearray | memoryview):
                raise TypeError(f"a binary message takes bytes-like, not {type(data).__name__}")
            payload = data
        if not payload:
            return
        protocol = self._protocol
        connection = protocol._open_connection()
        if self._started:
            connection.send_continuation(payload, fin=False)
        else:
            if self._text:
                connection.send_text(bytes(payload), fin=False, compress=self._compress)
            else:
                connection.send_binary(payload, fin=False, compress=self._compress)
            self._started = True
        protocol._flush()
        if protocol._writing_paused:
            await protocol._drain()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        protocol = self._protocol
        try:
            if exc_type is None:
                connection = protocol._open_connection()
                if self._started:
                    connection.send_continuation(b"", fin=True)
                elif self._text:
                    connection.send_text(b"", compress=self._compress)
                else:
                    connection.send_binary(b"", compress=self._compress)
                protocol._flush()
                if protocol._writing_paused:
                    await protocol._drain()
            elif self._started:
                # A half-sent message cannot be completed: fail the connection (§7.1.7).
                protocol._fail(CloseCode.INTERNAL_ERROR, "error while sending a fragmented message")
        finally:
            self._entered = False
            protocol._sending_fragments = False
            protocol._fragments_lock().release()
