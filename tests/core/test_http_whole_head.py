"""The readers' whole-header-block path against their line-by-line path.

A header block that arrives in the first read is parsed in one go
(``_Reader._head_at_once``); anything irregular is left to the line-by-line
parser, which raises the precise error. These tests check that the two paths
agree on every input, valid or not, and that the fast one is really taken.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from wsjet.core.http import (
    DEFAULT_LIMITS,
    HTTPLimits,
    RequestReader,
    Response,
    ResponseReader,
)
from wsjet.exceptions import InvalidMessage

REQUEST = (
    b"GET /chat?room=1 HTTP/1.1\r\n"
    b"Host: 127.0.0.1:8765\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: keep-alive, Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"X-Spaced:  \t padded value\t \r\n"
    b"X-Empty:\r\n"
    b"X-Latin: caf\xe9\r\n"
    b"\r\n"
)
RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"\r\n"
)
FRAME = b"\x81\x05Hello"
# Messages that SMALL's limits let through, before padded() adds fields.
SHORT = {
    RequestReader: b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
    ResponseReader: b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n\r\n",
}
SMALL = HTTPLimits(max_line=64, max_headers=4, max_header_bytes=200, max_body=100)


def outcome(reader: Any, chunks: list[bytes]) -> tuple[Any, ...]:
    """What a reader makes of ``chunks``: the message and leftover, or the error."""
    try:
        for chunk in chunks:
            message = reader.feed(chunk)
            if message is not None:
                break
        else:
            return ("incomplete",)
    except InvalidMessage as exc:
        return ("error", type(exc), str(exc), exc.status)
    fields = message.headers.items()
    if isinstance(message, Response):
        return ("response", message.status, message.reason, fields, message.body, reader.leftover)
    return ("request", message.method, message.path, fields, reader.leftover)


def both_ways(kind: type[Any], data: bytes, limits: HTTPLimits) -> tuple[Any, Any]:
    """(data in one read: the fast path; its first byte alone first: line by line)."""
    whole = outcome(kind(limits), [data])
    line_by_line = outcome(kind(limits), [data[:1], data[1:]])
    return whole, line_by_line


class _NoLineByLine(AssertionError):
    pass


def _refuse(*args: Any) -> None:
    raise _NoLineByLine("the line-by-line parser ran")


def test_whole_request_skips_the_line_by_line_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RequestReader, "_parse_header_line", _refuse)
    reader = RequestReader()
    request = reader.feed(REQUEST + FRAME)
    assert request is not None
    assert request.method == "GET"
    assert request.path == "/chat?room=1"
    assert request.headers["X-Spaced"] == "padded value"
    assert request.headers["X-Empty"] == ""
    assert request.headers["x-latin"] == "café"
    assert request.headers.get_all("connection") == ["keep-alive, Upgrade"]
    assert list(request.headers) == [
        "Host",
        "Upgrade",
        "Connection",
        "Sec-WebSocket-Key",
        "Sec-WebSocket-Version",
        "X-Spaced",
        "X-Empty",
        "X-Latin",
    ]
    assert reader.leftover == FRAME
    with pytest.raises(RuntimeError, match="already complete"):
        reader.feed(b"x")
    # Split over two reads, the same request needs the line-by-line parser.
    split = RequestReader()
    assert split.feed(REQUEST[:10]) is None
    with pytest.raises(_NoLineByLine):
        split.feed(REQUEST[10:])


def test_whole_response_skips_the_line_by_line_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ResponseReader, "_parse_header_line", _refuse)
    reader = ResponseReader()
    response = reader.feed(RESPONSE + FRAME)
    assert response is not None
    assert (response.status, response.reason) == (101, "Switching Protocols")
    assert response.headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert reader.leftover == FRAME
    # A body announced in the head still follows, over later reads.
    reader = ResponseReader()
    assert reader.feed(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nno") is None
    response = reader.feed(b"pe!!")
    assert response is not None
    assert (response.status, response.body, reader.leftover) == (403, b"nope", b"!!")


def test_request_without_fields() -> None:
    whole, line_by_line = both_ways(
        RequestReader, b"GET / HTTP/1.1\r\n\r\n" + FRAME, DEFAULT_LIMITS
    )
    assert whole == line_by_line == ("request", "GET", "/", [], FRAME)


# Bytes that matter to the parser, to insert into valid messages.
SPECIAL = [b"\r", b"\n", b"\r\n", b"\t", b" ", b":", b"\x00", b"\x01", b"\x7f", b"\xe9", b"(", b","]


def mutations(message: bytes, seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        data = bytearray(message)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(data) + 1)
            action = rng.random()
            if action < 0.6:
                data[at:at] = rng.choice(SPECIAL)
            elif action < 0.8 and at < len(data):
                del data[at]
            elif at < len(data):
                data[at] = rng.randrange(256)
        out.append(bytes(data) + FRAME)
    return out


def padded(message: bytes, seed: int) -> bytes:
    """``message`` with extra fields of random sizes, to cross the SMALL limits."""
    rng = random.Random(seed)
    head, _, _ = message.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    for index in range(rng.randint(0, 3)):
        lines.insert(rng.randint(1, len(lines)), b"X-%d: " % index + b"v" * rng.randint(0, 70))
    return b"\r\n".join(lines) + b"\r\n\r\n"


@pytest.mark.parametrize("kind", [RequestReader, ResponseReader])
@pytest.mark.parametrize("limits", [DEFAULT_LIMITS, SMALL], ids=["default", "small"])
def test_both_paths_agree_on_mutated_messages(kind: type[Any], limits: HTTPLimits) -> None:
    message = REQUEST if kind is RequestReader else RESPONSE
    agreed = {"request": 0, "response": 0, "error": 0, "incomplete": 0}
    for seed in range(300):
        base = padded(SHORT[kind], seed) if limits is SMALL else message
        for data in [base + FRAME, *mutations(base, seed, 6)]:
            whole, line_by_line = both_ways(kind, data, limits)
            assert whole == line_by_line, data
            agreed[whole[0]] += 1
    # The inputs reach both accepted messages and errors.
    assert agreed["error"] > 200
    assert agreed["request" if kind is RequestReader else "response"] > 200


@pytest.mark.parametrize("kind", [RequestReader, ResponseReader])
def test_both_paths_agree_at_the_limits(kind: type[Any]) -> None:
    start = b"GET / HTTP/1.1" if kind is RequestReader else b"HTTP/1.1 101 OK"
    cases = []
    for size in range(60, 68):  # a field line around max_line (64)
        cases.append(start + b"\r\nX: " + b"v" * (size - 3) + b"\r\n\r\n")
    for count in range(3, 6):  # around max_headers (4)
        cases.append(start + b"\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(count)) + b"\r\n")
    for total in range(195, 205):  # around max_header_bytes (200)
        pad = total - len(start) - len(b"\r\nY: \r\n\r\n") - 2 * 62
        fields = b"".join(b"\r\nZ%d: " % i + b"z" * 58 for i in range(2))
        cases.append(start + fields + b"\r\nY: " + b"p" * pad + b"\r\n\r\n")
    results = set()
    for data in cases:
        whole, line_by_line = both_ways(kind, data + FRAME, SMALL)
        assert whole == line_by_line, data
        results.add(whole[0])
    assert results == {"request" if kind is RequestReader else "response", "error"}


@pytest.mark.parametrize(
    ("before", "after"),
    [(b"", b"ET / HTTP/1.1\r\nHost: x\r\n\r\n"), (b"GET / HTTP/1.1\r\nX: ", b"\r\n\r\n")],
    ids=["start-line", "header-line"],
)
def test_long_line_with_a_bad_byte_gets_one_error_however_split(
    before: bytes, after: bytes
) -> None:
    # A line past max_line that also holds a byte it may not contain: whichever
    # fault the reader reports must not depend on where the reads split the
    # line (fuzzing found the whole read saying "invalid byte" and a split read
    # "too long" for the same request line).
    seen = set()
    for length in range(60, 70):  # line bytes before the bad byte, around max_line (64)
        for bad in (b"\x9f", b"\x00", b"\r", b"\n"):
            data = before + b"G" * (length - len(before.rpartition(b"\n")[2])) + bad + after
            whole = outcome(RequestReader(SMALL), [data])
            for split in range(1, len(data)):
                pieces = [data[:split], data[split:]]
                assert outcome(RequestReader(SMALL), pieces) == whole, (length, bad, split)
            seen.add(whole[1].__name__ if whole[0] == "error" else whole[0])
    # Both faults are reached, each where its byte comes first.
    assert {"InvalidMessage", "RequestLineTooLong"} <= seen
