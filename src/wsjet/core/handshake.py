"""Rules of the WebSocket opening handshake, for both roles (RFC 6455 §4).

The server checks a :class:`~wsjet.core.http.Request` with
:func:`check_request` and answers with :func:`build_response` or
:func:`reject`; the client builds its request with :func:`build_request` and
checks the answer with :func:`check_response`. Subprotocol and extension
headers are parsed and serialized here; negotiating extensions is up to them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import string
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus

from ..exceptions import (
    HeadersTooLarge,
    InvalidHandshake,
    InvalidHeader,
    InvalidMessage,
    InvalidOrigin,
    InvalidStatus,
    InvalidUpgrade,
    InvalidVersion,
    NegotiationError,
    RequestLineTooLong,
)
from . import defaults
from .http import Headers, Request, Response, is_token

__all__ = [
    "GUID",
    "NEGOTIATION_HEADERS",
    "SERVER_HEADER",
    "USER_AGENT",
    "WSJET_VERSION",
    "Headers",
    "Request",
    "Response",
    "accept_key",
    "build_request",
    "build_response",
    "check_request",
    "check_response",
    "check_subprotocol",
    "generate_key",
    "parse_extensions",
    "parse_subprotocols",
    "reject",
    "reject_for",
    "select_subprotocol",
    "serialize_extensions",
]

#: Keep in step with ``version`` in pyproject.toml; not imported from the
#: package root so that the core stays free of import cycles.
WSJET_VERSION = "0.1.0"
SERVER_HEADER = f"wsjet/{WSJET_VERSION}"
USER_AGENT = f"wsjet/{WSJET_VERSION}"

#: The globally unique identifier of RFC 6455 §1.3.
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

Extension = tuple[str, list[tuple[str, str | None]]]


def accept_key(key: str) -> str:
    """Compute Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2 step 5.4)."""
    digest = hashlib.sha1((key + GUID).encode(), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


def generate_key() -> str:
    """Return a fresh random Sec-WebSocket-Key: 16 random bytes, base64 (RFC 6455 §4.1)."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def _token_list(headers: Headers, name: str) -> list[str]:
    # "#rule" lists of RFC 7230 §7: comma-separated, possibly over several
    # fields, with OWS around elements; empty elements are ignored.
    return [
        item.strip(" \t")
        for value in headers.get_all(name)
        for item in value.split(",")
        if item.strip(" \t")
    ]


def _check_upgrade(headers: Headers) -> None:
    # RFC 6455 §4.2.1 items 3-4 and §4.1 (client) items 2-3; both compare
    # case-insensitively.
    for name, token in (("Upgrade", "websocket"), ("Connection", "upgrade")):
        if token not in [item.lower() for item in _token_list(headers, name)]:
            values = headers.get_all(name)
            raise InvalidUpgrade(name, ", ".join(values) if values else None)


def _single(headers: Headers, name: str, error: type[InvalidHeader] = InvalidHeader) -> str:
    values = headers.get_all(name)
    if not values:
        raise error(name)
    if len(values) > 1:
        raise error(name, ", ".join(values), f"{len(values)} {name} headers, expected one")
    return values[0]


# --- server ----------------------------------------------------------------------------


#: The request headers whose size ``max_negotiation_bytes`` bounds.
NEGOTIATION_HEADERS = ("Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions")


def check_request(
    request: Request, *, max_negotiation_bytes: int = defaults.MAX_NEGOTIATION_BYTES
) -> str:
    """Validate a client's opening handshake (RFC 6455 §4.2.1).

    Args:
        request: the request.
        max_negotiation_bytes: most value bytes of Sec-WebSocket-Protocol,
            and of Sec-WebSocket-Extensions, all lines of each combined
            (:attr:`HTTPLimits.max_negotiation_bytes <wsjet.core.http.HTTPLimits>`).

    Returns:
        The Sec-WebSocket-Key, to pass to :func:`build_response`.

    Raises:
        InvalidMessage: the method is not GET (``status`` is 405).
        InvalidHeader: Host or Sec-WebSocket-Key is missing, repeated or invalid.
        InvalidUpgrade: Upgrade or Connection does not ask for a WebSocket.
        InvalidVersion: Sec-WebSocket-Version is missing, repeated or not 13.
        HeadersTooLarge: Sec-WebSocket-Protocol or Sec-WebSocket-Extensions is
            over ``max_negotiation_bytes`` (``status`` is 431, ``header`` names it).
    """
    if request.method != "GET":
        raise _method_not_allowed(request.method)
    headers = request.headers
    if not _single(headers, "Host"):
        raise InvalidHeader("Host", "")
    _check_upgrade(headers)
    key = _single(headers, "Sec-WebSocket-Key")
    try:
        raw = base64.b64decode(key.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raw = b""
    if len(raw) != 16:
        raise InvalidHeader("Sec-WebSocket-Key", key, "expected 16 bytes in base64")
    version = _single(headers, "Sec-WebSocket-Version", InvalidVersion)
    if version != "13":
        raise InvalidVersion("Sec-WebSocket-Version", version, "only 13 is supported")
    # RFC 6455 §4.2.1 items 8-9: lists of offers, a few tens of bytes from any
    # real client. Bounding them before they are parsed bounds the work of
    # parsing and negotiating (header_cpu: 64 KiB of valid offers took ~13 ms).
    for name in NEGOTIATION_HEADERS:
        size = sum(len(value) for value in headers.get_all(name))
        if size > max_negotiation_bytes:
            raise HeadersTooLarge(
                f"{name} headers: {size} bytes, over the limit of {max_negotiation_bytes}",
                header=name,
            )
    return key


def _method_not_allowed(method: str) -> InvalidMessage:
    """The error for a request that is not a GET (405).

    Built in a function of its own: an exception held in a local variable of the
    frame that raises it would form a cycle through its traceback.
    """
    exc = InvalidMessage(f"unsupported HTTP method {method!r}: expected GET")
    exc.status = 405
    return exc


def build_response(
    key: str,
    *,
    subprotocol: str | None = None,
    extensions: str | None = None,
    extra_headers: Headers | None = None,
    server_header: str | None = SERVER_HEADER,
) -> Response:
    """Build the 101 response accepting a handshake (RFC 6455 §4.2.2 step 5)."""
    headers = Headers()
    # Fixed names and values, and base64: valid fields, no need to check them.
    headers._add_parsed("Upgrade", "websocket")
    headers._add_parsed("Connection", "Upgrade")
    headers._add_parsed("Sec-WebSocket-Accept", accept_key(key))
    if subprotocol is not None:
        headers.add("Sec-WebSocket-Protocol", subprotocol)
    if extensions is not None:
        headers.add("Sec-WebSocket-Extensions", extensions)
    if server_header is not None:
        headers.add("Server", server_header)
    if extra_headers is not None:
        for name, value in extra_headers.items():
            headers.add(name, value)
    return Response(101, "Switching Protocols", headers)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown Status"


def reject(
    status: int, text: str | None = None, *, server_header: str | None = SERVER_HEADER
) -> Response:
    """Build a plain-text error response that closes the connection.

    Args:
        status: the HTTP status code.
        text: the body; the status' reason phrase and a newline by default.
            Do not put request data in it: the response reaches the client.
        server_header: the Server header, or ``None`` for none.
    """
    body = (f"{_phrase(status)}\n" if text is None else text).encode()
    headers = Headers(
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ]
    )
    if status == 426:
        # RFC 6455 §4.4: tell the client which versions we speak.
        headers.add("Sec-WebSocket-Version", "13")
    elif status == 405:
        # RFC 7231 §6.5.5: a 405 MUST list the allowed methods.
        headers.add("Allow", "GET")
    if server_header is not None:
        headers.add("Server", server_header)
    return Response(status, _phrase(status), headers, body)


_FAILED = "Failed to open a WebSocket connection"

# Header names a body may mention; anything else is not echoed, in case an
# exception was built from request data.
_KNOWN_HEADERS = frozenset(
    {"Host", "Upgrade", "Connection", "Origin"}
    | {f"Sec-WebSocket-{n}" for n in ("Key", "Version", "Protocol", "Extensions")}
)


def _describe(exc: InvalidHandshake) -> str:
    # Most specific classes first: they subclass the more generic ones.
    if isinstance(exc, InvalidVersion):
        return "unsupported Sec-WebSocket-Version; only version 13 is supported"
    if isinstance(exc, InvalidOrigin):
        return "origin not allowed"
    if isinstance(exc, NegotiationError):
        return "subprotocol or extension negotiation failed"
    if isinstance(exc, InvalidHeader):
        name = exc.name if exc.name in _KNOWN_HEADERS else "a"
        return f"missing or invalid {name} header"
    if isinstance(exc, HeadersTooLarge) and exc.header in _KNOWN_HEADERS:
        return f"{exc.header} header too large"
    if isinstance(exc, RequestLineTooLong | HeadersTooLarge):
        return "request header too large"
    if isinstance(exc, InvalidMessage):
        if exc.status == 405:
            return "only the GET method is supported"
        return "invalid HTTP request"
    return "invalid opening handshake"


def reject_for(exc: InvalidHandshake, *, server_header: str | None = SERVER_HEADER) -> Response:
    """Build the error response a server answers ``exc`` with.

    The status is ``exc.status``; the body is a fixed sentence chosen by the
    exception's class, which never includes request data.
    """
    text = f"{_FAILED}: {_describe(exc)}.\n"
    return reject(exc.status, text, server_header=server_header)


# --- subprotocols ----------------------------------------------------------------------


def parse_subprotocols(headers: Headers) -> list[str]:
    """Return the subprotocols listed in all Sec-WebSocket-Protocol headers, in order.

    Raises:
        InvalidHeader: an element is not a token (RFC 6455 §4.1 item 10,
            §11.3.4), or a header lists nothing.
    """
    result: list[str] = []
    for value in headers.get_all("Sec-WebSocket-Protocol"):
        items = [item.strip(" \t") for item in value.split(",")]
        items = [item for item in items if item]
        if not items:
            raise InvalidHeader("Sec-WebSocket-Protocol", value, "no subprotocol listed")
        for item in items:
            if not is_token(item):
                raise InvalidHeader("Sec-WebSocket-Protocol", value, f"invalid token {item!r}")
        result.extend(items)
    return result


def select_subprotocol(offered: Sequence[str], supported: Sequence[str]) -> str | None:
    """Return the first of ``supported`` the client offered, or ``None``.

    The server's order of preference wins; names compare case-sensitively.
    """
    offered_set = set(offered)
    for name in supported:
        if name in offered_set:
            return name
    return None


def check_subprotocol(response: Response, offered: Sequence[str]) -> str | None:
    """Return the subprotocol the server selected, checking the client offered it.

    Raises:
        InvalidHeader: the Sec-WebSocket-Protocol header is malformed.
        NegotiationError: the server selected several subprotocols, or one that
            was not offered (RFC 6455 §4.1, client item 6).
    """
    selected = parse_subprotocols(response.headers)
    if not selected:
        return None
    value = ", ".join(selected)
    if len(selected) > 1:
        raise NegotiationError("Sec-WebSocket-Protocol", value, "several subprotocols selected")
    if selected[0] not in offered:
        raise NegotiationError("Sec-WebSocket-Protocol", value, "subprotocol not offered")
    return selected[0]


# --- extensions ------------------------------------------------------------------------

_OWS = " \t"
_TCHARS = frozenset("!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits)


def _skip_ows(value: str, pos: int) -> int:
    while pos < len(value) and value[pos] in _OWS:
        pos += 1
    return pos


def _read_token(value: str, pos: int) -> tuple[str, int]:
    end = pos
    while end < len(value) and value[end] in _TCHARS:
        end += 1
    if end == pos:
        raise ValueError(f"expected a token at position {pos}")
    return value[pos:end], end


def _read_quoted(value: str, pos: int) -> tuple[str, int]:
    # quoted-string of RFC 7230 §3.2.6; value[pos] is the opening quote.
    chars: list[str] = []
    pos += 1
    while pos < len(value):
        char = value[pos]
        if char == '"':
            return "".join(chars), pos + 1
        if char == "\\":
            pos += 1
            if pos == len(value):
                break
            char = value[pos]
        chars.append(char)
        pos += 1
    raise ValueError("unterminated quoted string")


def _parse_extension_value(value: str) -> list[Extension]:
    # One left-to-right pass; every helper only moves forward, so the work is
    # linear in len(value) whatever the input.
    result: list[Extension] = []
    pos = _skip_ows(value, 0)
    while pos < len(value):
        if value[pos] == ",":  # empty list element, RFC 7230 §7
            pos = _skip_ows(value, pos + 1)
            continue
        name, pos = _read_token(value, pos)
        params: list[tuple[str, str | None]] = []
        pos = _skip_ows(value, pos)
        while pos < len(value) and value[pos] == ";":
            param, pos = _read_token(value, _skip_ows(value, pos + 1))
            pos = _skip_ows(value, pos)
            param_value: str | None = None
            if pos < len(value) and value[pos] == "=":
                pos = _skip_ows(value, pos + 1)
                if pos < len(value) and value[pos] == '"':
                    param_value, pos = _read_quoted(value, pos)
                    # RFC 6455 §9.1: once unescaped it MUST be a token too.
                    if not is_token(param_value):
                        raise ValueError(f"quoted value {param_value!r} is not a token")
                else:
                    param_value, pos = _read_token(value, pos)
                pos = _skip_ows(value, pos)
            params.append((param, param_value))
        result.append((name, params))
        if pos < len(value) and value[pos] != ",":
            raise ValueError(f"unexpected {value[pos]!r} at position {pos}")
    if not result:
        raise ValueError("no extension listed")
    return result


def parse_extensions(headers: Headers) -> list[Extension]:
    """Parse every Sec-WebSocket-Extensions header (RFC 6455 §9.1).

    Returns:
        ``(name, [(parameter, value or None), ...])`` for each extension, in order.

    Raises:
        InvalidHeader: a header does not follow the grammar.
    """
    result: list[Extension] = []
    for value in headers.get_all("Sec-WebSocket-Extensions"):
        try:
            result.extend(_parse_extension_value(value))
        except ValueError as exc:
            raise InvalidHeader("Sec-WebSocket-Extensions", value, str(exc)) from None
    return result


def serialize_extensions(extensions: Sequence[Extension]) -> str:
    """Encode extensions for a Sec-WebSocket-Extensions header (RFC 6455 §9.1).

    Raises:
        ValueError: a name or value is not a token.
    """

    def token(item: str) -> str:
        if not is_token(item):
            raise ValueError(f"extension name or value is not a token: {item!r}")
        return item

    parts: list[str] = []
    for name, params in extensions:
        items = [token(name)]
        for param, value in params:
            items.append(token(param) if value is None else f"{token(param)}={token(value)}")
        parts.append("; ".join(items))
    return ", ".join(parts)


# --- client ----------------------------------------------------------------------------


def build_request(
    host: str,
    path: str,
    key: str,
    *,
    subprotocols: Sequence[str] | None = None,
    extensions: str | None = None,
    origin: str | None = None,
    user_agent: str | None = USER_AGENT,
    extra_headers: Headers | Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
) -> Request:
    """Build a client's opening handshake (RFC 6455 §4.1).

    Args:
        host: the Host header, e.g. :attr:`~wsjet.core.uri.WebSocketURI.host_header`.
        path: the request target, e.g. ``"/chat?room=1"``.
        key: the Sec-WebSocket-Key, from :func:`generate_key`.
        subprotocols: subprotocols to offer, in order of preference.
        extensions: the Sec-WebSocket-Extensions value to send.
        origin: the Origin header, for clients that have one.
        user_agent: the User-Agent header, or ``None`` for none.
        extra_headers: more headers, appended last.

    Raises:
        ValueError: a subprotocol is not a token, or a header value is invalid.
    """
    headers = Headers(
        [
            ("Host", host),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", key),
            ("Sec-WebSocket-Version", "13"),
        ]
    )
    if origin is not None:
        headers.add("Origin", origin)
    if subprotocols:
        for name in subprotocols:
            if not is_token(name):
                raise ValueError(f"subprotocol is not a token: {name!r}")
        headers.add("Sec-WebSocket-Protocol", ", ".join(subprotocols))
    if extensions is not None:
        headers.add("Sec-WebSocket-Extensions", extensions)
    if user_agent is not None:
        headers.add("User-Agent", user_agent)
    if extra_headers is not None:
        for name, value in Headers(extra_headers).items():
            headers.add(name, value)
    return Request(path, headers)


def check_response(response: Response, key: str) -> None:
    """Validate a server's answer to our handshake (RFC 6455 §4.1, client items 1-4).

    Raises:
        InvalidStatus: the status is not 101.
        InvalidUpgrade: Upgrade or Connection does not confirm the upgrade.
        InvalidHeader: Sec-WebSocket-Accept is missing, repeated or wrong.
    """
    if response.status != 101:
        raise InvalidStatus(response)
    _check_upgrade(response.headers)
    accept = _single(response.headers, "Sec-WebSocket-Accept")
    if accept != accept_key(key):
        raise InvalidHeader("Sec-WebSocket-Accept", accept, "does not match the key")
