"""Tests of wsjet.core.http: Headers, messages, and the incremental readers."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from wsjet.core.http import (
    DEFAULT_LIMITS,
    Headers,
    HTTPLimits,
    Request,
    RequestReader,
    Response,
    ResponseReader,
    is_token,
)
from wsjet.exceptions import HeadersTooLarge, InvalidMessage, RequestLineTooLong

# RFC 6455 §1.2.
RFC_REQUEST = (
    b"GET /chat HTTP/1.1\r\n"
    b"Host: server.example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Origin: http://example.com\r\n"
    b"Sec-WebSocket-Protocol: chat, superchat\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)
RFC_RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"Sec-WebSocket-Protocol: chat\r\n"
    b"\r\n"
)
FRAME = b"\x81\x05Hello"  # an unmasked text frame, RFC 6455 §5.7

MODES = ["whole", "bytewise", "halves"]


def run(reader: Any, data: bytes, mode: str) -> tuple[Any, bytes]:
    """Feed ``data`` in the given way; return (message or None, bytes after it)."""
    if mode == "whole":
        chunks = [data]
    elif mode == "bytewise":
        chunks = [data[i : i + 1] for i in range(len(data))]
    else:
        chunks = [data[: len(data) // 2], data[len(data) // 2 :]]
    for index, chunk in enumerate(chunks):
        message = reader.feed(chunk)
        if message is not None:
            return message, reader.leftover + b"".join(chunks[index + 1 :])
    return None, b""


def parse_request(data: bytes, mode: str = "whole", limits: HTTPLimits = DEFAULT_LIMITS) -> Any:
    return run(RequestReader(limits), data, mode)


def parse_response(data: bytes, mode: str = "whole", limits: HTTPLimits = DEFAULT_LIMITS) -> Any:
    return run(ResponseReader(limits), data, mode)


# --- is_token ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["a", "Sec-WebSocket-Key", "!#$%&'*+-.^_`|~09AZaz"])
def test_is_token_accepts_tchars(value: str) -> None:
    assert is_token(value)


@pytest.mark.parametrize("value", ["", "a b", "a:b", "a,b", '"a"', "é", "a\x00", "(a)"])
def test_is_token_rejects_others(value: str) -> None:
    assert not is_token(value)


# --- Headers ---------------------------------------------------------------------------


def test_headers_case_insensitive_multi_dict() -> None:
    headers = Headers([("Set-Thing", "a"), ("Other", "x"), ("set-thing", "b")])
    assert headers["SET-THING"] == "a"
    assert headers.get("set-thing") == "a"
    assert headers.get_all("Set-Thing") == ["a", "b"]
    assert headers.get_all("Missing") == []
    assert headers.get("Missing") is None
    assert headers.get("Missing", "dflt") == "dflt"
    assert len(headers) == 3
    assert list(headers) == ["Set-Thing", "Other", "set-thing"]
    assert headers.items() == [("Set-Thing", "a"), ("Other", "x"), ("set-thing", "b")]
    assert "OTHER" in headers
    assert "nope" not in headers
    assert 42 not in headers
    with pytest.raises(KeyError):
        headers["Missing"]


def test_headers_of_single_values_add_nothing_to_garbage_collections() -> None:
    # Every connection keeps its request's and response's headers: once looked
    # up, headers whose names each appear once must hold no object the garbage
    # collector tracks besides the list of fields (each collection walks them).
    headers = Headers([("Host", "example.com"), ("Upgrade", "websocket"), ("X-Twice", "1")])
    assert headers.get("host") == "example.com"
    index = headers._index
    assert index is not None and not gc.is_tracked(index)
    # A name given twice gets a list of its values, and lookups still agree.
    headers.add("x-twice", "2")
    assert headers.get_all("X-TWICE") == ["1", "2"] and headers["x-twice"] == "1"
    assert headers.get_all("Upgrade") == ["websocket"]
    headers.get_all("X-Twice").append("3")  # a copy: the index is not changed
    assert headers.get_all("X-Twice") == ["1", "2"]


def test_headers_lookups_follow_every_change() -> None:
    # Lookups go through an index made on first use: each change must show in
    # the next lookup, and a returned list must not be the index's own.
    headers = Headers([("A", "1")])
    assert headers.get_all("a") == ["1"]
    headers.add("a", "2")
    assert headers.get_all("A") == ["1", "2"]
    headers._add_parsed("B", "3")
    assert headers["b"] == "3"
    assert "B" in headers
    headers["A"] = "4"
    assert headers.get_all("a") == ["4"]
    del headers["b"]
    assert "b" not in headers
    assert headers.get("B") is None
    values = headers.get_all("A")
    values.append("mutated by the caller")
    assert headers.get_all("A") == ["4"]
    copy = headers.copy()
    assert copy["a"] == "4"
    copy.add("A", "5")
    assert copy.get_all("a") == ["4", "5"]
    assert headers.get_all("a") == ["4"]


def test_headers_constructors() -> None:
    assert Headers().items() == []
    assert Headers(None).items() == []
    assert Headers({"A": "1", "B": "2"}).items() == [("A", "1"), ("B", "2")]
    original = Headers([("A", "1"), ("a", "2")])
    assert Headers(original).items() == [("A", "1"), ("a", "2")]
    assert Headers(iter([("X", "y")])).items() == [("X", "y")]


def test_headers_setitem_replaces_all_at_first_position() -> None:
    headers = Headers([("A", "1"), ("B", "2"), ("a", "3")])
    headers["A"] = "new"
    assert headers.items() == [("A", "new"), ("B", "2")]
    headers["C"] = "appended"
    assert headers.items() == [("A", "new"), ("B", "2"), ("C", "appended")]


def test_headers_delitem() -> None:
    headers = Headers([("A", "1"), ("B", "2"), ("a", "3")])
    del headers["a"]
    assert headers.items() == [("B", "2")]
    with pytest.raises(KeyError):
        del headers["a"]


def test_headers_copy_is_independent() -> None:
    headers = Headers([("A", "1")])
    copy = headers.copy()
    copy.add("B", "2")
    headers["A"] = "changed"
    assert headers.items() == [("A", "changed")]
    assert copy.items() == [("A", "1"), ("B", "2")]


def test_headers_equality_and_repr() -> None:
    assert Headers([("A", "1"), ("B", "2")]) == Headers([("a", "1"), ("b", "2")])
    assert Headers([("A", "1"), ("B", "2")]) != Headers([("B", "2"), ("A", "1")])
    assert Headers([("A", "1")]) != Headers([("A", "2")])
    assert Headers([("A", "1")]) != {"A": "1"}
    assert repr(Headers([("A", "1")])) == "Headers([('A', '1')])"
    with pytest.raises(TypeError):
        hash(Headers())


def test_headers_serialize_golden() -> None:
    headers = Headers([("Host", "example.com"), ("X-Tab", "a\tb"), ("X-Latin", "café")])
    assert headers.serialize() == b"Host: example.com\r\nX-Tab: a\tb\r\nX-Latin: caf\xe9\r\n"
    assert Headers().serialize() == b""


@pytest.mark.parametrize(
    "value", ["a\r\nInjected: yes", "a\rb", "a\nb", "a\x00b", "a\x01", "a\x7f", "snow ☃"]
)
def test_headers_reject_bad_values(value: str) -> None:
    headers = Headers()
    with pytest.raises(ValueError):
        headers.add("X", value)
    with pytest.raises(ValueError):
        headers["X"] = value
    with pytest.raises(ValueError):
        Headers({"X": value})
    assert len(headers) == 0


@pytest.mark.parametrize("name", ["", "X\r\nY", "X\n", "X\x00", "X: y", "X Y", "é"])
def test_headers_reject_bad_names(name: str) -> None:
    with pytest.raises(ValueError):
        Headers().add(name, "v")


# --- serialization ---------------------------------------------------------------------


def test_request_serialize_golden() -> None:
    request = Request("/chat?x=1", Headers([("Host", "example.com")]))
    assert request.serialize() == b"GET /chat?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n"
    head = Request("*", Headers(), method="OPTIONS")
    assert head.serialize() == b"OPTIONS * HTTP/1.1\r\n\r\n"


@pytest.mark.parametrize(
    ("method", "path"),
    [("G T", "/"), ("", "/"), ("GET", ""), ("GET", "/a b"), ("GET", "/\r\nX: y"), ("GET", "/é")],
)
def test_request_serialize_rejects_injection(method: str, path: str) -> None:
    with pytest.raises(ValueError):
        Request(path, Headers(), method=method).serialize()


def test_response_serialize_golden() -> None:
    response = Response(404, "Not Found", Headers([("Content-Length", "3")]), b"no\n")
    assert response.serialize() == b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno\n"
    assert Response(101, "", Headers()).serialize() == b"HTTP/1.1 101 \r\n\r\n"


@pytest.mark.parametrize(
    ("status", "reason"), [(99, "X"), (1000, "X"), (200, "O\r\nK"), (200, "\x00"), (200, "☃")]
)
def test_response_serialize_rejects_bad_status_line(status: int, reason: str) -> None:
    with pytest.raises(ValueError):
        Response(status, reason, Headers()).serialize()


def test_serialize_then_parse_round_trips() -> None:
    request = Request("/p?q", Headers([("Host", "h"), ("X", "caf\xe9"), ("x", "2")]))
    parsed, rest = parse_request(request.serialize())
    assert parsed == request
    assert rest == b""
    response = Response(200, "OK", Headers([("Content-Length", "4")]), b"body")
    parsed, rest = parse_response(response.serialize())
    assert parsed == response


# --- RequestReader: valid input ----------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_request_rfc_example(mode: str) -> None:
    request, rest = parse_request(RFC_REQUEST, mode)
    assert request.method == "GET"
    assert request.path == "/chat"
    assert request.headers.items() == [
        ("Host", "server.example.com"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Origin", "http://example.com"),
        ("Sec-WebSocket-Protocol", "chat, superchat"),
        ("Sec-WebSocket-Version", "13"),
    ]
    assert rest == b""


@pytest.mark.parametrize("mode", MODES)
def test_request_keeps_trailing_frames_as_leftover(mode: str) -> None:
    request, rest = parse_request(RFC_REQUEST + FRAME + FRAME, mode)
    assert request.path == "/chat"
    assert rest == FRAME + FRAME


def test_request_leftover_attribute() -> None:
    reader = RequestReader()
    assert reader.leftover == b""
    assert reader.feed(RFC_REQUEST[:10]) is None
    assert reader.feed(RFC_REQUEST[10:] + FRAME) is not None
    assert reader.leftover == FRAME


def test_request_every_split_point() -> None:
    for cut in range(len(RFC_REQUEST) + 1):
        reader = RequestReader()
        first = reader.feed(RFC_REQUEST[:cut])
        message = first if first is not None else reader.feed(RFC_REQUEST[cut:] + FRAME)
        assert message is not None and message.path == "/chat", cut
        expected = FRAME if first is None else RFC_REQUEST[cut:]
        assert reader.leftover == expected


@pytest.mark.parametrize("mode", MODES)
def test_request_values_trimmed_decoded_latin1(mode: str) -> None:
    data = (
        b"HEAD /health HTTP/1.1\r\n"
        b"Host:example.com\r\n"
        b"X-Spaces: \t spaced  out \t\r\n"
        b"X-Empty:\r\n"
        b"X-Latin: caf\xe9 \xff\r\n"
        b"X-Tab: a\tb\r\n"
        b"x-spaces: again\r\n"
        b"\r\n"
    )
    request, rest = parse_request(data, mode)
    assert request.method == "HEAD"
    assert request.path == "/health"
    assert request.headers["host"] == "example.com"
    assert request.headers.get_all("X-SPACES") == ["spaced  out", "again"]
    assert request.headers["X-Empty"] == ""
    assert request.headers["X-Latin"] == "café ÿ"
    assert request.headers["X-Tab"] == "a\tb"
    assert rest == b""


@pytest.mark.parametrize("target", [b"*", b"http://example.com/a?b", b"/%00?a=%20&b=[]"])
def test_request_targets(target: bytes) -> None:
    request, _ = parse_request(b"GET " + target + b" HTTP/1.1\r\n\r\n")
    assert request.path == target.decode()
    assert len(request.headers) == 0


# --- RequestReader: invalid input ----------------------------------------------------------

BAD_REQUESTS = [
    # (data, expected message fragment)
    (b"GET / HTTP/1.1\nHost: x\r\n\r\n", "bare LF"),
    (b"GET / HTTP/1.1\r\nHost: x\n\r\n", "bare LF"),
    (b"GET / HTTP/1.1\r\nHost: x\r\n\n", "bare LF"),
    (b"\nGET / HTTP/1.1\r\n\r\n", "bare LF"),
    (b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", "obsolete line folding"),
    (b"GET / HTTP/1.1\r\nHost: x\r\n\tfolded\r\n\r\n", "obsolete line folding"),
    (b"GET / HTTP/1.1\r\n Host: x\r\n\r\n", "obsolete line folding"),
    (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", "whitespace between header name and colon"),
    (b"GET / HTTP/1.1\r\nHost\t: x\r\n\r\n", "whitespace between header name and colon"),
    (b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n", "invalid header name"),
    (b"GET / HTTP/1.1\r\n(Host): x\r\n\r\n", "invalid header name"),
    (b"GET / HTTP/1.1\r\nH\xe9: x\r\n\r\n", "invalid header name"),
    (b"GET / HTTP/1.1\r\n: x\r\n\r\n", "invalid header name"),
    (b"GET / HTTP/1.1\r\nHost x\r\n\r\n", "without a colon"),
    (b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n", "control character"),
    (b"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n", "control character"),
    (b"GET / HTTP/1.1\r\nX: a\x7fb\r\n\r\n", "control character"),
    (b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", "control character"),
    (b"GET / HTTP/1.1\r\nX: a\x1b[31m\r\n\r\n", "control character"),
    (b"\r\nGET / HTTP/1.1\r\n\r\n", "invalid request line"),
    (b"GET /\r\n\r\n", "invalid request line"),
    (b"GET  / HTTP/1.1\r\n\r\n", "invalid request line"),
    (b"GET / HTTP/1.1 \r\n\r\n", "invalid request line"),
    (b"GET\t/ HTTP/1.1\r\n\r\n", "not an HTTP request"),
    (b" / HTTP/1.1\r\n\r\n", "invalid method"),
    (b"G(T / HTTP/1.1\r\n\r\n", "invalid method"),
    (b"GET /\xe9 HTTP/1.1\r\n\r\n", "not an HTTP request"),
    (b"GET /\x7f HTTP/1.1\r\n\r\n", "not an HTTP request"),
    (b"GET /\x00 HTTP/1.1\r\n\r\n", "not an HTTP request"),
    (b"GET / HTTP/1.0\r\n\r\n", "unsupported HTTP version"),
    (b"GET / HTTP/2.0\r\n\r\n", "unsupported HTTP version"),
    (b"GET / HTTP/1.11\r\n\r\n", "invalid start line"),
    (b"GET / http/1.1\r\n\r\n", "invalid start line"),
    (b"GET / HTTP/1.x\r\n\r\n", "invalid start line"),
    (b"GET / HTTP/x.1\r\n\r\n", "invalid start line"),
    (b"GET / HTTP/1-1\r\n\r\n", "invalid start line"),
    (b"GET / FTP/1.1X\r\n\r\n", "invalid start line"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("data", "fragment"), BAD_REQUESTS)
def test_request_malformed(data: bytes, fragment: str, mode: str) -> None:
    with pytest.raises(InvalidMessage, match=fragment) as info:
        parse_request(data + FRAME, mode)
    assert type(info.value) is InvalidMessage
    assert info.value.status == 400


def test_request_error_messages_escape_control_characters() -> None:
    with pytest.raises(InvalidMessage) as info:
        parse_request(b"GET / HTTP/1.1\r\nX: \x00\x1b[2J<script>\r\n\r\n")
    message = str(info.value)
    assert "\x00" not in message and "\x1b" not in message
    assert "\\x00" in message and "\\x1b" in message


def test_request_error_messages_are_truncated() -> None:
    with pytest.raises(InvalidMessage) as info:
        parse_request(b"GET / HTTP/1.1\r\nX" + b" " * 500 + b": v\r\n\r\n")
    assert len(str(info.value)) < 200


def test_request_incomplete_returns_none() -> None:
    reader = RequestReader()
    for cut in (0, 5, len(RFC_REQUEST) - 2, len(RFC_REQUEST) - 1):
        assert RequestReader().feed(RFC_REQUEST[:cut]) is None
    assert reader.feed(b"") is None


def test_request_feed_after_completion_or_error() -> None:
    reader = RequestReader()
    assert reader.feed(RFC_REQUEST) is not None
    with pytest.raises(RuntimeError, match="already complete"):
        reader.feed(FRAME)
    assert reader.feed_eof() is None
    failed = RequestReader()
    with pytest.raises(InvalidMessage):
        failed.feed(b"GET / HTTP/1.0\r\n")
    with pytest.raises(RuntimeError, match="failed earlier"):
        failed.feed(b"\r\n")
    with pytest.raises(RuntimeError, match="failed earlier"):
        failed.feed_eof()


def test_request_eof_before_end_of_head() -> None:
    for data in (b"", RFC_REQUEST[:-2], RFC_REQUEST[:-1]):
        reader = RequestReader()
        reader.feed(data)
        with pytest.raises(InvalidMessage, match="before the end of the header block"):
            reader.feed_eof()
        with pytest.raises(RuntimeError):
            reader.feed(b"\r\n")


# --- RequestReader: limits -------------------------------------------------------------------

SMALL = HTTPLimits(max_line=64, max_headers=4, max_header_bytes=200, max_body=100)


def request_line(length: int) -> bytes:
    """A request line of exactly ``length`` bytes, CRLF excluded."""
    prefix, suffix = b"GET /", b" HTTP/1.1"
    return prefix + b"a" * (length - len(prefix) - len(suffix)) + suffix


def header_line(length: int) -> bytes:
    return b"X-Pad: " + b"v" * (length - 7)


def test_defaults() -> None:
    assert HTTPLimits(8192, 128, 65536, 65536) == DEFAULT_LIMITS
    with pytest.raises(AttributeError):
        DEFAULT_LIMITS.max_line = 1  # type: ignore[misc]


@pytest.mark.parametrize("mode", MODES)
def test_request_line_limit(mode: str) -> None:
    request, _ = parse_request(request_line(64) + b"\r\n\r\n", mode, SMALL)
    assert len(request.path) == 64 - len(b"GET  HTTP/1.1")
    with pytest.raises(RequestLineTooLong, match="start line longer than 64") as info:
        parse_request(request_line(65) + b"\r\n\r\n", mode, SMALL)
    assert info.value.status == 414


@pytest.mark.parametrize("mode", MODES)
def test_header_line_limit(mode: str) -> None:
    ok = b"GET / HTTP/1.1\r\n" + header_line(64) + b"\r\n\r\n"
    request, _ = parse_request(ok, mode, SMALL)
    assert len(request.headers["X-Pad"]) == 64 - 7
    bad = b"GET / HTTP/1.1\r\n" + header_line(65) + b"\r\n\r\n"
    with pytest.raises(RequestLineTooLong, match="header line longer than 64") as info:
        parse_request(bad, mode, SMALL)
    assert info.value.status == 431


def test_line_limit_enforced_as_data_arrives() -> None:
    # Without any CRLF, the error comes with the byte that makes the line too
    # long, not at the end of the line.
    reader = RequestReader(SMALL)
    line = request_line(200)
    for count in range(1, len(line) + 1):
        try:
            assert reader.feed(line[count - 1 : count]) is None
        except RequestLineTooLong:
            break
    assert count == 65
    # A line of exactly max_line bytes plus its CR is still fine.
    reader = RequestReader(SMALL)
    assert reader.feed(request_line(64) + b"\r") is None
    assert reader.feed(b"\n\r\n") is not None


def test_huge_single_feed_fails_at_once() -> None:
    with pytest.raises(RequestLineTooLong):
        RequestReader().feed(b"G" * 10_000_000)
    reader = RequestReader()
    reader.feed(b"GET / HTTP/1.1\r\n")
    with pytest.raises(RequestLineTooLong):
        reader.feed(b"X: " + b"v" * 10_000_000)


@pytest.mark.parametrize("mode", MODES)
def test_max_headers(mode: str) -> None:
    head = b"GET / HTTP/1.1\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(4))
    request, _ = parse_request(head + b"\r\n", mode, SMALL)
    assert len(request.headers) == 4
    with pytest.raises(HeadersTooLarge, match="more than 4 header lines") as info:
        parse_request(head + b"H5: v\r\n\r\n", mode, SMALL)
    assert info.value.status == 431


def block_of(size: int) -> bytes:
    """A request whose header block is exactly ``size`` bytes, for SMALL."""
    head = b"GET / HTTP/1.1\r\n" + header_line(60) + b"\r\n" + header_line(60) + b"\r\n"
    pad = size - len(head) - len(b"Y: \r\n\r\n")
    return head + b"Y: " + b"p" * pad + b"\r\n\r\n"


@pytest.mark.parametrize("mode", MODES)
def test_max_header_bytes(mode: str) -> None:
    assert len(block_of(200)) == 200
    request, rest = parse_request(block_of(200) + FRAME, mode, SMALL)
    assert request.headers["Y"].startswith("p")
    assert rest == FRAME
    with pytest.raises(HeadersTooLarge, match="larger than 200 bytes") as info:
        parse_request(block_of(201), mode, SMALL)
    assert info.value.status == 431


def test_max_header_bytes_enforced_as_data_arrives() -> None:
    reader = RequestReader(HTTPLimits(max_line=1000, max_header_bytes=200))
    data = b"GET / HTTP/1.1\r\n" + b"".join(b"A: 1\r\n" for _ in range(3)) + b"B: " + b"x" * 500
    for count in range(1, len(data) + 1):
        try:
            assert reader.feed(data[count - 1 : count]) is None
        except HeadersTooLarge:
            break
    assert count == 200


def test_large_header_block_dripped_byte_by_byte() -> None:
    # 64 KiB, one byte per feed: every feed extends the scanned region by one
    # byte only (the reader keeps its scan offset), so total work is linear.
    head = b"GET / HTTP/1.1\r\n" + b"".join(b"X-H%03d: %s\r\n" % (i, b"v" * 8000) for i in range(8))
    pad = 65536 - len(head) - len(b"X-Last: \r\n\r\n")
    data = head + b"X-Last: " + b"w" * pad + b"\r\n\r\n"
    assert len(data) == 65536
    reader = RequestReader()
    request = None
    for i in range(len(data)):
        request = reader.feed(data[i : i + 1])
        if request is None:
            assert reader._scan == len(reader._buf)
    assert request is not None
    assert len(request.headers) == 9
    assert request.headers["X-H006"] == "v" * 8000


# --- ResponseReader ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_response_101_ends_at_head(mode: str) -> None:
    response, rest = parse_response(RFC_RESPONSE + FRAME, mode)
    assert response.status == 101
    assert response.reason == "Switching Protocols"
    assert response.headers["Sec-WebSocket-Accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert response.body == b""
    assert rest == FRAME


@pytest.mark.parametrize("mode", MODES)
def test_response_content_length_body(mode: str) -> None:
    data = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!"
    response, rest = parse_response(data + b"extra", mode)
    assert (response.status, response.reason, response.body) == (403, "Forbidden", b"nope!")
    assert rest == b"extra"


@pytest.mark.parametrize(
    "lengths",
    [[b"0"], [b"5, 5"], [b"5", b"5"], [b"0005"], [b"0" * 5000 + b"5"], [b"5 ,5,"]],
)
def test_response_content_length_forms(lengths: list[bytes]) -> None:
    head = b"".join(b"Content-Length: %s\r\n" % value for value in lengths)
    response, rest = parse_response(b"HTTP/1.1 400 Bad\r\n" + head + b"\r\nhellotail")
    size = int(lengths[0].split(b",")[0].lstrip(b"0") or b"0")
    assert response.body == b"hellotail"[:size]
    assert rest == b"hellotail"[size:]


@pytest.mark.parametrize(
    ("lengths", "fragment"),
    [
        ([b"5, 6"], "conflicting"),
        ([b"5", b"6"], "conflicting"),
        ([b"abc"], "invalid Content-Length"),
        ([b"-1"], "invalid Content-Length"),
        ([b"+5"], "invalid Content-Length"),
        ([b""], "invalid Content-Length"),
        ([b"\xb2"], "invalid Content-Length"),  # "²" is a digit to str.isdigit()
        ([b"101"], "larger than 100"),
        ([b"9" * 30], "larger than 100"),
    ],
)
def test_response_bad_content_length(lengths: list[bytes], fragment: str) -> None:
    head = b"".join(b"Content-Length: %s\r\n" % value for value in lengths)
    with pytest.raises(InvalidMessage, match=fragment):
        parse_response(b"HTTP/1.1 400 Bad\r\n" + head + b"\r\n", limits=SMALL)


def test_response_content_length_at_max_body() -> None:
    data = b"HTTP/1.1 500 Oops\r\nContent-Length: 100\r\n\r\n" + b"b" * 100
    response, _ = parse_response(data, "bytewise", SMALL)
    assert response.body == b"b" * 100


@pytest.mark.parametrize("mode", MODES)
def test_response_body_until_eof(mode: str) -> None:
    reader = ResponseReader(SMALL)
    message, _ = run(reader, b"HTTP/1.1 404 Not Found\r\nX: y\r\n\r\n" + b"z" * 100, mode)
    assert message is None
    response = reader.feed_eof()
    assert response is not None
    assert (response.status, response.body) == (404, b"z" * 100)
    assert reader.feed_eof() is None
    with pytest.raises(RuntimeError):
        reader.feed(b"more")


def test_response_body_until_eof_over_limit() -> None:
    reader = ResponseReader(SMALL)
    assert reader.feed(b"HTTP/1.1 404 Not Found\r\n\r\n" + b"z" * 100) is None
    with pytest.raises(InvalidMessage, match="body larger than 100"):
        reader.feed(b"z")
    with pytest.raises(RuntimeError):
        reader.feed_eof()


def test_response_eof_in_the_middle() -> None:
    reader = ResponseReader()
    reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    with pytest.raises(InvalidMessage, match="after 3 of 10 body bytes"):
        reader.feed_eof()
    reader = ResponseReader()
    reader.feed(RFC_RESPONSE[:-1])
    with pytest.raises(InvalidMessage, match="before the end of the header block"):
        reader.feed_eof()


@pytest.mark.parametrize("status", [b"100 Continue", b"204 No Content", b"304 Not Modified"])
def test_response_without_body(status: bytes) -> None:
    response, rest = parse_response(b"HTTP/1.1 " + status + b"\r\nContent-Length: 3\r\n\r\nabc")
    assert response.body == b""
    assert rest == b"abc"


def test_response_chunked_is_rejected() -> None:
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    with pytest.raises(InvalidMessage, match="Transfer-Encoding is not supported"):
        parse_response(data)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"HTTP/1.1 200 OK", "OK"),
        (b"HTTP/1.1 200 ", ""),
        (b"HTTP/1.1 200", ""),
        (b"HTTP/1.1 404 Not  Found\tat all", "Not  Found\tat all"),
        (b"HTTP/1.1 418 Je suis une th\xe9i\xe8re", "Je suis une théière"),
        (b"HTTP/1.1 999 Whatever", "Whatever"),
    ],
)
def test_response_status_lines(line: bytes, reason: str) -> None:
    response, _ = parse_response(line + b"\r\nContent-Length: 0\r\n\r\n")
    assert response.reason == reason
    assert response.status == int(line[9:12])


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (b"HTTP/1.1", "invalid status line"),
        (b"HTTP/1.0 200 OK", "unsupported HTTP version"),
        (b"HTTP/1.1 20 OK", "invalid status code"),
        (b"HTTP/1.1 2000 OK", "invalid status code"),
        (b"HTTP/1.1 abc OK", "invalid status code"),
        (b"HTTP/1.1 099 OK", "invalid status code"),
        (b"HTTP/1.1  200 OK", "invalid status code"),
        (b"HTTP/1.1 200 O\x00K", "control character in reason"),
        (b"HTTP/1.1 200 O\rK", "control character in reason"),
        (b"ICY 200 OK", "invalid start line"),
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_response_bad_status_lines(line: bytes, fragment: str, mode: str) -> None:
    with pytest.raises(InvalidMessage, match=fragment):
        parse_response(line + b"\r\n\r\n", mode)


def test_response_limits() -> None:
    with pytest.raises(RequestLineTooLong):
        parse_response(b"HTTP/1.1 200 " + b"r" * 100 + b"\r\n\r\n", limits=SMALL)
    with pytest.raises(HeadersTooLarge):
        parse_response(b"HTTP/1.1 200 OK\r\n" + b"A: b\r\n" * 5 + b"\r\n", limits=SMALL)
    with pytest.raises(InvalidMessage, match="obsolete line folding"):
        parse_response(b"HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n")


@pytest.mark.parametrize(
    "prefix",
    [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"GET /\x00", b"\xff\xfe", b"GE\x7fT"],
)
def test_request_line_rejected_at_the_first_impossible_byte(prefix: bytes) -> None:
    # No line end has arrived: the reader must not wait for one (open_timeout) to say no.
    reader = RequestReader()
    with pytest.raises(InvalidMessage, match="not an HTTP request"):
        for i in range(len(prefix)):
            reader.feed(prefix[i : i + 1])


def test_request_line_bytes_checked_once_each() -> None:
    # A valid partial request line dripped one byte at a time never raises.
    reader = RequestReader()
    for byte in b"GET /a/long/path?q=1 HTTP/1.1\r":
        assert reader.feed(bytes([byte])) is None
