"""Client connections through proxies: HTTP CONNECT (``http://``, ``https://``) and SOCKS.

:func:`~wsjet.connect` calls :func:`get_proxy` to pick a proxy from the
environment (``proxy=True``, the default), or takes the ``proxy=`` URL it is
given, then opens the connection with :func:`create_proxy_connection`:

* ``http://[user:password@]host[:port]``: a TCP connection to the proxy,
  ``CONNECT target:port HTTP/1.1`` (``Proxy-Authorization: Basic`` from the
  URL's user info), then the WebSocket handshake, over TLS for ``wss://``,
  inside the tunnel: the proxy sees only encrypted bytes.
* ``https://...``: the same, with TLS to the proxy too (TLS inside TLS for
  ``wss://``); ``proxy_ssl`` is the context used for the proxy.
* ``socks5://``, ``socks5h://`` (the proxy resolves the host name),
  ``socks4://``, ``socks4a://``: through the optional ``python-socks`` package
  (``pip install 'wsjet[socks]'``).

Failures: the proxy can't be reached → :class:`OSError`; it refuses the
tunnel → :class:`ProxyError` (with the proxy's ``response`` for HTTP
proxies); the proxy URL is malformed → :class:`InvalidProxy`.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import importlib
import ipaddress
import socket
import ssl as ssl_module
import urllib.parse
from collections.abc import Callable
from typing import Any, TypeVar

from .core.http import Headers, Response
from .core.uri import WebSocketURI
from .exceptions import InvalidHandshake

__all__ = [
    "InvalidProxy",
    "Proxy",
    "ProxyError",
    "create_proxy_connection",
    "get_proxy",
    "parse_proxy",
]

_P = TypeVar("_P", bound=asyncio.BaseProtocol)

_DEFAULT_PORTS = {
    "http": 80,
    "https": 443,
    "socks5": 1080,
    "socks5h": 1080,
    "socks4": 1080,
    "socks4a": 1080,
}

#: Largest CONNECT response head accepted from a proxy.
MAX_PROXY_RESPONSE = 65536


class ProxyError(InvalidHandshake):
    """The proxy did not open a tunnel to the server.

    Attributes:
        response: the HTTP proxy's answer to ``CONNECT`` when it had one,
            e.g. 407 (proxy authentication required) or 502 (bad gateway).
    """

    def __init__(
        self, message: str, response: Response | None = None, *, transient: bool = False
    ) -> None:
        super().__init__(message)
        self.response = response
        #: Whether trying again later may succeed (the proxy could not reach
        #: the server, or answered 5xx): :func:`wsjet.reconnect.is_transient`.
        self.transient = transient or (response is not None and response.status >= 500)

    @property
    def status_code(self) -> int | None:
        """The status of the proxy's response, if any."""
        return None if self.response is None else self.response.status


class InvalidProxy(ProxyError):
    """The proxy URL is not valid."""

    def __init__(self, proxy: str, detail: str) -> None:
        self.proxy = proxy
        super().__init__(f"{_redact(proxy)!r} isn't a valid proxy: {detail}")
        self.transient = False


def _redact(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    try:
        parsed = urllib.parse.urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    if parsed.password is None:
        return url
    netloc = parsed.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parsed._replace(netloc=f"{parsed.username}:***@{netloc}"))


@dataclasses.dataclass(frozen=True)
class Proxy:
    """A parsed proxy URL.

    Attributes:
        scheme: ``"http"``, ``"https"``, ``"socks5"``, ``"socks5h"``,
            ``"socks4"`` or ``"socks4a"``.
        host: the host name or IP address, without brackets.
        port: the port, the scheme's default when the URL has none.
        username: the percent-decoded user name, if any.
        password: the percent-decoded password, if any.
    """

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @property
    def is_socks(self) -> bool:
        """Whether this is a SOCKS proxy."""
        return self.scheme.startswith("socks")

    def __repr__(self) -> str:
        secret = "" if self.password is None else ", password='***'"
        return (
            f"Proxy(scheme={self.scheme!r}, host={self.host!r}, port={self.port!r}, "
            f"username={self.username!r}{secret})"
        )


def parse_proxy(url: str) -> Proxy:
    """Parse and validate a proxy URL.

    Args:
        url: e.g. ``"http://user:pw@proxy.example:3128"`` or ``"socks5h://127.0.0.1:1080"``.

    Raises:
        InvalidProxy: unsupported scheme, no host, a bad port, or a path,
            query or fragment (meaningless for a proxy).
    """
    if any(char <= " " or char == "\x7f" for char in url):
        raise InvalidProxy(url, "whitespace or control character")
    try:
        parsed = urllib.parse.urlsplit(url)
        port = parsed.port
    except ValueError as exc:
        raise InvalidProxy(url, str(exc)) from None
    scheme = parsed.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidProxy(url, f"scheme {scheme!r} isn't supported")
    if not parsed.hostname:
        raise InvalidProxy(url, "missing host")
    if parsed.path not in ("", "/") or parsed.query or parsed.fragment or "#" in url:
        raise InvalidProxy(url, "a proxy URL has no path, query or fragment")
    if port == 0:
        raise InvalidProxy(url, "port 0 is not a valid destination")
    username = None if parsed.username is None else urllib.parse.unquote(parsed.username)
    password = None if parsed.password is None else urllib.parse.unquote(parsed.password)
    if username is not None and password is None:
        password = ""
    return Proxy(
        scheme=scheme,
        host=parsed.hostname,
        port=_DEFAULT_PORTS[scheme] if port is None else port,
        username=username,
        password=password,
    )


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def get_proxy(uri: WebSocketURI) -> str | None:
    """Pick the proxy for ``uri`` from the environment, as ``proxy=True`` does.

    ``wss://`` URIs use ``wss_proxy`` or ``https_proxy``, ``ws://`` URIs
    ``ws_proxy`` or ``http_proxy``, then either falls back on ``all_proxy``
    (upper-case names work too; see :func:`urllib.request.getproxies`).
    ``no_proxy`` lists hosts to reach directly (:func:`urllib.request.proxy_bypass`),
    and loopback hosts (``localhost``, ``127.0.0.0/8``, ``::1``) are always
    reached directly.

    Returns:
        The proxy URL, or ``None`` to connect directly.
    """
    import urllib.request  # here: it costs ~10 ms to import, and most clients don't need it

    if _is_loopback(uri.host):
        return None
    host = f"[{uri.host}]" if ":" in uri.host else uri.host
    if urllib.request.proxy_bypass(f"{host}:{uri.port}"):
        return None
    proxies = urllib.request.getproxies()
    keys = ("wss", "https", "all") if uri.secure else ("ws", "http", "all")
    for key in keys:
        url = proxies.get(key)
        if url:
            return url
    return None


# --- HTTP CONNECT ----------------------------------------------------------------------


def _connect_request(proxy: Proxy, host: str, port: int, user_agent: str | None) -> bytes:
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    headers = Headers([("Host", target)])
    if user_agent is not None:
        headers.add("User-Agent", user_agent)
    if proxy.username is not None:
        secret = f"{proxy.username}:{proxy.password or ''}".encode()
        headers.add("Proxy-Authorization", "Basic " + base64.b64encode(secret).decode("ascii"))
    return f"CONNECT {target} HTTP/1.1\r\n".encode("ascii") + headers.serialize() + b"\r\n"


def _head_end(buffer: bytes | bytearray) -> int:
    """Where the response head ends in ``buffer`` (after CRLFCRLF), or -1."""
    index = buffer.find(b"\r\n\r\n")
    return -1 if index < 0 else index + 4


def _check_connect_response(head: bytes, leftover: bytes) -> None:
    """Check the proxy's answer to CONNECT; raise :class:`ProxyError` unless 2xx."""
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    code = parts[1] if len(parts) > 1 else b""
    if not parts[0].startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise ProxyError("invalid response from the proxy to CONNECT")
    status = int(code)
    reason = parts[2].decode("latin-1") if len(parts) > 2 else ""
    headers = Headers()
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if colon:
            try:
                headers.add(name.decode("latin-1"), value.strip(b" \t").decode("latin-1"))
            except ValueError:
                continue  # not kept; the status is what matters
    response = Response(status, "" if not reason.isprintable() else reason, headers)
    if not 200 <= status < 300:
        detail = " (proxy authentication required)" if status == 407 else ""
        raise ProxyError(f"proxy refused the tunnel: HTTP {status}{detail}", response)
    if leftover:
        # The server speaks only after our request: nothing may come before.
        raise ProxyError("proxy sent data after its response to CONNECT")


async def _open_socket(host: str, port: int) -> socket.socket:
    """Open a non-blocking TCP socket to ``host``:``port``, trying every address."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    error: OSError | None = None
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise error or OSError(f"no address found for {host}:{port}")


async def _http_tunnel(proxy: Proxy, host: str, port: int, user_agent: str | None) -> socket.socket:
    """Open a CONNECT tunnel through a plain-HTTP proxy; return the raw socket."""
    loop = asyncio.get_running_loop()
    sock = await _open_socket(proxy.host, proxy.port)
    try:
        await loop.sock_sendall(sock, _connect_request(proxy, host, port, user_agent))
        buffer = bytearray()
        while (end := _head_end(buffer)) < 0:
            if len(buffer) > MAX_PROXY_RESPONSE:
                raise ProxyError("proxy response to CONNECT is too large")
            data = await loop.sock_recv(sock, 4096)
            if not data:
                raise ProxyError(
                    "proxy closed the connection before answering CONNECT", transient=True
                )
            buffer += data
        _check_connect_response(bytes(buffer[:end]), bytes(buffer[end:]))
    except BaseException:
        sock.close()
        raise
    return sock


class _TunnelProtocol(asyncio.Protocol):
    """Reads the proxy's answer to CONNECT on a transport (``https://`` proxies)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.head: asyncio.Future[tuple[bytes, bytes]] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        if self.head.done():
            return
        self.buffer += data
        end = _head_end(self.buffer)
        if end >= 0:
            self.head.set_result((bytes(self.buffer[:end]), bytes(self.buffer[end:])))
        elif len(self.buffer) > MAX_PROXY_RESPONSE:
            self.head.set_exception(ProxyError("proxy response to CONNECT is too large"))

    def eof_received(self) -> bool | None:
        self._lost()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost()

    def _lost(self) -> None:
        if not self.head.done():
            self.head.set_exception(
                ProxyError("proxy closed the connection before answering CONNECT", transient=True)
            )


async def _https_proxy_connection(
    protocol_factory: Callable[[], _P],
    proxy: Proxy,
    host: str,
    port: int,
    *,
    ssl: ssl_module.SSLContext | None,
    server_hostname: str | None,
    proxy_ssl: ssl_module.SSLContext | None,
    user_agent: str | None,
    ssl_handshake_timeout: float | None,
) -> tuple[asyncio.Transport, _P]:
    loop = asyncio.get_running_loop()
    context = proxy_ssl if proxy_ssl is not None else ssl_module.create_default_context()
    transport, tunnel = await loop.create_connection(
        _TunnelProtocol, proxy.host, proxy.port, ssl=context, server_hostname=proxy.host
    )
    try:
        transport.write(_connect_request(proxy, host, port, user_agent))
        head, leftover = await tunnel.head
        _check_connect_response(head, leftover)
        protocol = protocol_factory()
        if ssl is None:
            transport.set_protocol(protocol)
            protocol.connection_made(transport)
            return transport, protocol
        tls = await loop.start_tls(
            transport,
            protocol,
            ssl,
            server_hostname=server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
        )
        assert tls is not None
        protocol.connection_made(tls)
        return tls, protocol
    except BaseException:
        transport.abort()
        raise


# --- SOCKS -----------------------------------------------------------------------------


async def _socks_tunnel(proxy: Proxy, host: str, port: int) -> socket.socket:
    """Open a tunnel through a SOCKS proxy with python-socks; return the raw socket."""
    try:
        socks: Any = importlib.import_module("python_socks")
        socks_asyncio: Any = importlib.import_module("python_socks.async_.asyncio")
    except ImportError as exc:
        raise ImportError(
            f"connecting through a {proxy.scheme}:// proxy requires the python-socks "
            "package: pip install 'wsjet[socks]' (or python-socks)"
        ) from exc
    kind = socks.ProxyType.SOCKS5 if proxy.scheme.startswith("socks5") else socks.ProxyType.SOCKS4
    client = socks_asyncio.Proxy(
        kind,
        proxy.host,
        proxy.port,
        proxy.username,
        proxy.password,
        rdns=proxy.scheme in ("socks5h", "socks4a"),
        loop=asyncio.get_running_loop(),
    )
    try:
        sock: socket.socket = await client.connect(dest_host=host, dest_port=port)
    except socks.ProxyConnectionError as exc:  # an OSError: the proxy can't be reached
        raise OSError(exc.errno, str(exc)) from exc
    except socks.ProxyTimeoutError as exc:
        raise TimeoutError(str(exc)) from exc
    except socks.ProxyError as exc:
        # SOCKS replies 1, 3-6: general failure, network or host unreachable,
        # connection refused, TTL expired: the server may come back.
        transient = getattr(exc, "error_code", None) in (1, 3, 4, 5, 6)
        message = f"SOCKS proxy refused the tunnel: {exc}"
        raise ProxyError(message, transient=transient) from exc
    return sock


# --- entry point -----------------------------------------------------------------------


async def create_proxy_connection(
    protocol_factory: Callable[[], _P],
    proxy: str | Proxy,
    host: str,
    port: int,
    *,
    ssl: ssl_module.SSLContext | None = None,
    server_hostname: str | None = None,
    proxy_ssl: ssl_module.SSLContext | None = None,
    user_agent: str | None = None,
    **kwargs: Any,
) -> tuple[asyncio.Transport, _P]:
    """Like :meth:`asyncio.loop.create_connection`, through ``proxy``.

    Args:
        protocol_factory: builds the protocol that runs over the tunnel.
        proxy: the proxy URL, or a parsed :class:`Proxy`.
        host: the server's host name or address (sent to the proxy).
        port: the server's port.
        ssl: a context for TLS with the server, inside the tunnel, or ``None``.
        server_hostname: the name to check the server's certificate against.
        proxy_ssl: the context for TLS with an ``https://`` proxy (the default
            context when ``None``).
        user_agent: the User-Agent header of the CONNECT request.
        kwargs: more options for :meth:`asyncio.loop.create_connection`
            (``ssl_handshake_timeout``, ...) over the tunnel.

    Raises:
        InvalidProxy: the proxy URL is invalid.
        ProxyError: the proxy answered, but did not open the tunnel.
        OSError: the proxy cannot be reached.
        ImportError: a SOCKS proxy without the python-socks package.
    """
    if isinstance(proxy, str):
        proxy = parse_proxy(proxy)
    loop = asyncio.get_running_loop()
    if proxy.scheme == "https":
        return await _https_proxy_connection(
            protocol_factory,
            proxy,
            host,
            port,
            ssl=ssl,
            server_hostname=server_hostname,
            proxy_ssl=proxy_ssl,
            user_agent=user_agent,
            ssl_handshake_timeout=kwargs.get("ssl_handshake_timeout"),
        )
    if proxy.is_socks:
        sock = await _socks_tunnel(proxy, host, port)
    else:
        sock = await _http_tunnel(proxy, host, port, user_agent)
    try:
        if ssl is not None:
            kwargs["server_hostname"] = server_hostname or host
        transport, protocol = await loop.create_connection(
            protocol_factory, sock=sock, ssl=ssl, **kwargs
        )
    except BaseException:
        sock.close()
        raise
    return transport, protocol
