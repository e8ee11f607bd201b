"""HTTP/1.1 messages of the opening handshake (RFC 7230), Sans-I/O.

:class:`RequestReader` and :class:`ResponseReader` are fed bytes as they
arrive and return a message once it is complete. They enforce the limits of
:class:`HTTPLimits` while data arrives, and scan every byte a bounded number of
times, so a peer dripping a large header one byte at a time costs linear work.

Only HTTP/1.1 is accepted: RFC 6455 §4.1 requires "HTTP/1.1 or higher", the
Upgrade mechanism it relies on does not exist in HTTP/1.0, and no later
version uses this message syntax. Any other version, HTTP/1.0 included, raises
:class:`~wsjet.exceptions.InvalidMessage` (status 400).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from typing import Generic, TypeVar, overload

from ..exceptions import HeadersTooLarge, InvalidMessage, RequestLineTooLong
from . import defaults

__all__ = [
    "DEFAULT_LIMITS",
    "HTTPLimits",
    "Headers",
    "Request",
    "RequestReader",
    "Response",
    "ResponseReader",
    "is_token",
]

# tchar of RFC 7230 §3.2.6: the characters of a token.
_TCHAR = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Control characters, which RFC 7230 §3.2 forbids in field values, except HTAB.
_CTL = bytes(range(0x09)) + bytes(range(0x0A, 0x20)) + b"\x7f"
# What may appear in a request-target: visible ASCII (RFC 7230 §5.3, RFC 3986).
_VCHAR = bytes(range(0x21, 0x7F))


def is_token(value: str) -> bool:
    """Tell whether ``value`` is a non-empty RFC 7230 §3.2.6 token."""
    # translate() deletes every token character in one C-level pass: anything
    # left over is not a tchar. Linear, no regular expression.
    return bool(value) and value.isascii() and not value.encode("ascii").translate(None, _TCHAR)


def _has_ctl(value: bytes) -> bool:
    return len(value.translate(None, _CTL)) != len(value)


def _show(data: bytes) -> str:
    """repr() of peer data for an exception message, escaped and truncated."""
    return repr(data[:80]) + ("..." if len(data) > 80 else "")


class Headers:
    """HTTP header fields: a case-insensitive multi-dict keeping order and case.

    Names must be tokens, and values may not contain control characters other
    than HTAB (RFC 7230 §3.2), nor characters outside ISO-8859-1: this makes
    header injection impossible and any serialized block parseable again.
    """

    __slots__ = ("_index", "_items")
    __hash__ = None  # type: ignore[assignment]  # mutable, so unhashable

    def __init__(
        self, pairs: Iterable[tuple[str, str]] | Mapping[str, str] | Headers | None = None
    ) -> None:
        # (lower-cased name, name as given, value)
        self._items: list[tuple[str, str, str]] = []
        # Lower-cased name -> its value, or its values when it has several; made
        # by the first lookup and dropped by any change: a handshake looks up
        # about ten names, which would otherwise be ten scans of every field.
        # A lone value stays a str, not a list of one: strings are not tracked
        # by the garbage collector, and neither is a dict holding only strings,
        # so the headers every connection keeps add nothing to its collections.
        self._index: dict[str, str | list[str]] | None = None
        if pairs is None:
            return
        source = pairs.items() if isinstance(pairs, Headers | Mapping) else pairs
        for name, value in source:
            self.add(name, value)

    @staticmethod
    def _check(name: str, value: str) -> None:
        if not is_token(name):
            raise ValueError(f"invalid header name: {name!r}")
        try:
            raw = value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"header value is not ISO-8859-1: {value!r}") from None
        if _has_ctl(raw):
            raise ValueError(f"control character in header value: {value!r}")

    def add(self, name: str, value: str) -> None:
        """Append a field, keeping any earlier values of ``name``.

        Raises:
            ValueError: ``name`` is not a token, or ``value`` contains CR, LF,
                NUL or another control character.
        """
        self._check(name, value)
        self._items.append((name.lower(), name, value))
        self._index = None

    def _add_parsed(self, name: str, value: str) -> None:
        """Append a field known to be valid: a token name, a value without CTL."""
        self._items.append((name.lower(), name, value))
        self._index = None

    def _lookup(self) -> dict[str, str | list[str]]:
        index = self._index
        if index is None:
            index = self._index = {}
            for key, _, value in self._items:
                found = index.get(key)
                if found is None:
                    index[key] = value
                elif isinstance(found, str):
                    index[key] = [found, value]
                else:
                    found.append(value)
        return index

    def __getitem__(self, name: str) -> str:
        found = self._lookup().get(name.lower())
        if found is None:
            raise KeyError(name)
        return found if isinstance(found, str) else found[0]

    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: str) -> str: ...
    @overload
    def get(self, name: str, default: str | None) -> str | None: ...
    def get(self, name: str, default: str | None = None) -> str | None:
        """Return the first value of ``name``, or ``default`` when it is absent."""
        try:
            return self[name]
        except KeyError:
            return default

    def get_all(self, name: str) -> list[str]:
        """Return every value of ``name``, in order (an empty list when absent)."""
        found = self._lookup().get(name.lower())
        if found is None:
            return []
        return [found] if isinstance(found, str) else found.copy()

    def __setitem__(self, name: str, value: str) -> None:
        """Replace all values of ``name`` by ``value``, at the first one's place."""
        self._check(name, value)
        key = name.lower()
        items = self._items
        first = next((i for i, item in enumerate(items) if item[0] == key), len(items))
        # Values before the first one are all kept, so ``first`` stays valid.
        self._items = [item for item in items if item[0] != key]
        self._items.insert(first, (key, name, value))
        self._index = None

    def __delitem__(self, name: str) -> None:
        key = name.lower()
        kept = [item for item in self._items if item[0] != key]
        if len(kept) == len(self._items):
            raise KeyError(name)
        self._items = kept
        self._index = None

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return name.lower() in self._lookup()

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[str]:
        return (item[1] for item in self._items)

    def items(self) -> list[tuple[str, str]]:
        """Return the ``(name, value)`` pairs in order, names as given."""
        return [(item[1], item[2]) for item in self._items]

    def copy(self) -> Headers:
        """Return an independent copy."""
        new = Headers()
        new._items = list(self._items)  # _index: None, made on first lookup
        return new

    def __eq__(self, other: object) -> bool:
        # Same fields in the same order; names compare case-insensitively.
        if not isinstance(other, Headers):
            return NotImplemented
        return [(k, v) for k, _, v in self._items] == [(k, v) for k, _, v in other._items]

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"

    def serialize(self) -> bytes:
        """Encode as ``Name: value\\r\\n`` lines, without the final empty line."""
        return b"".join(f"{name}: {value}\r\n".encode("latin-1") for _, name, value in self._items)


@dataclasses.dataclass
class Request:
    """An HTTP request (RFC 7230 §3.1.1); WebSocket handshakes have no body."""

    path: str
    headers: Headers
    method: str = "GET"

    def serialize(self) -> bytes:
        """Encode the request line, the headers and the empty line.

        Raises:
            ValueError: the method is not a token, or the path is empty or
                contains anything but visible ASCII.
        """
        if not is_token(self.method):
            raise ValueError(f"invalid method: {self.method!r}")
        path = self.path.encode("ascii", "replace")  # "?" marks a non-ASCII character
        if not path or path.translate(None, _VCHAR) or not self.path.isascii():
            raise ValueError(f"invalid request target: {self.path!r}")
        start = f"{self.method} {self.path} HTTP/1.1\r\n".encode("ascii")
        return start + self.headers.serialize() + b"\r\n"


@dataclasses.dataclass
class Response:
    """An HTTP response (RFC 7230 §3.1.2)."""

    status: int
    reason: str
    headers: Headers
    body: bytes = b""

    def serialize(self) -> bytes:
        """Encode the status line, the headers, the empty line and the body.

        Raises:
            ValueError: the status is not a 3-digit code or the reason phrase
                contains control characters or non ISO-8859-1 characters.
        """
        if not 100 <= self.status <= 999:
            raise ValueError(f"invalid status code: {self.status!r}")
        try:
            reason = self.reason.encode("latin-1")
        except UnicodeEncodeError:
            reason = b"\0"  # fails the check below
        if _has_ctl(reason):
            raise ValueError(f"invalid reason phrase: {self.reason!r}")
        head = b"HTTP/1.1 %d %s\r\n" % (self.status, reason)
        return head + self.headers.serialize() + b"\r\n" + self.body


@dataclasses.dataclass(frozen=True)
class HTTPLimits:
    """Bounds on what a peer may send in the opening handshake.

    Attributes:
        max_line: longest request, status or header line, CRLF excluded.
        max_headers: most header lines.
        max_header_bytes: largest header block, start line and final CRLF included.
        max_body: largest response body (responses only).
        max_negotiation_bytes: most value bytes of Sec-WebSocket-Protocol, and
            of Sec-WebSocket-Extensions, all lines of each header combined
            (requests only; checked by
            :func:`~wsjet.core.handshake.check_request`).
    """

    max_line: int = defaults.MAX_LINE
    max_headers: int = defaults.MAX_HEADERS
    max_header_bytes: int = defaults.MAX_HEADER_BYTES
    max_body: int = defaults.MAX_BODY
    max_negotiation_bytes: int = defaults.MAX_NEGOTIATION_BYTES


DEFAULT_LIMITS = HTTPLimits()

_M = TypeVar("_M", Request, Response)

# Reader states.
_HEAD, _BODY, _DONE, _FAILED = range(4)


class _Reader(abc.ABC, Generic[_M]):
    """Line machinery shared by the request and response readers."""

    #: Bytes allowed in the start line, checked as they arrive; None: no early check.
    _start_line_bytes: bytes | None = None

    def __init__(self, limits: HTTPLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        #: Bytes received after the message: WebSocket frames, after a 101.
        self.leftover = b""
        self._buf = bytearray()
        self._line_start = 0  # where the line being read starts in _buf
        self._scan = 0  # bytes of _buf before this were searched for LF already
        self._got_start_line = False
        self._headers = Headers()
        self._state = _HEAD

    def feed(self, data: bytes) -> _M | None:
        """Add received bytes; return the message once it is complete.

        Raises:
            InvalidMessage: the message is malformed or over a limit.
            RuntimeError: the message was already returned, or an error was
                raised before: the reader cannot be used any more.
        """
        if self._state == _DONE:
            raise RuntimeError("message already complete: further bytes belong to the caller")
        if self._state == _FAILED:
            raise RuntimeError("the reader failed earlier and cannot be fed")
        first_read = not self._buf
        self._buf += data
        try:
            if first_read:
                # Usually the whole header block comes in the first read.
                message = self._head_at_once()
                if message is not None:
                    return message
            return self._advance()
        except InvalidMessage:
            self._state = _FAILED
            raise

    def feed_eof(self) -> _M | None:
        """Signal the end of the stream.

        Returns:
            The message if the end of the stream completes it (a response body
            without Content-Length), ``None`` if it was already returned.

        Raises:
            InvalidMessage: the stream ended in the middle of the message.
            RuntimeError: an error was raised before.
        """
        if self._state == _DONE:
            return None
        if self._state == _FAILED:
            raise RuntimeError("the reader failed earlier and cannot be fed")
        try:
            return self._eof()
        except InvalidMessage:
            self._state = _FAILED
            raise

    def _eof(self) -> _M | None:
        raise InvalidMessage(
            f"connection closed after {len(self._buf)} bytes, before the end of the header block"
        )

    def _head_at_once(self) -> _M | None:
        """Parse a header block that is whole in the buffer, in a few passes over it.

        Makes the checks of the line-by-line parser (:meth:`_advance`) on the
        whole block at once. Anything irregular makes it return ``None``
        without changing the reader's state; the line-by-line parser then finds
        the fault and raises its precise error.
        """
        buf, limits = self._buf, self.limits
        # Found only if it ends within max_header_bytes.
        index = buf.find(b"\r\n\r\n", 0, limits.max_header_bytes)
        if index < 0:
            return None
        head = bytes(buf[:index])  # the start line and the fields, CRLF-separated
        lines = head.split(b"\r\n")
        fields = lines[1:]
        if len(fields) > limits.max_headers or max(map(len, lines)) > limits.max_line:
            return None
        if fields:
            # The CRLFs between fields must be the only control characters
            # (RFC 7230 §3.2; HTAB is not one of _CTL): this rejects a bare LF
            # or CR in a field, as the start line's own checks do in it.
            block = head[len(lines[0]) + 2 :]
            if len(block) - len(block.translate(None, _CTL)) != 2 * (len(fields) - 1):
                return None
        items = []
        for line in fields:
            name, colon, value = line.partition(b":")
            # A name that isn't a token also catches folding and whitespace before the colon.
            if not colon or not name or name.translate(None, _TCHAR):
                return None
            text = name.decode("ascii")
            items.append((text.lower(), text, value.strip(b" \t").decode("latin-1")))
        try:
            self._parse_start_line(lines[0])
        except InvalidMessage:
            return None
        headers = Headers()
        headers._items = items  # _index: None, made on first lookup
        self._headers = headers
        self._got_start_line = True
        self._line_start = self._scan = index + 4
        return self._end_of_head(index + 4)

    def _advance(self) -> _M | None:
        limits = self.limits
        while True:
            line = self._next_line()
            if line is None:
                return None
            if not self._got_start_line:
                self._parse_start_line(line)
                self._got_start_line = True
            elif line:
                if len(self._headers) >= limits.max_headers:
                    raise HeadersTooLarge(f"more than {limits.max_headers} header lines")
                self._parse_header_line(line)
            else:
                return self._end_of_head(self._line_start)

    def _next_line(self) -> bytes | None:
        """Return the next complete line without CRLF, or None if it isn't there yet."""
        buf, start, limits = self._buf, self._line_start, self.limits
        # Search no further than where a valid line or header block must end,
        # and never twice over the same bytes.
        end = min(len(buf), start + limits.max_line + 2, limits.max_header_bytes)
        index = buf.find(b"\n", self._scan, end)
        if not self._got_start_line and self._start_line_bytes is not None:
            # Reject a start line as soon as a byte arrives that it cannot contain
            # (a TLS ClientHello, binary noise), instead of waiting for a line end
            # until open_timeout. Each byte is looked at once: the check is linear.
            # Only bytes up to offset max_line are looked at: by the next one the
            # line is too long (unless it is the LF), and the error must not depend
            # on whether that byte came in the same read (below).
            stop = min(end if index < 0 else index, start + limits.max_line + 1)
            if buf[self._scan : stop].translate(None, self._start_line_bytes):
                raise InvalidMessage("invalid byte in the start line: not an HTTP request")
        if index < 0:
            self._scan = end
            partial = len(buf) - start
            # A partial line of max_line + 1 bytes may be complete but for LF.
            if partial > limits.max_line + 1 or (
                partial == limits.max_line + 1 and buf[-1] != 0x0D
            ):
                raise self._line_too_long()
            if len(buf) >= limits.max_header_bytes:
                raise HeadersTooLarge(f"header block larger than {limits.max_header_bytes} bytes")
            return None
        if index - start == limits.max_line + 1 and buf[index - 1] != 0x0D:
            # The byte before this LF made the line too long; in a split read
            # that was reported before the LF came (above), so it is here too.
            raise self._line_too_long()
        # RFC 7230 §3.5 lets a recipient accept a bare LF; a WebSocket endpoint
        # has no legacy peers to humour, and mixed endings smuggle requests.
        if index == start or buf[index - 1] != 0x0D:
            raise InvalidMessage("line ending is a bare LF, not CRLF")
        self._line_start = self._scan = index + 1
        return bytes(buf[start : index - 1])

    def _line_too_long(self) -> RequestLineTooLong:
        if self._got_start_line:
            kind, status = "header", 431
        else:
            kind, status = "start", 414  # URI Too Long (RFC 9110 §15.5.15)
        return RequestLineTooLong(
            f"{kind} line longer than {self.limits.max_line} bytes", status=status
        )

    def _parse_header_line(self, line: bytes) -> None:
        if line[0] in b" \t":
            raise InvalidMessage("obsolete line folding in header (RFC 7230 §3.2.4)")
        colon = line.find(b":")
        if colon < 0:
            raise InvalidMessage(f"header line without a colon: {_show(line)}")
        name = line[:colon]
        if name[-1:] in (b" ", b"\t"):
            # RFC 7230 §3.2.4: MUST be rejected with 400.
            raise InvalidMessage(f"whitespace between header name and colon: {_show(name)}")
        if not name or name.translate(None, _TCHAR):
            raise InvalidMessage(f"invalid header name: {_show(name)}")
        value = line[colon + 1 :].strip(b" \t")  # OWS, RFC 7230 §3.2
        if _has_ctl(value):
            raise InvalidMessage(f"control character in header value: {_show(value)}")
        # Checked above as Headers.add() would: a token name, a value without CTL.
        self._headers._add_parsed(name.decode("ascii"), value.decode("latin-1"))

    @staticmethod
    def _check_version(version: bytes, line: bytes) -> None:
        if version == b"HTTP/1.1":
            return
        if (
            len(version) == 8
            and version[:5] == b"HTTP/"
            and version[5:8:2].isdigit()
            and version[6] == 0x2E
        ):
            raise InvalidMessage(f"unsupported HTTP version {_show(version)}: 1.1 is required")
        raise InvalidMessage(f"invalid start line: {_show(line)}")

    @abc.abstractmethod
    def _parse_start_line(self, line: bytes) -> None:
        """Parse and store the request or status line."""

    @abc.abstractmethod
    def _end_of_head(self, head_end: int) -> _M | None:
        """Go on after the header block, which ends at ``head_end`` in the buffer."""

    def _finish(self, message: _M, end: int) -> _M:
        self.leftover = bytes(self._buf[end:])
        self._buf = bytearray()
        self._state = _DONE
        return message


class RequestReader(_Reader[Request]):
    """Incremental parser of the client's opening-handshake request.

    Any method token is accepted here so that a server can still answer, say,
    a HEAD health check; the handshake rules reject everything but GET.
    """

    # A request line is visible ASCII and spaces (RFC 7230 §3.1.1), CR before LF.
    _start_line_bytes = _VCHAR + b" \r"

    def _parse_start_line(self, line: bytes) -> None:
        # request-line = method SP request-target SP HTTP-version (RFC 7230 §3.1.1)
        parts = line.split(b" ")
        if len(parts) != 3:
            raise InvalidMessage(f"invalid request line: {_show(line)}")
        method, target, version = parts
        if not method or method.translate(None, _TCHAR):
            raise InvalidMessage(f"invalid method in request line: {_show(line)}")
        if not target or target.translate(None, _VCHAR):
            raise InvalidMessage(f"invalid request target: {_show(target)}")
        self._check_version(version, line)
        self._method = method.decode("ascii")
        self._target = target.decode("ascii")

    def _end_of_head(self, head_end: int) -> Request:
        return self._finish(Request(self._target, self._headers, self._method), head_end)


class ResponseReader(_Reader[Response]):
    """Incremental parser of the server's opening-handshake response.

    A 101 response ends with its header block; other responses carry a body
    of Content-Length bytes or, without Content-Length, up to the end of the
    stream (:meth:`feed_eof`). Chunked transfer coding is not supported.
    """

    def _parse_start_line(self, line: bytes) -> None:
        # status-line = HTTP-version SP status-code SP reason-phrase (RFC 7230 §3.1.2);
        # a missing reason (and its SP) is tolerated, as many servers send it.
        parts = line.split(b" ", 2)
        if len(parts) < 2:
            raise InvalidMessage(f"invalid status line: {_show(line)}")
        self._check_version(parts[0], line)
        code = parts[1]
        if len(code) != 3 or not code.isdigit() or code[0] == 0x30:
            raise InvalidMessage(f"invalid status code: {_show(code)}")
        reason = parts[2] if len(parts) == 3 else b""
        if _has_ctl(reason):
            raise InvalidMessage(f"control character in reason phrase: {_show(reason)}")
        self._status = int(code)
        self._reason = reason.decode("latin-1")

    def _end_of_head(self, head_end: int) -> Response | None:
        self._body_start = head_end
        self._length: int | None = None
        status = self._status
        # RFC 7230 §3.3.3: 1xx, 204 and 304 responses end at the header block.
        if status < 200 or status in (204, 304):
            return self._finish(self._response(b""), head_end)
        if "Transfer-Encoding" in self._headers:
            raise InvalidMessage("Transfer-Encoding is not supported in handshake responses")
        values = self._headers.get_all("Content-Length")
        if values:
            # RFC 7230 §3.3.2: repeated identical values may be folded into one.
            items = {item.strip(" \t") for value in values for item in value.split(",")}
            items.discard("")  # empty list elements, RFC 7230 §7
            if len(items) > 1:
                raise InvalidMessage(f"conflicting Content-Length values: {values!r}")
            text = items.pop() if items else ""
            if not text.isascii() or not text.isdigit():
                raise InvalidMessage(f"invalid Content-Length: {text!r}")
            # Count digits first: int() rejects over 4300 digits and is slow below.
            digits = text.lstrip("0") or "0"
            if len(digits) > 20 or int(digits) > self.limits.max_body:
                raise InvalidMessage(f"body larger than {self.limits.max_body} bytes")
            self._length = int(digits)
        self._state = _BODY
        return self._advance_body()

    def _advance(self) -> Response | None:
        if self._state == _BODY:
            return self._advance_body()
        return super()._advance()

    def _advance_body(self) -> Response | None:
        available = len(self._buf) - self._body_start
        if self._length is None:
            if available > self.limits.max_body:
                raise InvalidMessage(f"body larger than {self.limits.max_body} bytes")
            return None
        if available < self._length:
            return None
        end = self._body_start + self._length
        return self._finish(self._response(bytes(self._buf[self._body_start : end])), end)

    def _eof(self) -> Response | None:
        if self._state != _BODY:
            return super()._eof()
        if self._length is not None:
            received = len(self._buf) - self._body_start
            raise InvalidMessage(f"connection closed after {received} of {self._length} body bytes")
        body = bytes(self._buf[self._body_start :])
        return self._finish(self._response(body), len(self._buf))

    def _response(self, body: bytes) -> Response:
        return Response(self._status, self._reason, self._headers, body)
