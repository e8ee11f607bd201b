"""WebSocket servers: :func:`serve` and :class:`WebSocketServerProtocol` (coroutine face).

The callback face's :class:`WebSocketServer` lives in :mod:`wsjet.callbacks`
and is re-exported here, where the "Getting Started" guide names it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import re
import socket
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from .broadcast import BroadcastResult, SlowConsumer, slow_consumer_policy
from .core import defaults, handshake
from .core.connection import State
from .core.frames import CloseCode
from .core.http import DEFAULT_LIMITS, Headers, HTTPLimits, Request, RequestReader, Response
from .core.origin import ANY_ORIGIN, AnyOrigin, OriginRule, Origins, origin_allowed
from .exceptions import ConnectionClosed, InvalidHandshake, InvalidOrigin
from .extensions import Compression, negotiate_server
from .protocol import WebSocketCommonProtocol
from .pubsub import Backplane, InProcessBackplane, Topics

__all__ = [
    "ANY_ORIGIN",
    "OriginRule",
    "Origins",
    "Server",
    "WebSocketServer",
    "WebSocketServerProtocol",
    "serve",
    "unix_serve",
]

logger = logging.getLogger("wsjet.server")

Handler = Callable[..., Awaitable[Any]]
HeadersLike = Headers | Mapping[str, str] | Iterable[tuple[str, str]]
ProcessRequest = Callable[
    ["WebSocketServerProtocol", Request], "Response | Awaitable[Response | None] | None"
]
ProcessResponse = Callable[
    ["WebSocketServerProtocol", Request, Response], "Response | Awaitable[Response | None] | None"
]
SelectSubprotocol = Callable[["WebSocketServerProtocol", Sequence[str]], "str | None"]

#: Grace period after ``close_timeout`` before a shutdown cancels handlers.
SHUTDOWN_GRACE = defaults.SHUTDOWN_GRACE


@functools.lru_cache(maxsize=128)
def _wants_path(handler: Handler) -> bool:
    """Tell whether ``handler`` takes ``(websocket, path)`` rather than ``(websocket)``.

    Cached: inspecting a signature costs more than a whole handshake's parsing.
    """
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return False
    try:
        signature.bind(None, None)
    except TypeError:
        return False
    return True


class WebSocketServerProtocol(WebSocketCommonProtocol):
    """The server side of a connection: opening handshake, then the handler.

    Subclass it and pass the subclass (or any factory) as ``create_protocol``
    to :func:`serve` to customise the handshake: override
    :meth:`process_request`, :meth:`select_subprotocol`, or the ``on_*`` hooks.
    """

    is_client = False

    # See WebSocketCommonProtocol.__slots__.
    __slots__ = (
        "_codec",
        "_http_limits",
        "_open_timer",
        "_process_request_hook",
        "_process_response_hook",
        "_reader",
        "_select_subprotocol_hook",
        "available_subprotocols",
        "compression",
        "extra_headers",
        "handler",
        "handler_task",
        "open_timeout",
        "origins",
        "request",
        "response",
        "server",
        "server_header",
        "username",
    )

    def __init__(
        self,
        handler: Handler | None,
        server: Server,
        *,
        origins: Origins = defaults.ORIGINS,
        subprotocols: Sequence[str] | None = None,
        select_subprotocol: SelectSubprotocol | None = None,
        extra_headers: HeadersLike | Callable[[str, Headers], HeadersLike] | None = None,
        compression: Compression = defaults.COMPRESSION,
        server_header: str | None = handshake.SERVER_HEADER,
        process_request: ProcessRequest | None = None,
        process_response: ProcessResponse | None = None,
        open_timeout: float | None = defaults.OPEN_TIMEOUT,
        http_limits: HTTPLimits | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.handler = handler
        self.server = server
        self.origins = _check_origins(origins)
        self._select_subprotocol_hook = select_subprotocol
        # A tuple: the empty one is shared, and a tuple of strings is left out of
        # garbage collections.
        self.available_subprotocols = tuple(subprotocols or ())
        self.extra_headers = extra_headers
        self.compression = compression
        self.server_header = server_header
        self._process_request_hook = process_request
        self._process_response_hook = process_response
        self.open_timeout = open_timeout
        self.request: Request | None = None
        #: The user name :func:`~wsjet.auth.basic_auth` authenticated, if any.
        self.username: str | None = None
        self.response: Response | None = None
        self._http_limits = http_limits or DEFAULT_LIMITS
        # Dropped once the request is complete: a connection lives on without it.
        self._reader: RequestReader | None = RequestReader(self._http_limits)
        self._open_timer: asyncio.TimerHandle | None = None
        # The codec negotiated by the handshake, for the connection it opens.
        self._codec: Any = None
        self.handler_task: asyncio.Task[None] | None = None

    # --- handshake ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """asyncio callback: register with the server and arm ``open_timeout``."""
        super().connection_made(transport)
        limit = self.server.max_connections
        if limit is not None and len(self.server.connections) >= limit:
            # Answer at once rather than hold a socket the server won't serve.
            self.logger.info("refusing connection: %d connections open", limit)
            self._send_response(handshake.reject(503))
            return
        self.server.register(self)
        if self.open_timeout is not None:
            self._open_timer = self.loop.call_later(self.open_timeout, self._open_timed_out)

    def _open_timed_out(self) -> None:
        if self.state is State.CONNECTING and self.transport is not None:
            self.logger.info("opening handshake timed out after %ss", self.open_timeout)
            self.transport.abort()

    def receive_handshake_data(self, data: bytes) -> None:
        """Parse the HTTP request; once complete, run the handshake in a task."""
        if self.request is not None:
            # Frames the client sent before our 101: keep them for the connection.
            self._keep_early_data(data, self._http_limits.max_header_bytes)
            return
        assert self._reader is not None  # until the request is complete
        try:
            request = self._reader.feed(data)
        except InvalidHandshake as exc:
            self._reject(exc)
            return
        if request is None:
            return
        self.request = request
        self._early_data += self._reader.leftover
        self._reader = None
        self.handler_task = self.loop.create_task(self._run(request))

    def _reject(self, exc: InvalidHandshake) -> None:
        self.logger.info("opening handshake failed: %s", exc)
        self._send_response(handshake.reject_for(exc))

    def _send_response(self, response: Response) -> None:
        self.response = response
        if self.transport is not None and not self._lost:
            self.transport.write(response.serialize())
            if response.status != 101:
                self.transport.close()

    def process_request(self, request: Request) -> Response | Awaitable[Response | None] | None:
        """Hook: return a :class:`Response` to answer with plain HTTP instead of upgrading.

        The default calls the ``process_request`` argument of :func:`serve`, if any.
        """
        if self._process_request_hook is None:
            return None
        return self._process_request_hook(self, request)

    def select_subprotocol(self, offered: Sequence[str], available: Sequence[str]) -> str | None:
        """Hook: pick the subprotocol, or ``None`` for none.

        The default calls the ``select_subprotocol`` argument of :func:`serve`
        as ``select_subprotocol(connection, offered)`` when given; otherwise it
        takes the first of ``available`` (the ``subprotocols`` option) that the
        client offered.
        """
        if self._select_subprotocol_hook is not None:
            return self._select_subprotocol_hook(self, offered)
        return handshake.select_subprotocol(offered, available)

    def check_origin(self, origin: str | None) -> None:
        r"""Check the Origin header against the ``origins`` option (RFC 6455 §10.2).

        A browser lets any page open a WebSocket to any server, with the
        visitor's cookies, and tells the page's origin in the Origin header;
        a server that accepts every Origin lets another site act as its
        users (Cross-Site WebSocket Hijacking). So ``origins=None``, the
        default, is the *same-origin* policy
        (:func:`wsjet.core.origin.same_origin`):

        * a request without Origin is accepted: browsers always send one
          (RFC 6455 §4.2.1 item 7), other clients (servers, command-line
          tools, ``websockets``, Node ``ws``) usually don't;
        * a request with an Origin is accepted when the Origin's host and
          port equal the request's Host header's (case-insensitive host,
          default ports 80 / 443 filled in, scheme not compared), e.g.
          ``Origin: https://chat.example`` with ``Host: chat.example``; a page
          served by the same server passes, a page of any other site, or of
          another port or subdomain, gets 403.

        ``origins=wsjet.ANY_ORIGIN`` accepts every request (no check). A
        list of rules replaces the same-origin policy by an allow-list; each
        rule is one of:

        * a ``str``: the Origin must equal it exactly, e.g.
          ``"https://example.com"`` (scheme, host and non-default port, as
          browsers send it);
        * a compiled :class:`re.Pattern`: the *whole* Origin must match it
          (:meth:`re.Pattern.fullmatch`), so ``re.compile(r"https://([a-z0-9-]+\.)?example\.com")``
          refuses ``https://evil-example.com`` and ``https://example.com.evil``;
        * ``None``: requests without an Origin header (non-browser clients) are
          accepted.

        The default comes from ``WSJET_ORIGINS`` when set (see
        :mod:`wsjet.core.defaults`). Called with the request in
        :attr:`request`, whose Host header the same-origin policy reads.

        Args:
            origin: the request's Origin header, or ``None`` when it has none.

        Raises:
            InvalidOrigin: the origin is not allowed (the server answers 403,
                without echoing the origin).
        """
        host = None if self.request is None else self.request.headers.get("Host")
        if not origin_allowed(origin, host, self.origins):
            raise InvalidOrigin("Origin", origin, "not allowed")

    async def _accept(self, request: Request) -> Response | None:
        """Run the opening handshake; return the response, or None when already answered."""
        result = self.process_request(request)
        if inspect.isawaitable(result):
            result = await result
        if result is not None:
            return result
        key = handshake.check_request(
            request, max_negotiation_bytes=self._http_limits.max_negotiation_bytes
        )
        origins = request.headers.get_all("Origin")
        if len(origins) > 1 and self.origins is not ANY_ORIGIN:
            # RFC 6454 §7.3: a user agent sends one Origin at most; which of
            # several a check should read is anybody's guess, so none is.
            raise InvalidOrigin("Origin", ", ".join(origins), f"{len(origins)} Origin headers")
        self.check_origin(origins[0] if origins else None)
        offered = handshake.parse_subprotocols(request.headers)
        subprotocol = self.select_subprotocol(offered, self.available_subprotocols)
        extensions, codec = negotiate_server(request.headers, self.compression)
        extra = self.extra_headers
        if callable(extra):
            extra = extra(request.path, request.headers)
        response = handshake.build_response(
            key,
            subprotocol=subprotocol,
            extensions=extensions,
            extra_headers=None if extra is None else Headers(extra),
            server_header=self.server_header,
        )
        if self._process_response_hook is not None:
            changed = self._process_response_hook(self, request, response)
            if inspect.isawaitable(changed):
                changed = await changed
            if changed is not None:
                response = changed
        if response.status == 101:
            self.subprotocol = subprotocol
            self._codec = codec
        return response

    async def _run(self, request: Request) -> None:
        self.path = request.path
        self.request_headers = request.headers
        try:
            response = await self._accept(request)
        except InvalidHandshake as exc:
            self._reject(exc)
            return
        except Exception:
            self.logger.error("opening handshake failed", exc_info=True)
            self._send_response(handshake.reject(500))
            return
        if response is None or self._lost:
            return
        self.response_headers = response.headers
        self._send_response(response)
        if response.status != 101:
            return
        if self._open_timer is not None:
            self._open_timer.cancel()
            self._open_timer = None
        self._open_with_early_data(self._codec)
        # The handler runs from this coroutine, not from a second one that this one
        # awaits: an open connection keeps one coroutine fewer for every garbage
        # collection to walk.
        code = CloseCode.NORMAL_CLOSURE
        try:
            if self.handler is not None:
                if _wants_path(self.handler):
                    await self.handler(self, self.path)
                else:
                    await self.handler(self)
        except ConnectionClosed:
            self.logger.debug("handler exited: connection closed")
        except asyncio.CancelledError:
            if self.transport is not None:
                self.transport.abort()
            raise
        except Exception:
            self.logger.error("connection handler failed", exc_info=True)
            code = CloseCode.INTERNAL_ERROR
        try:
            await self.close(code)
        except asyncio.CancelledError:
            if self.transport is not None:
                self.transport.abort()
            raise

    def _topics(self) -> Topics:
        """The server's topic registry: :meth:`subscribe` registers there."""
        return self.server.topics

    def on_connection_lost(self) -> None:
        """Unregister from the server; stop the open timer."""
        if self._open_timer is not None:
            self._open_timer.cancel()
        self.server.unregister(self)


def _check_origins(origins: Origins) -> list[OriginRule] | AnyOrigin | None:
    """Validate the ``origins`` option; a lone string is a mistake, not a list of characters."""
    if origins is None or origins is ANY_ORIGIN:
        return origins
    if isinstance(origins, str | bytes):
        raise TypeError(
            "origins must be a list of origins, not a single string"
            " (wsjet.ANY_ORIGIN accepts any origin)"
        )
    rules = list(origins)
    for rule in rules:
        if rule is not None and not isinstance(rule, str | re.Pattern):
            raise TypeError(f"origins items must be str, re.Pattern or None, not {rule!r}")
    return rules


class Server:
    """A running WebSocket server: a listening :class:`asyncio.Server` and its connections.

    Args:
        close_timeout: see :func:`serve`.
        backplane: carries :meth:`publish` to subscribers; a new
            :class:`~wsjet.pubsub.InProcessBackplane` by default.
        slow_consumer: what broadcasts (and publish) do with a connection
            whose unsent data passes a bound (see
            :class:`~wsjet.broadcast.SlowConsumerPolicy`): ``"skip"`` (the
            default, past 1 MiB), ``"close"``, or a policy.

    Attributes:
        connections: the open (and opening) connections.
        backplane: the backplane :meth:`publish` goes through.
        slow_consumer: the slow-consumer policy of this server's broadcasts.
        topics: the subscriptions of this server's connections.
    """

    def __init__(
        self,
        close_timeout: float = 10,
        *,
        max_connections: int | None = None,
        backplane: Backplane | None = None,
        slow_consumer: SlowConsumer | None = None,
    ) -> None:
        self.connections: set[WebSocketServerProtocol] = set()
        self.server: asyncio.Server | None = None
        self.close_timeout = close_timeout
        #: Most connections open at once; beyond it new ones get 503.
        self.max_connections = max_connections
        self._closing: asyncio.Task[None] | None = None
        self.backplane: Backplane = InProcessBackplane() if backplane is None else backplane
        self.slow_consumer = slow_consumer_policy(slow_consumer)
        self.topics = Topics(self.backplane, slow_consumer=self.slow_consumer)

    def publish(self, topic: str, message: str | bytes | bytearray | memoryview) -> BroadcastResult:
        """Send ``message`` to every connection subscribed to ``topic``, without waiting.

        It goes through :attr:`backplane`: the subscribers of this server (and
        of the servers sharing the backplane in this process) have it queued
        when this returns; a :class:`~wsjet.pubsub.RedisBackplane` forwards it
        to the other servers in the background.

        Args:
            topic: the topic, as connections passed it to ``subscribe()``.
            message: ``str`` for a text message, bytes-like for a binary one.

        Returns:
            The deliveries to the subscribers of this process.

        Raises:
            TypeError: ``message`` is neither ``str`` nor bytes-like.
        """
        return self.backplane.publish(topic, message)

    def register(self, protocol: WebSocketServerProtocol) -> None:
        """Track a new connection."""
        self.connections.add(protocol)

    def unregister(self, protocol: WebSocketServerProtocol) -> None:
        """Forget a closed connection."""
        self.connections.discard(protocol)

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets."""
        return () if self.server is None else tuple(self.server.sockets)

    def is_serving(self) -> bool:
        """Whether the server accepts connections."""
        return self.server is not None and self.server.is_serving()

    async def start_serving(self) -> None:
        """Start accepting connections (already done by :func:`serve`)."""
        assert self.server is not None
        await self.server.start_serving()

    async def serve_forever(self) -> None:
        """Accept connections until cancelled, then close."""
        assert self.server is not None
        try:
            await self.server.serve_forever()
        finally:
            self.close()
            await self.wait_closed()

    def close(self, code: int = CloseCode.GOING_AWAY, reason: str = "") -> None:
        """Stop listening and close every connection with ``code`` (1001 by default).

        Returns at once; :meth:`wait_closed` waits for the shutdown to finish.
        """
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        if self.server is not None:
            self.server.close()
        for protocol in list(self.connections):
            if protocol.state is State.OPEN and protocol.connection is not None:
                if protocol.connection.close_sent is None:
                    protocol.connection.send_close(code, reason)
                    protocol._flush()
            elif protocol.state is State.CONNECTING and protocol.transport is not None:
                protocol.transport.abort()
        await self.backplane.detach(self.topics)
        protocols = list(self.connections)
        tasks = [p.handler_task for p in protocols if p.handler_task is not None]
        if tasks:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.close_timeout
            # Closing handshakes end within close_timeout (the close timer aborts TCP);
            # then handlers get SHUTDOWN_GRACE to return, within the same deadline.
            closed = [p._closed for p in protocols if not p._closed.done()]
            if closed:
                await asyncio.wait(closed, timeout=self.close_timeout)
            grace = max(0.0, min(SHUTDOWN_GRACE, deadline - loop.time()))
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                # A handler may clean up after its cancellation (within close_timeout,
                # as the callback face allows its callbacks), but one that ignores
                # the cancellation must not hold the shutdown forever.
                _, stuck = await asyncio.wait(pending, timeout=self.close_timeout)
                if stuck:
                    logger.warning(
                        "shutdown: %d handler(s) ignored their cancellation; "
                        "their connections are aborted without them",
                        len(stuck),
                    )
        for protocol in list(self.connections):
            if protocol.transport is not None:
                protocol.transport.abort()
        if self.server is not None:
            await self.server.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the server is closed and every connection ended."""
        if self._closing is None:
            if self.server is not None:
                await self.server.wait_closed()
            return
        await asyncio.shield(self._closing)

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        await self.wait_closed()


_PROTOCOL_OPTIONS = frozenset(
    inspect.signature(WebSocketServerProtocol.__init__).parameters
    | inspect.signature(WebSocketCommonProtocol.__init__).parameters
) - {"self", "handler", "server", "kwargs"}


class serve:
    """Start a WebSocket server on ``host``:``port`` running ``handler`` per connection.

    Awaiting it returns a :class:`Server`; ``async with serve(...) as server``
    closes the server on exit; ``loop.run_until_complete(serve(...))`` works too.
    ``handler`` is ``handler(websocket)`` or ``handler(websocket, path)``.

    Options (see :class:`WebSocketServerProtocol` and
    :class:`~wsjet.protocol.WebSocketCommonProtocol`): ``create_protocol``,
    ``origins`` (the default, ``None``, accepts requests without Origin and
    those whose Origin names the Host they were sent to, 403 for the others;
    a list is an allow-list of exact strings, compiled :class:`re.Pattern`
    matched in full, and ``None`` for clients without Origin;
    :data:`ANY_ORIGIN` accepts every Origin: see
    :meth:`WebSocketServerProtocol.check_origin`),
    ``subprotocols``, ``select_subprotocol`` (``select_subprotocol(connection,
    offered) -> str | None``), ``extra_headers``, ``compression``,
    ``process_request``, ``process_response``, ``open_timeout``,
    ``ping_interval``, ``ping_timeout``, ``close_timeout``, ``max_size``,
    ``max_queue``, ``write_limit``, ``logger``; for :class:`Server`,
    ``backplane`` and ``slow_consumer`` (see :meth:`Server.publish` and
    :func:`~wsjet.broadcast.broadcast`). Any other keyword goes to
    :meth:`asyncio.loop.create_server` (``ssl``, ``sock``, ``reuse_port``, ...).
    """

    def __init__(
        self,
        handler: Handler | None,
        host: str | Sequence[str] | None = None,
        port: int | None = None,
        *,
        create_protocol: Callable[..., WebSocketServerProtocol] | None = None,
        **kwargs: Any,
    ) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.create_protocol = create_protocol or WebSocketServerProtocol
        backplane: Backplane | None = kwargs.pop("backplane", None)
        slow_consumer: SlowConsumer | None = kwargs.pop("slow_consumer", None)
        self.options = {k: v for k, v in kwargs.items() if k in _PROTOCOL_OPTIONS}
        self.server_options = {k: v for k, v in kwargs.items() if k not in _PROTOCOL_OPTIONS}
        # A router (wsjet.route) carries its own 404 hook: install it unless one was given.
        router_hook = getattr(handler, "process_request", None)
        if router_hook is not None and "process_request" not in self.options:
            self.options["process_request"] = router_hook
        if "origins" in self.options:  # a mistake shows here, not at the first connection
            self.options["origins"] = _check_origins(self.options["origins"])
        self.ws_server = Server(
            close_timeout=self.options.get("close_timeout", defaults.CLOSE_TIMEOUT),
            max_connections=self.server_options.pop("max_connections", defaults.MAX_CONNECTIONS),
            backplane=backplane,
            slow_consumer=slow_consumer,
        )
        self._unix_path: str | None = None

    async def _create(self) -> Server:
        loop = asyncio.get_running_loop()
        factory = functools.partial(
            self.create_protocol, self.handler, self.ws_server, **self.options
        )
        if self.server_options.get("ssl") is not None:
            self.server_options.setdefault(
                "ssl_handshake_timeout", self.options.get("open_timeout") or 10
            )
        if self._unix_path is not None or "path" in self.server_options:
            server = await loop.create_unix_server(factory, self._unix_path, **self.server_options)
        else:
            server = await loop.create_server(factory, self.host, self.port, **self.server_options)
        self.ws_server.server = server
        await self.ws_server.backplane.attach(self.ws_server.topics)
        return self.ws_server

    def __await__(self) -> Generator[Any, None, Server]:
        return self._create().__await__()

    async def __aenter__(self) -> Server:
        return await self._create()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.ws_server.close()
        await self.ws_server.wait_closed()


def unix_serve(handler: Handler | None, path: str | None = None, **kwargs: Any) -> serve:
    """Like :func:`serve`, listening on the Unix socket ``path``."""
    server = serve(handler, **kwargs)
    server._unix_path = path
    return server


# The callback face, where the "Getting Started" guide names it (see wsjet.callbacks).
from .callbacks import WebSocketServer  # noqa: E402
