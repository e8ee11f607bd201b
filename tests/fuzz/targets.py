"""Fuzz targets: ``TARGETS[name](data: bytes) -> None``.

Each target turns arbitrary bytes into calls of one wsjet API and checks its
contract: it may only raise the exceptions that API documents (those are
caught here), and a few invariants must hold. Any exception escaping a
target is a crash. Targets need nothing but wsjet, so they run under atheris
(:mod:`tests.fuzz.run`) and under the built-in driver (:mod:`tests.fuzz.driver`).

Parity: the frame targets and ``core_chunks`` run every input twice, through
the modules ``import`` gives (compiled where an extension is built) and
through their pure-Python twins (:mod:`tests.fuzz._twins`, pure masking
included), and assert the same events and the same bytes. ``mask_parity``
compares the two masking functions directly.

Cost: a million executions per target must fit CI, about 0.1 ms an input
under atheris' instrumentation, so inputs are short (:data:`MAX_LEN`), a
stream is fed in at most :data:`MOST_CHUNKS` pieces, ``core_chunks`` does at
most :data:`MOST_OPERATIONS` operations, and a connection that stopped parsing
(after a failure or a close frame) gets the rest of the input in one call.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

from wsjet.core import _mask, handshake
from wsjet.core.deflate import (
    DeflateOptions,
    PerMessageDeflate,
    client_negotiate,
    server_negotiate,
)
from wsjet.core.http import (
    Headers,
    HTTPLimits,
    Request,
    RequestReader,
    Response,
    ResponseReader,
)
from wsjet.exceptions import (
    InvalidHandshake,
    InvalidHeader,
    InvalidPayloadData,
    InvalidState,
    NegotiationError,
    PayloadTooBig,
)
from wsjet.extensions import negotiate_client, negotiate_server

from . import _twins

try:  # the compiled twin; its absence is reported by tests/core/test_speedups_parity.py
    from wsjet.core._speedups import apply_mask as compiled_apply_mask
except ImportError:  # pragma: no cover
    compiled_apply_mask = _mask.apply_mask

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
FAILURE_CODES = frozenset({1002, 1007, 1009})
#: Longest input libFuzzer makes for each target (``-max_len``). Long enough for
#: every construct (a 16-bit frame length, a compressed message, a request with
#: all its headers); the HTTP readers' limits are reached through SMALL_LIMITS.
MAX_LEN = {
    "frames_server": 256,
    "frames_server_deflate": 256,
    "frames_client": 256,
    "frames_client_deflate": 256,
    "http_request": 512,
    "http_response": 512,
    "extensions_header": 192,
    "subprotocols_header": 256,
    "deflate_decoder": 2048,
    "core_chunks": 256,
    "mask_parity": 1024,
}
#: core_chunks performs at most this many operations per input.
MOST_OPERATIONS = 6
#: A stream is fed in at most this many pieces (one receive_data / feed call each).
MOST_CHUNKS = 8

#: The core as imported (compiled where built) and its pure-Python twin.
IMPORTED = _twins.imported_core()
PURE = _twins.pure_core()
PARITY_CASE = _twins.parity_case()


class Reader:
    """Takes parameters off the front of the input, like atheris' FuzzedDataProvider."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        self.pos += len(chunk)
        return chunk

    def rest(self) -> bytes:
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk


def chunks(data: bytes, seed: int) -> list[bytes]:
    """Split ``data`` the way TCP might, from one parameter byte."""
    if seed == 0 or not data:
        return [data]
    size = 1 + (seed * 7) % 97 if seed < 128 else 1 + seed % 5
    # At most MOST_CHUNKS pieces: per-call costs would otherwise dominate long
    # inputs without saying more about wsjet than short ones do.
    size = max(size, -(-len(data) // MOST_CHUNKS))
    return [data[i : i + size] for i in range(0, len(data), size)]


def _first_difference(a: tuple[object, ...], b: tuple[object, ...]) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"item {i}: {x!r:.300} != {y!r:.300}"
    return f"lengths {len(a)} != {len(b)}"


def _check_parity(name: str, run: Callable[[SimpleNamespace], tuple[object, ...]]) -> None:
    imported = run(IMPORTED)
    pure = run(PURE)
    if imported != pure:
        raise AssertionError(
            f"{name}: the imported and the pure-Python core disagree "
            f"({PARITY_CASE}); {_first_difference(imported, pure)}"
        )


# --- frames -----------------------------------------------------------------------------------


def _codec(core: SimpleNamespace, is_client: bool, bits: int) -> Any:
    return core.deflate.PerMessageDeflate(
        is_client=is_client,
        remote_no_context_takeover=bool(bits & 0x10),
        remote_max_window_bits=8 + bits % 8,
    )


def _describe(event: object) -> tuple[object, ...]:
    """An event as plain values, equal across the imported and the twin modules."""
    kind = type(event).__name__
    if kind == "DataReceived":
        data = event.data  # type: ignore[attr-defined]
        assert isinstance(data, str | bytes), event
        return ("data", data, event.first, event.fin)  # type: ignore[attr-defined]
    if kind == "CloseReceived":
        close = event.close  # type: ignore[attr-defined]
        return ("close", int(close.code), close.reason)
    assert kind in ("PingReceived", "PongReceived"), event
    data = event.data  # type: ignore[attr-defined]
    assert isinstance(data, bytes), event
    return (kind, data)


def _size(data: object) -> int:
    """Bytes of a delivered piece (UTF-8 for text)."""
    assert isinstance(data, str | bytes), data
    return len(data.encode()) if isinstance(data, str) else len(data)


def _pinned_key() -> bytes:
    return b"\x01\x02\x03\x04"


def _run_frames(
    core: SimpleNamespace, data: bytes, client: bool, deflate: bool
) -> tuple[object, ...]:
    module = core.connection
    reader = Reader(data)
    split, bits, size = reader.byte(), reader.byte(), reader.byte()
    max_size = None if size == 255 else 1 + size * 97
    conn = module.Connection(
        module.Side.CLIENT if client else module.Side.SERVER,
        max_size=max_size,
        max_fragments=1 + bits * 3,
        codec=_codec(core, client, bits) if deflate else None,
        mask_key=_pinned_key if client else None,
    )
    trace: list[object] = []
    message = 0  # bytes of the message being received, as delivered
    pieces = chunks(reader.rest(), split)
    # Half the inputs are fed as the engine does: through one reused buffer,
    # scribbled over after each read (nothing of it may be kept).
    reused = bytearray(max(map(len, pieces), default=0)) if split & 1 else None
    for i, chunk in enumerate(pieces):
        # Neither call raises: peer errors fail the connection.
        if reused is None:
            conn.receive_data(chunk)
        else:
            reused[: len(chunk)] = chunk
            conn.receive_from(reused, len(chunk))
            reused[:] = b"\xa5" * len(reused)
        for event in conn.events_received():
            item = _describe(event)
            if item[0] == "data":
                size = _size(item[1])
                message = size if item[2] else message + size
                # max_size holds for what is delivered, compressed or not.
                assert max_size is None or message <= max_size, (message, max_size)
            trace.append(item)
        output = conn.data_to_send()
        if output:
            assert all(isinstance(item, bytes) for item in output), output
            trace.append(b"".join(output))
        if conn.failure is not None or conn.close_rcvd is not None:
            # Parsing stopped (§5.5.1): the rest is discarded, in one call.
            conn.receive_data(b"".join(pieces[i + 1 :]))
            assert not conn.events_received() and not conn.data_to_send()
            break
    if conn.failure is not None:
        assert conn.failure.close_code in FAILURE_CODES, conn.failure
        assert conn.close_sent is None or conn.close_sent.code == conn.failure.close_code
        assert conn.wants_eof()
        trace.append((type(conn.failure).__name__, str(conn.failure)))
    conn.receive_eof()
    assert conn.state == module.State.CLOSED
    return tuple(trace)


def _frames_target(client: bool, deflate: bool) -> Callable[[bytes], None]:
    role = "client" if client else "server"

    def target(data: bytes) -> None:
        _check_parity(
            f"frames_{role}{'_deflate' if deflate else ''}",
            lambda core: _run_frames(core, data, client, deflate),
        )

    return target


# --- HTTP -------------------------------------------------------------------------------------

#: Small limits, so that short inputs reach every limit's edge (bit 0x40 of the first byte).
SMALL_LIMITS = HTTPLimits(max_line=64, max_headers=6, max_header_bytes=384, max_body=48)


#: What a reader made of its input: the message, the error it raised, or None
#: (the stream ended first).
Parsed = Request | Response | InvalidHandshake | None


def _read(
    kind: type[RequestReader] | type[ResponseReader], limits: HTTPLimits, pieces: list[bytes]
) -> tuple[tuple[object, ...], Parsed]:
    """What a new reader makes of ``pieces``: an outcome to compare, and the result.

    The outcome is the message and what follows it (the reader's leftover, then
    the pieces it was not fed), or the error, or "incomplete" (the reader was
    told of the end of the stream, as the engine does).
    """
    parser = kind(limits)
    try:
        for i, piece in enumerate(pieces):
            message = parser.feed(piece)
            if message is not None:
                return (repr(message), parser.leftover + b"".join(pieces[i + 1 :])), message
        message = parser.feed_eof()
        if message is None:
            return ("incomplete",), None
        return (repr(message), parser.leftover), message
    except InvalidHandshake as exc:
        return (type(exc), str(exc)), exc


def _read_both_ways(kind: type[RequestReader] | type[ResponseReader], data: bytes) -> Parsed:
    """Parse ``data`` (after its parameter byte) in one read and in pieces; they must agree.

    One read takes the readers' whole-header-block path. The pieces start with a
    single byte, which sends the reader down its line-by-line path, then follow
    the parameter byte's TCP-like split (:func:`chunks`). Bit 0x40 of that byte
    picks the small limits.
    """
    split, body = data[0] if data else 0, data[1:]
    limits = SMALL_LIMITS if split & 0x40 else HTTPLimits()
    whole, message = _read(kind, limits, [body])
    pieces = [body[:1], *chunks(body[1:], split)] if body else [body]
    in_pieces, _ = _read(kind, limits, pieces)
    assert whole == in_pieces, _first_difference(whole, in_pieces)
    return message


def http_request(data: bytes) -> None:
    request = _read_both_ways(RequestReader, data)
    if request is None:
        return
    try:
        if isinstance(request, InvalidHandshake):
            raise request  # rejected like any other bad handshake, below
        assert isinstance(request, Request)
        key = handshake.check_request(request)
        offered = handshake.parse_subprotocols(request.headers)
        subprotocol = handshake.select_subprotocol(offered, ["chat", "superchat"])
        extensions, _ = negotiate_server(request.headers, "deflate")
        response = handshake.build_response(key, subprotocol=subprotocol, extensions=extensions)
        assert ResponseReader().feed(response.serialize()) is not None
    except InvalidHandshake as exc:
        answer = handshake.reject_for(exc).serialize()
        assert answer.startswith(b"HTTP/1.1 4"), answer
        assert data[16:48] not in answer or len(data) < 64  # nothing of the request echoed


def http_response(data: bytes) -> None:
    response = _read_both_ways(ResponseReader, data)
    if not isinstance(response, Response):
        return  # the stream ended first, or the reader raised what it documents
    try:
        handshake.check_response(response, KEY)
        handshake.check_subprotocol(response, ["chat"])
        negotiate_client(response.headers, "deflate")
    except InvalidHandshake:
        pass


# --- extension and subprotocol headers -------------------------------------------------------


def _headers(name: str, data: bytes) -> Headers | None:
    try:
        return Headers([(name, value) for value in data.decode("latin-1").split("\n")])
    except ValueError:
        return None  # not a header a parser would have let through


def extensions_header(data: bytes) -> None:
    headers = _headers("Sec-WebSocket-Extensions", data)
    if headers is None:
        return
    try:
        parsed = handshake.parse_extensions(headers)
    except InvalidHeader:
        return
    again = handshake.parse_extensions(
        Headers([("Sec-WebSocket-Extensions", handshake.serialize_extensions(parsed))])
    )
    assert again == parsed
    accepted = server_negotiate(parsed, DeflateOptions.server_default())
    if accepted is not None:
        value, _ = accepted
        answer = handshake.parse_extensions(Headers([("Sec-WebSocket-Extensions", value)]))
        client_negotiate(answer, DeflateOptions.client_default())
    with contextlib.suppress(NegotiationError):
        client_negotiate(parsed, DeflateOptions.client_default())
    # negotiate_server (parse, then server_negotiate) is fuzzed by http_request.


def subprotocols_header(data: bytes) -> None:
    headers = _headers("Sec-WebSocket-Protocol", data)
    if headers is None:
        return
    try:
        offered = handshake.parse_subprotocols(headers)
    except InvalidHeader:
        return
    assert all(handshake.is_token(item) for item in offered)
    chosen = handshake.select_subprotocol(offered, offered[::-1])
    assert chosen is None or chosen in offered
    with contextlib.suppress(NegotiationError):
        handshake.check_subprotocol(Response(101, "", headers), offered[:1])


# --- the deflate decoder -----------------------------------------------------------------------

TRAILER = b"\x00\x00\xff\xff"


def deflate_decoder(data: bytes) -> None:
    reader = Reader(data)
    bits, split, limit = reader.byte(), reader.byte(), reader.byte()
    wbits = 8 + bits % 8
    max_length = None if limit == 255 else limit * 1024
    payload = reader.rest()
    codec = PerMessageDeflate(is_client=bool(bits & 0x80), remote_max_window_bits=wbits)
    pieces = chunks(payload, split)
    out = []
    try:
        for i, piece in enumerate(pieces):
            end = i == len(pieces) - 1
            left = None if max_length is None else max_length - sum(map(len, out))
            out.append(codec.decode(piece, end_of_message=end, max_length=left))
    except (InvalidPayloadData, PayloadTooBig):
        return
    inflated = b"".join(out)
    if max_length is not None:
        assert len(inflated) <= max_length
    # Differential: zlib itself, in one go, agrees.
    reference = zlib.decompressobj(-wbits)
    try:
        expected = reference.decompress(payload + TRAILER)
    except zlib.error:
        expected = None
    if expected is not None and not reference.unused_data[len(TRAILER) :]:
        assert inflated == expected[: len(inflated)]
    # And what we compress, we inflate back.
    sender = PerMessageDeflate(is_client=True, local_max_window_bits=wbits)
    receiver = PerMessageDeflate(is_client=False, remote_max_window_bits=wbits)
    assert receiver.decode(sender.encode(payload), end_of_message=True, max_length=None) == payload


# --- the whole core, fed random chunks and random calls ----------------------------------------


def _mask_keys() -> Callable[[], bytes]:
    """Masking keys that change every frame, the same sequence on every run."""
    counter: Iterator[int] = iter(range(1, 1 << 62))
    return lambda: ((next(counter) * 0x9E3779B1) & 0xFFFFFFFF).to_bytes(4, "big")


def _operations(data: bytes) -> tuple[int, list[tuple[int, bytes]]]:
    """The flags byte, then (operation byte, body) pairs: parsed once for both runs.

    At most MOST_OPERATIONS: the rest of the input is ignored.
    """
    reader = Reader(data)
    flags = reader.byte()
    ops: list[tuple[int, bytes]] = []
    while reader.pos < len(data) and len(ops) < MOST_OPERATIONS:
        op = reader.byte()
        ops.append((op, reader.take(reader.byte() % 64)))
    return flags, ops


def _join(pieces: list[str | bytes]) -> str | bytes:
    if isinstance(pieces[0], str):
        return "".join(pieces)  # type: ignore[arg-type]
    return b"".join(pieces)  # type: ignore[arg-type]


def _run_core(
    core: SimpleNamespace, flags: int, ops: list[tuple[int, bytes]]
) -> tuple[object, ...]:
    module = core.connection
    codecs: tuple[Any, Any] = (None, None)
    if flags & 1:
        codecs = (_codec(core, True, flags), _codec(core, False, flags))
        codecs[0].local_max_window_bits = codecs[1].remote_max_window_bits
        codecs[1].local_max_window_bits = codecs[0].remote_max_window_bits
        codecs[0].local_no_context_takeover = codecs[1].remote_no_context_takeover
        codecs[1].local_no_context_takeover = codecs[0].remote_no_context_takeover
    # Index 0 is the client, 1 the server (lists: hashing enums costs more than the core).
    ends = (
        module.Connection(
            module.Side.CLIENT, max_size=None, codec=codecs[0], mask_key=_mask_keys()
        ),
        module.Connection(module.Side.SERVER, max_size=None, codec=codecs[1]),
    )
    wire = [bytearray(), bytearray()]
    sent: tuple[list[str | bytes], list[str | bytes]] = ([], [])
    got: tuple[list[str | bytes], list[str | bytes]] = ([], [])
    pieces: tuple[list[str | bytes], list[str | bytes]] = ([], [])
    trace: list[object] = []
    garbage = False
    for op, body in ops:
        side = 0 if op & 0x80 else 1
        other = 1 - side
        conn = ends[side]
        try:
            kind = op & 0x0F
            if kind == 0:
                text = body.decode("latin-1")
                conn.send_text(text.encode(), compress=bool(op & 0x40))
                sent[side].append(text)
            elif kind == 1:
                conn.send_binary(body, compress=bool(op & 0x40))
                sent[side].append(body)
            elif kind == 2:
                parts = [body[i : i + 3] for i in range(0, len(body), 3)] or [b""]
                for i, part in enumerate(parts):
                    if i == 0:
                        conn.send_binary(part, fin=len(parts) == 1)
                    else:
                        conn.send_continuation(part, fin=i == len(parts) - 1)
                sent[side].append(body)
            elif kind == 3:
                conn.send_ping(body[:125])
            elif kind == 4:
                conn.send_pong(body[:125])
            elif kind == 5:
                conn.send_close(1000 + (op & 0x0F) % 4 if op & 0x20 else 1000, "")
            elif kind == 6:
                conn.send_binary(body, fin=False)  # left unfinished
                sent[side].append(b"<unfinished>")
            elif kind == 7 and op & 0x40:
                wire[side] += body  # garbage from nowhere
                garbage = True
            elif kind == 8:
                conn.fail(1011, "bye")
        except (InvalidState, ValueError) as exc:
            trace.append(type(exc).__name__)
        for out in conn.data_to_send():
            wire[side] += out
        # Deliver part of what this side wrote to the other side.
        n = len(wire[side]) if op & 0x10 else len(wire[side]) // 2
        chunk = bytes(wire[side][:n])
        del wire[side][:n]
        trace.append(chunk)
        receiver = ends[other]
        receiver.receive_data(chunk)
        for event in receiver.events_received():
            trace.append(_describe(event))
            if type(event).__name__ == "DataReceived":
                pieces[other].append(event.data)
                if event.fin:
                    got[other].append(_join(pieces[other]))
                    pieces[other].clear()
        for out in receiver.data_to_send():
            wire[other] += out
    for conn in ends:
        if conn.failure is not None:
            assert garbage, f"{conn.side} failed on a valid stream: {conn.failure}"
            assert conn.failure.close_code in FAILURE_CODES
            trace.append((type(conn.failure).__name__, str(conn.failure)))
        trace.append((int(conn.state), conn.wants_eof(), conn.close_expected()))
    if not garbage:
        for side in (0, 1):
            expected = [m for m in sent[side] if m != b"<unfinished>"]
            assert got[1 - side] == expected[: len(got[1 - side])], "messages lost or altered"
    return tuple(trace)


def core_chunks(data: bytes) -> None:
    """A client and a server connection wired together, driven by the input.

    Operations: send a text / binary / fragmented message, a ping, a pong, a
    close; move some of the wire to the other side in a chunk; inject garbage.
    Without garbage, whatever one side sends the other receives exactly; and
    the imported core and its pure-Python twin produce the same bytes and events.
    """
    flags, ops = _operations(data)
    _check_parity("core_chunks", lambda core: _run_core(core, flags, ops))


# --- masking: pure and compiled agree ------------------------------------------------------------


def mask_parity(data: bytes) -> None:
    key, payload = data[:4], data[4:]
    for shape in (payload, bytearray(payload), memoryview(payload)[1:]):
        results = []
        for fn in (_mask.apply_mask, compiled_apply_mask):
            try:
                results.append(("ok", fn(shape, key)))
            except (ValueError, TypeError) as exc:
                results.append((type(exc).__name__, str(exc)))
        assert results[0] == results[1], (len(payload), key)
        if results[0][0] == "ok":
            assert _mask.apply_mask(results[0][1], key) == bytes(shape)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "frames_server": _frames_target(False, False),
    "frames_server_deflate": _frames_target(False, True),
    "frames_client": _frames_target(True, False),
    "frames_client_deflate": _frames_target(True, True),
    "http_request": http_request,
    "http_response": http_response,
    "extensions_header": extensions_header,
    "subprotocols_header": subprotocols_header,
    "deflate_decoder": deflate_decoder,
    "core_chunks": core_chunks,
    "mask_parity": mask_parity,
}


def max_len(target: str) -> int:
    """The ``-max_len`` of ``target``."""
    return MAX_LEN[target]
