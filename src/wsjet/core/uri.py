"""ws:// and wss:// URIs (RFC 6455 §3)."""

from __future__ import annotations

import dataclasses
import urllib.parse

from ..exceptions import InvalidURI

__all__ = ["WebSocketURI", "parse_uri"]

_DEFAULT_PORTS = {False: 80, True: 443}

# Characters left as they are when percent-encoding the resource name: the
# unreserved, sub-delims, ":", "@", "/" and "?" of RFC 3986 §3.3-3.4, plus "%"
# so that escapes already present are kept.
_SAFE = "/?:@!$&'()*+,;=%~"


@dataclasses.dataclass(frozen=True)
class WebSocketURI:
    """A parsed WebSocket URI.

    Attributes:
        secure: ``True`` for wss://, which runs over TLS.
        host: the host name (IDNA-encoded) or IP address, without brackets.
        port: the TCP port, 80 or 443 when the URI has none.
        path: the resource name: path and ``?query``, at least ``/``.
        username: the percent-decoded user name, if any.
        password: the percent-decoded password, if any.
    """

    secure: bool
    host: str
    port: int
    path: str
    username: str | None = None
    password: str | None = None

    @property
    def host_header(self) -> str:
        """The Host header value: host, and ``:port`` unless it is the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == _DEFAULT_PORTS[self.secure]:
            return host
        return f"{host}:{self.port}"

    @property
    def resource_name(self) -> str:
        """The /resource name/ of RFC 6455 §3: the request target to send."""
        return self.path


def parse_uri(uri: str) -> WebSocketURI:
    """Parse a ws:// or wss:// URI (RFC 6455 §3).

    Non-ASCII characters of the path and query are percent-encoded, and a
    non-ASCII host name is IDNA-encoded, so that the result can go on the wire.

    Raises:
        InvalidURI: the scheme is not ws or wss, the host is missing, the port
            is invalid, there is a fragment, or the URI contains whitespace or
            control characters.
    """
    # urlsplit() silently drops tabs and newlines (WHATWG behaviour), which
    # would hide a mistake or an injection attempt: refuse them up front.
    if any(char <= " " or char == "\x7f" for char in uri):
        raise InvalidURI(uri, "whitespace or control character")
    try:
        parsed = urllib.parse.urlsplit(uri)
    except ValueError as exc:
        raise InvalidURI(uri, str(exc)) from None
    if parsed.scheme not in ("ws", "wss"):
        raise InvalidURI(uri, "scheme isn't ws or wss")
    # RFC 6455 §3: fragment identifiers MUST NOT be used, even empty ones.
    if "#" in uri:
        raise InvalidURI(uri, "fragment identifier not allowed")
    host = parsed.hostname
    if not host:
        raise InvalidURI(uri, "missing host")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidURI(uri, "host name cannot be IDNA-encoded") from None
    secure = parsed.scheme == "wss"
    try:
        port = parsed.port
    except ValueError:
        raise InvalidURI(uri, "invalid port") from None
    if port is None:
        port = _DEFAULT_PORTS[secure]
    elif port == 0:
        raise InvalidURI(uri, "port 0 is not a valid destination")
    path = parsed.path or "/"
    if parsed.query:
        path = f"{path}?{parsed.query}"
    path = urllib.parse.quote(path, safe=_SAFE)
    username = parsed.username
    password = parsed.password
    return WebSocketURI(
        secure=secure,
        host=host,
        port=port,
        path=path,
        username=None if username is None else urllib.parse.unquote(username),
        password=None if password is None else urllib.parse.unquote(password),
    )
