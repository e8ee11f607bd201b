"""WebSocket clients: :func:`connect` and :class:`WebSocketClientProtocol` (coroutine face).

The callback face's :class:`Client` (the server's handle on one peer) lives in
:mod:`wsjet.callbacks` and is re-exported here, where the "Getting Started"
guide names it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import ssl as ssl_module
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from .core import handshake
from .core.http import Headers, HTTPLimits, Request, Response, ResponseReader
from .core.uri import WebSocketURI, parse_uri
from .exceptions import InvalidHandshake, InvalidMessage, InvalidURI
from .extensions import Compression, negotiate_client, offer_client
from .protocol import WebSocketCommonProtocol

__all__ = ["Client", "WebSocketClientProtocol", "connect", "unix_connect"]

HeadersLike = Headers | Mapping[str, str] | Iterable[tuple[str, str]]


class WebSocketClientProtocol(WebSocketCommonProtocol):
    """The client side of a connection: sends the opening handshake, then runs.

    Subclass it and pass the subclass (or any factory) as ``create_protocol``
    to :func:`connect` to customise it.
    """

    is_client = True

    def __init__(
        self,
        *,
        subprotocols: Sequence[str] | None = None,
        extra_headers: HeadersLike | None = None,
        origin: str | None = None,
        user_agent_header: str | None = handshake.USER_AGENT,
        compression: Compression = "deflate",
        http_limits: HTTPLimits | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.available_subprotocols = list(subprotocols or ())
        self.extra_headers = extra_headers
        self.origin = origin
        self.user_agent_header = user_agent_header
        self.compression = compression
        self.request: Request | None = None
        self.response: Response | None = None
        self._reader = ResponseReader(http_limits or HTTPLimits())
        self._response_waiter: asyncio.Future[Response] = self.loop.create_future()

    async def handshake(self, uri: WebSocketURI) -> None:
        """Send the opening handshake request and check the server's response.

        Raises:
            InvalidHandshake: the server refused or answered wrongly (InvalidStatus
                carries a non-101 response).
        """
        key = handshake.generate_key()
        request = handshake.build_request(
            uri.host_header,
            uri.resource_name,
            key,
            subprotocols=self.available_subprotocols or None,
            extensions=offer_client(self.compression),
            origin=self.origin,
            user_agent=self.user_agent_header,
            extra_headers=self.extra_headers,
        )
        self.request = request
        self.path = uri.resource_name
        self.request_headers = request.headers
        assert self.transport is not None
        self.transport.write(request.serialize())
        response = await self._response_waiter
        self.response = response
        self.response_headers = response.headers
        handshake.check_response(response, key)
        self.subprotocol = handshake.check_subprotocol(response, self.available_subprotocols)
        codec = negotiate_client(response.headers, self.compression)
        self.open_connection(codec, self._reader.leftover)

    def receive_handshake_data(self, data: bytes) -> None:
        """Parse the server's HTTP response."""
        if self._response_waiter.done():
            return
        try:
            response = self._reader.feed(data)
        except InvalidHandshake as exc:
            self._response_waiter.set_exception(exc)
            return
        if response is not None:
            self._response_waiter.set_result(response)

    def eof_received(self) -> bool | None:
        """asyncio callback: a response without Content-Length ends at EOF."""
        if self.connection is None and not self._response_waiter.done():
            try:
                response = self._reader.feed_eof()
            except InvalidHandshake as exc:
                self._response_waiter.set_exception(exc)
            else:
                if response is not None:
                    self._response_waiter.set_result(response)
        return None

    def on_connection_lost(self) -> None:
        """Fail a handshake still waiting for its response."""
        if not self._response_waiter.done():
            self._response_waiter.set_exception(
                InvalidMessage("connection closed during the opening handshake")
            )
            self._response_waiter.exception()


_PROTOCOL_OPTIONS = frozenset(
    inspect.signature(WebSocketClientProtocol.__init__).parameters
    | inspect.signature(WebSocketCommonProtocol.__init__).parameters
) - {"self", "kwargs"}


class connect:
    """Open a WebSocket connection to ``uri`` (``ws://`` or ``wss://``).

    Awaiting it returns the open :class:`WebSocketClientProtocol`;
    ``async with connect(uri) as websocket`` closes it on exit.

    Options: ``create_protocol``, ``subprotocols``, ``extra_headers``,
    ``origin``, ``user_agent_header``, ``compression``, ``open_timeout``
    (10 s: covers TCP, TLS and the HTTP upgrade), ``ping_interval``,
    ``ping_timeout``, ``close_timeout``, ``max_size``, ``max_queue``,
    ``write_limit``, ``logger``, ``ssl`` (an :class:`ssl.SSLContext`, or
    ``True`` for the default context), ``sock``, ``host``/``port`` to override
    the URI's, and anything else :meth:`asyncio.loop.create_connection` takes.
    """

    def __init__(
        self,
        uri: str,
        *,
        create_protocol: Callable[..., WebSocketClientProtocol] | None = None,
        open_timeout: float | None = 10,
        **kwargs: Any,
    ) -> None:
        self.uri = uri
        self.wsuri = parse_uri(uri)
        self.create_protocol = create_protocol or WebSocketClientProtocol
        self.open_timeout = open_timeout
        self.options = {k: v for k, v in kwargs.items() if k in _PROTOCOL_OPTIONS}
        self.connect_options = {k: v for k, v in kwargs.items() if k not in _PROTOCOL_OPTIONS}
        self._unix_path: str | None = None
        self.protocol: WebSocketClientProtocol | None = None

    def _tls_options(self) -> dict[str, Any]:
        options = dict(self.connect_options)
        context = options.pop("ssl", None)
        if self.wsuri.secure:
            if context is None or context is True:
                context = ssl_module.create_default_context()
            options["ssl"] = context
            options.setdefault("server_hostname", self.wsuri.host)
        elif context is not None:
            raise InvalidURI(self.uri, "ssl= given for a ws:// URI; use wss://")
        return options

    async def _create(self) -> WebSocketClientProtocol:
        loop = asyncio.get_running_loop()
        factory = functools.partial(self.create_protocol, **self.options)
        options = self._tls_options()
        host = options.pop("host", self.wsuri.host)
        port = options.pop("port", self.wsuri.port)
        transport: asyncio.Transport | None = None

        async def open_connection() -> WebSocketClientProtocol:
            nonlocal transport
            if self._unix_path is not None:
                _, protocol = await loop.create_unix_connection(factory, self._unix_path, **options)
            elif "sock" in options:
                _, protocol = await loop.create_connection(factory, **options)
            else:
                _, protocol = await loop.create_connection(factory, host, port, **options)
            transport = protocol.transport
            await protocol.handshake(self.wsuri)
            return protocol

        try:
            protocol = await asyncio.wait_for(open_connection(), self.open_timeout)
        except BaseException:
            if transport is not None:
                transport.abort()
            raise
        self.protocol = protocol
        return protocol

    def __await__(self) -> Generator[Any, None, WebSocketClientProtocol]:
        return self._create().__await__()

    async def __aenter__(self) -> WebSocketClientProtocol:
        return await self._create()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self.protocol is not None
        await self.protocol.close()


def unix_connect(path: str, uri: str = "ws://localhost/", **kwargs: Any) -> connect:
    """Like :func:`connect`, over the Unix socket ``path``."""
    client = connect(uri, **kwargs)
    client._unix_path = path
    return client


# The callback face, where the "Getting Started" guide names it (see wsjet.callbacks).
from .callbacks import Client  # noqa: E402
