"""Fuzz targets: ``TARGETS[name](data: bytes) -> None``.

Each target turns arbitrary bytes into calls of one wsjet API and checks its
contract: it may only raise the exceptions that API documents (those are
caught here), and a few invariants must hold. Any exception escaping a
target is a crash. Targets need nothing but wsjet, so they run under atheris
(:mod:`tests.fuzz.run`) and under the built-in driver (:mod:`tests.fuzz.driver`).
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Callable

from wsjet.core import _mask, handshake
from wsjet.core import connection as connection_module
from wsjet.core.connection import Connection, Side, State
from wsjet.core.deflate import (
    DeflateOptions,
    PerMessageDeflate,
    client_negotiate,
    server_negotiate,
)
from wsjet.core.events import CloseReceived, DataReceived, Event, PingReceived, PongReceived
from wsjet.core.http import Headers, Request, RequestReader, Response, ResponseReader
from wsjet.exceptions import (
    InvalidHandshake,
    InvalidHeader,
    InvalidPayloadData,
    InvalidState,
    NegotiationError,
    PayloadTooBig,
)
from wsjet.extensions import negotiate_client, negotiate_server

try:  # the compiled twin; its absence is reported by tests/core/test_speedups_parity.py
    from wsjet.core._speedups import apply_mask as compiled_apply_mask
except ImportError:  # pragma: no cover
    compiled_apply_mask = _mask.apply_mask

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
FAILURE_CODES = frozenset({1002, 1007, 1009})


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
    # At most ~1,000 chunks: per-call costs would otherwise dominate large inputs
    # and trip the 1 s per input limit without saying anything about wsjet.
    size = max(size, len(data) // 1000)
    return [data[i : i + size] for i in range(0, len(data), size)]


# --- frames -----------------------------------------------------------------------------------


def _codec(side: Side, bits: int) -> PerMessageDeflate:
    return PerMessageDeflate(
        is_client=side is Side.CLIENT,
        remote_no_context_takeover=bool(bits & 0x10),
        remote_max_window_bits=8 + bits % 8,
    )


def _describe(event: Event) -> tuple[object, ...]:
    if isinstance(event, DataReceived):
        assert isinstance(event.data, str | bytes)
        return ("data", event.data, event.first, event.fin)
    if isinstance(event, CloseReceived):
        return ("close", event.close.code, event.close.reason)
    assert isinstance(event, PingReceived | PongReceived), event
    return (type(event).__name__, event.data)


def _run_frames(data: bytes, side: Side, deflate: bool) -> tuple[object, ...]:
    reader = Reader(data)
    split, bits, size = reader.byte(), reader.byte(), reader.byte()
    max_size = None if size == 255 else 1 + size * 97
    conn = Connection(
        side,
        max_size=max_size,
        max_fragments=1 + bits * 3,
        codec=_codec(side, bits) if deflate else None,
        mask_key=lambda: b"\x01\x02\x03\x04",
    )
    trace: list[object] = []
    for chunk in chunks(reader.rest(), split):
        conn.receive_data(chunk)  # never raises: peer errors fail the connection
        trace.extend(_describe(event) for event in conn.events_received())
        output = conn.data_to_send()
        assert all(isinstance(item, bytes) for item in output)
        trace.append(b"".join(output))
    if conn.failure is not None:
        assert conn.failure.close_code in FAILURE_CODES, conn.failure
        assert conn.close_sent is None or conn.close_sent.code == conn.failure.close_code
        assert conn.wants_eof()
        trace.append((type(conn.failure).__name__, str(conn.failure)))
    texts = [t for t in trace if isinstance(t, tuple) and t[0] == "data"]
    for item in texts:
        assert isinstance(item, tuple) and isinstance(item[1], str | bytes)
    conn.receive_eof()
    assert conn.state is State.CLOSED
    return tuple(trace)


def _frames_target(side: Side, deflate: bool) -> Callable[[bytes], None]:
    def target(data: bytes) -> None:
        compiled = _run_frames(data, side, deflate)
        # The pure-Python masking must give the very same result.
        saved = connection_module.apply_mask
        connection_module.apply_mask = _mask.apply_mask
        try:
            pure = _run_frames(data, side, deflate)
        finally:
            connection_module.apply_mask = saved
        assert pure == compiled, "pure and compiled masking disagree"

    return target


# --- HTTP -------------------------------------------------------------------------------------


def http_request(data: bytes) -> None:
    reader = Reader(data)
    split = reader.byte()
    parser = RequestReader()
    request: Request | None = None
    try:
        for chunk in chunks(reader.rest(), split):
            request = parser.feed(chunk)
            if request is not None:
                break
        if request is None:
            parser.feed_eof()
            return
        key = handshake.check_request(request)
        offered = handshake.parse_subprotocols(request.headers)
        subprotocol = handshake.select_subprotocol(offered, ["chat", "superchat"])
        extensions, _ = negotiate_server(request.headers, "deflate")
        response = handshake.build_response(key, subprotocol=subprotocol, extensions=extensions)
        assert ResponseReader().feed(response.serialize()) is not None
    except InvalidHandshake as exc:
        answer = handshake.reject_for(exc).serialize()
        assert answer.startswith(b"HTTP/1.1 4")
        assert data[16:48] not in answer or len(data) < 64  # nothing of the request echoed


def http_response(data: bytes) -> None:
    reader = Reader(data)
    split = reader.byte()
    parser = ResponseReader()
    response: Response | None = None
    try:
        for chunk in chunks(reader.rest(), split):
            response = parser.feed(chunk)
            if response is not None:
                break
        if response is None:
            response = parser.feed_eof()
        if response is None:
            return
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
    negotiate_server(headers, "deflate")


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


def core_chunks(data: bytes) -> None:
    """A client and a server connection wired together, driven by the input.

    Operations: send a text / binary / fragmented message, a ping, a pong, a
    close; move some of the wire to the other side in a chunk; inject garbage.
    Without garbage, whatever one side sends the other receives exactly.
    """
    reader = Reader(data)
    flags = reader.byte()
    codecs = (None, None)
    if flags & 1:
        codecs = (_codec(Side.CLIENT, flags), _codec(Side.SERVER, flags))
        codecs[0].local_max_window_bits = codecs[1].remote_max_window_bits
        codecs[1].local_max_window_bits = codecs[0].remote_max_window_bits
        codecs[0].local_no_context_takeover = codecs[1].remote_no_context_takeover
        codecs[1].local_no_context_takeover = codecs[0].remote_no_context_takeover
    ends = {
        Side.CLIENT: Connection(Side.CLIENT, max_size=None, codec=codecs[0]),
        Side.SERVER: Connection(Side.SERVER, max_size=None, codec=codecs[1]),
    }
    wire: dict[Side, bytearray] = {Side.CLIENT: bytearray(), Side.SERVER: bytearray()}
    sent: dict[Side, list[str | bytes]] = {Side.CLIENT: [], Side.SERVER: []}
    got: dict[Side, list[str | bytes]] = {Side.CLIENT: [], Side.SERVER: []}
    pieces: dict[Side, list[str | bytes]] = {Side.CLIENT: [], Side.SERVER: []}
    garbage = False
    while reader.pos < len(data):
        op = reader.byte()
        side = Side.CLIENT if op & 0x80 else Side.SERVER
        other = Side.SERVER if side is Side.CLIENT else Side.CLIENT
        conn = ends[side]
        body = reader.take(reader.byte() % 64)
        try:
            kind = op & 0x0F
            if kind == 0:
                conn.send_text(body.decode("latin-1").encode(), compress=bool(op & 0x40))
                sent[side].append(body.decode("latin-1"))
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
        except (InvalidState, ValueError):
            pass
        for out in conn.data_to_send():
            wire[side] += out
        # Deliver part of what this side wrote to the other side.
        n = len(wire[side]) if op & 0x10 else len(wire[side]) // 2
        chunk, wire[side] = bytes(wire[side][:n]), wire[side][n:]
        ends[other].receive_data(chunk)
        for event in ends[other].events_received():
            if isinstance(event, DataReceived):
                pieces[other].append(event.data)
                if event.fin:
                    first = pieces[other][0]
                    joined = (
                        "".join(pieces[other])
                        if isinstance(first, str)
                        else b"".join(pieces[other])
                    )  # type: ignore[arg-type]
                    got[other].append(joined)
                    pieces[other] = []
        for out in ends[other].data_to_send():
            wire[other] += out
    for side, conn in ends.items():
        if conn.failure is not None:
            assert garbage, f"{side} failed on a valid stream: {conn.failure}"
            assert conn.failure.close_code in FAILURE_CODES
    if not garbage:
        for side in ends:
            other = Side.SERVER if side is Side.CLIENT else Side.CLIENT
            expected = [m for m in sent[side] if m != b"<unfinished>"]
            assert got[other] == expected[: len(got[other])], "messages lost or altered"


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
    "frames_server": _frames_target(Side.SERVER, False),
    "frames_server_deflate": _frames_target(Side.SERVER, True),
    "frames_client": _frames_target(Side.CLIENT, False),
    "frames_client_deflate": _frames_target(Side.CLIENT, True),
    "http_request": http_request,
    "http_response": http_response,
    "extensions_header": extensions_header,
    "subprotocols_header": subprotocols_header,
    "deflate_decoder": deflate_decoder,
    "core_chunks": core_chunks,
    "mask_parity": mask_parity,
}
