"""Reconnecting clients: ``async for websocket in connect(uri)`` and :func:`reconnecting`.

Two levels:

* **The iterator** — ``async for websocket in wsjet.connect(uri): ...``
  (:func:`reconnect`) yields a fresh connection each time the previous one is
  over, like the ``websockets`` package does. Connection attempts that fail
  for a reason that may pass (:func:`is_transient`: network errors, timeouts,
  the server closing during the handshake, HTTP 5xx, a proxy that cannot
  reach the server) are retried with exponential backoff and jitter
  (:class:`Backoff`); anything else (4xx, an invalid URI, an invalid
  handshake, a certificate error) is raised from the ``async for``.

* **The client** — :func:`reconnecting` returns a :class:`ReconnectingClient`
  that keeps one logical connection up across reconnections::

      async def subscribe(websocket):
          await websocket.send('{"subscribe": "prices"}')

      async with wsjet.reconnecting(uri, buffer_size=1000, overflow="drop_oldest",
                                    on_connect=subscribe) as client:
          await client.send("hello")          # buffered while disconnected
          async for message in client:        # messages of every connection
              ...

  Messages sent while disconnected wait in a bounded outbound buffer and are
  sent, in order, after the next connection opens, right after the
  ``on_connect(websocket)`` hook (which runs on *every* connection, the first
  included: the place to authenticate or resubscribe). When the buffer is
  full, the ``overflow`` policy decides: ``"error"`` (the default) raises
  :class:`BufferFull` from :meth:`~ReconnectingClient.send`,
  ``"drop_oldest"`` discards the oldest buffered message, ``"drop_newest"``
  discards the message being sent; :attr:`~ReconnectingClient.dropped` counts
  discarded messages.

  Delivery is at most once, as with any WebSocket: a message already written
  when a connection drops may be lost (WebSocket has no acknowledgements; add
  them in your protocol when every message matters). The buffer guarantees
  that messages sent while the client *knows* it is disconnected are kept
  and sent in order.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import logging
import random
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from types import TracebackType
from typing import Any, Literal

from .client import InvalidRedirect, WebSocketClientProtocol, connect
from .exceptions import (
    ConnectionClosed,
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidState,
    InvalidStatus,
    WebSocketError,
)
from .protocol import Data
from .proxy import ProxyError

__all__ = [
    "Backoff",
    "BufferFull",
    "Overflow",
    "ReconnectingClient",
    "is_transient",
    "reconnect",
    "reconnecting",
]

logger = logging.getLogger("wsjet.client")

Overflow = Literal["drop_oldest", "drop_newest", "error"]
OnConnect = Callable[[WebSocketClientProtocol], Awaitable[Any]]


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Delays between connection attempts: exponential, capped, with jitter.

    The n-th delay (from 0) is ``min(maximum, initial * factor ** n)``, scaled
    by a random factor in ``[1 - jitter, 1]`` so that many clients cut off at
    once don't come back at once.

    Attributes:
        initial: the first delay, in seconds.
        factor: growth from one delay to the next.
        maximum: the largest delay.
        jitter: the fraction of each delay that is random (0 for none, at most 1).
        reset_after: a connection that stayed open this long resets the delays;
            after a shorter one, the next attempt waits the next delay, so a
            server that accepts then drops at once isn't hammered.
    """

    initial: float = 1.0
    factor: float = 1.618
    maximum: float = 60.0
    jitter: float = 0.5
    reset_after: float = 10.0

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < 0 or self.factor < 1:
            raise ValueError("need initial >= 0, maximum >= 0 and factor >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")

    def delays(self) -> Iterator[float]:
        """Yield the successive delays, forever."""
        delay = self.initial
        while True:
            capped = min(delay, self.maximum)
            yield capped * (1 - self.jitter * random.random())
            delay = capped * self.factor


def is_transient(exc: BaseException) -> bool:
    """Tell whether a failed connection attempt is worth retrying.

    Transient: :class:`OSError` (refused, reset, unreachable, DNS),
    :class:`TimeoutError` (``open_timeout``), the server closing the
    connection during the opening handshake, an HTTP 5xx answer, a proxy that
    answered 5xx or could not reach the server. Fatal: everything else, among
    which 4xx and 3xx answers, :class:`~wsjet.InvalidURI`, invalid handshakes,
    TLS certificate errors and TLS protocol errors.
    """
    if isinstance(exc, ProxyError):
        return exc.transient
    if isinstance(exc, InvalidRedirect):
        return False
    if isinstance(exc, InvalidStatus):
        return 500 <= exc.response.status < 600
    if isinstance(exc, InvalidHandshake):
        # The stream ended during the handshake (see WebSocketClientProtocol).
        return isinstance(exc.__cause__, EOFError | OSError)
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError)
    return isinstance(exc, OSError | TimeoutError | EOFError)


async def reconnect(
    connector: connect,
) -> AsyncGenerator[WebSocketClientProtocol, None]:
    """Yield connections opened by ``connector``, reconnecting as needed.

    This is what ``async for websocket in connect(uri)`` runs. After each
    connection is handed out and the loop body finishes with it, the
    connection is closed and a new one opened. Attempts that fail with a
    transient error (:func:`is_transient`) are retried after the delays of
    ``connector.backoff`` (a default :class:`Backoff` when ``None``); other
    errors are raised. A typical loop::

        async for websocket in wsjet.connect(uri):
            try:
                async for message in websocket:
                    ...
            except wsjet.ConnectionClosed:
                continue  # reconnect

    Args:
        connector: the :class:`~wsjet.connect` to open connections with.

    Yields:
        Open connections, one at a time.
    """
    backoff = connector.backoff or Backoff()
    log = connector.options.get("logger") or logger
    loop = asyncio.get_running_loop()
    delays = backoff.delays()
    while True:
        try:
            protocol = await connector._create()
        except Exception as exc:
            if not is_transient(exc):
                raise
            delay = next(delays)
            log.info("connection attempt failed (%s); retrying in %.2f s", exc, delay)
            await asyncio.sleep(delay)
            continue
        opened = loop.time()
        try:
            yield protocol
        finally:
            await protocol.close()
        if loop.time() - opened >= backoff.reset_after:
            delays = backoff.delays()
        else:
            await asyncio.sleep(next(delays))


class BufferFull(WebSocketError):
    """:meth:`ReconnectingClient.send` found the outbound buffer full (``overflow="error"``)."""


class ReconnectingClient:
    """One logical client connection kept up across reconnections.

    Build it with :func:`reconnecting`, which documents the arguments, and use
    it with ``async with`` (or :meth:`start` and :meth:`close`).

    Attributes:
        buffer_size: most messages kept while disconnected.
        overflow: what :meth:`send` does when the buffer is full.
        dropped: messages discarded by the overflow policy so far.
        failure: the fatal error that stopped reconnecting, if any.
    """

    def __init__(
        self,
        uri: str,
        *,
        buffer_size: int = 1024,
        overflow: Overflow = "error",
        on_connect: OnConnect | None = None,
        **kwargs: Any,
    ) -> None:
        """See :func:`reconnecting`."""
        if buffer_size < 0:
            raise ValueError("buffer_size must be >= 0")
        if overflow not in ("drop_oldest", "drop_newest", "error"):
            raise ValueError(f"unknown overflow policy: {overflow!r}")
        self.connector = connect(uri, **kwargs)
        self.buffer_size = buffer_size
        self.overflow: Overflow = overflow
        self.on_connect = on_connect
        self.dropped = 0
        self.failure: BaseException | None = None
        self._pending: collections.deque[Data] = collections.deque()
        self._live: WebSocketClientProtocol | None = None
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    # --- state ----------------------------------------------------------------------------

    @property
    def connection(self) -> WebSocketClientProtocol | None:
        """The open connection messages go to, or ``None`` while disconnected."""
        return self._live

    @property
    def connected(self) -> bool:
        """Whether a connection is open (and the buffer flushed)."""
        return self._live is not None and self._live.open

    @property
    def pending(self) -> int:
        """How many messages wait in the outbound buffer."""
        return len(self._pending)

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _check_usable(self) -> None:
        if self.failure is not None:
            raise self.failure
        if self._closing:
            raise InvalidState("the client is closed")

    async def _wait(self, ready: Callable[[], bool]) -> None:
        while True:
            self._check_usable()
            if ready():
                return
            await self._changed.wait()

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting in the background (``async with`` does it; idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._supervise())

    async def wait_connected(self) -> WebSocketClientProtocol:
        """Wait until a connection is open and the buffer flushed; return it.

        Raises:
            InvalidState: the client is closed.
            Exception: the fatal error that stopped the client (:attr:`failure`).
        """
        self.start()
        await self._wait(lambda: self._live is not None)
        assert self._live is not None
        return self._live

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection and stop reconnecting. Idempotent.

        Messages still in the buffer are discarded (:attr:`pending` tells how many).
        """
        if self._closing:
            return
        self._closing = True
        self._notify()
        live = self._live
        if live is not None:
            await live.close(code, reason)
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])
        if self._pending:
            logger.info("client closed with %d unsent message(s)", len(self._pending))

    async def __aenter__(self) -> ReconnectingClient:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
        if exc_type is None and self.failure is not None:
            raise self.failure

    # --- the background task --------------------------------------------------------------

    async def _supervise(self) -> None:
        try:
            async with contextlib.aclosing(reconnect(self.connector)) as connections:
                async for websocket in connections:
                    if self._closing:
                        break
                    try:
                        if self.on_connect is not None:
                            await self.on_connect(websocket)
                        await self._flush(websocket)
                    except ConnectionClosed:
                        continue
                    self._live = websocket
                    self._notify()
                    try:
                        await websocket.wait_closed()
                    finally:
                        self._live = None
                        self._notify()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.info("reconnecting client stopped: %s", exc)
            self.failure = exc
            self._notify()

    async def _flush(self, websocket: WebSocketClientProtocol) -> None:
        # New send() calls append while this runs: they are sent too, in order.
        while self._pending:
            message = self._pending.popleft()
            try:
                await websocket.send(message)
            except ConnectionClosed:
                self._pending.appendleft(message)
                raise

    # --- messages -------------------------------------------------------------------------

    def _buffer(self, message: Data) -> None:
        if len(self._pending) >= self.buffer_size:
            if self.overflow == "error":
                raise BufferFull(f"outbound buffer full ({self.buffer_size} messages)")
            self.dropped += 1
            if self.overflow == "drop_newest" or not self._pending:
                return
            self._pending.popleft()
        self._pending.append(message)

    async def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send a message now, or keep it for the next connection when disconnected.

        Raises:
            BufferFull: disconnected, the buffer is full and ``overflow="error"``.
            InvalidState: the client is closed.
            TypeError: ``message`` is not ``str`` or bytes-like.
            Exception: the fatal error that stopped the client (:attr:`failure`).
        """
        self.start()
        self._check_usable()
        if isinstance(message, bytearray | memoryview):
            message = bytes(message)  # the caller may reuse its buffer
        elif not isinstance(message, str | bytes):
            raise TypeError(f"message must be str or bytes-like, not {type(message).__name__}")
        live = self._live
        if live is not None:
            try:
                await live.send(message)
                return
            except ConnectionClosed:
                pass  # not sent: keep it for the next connection
        self._buffer(message)

    async def recv(self) -> Data:
        """Receive the next message, from whichever connection is open.

        Waits through reconnections.

        Raises:
            ConnectionClosedOK: the client was closed while waiting.
            InvalidState: the client is closed.
            Exception: the fatal error that stopped the client (:attr:`failure`).
        """
        while True:
            websocket = await self.wait_connected()
            try:
                return await websocket.recv()
            except ConnectionClosed:
                if self._closing:
                    raise
            # Wait for the background task to notice, then for the next connection.
            await self._wait(functools.partial(self._moved_on, websocket))

    def _moved_on(self, websocket: WebSocketClientProtocol) -> bool:
        return self._live is not websocket

    def __aiter__(self) -> AsyncIterator[Data]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[Data]:
        """Yield messages until :meth:`close`."""
        while True:
            try:
                yield await self.recv()
            except (ConnectionClosedOK, InvalidState):
                if self._closing:
                    return
                raise


def reconnecting(
    uri: str,
    *,
    buffer_size: int = 1024,
    overflow: Overflow = "error",
    on_connect: OnConnect | None = None,
    **kwargs: Any,
) -> ReconnectingClient:
    """Keep a client connection to ``uri`` up, with an outbound buffer.

    See the module :mod:`wsjet.reconnect` for the design. Use it as
    ``async with reconnecting(uri, ...) as client:``; then
    :meth:`~ReconnectingClient.send`, :meth:`~ReconnectingClient.recv` or
    ``async for message in client``.

    Args:
        uri: the ``ws://`` or ``wss://`` URI.
        buffer_size: most messages kept while disconnected (1024); 0 keeps
            none. Memory is bounded by ``buffer_size`` times the largest
            message you send.
        overflow: when the buffer is full: ``"error"`` raises
            :class:`BufferFull`, ``"drop_oldest"`` discards the oldest
            buffered message, ``"drop_newest"`` discards the new one.
        on_connect: ``await on_connect(websocket)`` after every connection
            opens, the first included, before the buffered messages go out:
            resubscribe or authenticate there. If it raises
            :class:`~wsjet.ConnectionClosed`, the client reconnects; any other
            exception stops the client (:attr:`~ReconnectingClient.failure`).
        kwargs: options of :func:`~wsjet.connect`, ``backoff`` included.

    Returns:
        The :class:`ReconnectingClient`, not started yet.
    """
    return ReconnectingClient(
        uri, buffer_size=buffer_size, overflow=overflow, on_connect=on_connect, **kwargs
    )
