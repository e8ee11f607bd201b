"""The callback face: :class:`WebSocketServer` (``wsjet.server.WebSocketServer``).

Built on :func:`~wsjet.server.serve`: each connection is a
:class:`~wsjet.server.WebSocketServerProtocol` whose handler wraps it in a
:class:`~wsjet.client.Client` and runs the server's callbacks. Nothing of the
protocol is implemented here.

:mod:`wsjet.server` and :mod:`wsjet.client` re-export the two classes, where
the "Getting Started" guide names them; this module imports :mod:`wsjet.server`
only at its end, once :class:`WebSocketServer` exists, so that either module
can be imported first.
"""

from __future__ import annotations

import asyncio
import functools
import socket
from collections.abc import Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any, TypeVar

from .broadcast import BroadcastResult
from .callbacks_client import Client
from .core.frames import Close, CloseCode
from .stream.reader import DEFAULT_READ_LIMIT

__all__ = ["Client", "WebSocketServer"]

ClientCallback = Callable[[Client], Coroutine[Any, Any, None]]
_F = TypeVar("_F", bound=ClientCallback)


class WebSocketServer:
    """A WebSocket server driven by callbacks.

    ``@socket.connection`` registers the callback run for each new client;
    using the server as a context manager (``with``, or ``async with`` inside
    a running loop) listens while the block runs. Leaving the block stops
    listening and closes every connection with 1001 (going away), waiting at
    most ``close_timeout`` for each peer.

    Args:
        address: the interface(s) to listen on; ``None`` for all of them.
        port: the TCP port; 0 picks a free one.
        loop: the event loop the synchronous ``with`` form runs; by default
            the current event loop.
        read_limit: bytes buffered unread per connection (in the message
            readers) above which reading the socket pauses until the
            callback catches up.
        unix_path: listen on this Unix socket path instead of ``address``:``port``
            (pass ``None, 0`` for those); each client's ``port`` is then a
            per-connection number, so ``clients`` keys stay distinct.
        **options: what :func:`~wsjet.server.serve` takes: ``max_size``,
            ``max_queue``, ``ping_interval``, ``ping_timeout``,
            ``close_timeout``, ``open_timeout``, ``write_limit``,
            ``compression``, ``subprotocols``, ``origins``,
            ``extra_headers``, ``process_request``, ``logger``, ``ssl``,
            ``backplane``, ``slow_consumer``, ... (``create_protocol`` is the
            callback face's own).
    """

    def __init__(
        self,
        address: str | Sequence[str] | None,
        port: int,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        read_limit: int = DEFAULT_READ_LIMIT,
        unix_path: str | None = None,
        **options: Any,
    ) -> None:
        if "create_protocol" in options:
            raise TypeError("WebSocketServer does not take create_protocol")
        if read_limit <= 0:
            raise ValueError("read_limit must be positive")
        self.address = address
        self.port = port
        self.loop = loop
        self.read_limit = read_limit
        #: Listen on this Unix socket instead of ``address``:``port``.
        self.unix_path = unix_path
        self.options = options
        #: The engine's server while listening (see :class:`~wsjet.server.Server`).
        self.ws_server: Server | None = None
        # The live set, changed in place, and the dict last handed out by
        # ``clients``, which is never changed: a copy is made only when the set
        # changed since (so joining and leaving cost O(1), not a copy each).
        self._clients: dict[tuple[str, int], Client] = {}
        # One bound method for every client to leave by (not one made per connection).
        self._leave = self._remove
        self._clients_view: dict[tuple[str, int], Client] | None = None
        self._on_connection: ClientCallback | None = None
        self._on_disconnection: ClientCallback | None = None

    def __repr__(self) -> str:
        state = "listening" if self.ws_server is not None else "stopped"
        return f"<WebSocketServer {self.address}:{self.port} {state}, {len(self._clients)} clients>"

    # --- attributes -------------------------------------------------------------------

    @property
    def clients(self) -> dict[tuple[str, int], Client]:
        """The connected clients, keyed by ``(client.addr, client.port)``.

        A client is added when its connection callback returns and removed
        when it leaves (close frame received or connection lost); during its
        own connection callback it is not there yet. The dict handed out never
        changes (a change to the set makes the next read return a new one), so
        iterating over it across ``await`` is safe: read the attribute again for
        the current set rather than keeping the dict. Do not modify it.
        """
        view = self._clients_view
        if view is None:
            view = self._clients_view = dict(self._clients)
        return view

    @property
    def server(self) -> asyncio.Server | None:
        """The listening :class:`asyncio.Server`, while listening."""
        return None if self.ws_server is None else self.ws_server.server

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets."""
        return () if self.ws_server is None else self.ws_server.sockets

    # --- topics -----------------------------------------------------------------------

    def publish(self, topic: str, message: str | bytes | bytearray | memoryview) -> BroadcastResult:
        """Send ``message`` to every client subscribed to ``topic``, without waiting.

        Clients subscribe with :meth:`Client.subscribe <wsjet.client.Client.subscribe>`.
        It goes through the server's backplane (the ``backplane`` option: in
        this process by default, or a :class:`~wsjet.pubsub.RedisBackplane`
        to reach the servers of other processes too); slow clients get the
        ``slow_consumer`` option's policy. See :meth:`wsjet.server.Server.publish`.

        Returns:
            The deliveries to the subscribers of this process.

        Raises:
            RuntimeError: the server is not listening.
            TypeError: ``message`` is neither ``str`` nor bytes-like.
        """
        if self.ws_server is None:
            raise RuntimeError("the server is not listening")
        return self.ws_server.publish(topic, message)

    # --- decorators -------------------------------------------------------------------

    def connection(self, callback: _F) -> _F:
        """Register ``async def on_connection(client)``, run for each new client.

        ``client`` is a :class:`~wsjet.client.Client`; the callback usually
        registers the client's callbacks (``@client.message``, ...). Messages
        arriving meanwhile wait until it returns.
        """
        self._on_connection = callback
        return callback

    def disconnection(self, callback: _F) -> _F:
        """Register ``async def on_disconnection(client)``, run when a client left.

        It runs for clients that were in :attr:`clients`, once the connection
        closed and the client's own callbacks (``@client.closed`` last) returned.
        """
        self._on_disconnection = callback
        return callback

    # --- running ------------------------------------------------------------------------

    async def start(self) -> asyncio.Server:
        """Start listening; return the listening :class:`asyncio.Server`.

        Raises:
            RuntimeError: the server is already listening.
        """
        if self.ws_server is not None:
            raise RuntimeError("the server is already listening")
        create_protocol = functools.partial(_CallbackServerProtocol, read_limit=self.read_limit)
        if self.unix_path is not None:
            ws_server = await unix_serve(
                self._handle, self.unix_path, create_protocol=create_protocol, **self.options
            )
        else:
            ws_server = await serve(
                self._handle,
                self.address,
                self.port,
                create_protocol=create_protocol,
                **self.options,
            )
        self.ws_server = ws_server
        assert ws_server.server is not None
        return ws_server.server

    async def close(self, code: int = CloseCode.GOING_AWAY, reason: str = "") -> None:
        """Stop listening, close every connection with ``code``; wait until all are closed."""
        ws_server, self.ws_server = self.ws_server, None
        if ws_server is not None:
            ws_server.close(code, reason)
            await ws_server.wait_closed()

    async def serve_forever(self) -> None:
        """Listen (starting if needed) until cancelled; then close."""
        if self.ws_server is None:
            await self.start()
        assert self.ws_server is not None
        try:
            await self.ws_server.serve_forever()
        finally:
            await self.close()

    def __enter__(self) -> asyncio.Server:
        return self._sync_loop().run_until_complete(self.start())

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._sync_loop().run_until_complete(self.close())

    async def __aenter__(self) -> asyncio.Server:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _sync_loop(self) -> asyncio.AbstractEventLoop:
        loop = self.loop
        if loop is None:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                loop = asyncio.get_event_loop_policy().get_event_loop()
            else:
                raise RuntimeError("an event loop is running: use 'async with' instead of 'with'")
            self.loop = loop
        elif loop.is_running():
            raise RuntimeError("the event loop is running: use 'async with' instead of 'with'")
        return loop

    # --- one connection -----------------------------------------------------------------

    async def _handle(self, protocol: _CallbackServerProtocol) -> None:
        """The engine's handler for one connection: the callbacks' life cycle."""
        client = protocol.client
        assert client is not None  # dropped only once this handler is done
        joined = False
        try:
            if self._on_connection is not None:
                await self._on_connection(client)
        except Exception as exc:
            client._callback_failed(exc, "connection")
        else:
            if client.open:
                joined = True
                client._leave = self._leave
                self._clients[client.addr, client.port] = client
                self._clients_view = None
        client._start()
        await client._run()
        if joined:
            self._remove(client)
            if self._on_disconnection is not None:
                try:
                    await self._on_disconnection(client)
                except Exception:
                    protocol.logger.error("disconnection callback failed", exc_info=True)
        # The protocol releases the client once this task is done (_drop_client).

    def _remove(self, client: Client) -> None:
        key = (client.addr, client.port)
        if self._clients.get(key) is client:
            del self._clients[key]
            self._clients_view = None


WebSocketServer.__module__ = "wsjet.server"


# wsjet.server re-exports WebSocketServer: import it only now that the class exists.
from .server import Server, WebSocketServerProtocol, serve, unix_serve  # noqa: E402


class _CallbackServerProtocol(WebSocketServerProtocol):
    """A server connection whose incoming messages and control frames go to a Client."""

    __slots__ = ("client",)  # see WebSocketCommonProtocol.__slots__

    def __init__(self, *args: Any, read_limit: int = DEFAULT_READ_LIMIT, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The callback face's handle on this connection; ``None`` once the connection is
        #: over (TCP closed and the callbacks returned).
        self.client: Client | None = Client(self, read_limit=read_limit)
        # Installed before the handshake completes: frames that arrive with
        # the handshake go to the client too.
        self._sink = self.client._receive

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Record the peer's address on the client."""
        super().connection_made(transport)
        if self.client is not None:
            self.client._set_peer(self.remote_address)

    def on_ping(self, data: bytes) -> None:
        """Run the client's ping callback."""
        if self.client is not None:
            self.client._ping_received(data)

    def on_pong(self, data: bytes) -> None:
        """Run the client's pong callback."""
        if self.client is not None:
            self.client._pong_received(data)

    def on_closing(self) -> None:
        """Let the peer's close frame in, even if a callback stopped reading."""
        if self.client is not None:
            self.client._closing()

    def on_close_frame(self, close: Close) -> None:
        """The client leaves the server's clients."""
        if self.client is not None:
            self.client._close_frame_received(close)

    def on_connection_lost(self) -> None:
        """Cut short a message still arriving; the client leaves."""
        super().on_connection_lost()
        if self.client is not None:
            self.client._connection_lost()
        self._drop_client()

    def receive_handshake_data(self, data: bytes) -> None:
        """Parse the request; watch the handshake's task once it started."""
        started = self.handler_task is not None
        super().receive_handshake_data(data)
        if not started and self.handler_task is not None:
            self.handler_task.add_done_callback(self._handshake_done)

    def _handshake_done(self, task: asyncio.Task[None]) -> None:
        self._drop_client()

    def _drop_client(self) -> None:
        """Break the reference cycle with the client once nothing needs it.

        The client refers to this protocol and this protocol to the client: the
        cycle would keep the whole connection until the next full garbage
        collection. Nothing needs the link once TCP closed and the handshake's
        task (the callbacks' life cycle) is done.
        """
        client = self.client
        if client is None or not self._lost:
            return
        if self.handler_task is None or self.handler_task.done():
            self.client = None
            client._release()
