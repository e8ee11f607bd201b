"""WebSocket clients: :func:`connect` and :class:`WebSocketClientProtocol` (coroutine face).

The callback face's :class:`Client` (the server's handle on one peer) lives in
:mod:`wsjet.callbacks` and is re-exported here, where the "Getting Started"
guide names it.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import inspect
import ssl as ssl_module
import urllib.parse
from collections.abc import AsyncGenerator, Callable, Generator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from .core import defaults, handshake
from .core.http import DEFAULT_LIMITS, Headers, HTTPLimits, Request, Response, ResponseReader
from .core.uri import WebSocketURI, parse_uri
from .exceptions import InvalidHandshake, InvalidMessage, InvalidStatus, InvalidURI
from .extensions import Compression, negotiate_client, offer_client
from .protocol import WebSocketCommonProtocol
from .proxy import create_proxy_connection, get_proxy, parse_proxy

if TYPE_CHECKING:
    from .reconnect import Backoff

__all__ = [
    "Client",
    "InvalidRedirect",
    "TooManyRedirects",
    "WebSocketClientProtocol",
    "connect",
    "unix_connect",
]

HeadersLike = Headers | Mapping[str, str] | Iterable[tuple[str, str]]


class WebSocketClientProtocol(WebSocketCommonProtocol):
    """The client side of a connection: sends the opening handshake, then runs.

    Subclass it and pass the subclass (or any factory) as ``create_protocol``
    to :func:`connect` to customise it.
    """

    is_client = True

    # See WebSocketCommonProtocol.__slots__.
    __slots__ = (
        "_http_limits",
        "_reader",
        "_response_waiter",
        "available_subprotocols",
        "compression",
        "extra_headers",
        "origin",
        "request",
        "response",
        "user_agent_header",
    )

    def __init__(
        self,
        *,
        subprotocols: Sequence[str] | None = None,
        extra_headers: HeadersLike | None = None,
        origin: str | None = None,
        user_agent_header: str | None = handshake.USER_AGENT,
        compression: Compression = defaults.COMPRESSION,
        http_limits: HTTPLimits | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # A tuple: the empty one is shared, and a tuple of strings is left out of
        # garbage collections.
        self.available_subprotocols = tuple(subprotocols or ())
        self.extra_headers = extra_headers
        self.origin = origin
        self.user_agent_header = user_agent_header
        self.compression = compression
        self.request: Request | None = None
        self.response: Response | None = None
        self._http_limits = http_limits or DEFAULT_LIMITS
        # Dropped once the response is complete: a connection lives on without it.
        self._reader: ResponseReader | None = ResponseReader(self._http_limits)
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
        self._open_with_early_data(codec)

    def receive_handshake_data(self, data: bytes) -> None:
        """Parse the server's HTTP response; keep what follows it for the connection."""
        if self._response_waiter.done():
            if not self._response_waiter.cancelled() and not self._response_waiter.exception():
                # The server's first frames, before the handshake's task opens
                # the connection.
                self._keep_early_data(data, self._http_limits.max_header_bytes)
            return
        assert self._reader is not None  # until the response is complete
        try:
            response = self._reader.feed(data)
        except InvalidHandshake as exc:
            self._response_waiter.set_exception(exc)
            return
        if response is not None:
            self._early_data += self._reader.leftover
            self._reader = None
            self._response_waiter.set_result(response)

    def eof_received(self) -> bool | None:
        """asyncio callback: a response without Content-Length ends at EOF."""
        if self.connection is None and not self._response_waiter.done():
            assert self._reader is not None  # until the response is complete
            try:
                response = self._reader.feed_eof()
            except InvalidHandshake as exc:
                # The stream ended early: a network event, which reconnecting may cure.
                exc.__cause__ = EOFError("connection closed during the opening handshake")
                self._response_waiter.set_exception(exc)
            else:
                if response is not None:
                    self._response_waiter.set_result(response)
        return None

    def on_connection_lost(self) -> None:
        """Fail a handshake still waiting for its response."""
        if not self._response_waiter.done():
            exc = InvalidMessage("connection closed during the opening handshake")
            exc.__cause__ = EOFError("connection closed during the opening handshake")
            self._response_waiter.set_exception(exc)
            self._response_waiter.exception()


_PROTOCOL_OPTIONS = frozenset(
    inspect.signature(WebSocketClientProtocol.__init__).parameters
    | inspect.signature(WebSocketCommonProtocol.__init__).parameters
) - {"self", "kwargs"}

#: Statuses followed as redirects when they carry a Location header.
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

#: Request headers never sent to another origin after a redirect.
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


class InvalidRedirect(InvalidStatus):
    """The server redirected, and following the redirect is refused.

    Raised for a ``wss://`` → ``ws://`` downgrade, a Location that is not a
    WebSocket (or HTTP) URI, a cross-origin redirect over a Unix socket or a
    given ``sock``. ``response`` is the redirect response.
    """

    def __init__(self, response: Response, detail: str) -> None:
        super().__init__(response)
        self.args = (f"cannot follow redirect (HTTP {response.status}): {detail}",)


class TooManyRedirects(InvalidRedirect):
    """The server redirected more than ``max_redirects`` times (a loop, probably)."""


def _origin(uri: WebSocketURI) -> tuple[bool, str, int]:
    return uri.secure, uri.host.lower(), uri.port


def _uri_string(uri: WebSocketURI) -> str:
    return f"{'wss' if uri.secure else 'ws'}://{uri.host_header}{uri.resource_name}"


def _basic_authorization(username: str, password: str | None) -> str:
    token = base64.b64encode(f"{username}:{password or ''}".encode()).decode("ascii")
    return f"Basic {token}"


class connect:
    """Open a WebSocket connection to ``uri`` (``ws://`` or ``wss://``).

    Three ways to use it:

    * ``websocket = await connect(uri)`` returns the open
      :class:`WebSocketClientProtocol`;
    * ``async with connect(uri) as websocket:`` also closes it on exit;
    * ``async for websocket in connect(uri):`` reconnects automatically: each
      iteration gets a new connection, opened with exponential backoff and
      jitter after network failures and 5xx answers (see
      :func:`wsjet.reconnect.reconnect` for what is retried and what is
      raised). Leaving the loop with ``break`` closes the connection when the
      iterator is finalized; ``await websocket.close()`` first to close it at
      once. For an outbound buffer across reconnections, see
      :func:`wsjet.reconnecting`.

    User info in the URI (``wss://user:password@host/``) is sent as HTTP Basic
    ``Authorization``, unless ``extra_headers`` has one.

    Redirects (301, 302, 303, 307, 308 with a Location) are followed, at most
    ``max_redirects`` times (then :class:`TooManyRedirects`). When a redirect
    changes the origin (scheme, host or port), the Authorization, Cookie and
    Proxy-Authorization headers and the URI's credentials are not sent to the
    new origin, nor to any later one; ``ws://`` → ``wss://`` is followed,
    ``wss://`` → ``ws://`` raises :class:`InvalidRedirect`. An ``http(s)://``
    Location is taken as ``ws(s)://``. ``open_timeout`` bounds the whole chain.

    Args:
        uri: the ``ws://`` or ``wss://`` URI.
        create_protocol: factory of the protocol, :class:`WebSocketClientProtocol`
            by default.
        open_timeout: seconds for TCP, proxy, TLS, redirects and the HTTP
            upgrade together (10); ``None`` waits forever.
        proxy: ``True`` (the default) takes the proxy from the environment
            (``https_proxy`` / ``http_proxy`` / ``all_proxy``, minus
            ``no_proxy`` and loopback hosts: :func:`wsjet.proxy.get_proxy`);
            a URL (``http://``, ``https://``, ``socks5://``, ``socks5h://``,
            ``socks4://``, ``socks4a://``; user info is the proxy's
            credentials) uses that proxy; ``None`` connects directly. Not
            used over a Unix socket or a given ``sock``. See :mod:`wsjet.proxy`.
        proxy_ssl: the :class:`ssl.SSLContext` for an ``https://`` proxy.
        max_redirects: most redirects followed (10).
        backoff: the reconnection delays of ``async for``
            (:class:`wsjet.reconnect.Backoff`).
        kwargs: protocol options (``subprotocols``, ``extra_headers``,
            ``origin``, ``user_agent_header``, ``compression``,
            ``ping_interval``, ``ping_timeout``, ``close_timeout``,
            ``max_size``, ``max_queue``, ``write_limit``, ``logger``, ...), and
            options for :meth:`asyncio.loop.create_connection`: ``ssl`` (an
            :class:`ssl.SSLContext`, or ``True`` for the default context),
            ``sock``, ``host``/``port`` to override the URI's,
            ``server_hostname``, ``local_addr``...

    Raises:
        InvalidURI: ``uri`` is not a valid WebSocket URI.
        InvalidProxy: ``proxy`` is not a valid proxy URL.
    """

    def __init__(
        self,
        uri: str,
        *,
        create_protocol: Callable[..., WebSocketClientProtocol] | None = None,
        open_timeout: float | None = defaults.OPEN_TIMEOUT,
        proxy: str | Literal[True] | None = True,
        proxy_ssl: ssl_module.SSLContext | None = None,
        max_redirects: int = defaults.MAX_REDIRECTS,
        backoff: Backoff | None = None,
        **kwargs: Any,
    ) -> None:
        self.uri = uri
        self.wsuri = parse_uri(uri)
        self.create_protocol = create_protocol or WebSocketClientProtocol
        self.open_timeout = open_timeout
        if isinstance(proxy, str):
            parse_proxy(proxy)  # fail early on a malformed proxy URL
        elif proxy is not True and proxy is not None:
            raise TypeError("proxy must be a URL, True (from the environment) or None")
        self.proxy = proxy
        self.proxy_ssl = proxy_ssl
        self.max_redirects = max_redirects
        self.backoff = backoff
        self.options = {k: v for k, v in kwargs.items() if k in _PROTOCOL_OPTIONS}
        self.connect_options = {k: v for k, v in kwargs.items() if k not in _PROTOCOL_OPTIONS}
        self._unix_path: str | None = None
        self.protocol: WebSocketClientProtocol | None = None
        if not self.wsuri.secure and self.connect_options.get("ssl") is not None:
            raise InvalidURI(self.uri, "ssl= given for a ws:// URI; use wss://")

    def _tls_options(self, wsuri: WebSocketURI) -> dict[str, Any]:
        """Options for create_connection: the given ones, with TLS set for ``wsuri``."""
        options = dict(self.connect_options)
        context = options.pop("ssl", None)
        same_origin = _origin(wsuri) == _origin(self.wsuri)
        if not same_origin:
            # Overrides meant for the URI given; the new origin is reached as it says.
            for name in ("host", "port", "server_hostname"):
                options.pop(name, None)
        if wsuri.secure:
            if context is None or context is True:
                context = ssl_module.create_default_context()
            options["ssl"] = context
            options.setdefault("server_hostname", wsuri.host)
        else:
            options.pop("server_hostname", None)
        return options

    def _proxy_for(self, wsuri: WebSocketURI) -> str | None:
        if self._unix_path is not None or "sock" in self.connect_options:
            return None
        if self.proxy is True:
            return get_proxy(wsuri)
        return self.proxy

    async def _open_transport(
        self, wsuri: WebSocketURI, factory: Callable[[], WebSocketClientProtocol]
    ) -> WebSocketClientProtocol:
        loop = asyncio.get_running_loop()
        options = self._tls_options(wsuri)
        host = options.pop("host", wsuri.host)
        port = options.pop("port", wsuri.port)
        proxy = self._proxy_for(wsuri)
        if self._unix_path is not None:
            _, protocol = await loop.create_unix_connection(factory, self._unix_path, **options)
        elif "sock" in options:
            _, protocol = await loop.create_connection(factory, **options)
        elif proxy is not None:
            _, protocol = await create_proxy_connection(
                factory,
                proxy,
                host,
                port,
                ssl=options.pop("ssl", None),
                server_hostname=options.pop("server_hostname", None),
                proxy_ssl=self.proxy_ssl,
                user_agent=self.options.get("user_agent_header", handshake.USER_AGENT),
                **options,
            )
        else:
            _, protocol = await loop.create_connection(factory, host, port, **options)
        return protocol

    def _redirect(self, wsuri: WebSocketURI, response: Response, count: int) -> WebSocketURI | None:
        """The URI a response redirects to, or ``None`` if it is no redirect."""
        location = response.headers.get("Location")
        if response.status not in REDIRECT_STATUSES or location is None:
            return None
        if count >= self.max_redirects:
            raise TooManyRedirects(response, f"more than {self.max_redirects} redirects")
        try:
            target = urllib.parse.urljoin(_uri_string(wsuri), location)
            scheme, colon, rest = target.partition(":")
            scheme = {"http": "ws", "https": "wss"}.get(scheme.lower(), scheme)
            new = parse_uri(scheme + colon + rest)
        except (InvalidURI, ValueError):
            raise InvalidRedirect(response, "the Location is not a WebSocket URI") from None
        if wsuri.secure and not new.secure:
            raise InvalidRedirect(response, "refusing to downgrade from wss:// to ws://")
        cross_origin = _origin(new) != _origin(wsuri)
        if cross_origin and self._unix_path is not None:
            raise InvalidRedirect(response, "cross-origin redirect over a Unix socket")
        if "sock" in self.connect_options:
            raise InvalidRedirect(response, "cannot open another connection with sock=")
        return new

    async def _handshake_following_redirects(self) -> WebSocketClientProtocol:
        wsuri = self.wsuri
        given = self.options.get("extra_headers")
        headers = None if given is None else Headers(given)
        credentials: tuple[str, str | None] | None = None
        if wsuri.username is not None:
            credentials = (wsuri.username, wsuri.password)
        count = 0
        while True:
            options = dict(self.options)
            if credentials is not None and (headers is None or "Authorization" not in headers):
                sent = Headers() if headers is None else headers.copy()
                sent.add("Authorization", _basic_authorization(*credentials))
                options["extra_headers"] = sent
            elif headers is not None:
                options["extra_headers"] = headers
            factory = functools.partial(self.create_protocol, **options)
            protocol = await self._open_transport(wsuri, factory)
            self.protocol = protocol
            try:
                await protocol.handshake(wsuri)
            except InvalidStatus as exc:
                new = self._redirect(wsuri, exc.response, count)
                if new is None:
                    raise
            else:
                return protocol
            assert protocol.transport is not None
            protocol.transport.abort()
            count += 1
            if _origin(new) != _origin(wsuri):
                if headers is not None:
                    headers = Headers(
                        (name, value)
                        for name, value in headers.items()
                        if name.lower() not in _CREDENTIAL_HEADERS
                    )
                credentials = None
            if new.username is not None:
                credentials = (new.username, new.password)
            wsuri = new

    async def _create(self) -> WebSocketClientProtocol:
        self.protocol = None
        try:
            # asyncio.timeout, not wait_for: on Python 3.11, wait_for's task and the
            # exception it holds form a reference cycle with wait_for's frame.
            async with asyncio.timeout(self.open_timeout):
                protocol = await self._handshake_following_redirects()
        except BaseException:
            if self.protocol is not None and self.protocol.transport is not None:
                self.protocol.transport.abort()
            self.protocol = None
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

    def __aiter__(self) -> AsyncGenerator[WebSocketClientProtocol, None]:
        """Yield a new connection after each one ends: see :func:`wsjet.reconnect.reconnect`."""
        from .reconnect import reconnect

        return reconnect(self)


def unix_connect(path: str, uri: str = "ws://localhost/", **kwargs: Any) -> connect:
    """Like :func:`connect`, over the Unix socket ``path``."""
    client = connect(uri, **kwargs)
    client._unix_path = path
    return client


# The callback face, where the "Getting Started" guide names it (see wsjet.callbacks).
from .callbacks import Client  # noqa: E402
