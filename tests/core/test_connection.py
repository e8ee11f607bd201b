"""Sans-I/O tests of the connection state machine: bytes in, events and bytes out."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

import pytest

from wsjet.core.connection import WHOLE_FRAME_LIMIT, Connection, Side, State
from wsjet.core.deflate import PerMessageDeflate
from wsjet.core.events import CloseReceived, DataReceived, Event, PingReceived, PongReceived
from wsjet.core.frames import Close, Opcode, serialize_frame
from wsjet.exceptions import InvalidState

MASK = b"\x37\xfa\x21\x3d"  # RFC 6455 §5.7's example key


def pinned() -> bytes:
    return MASK


def client_frame(opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False) -> bytes:
    """A frame as a client sends it: masked with the pinned key."""
    return serialize_frame(opcode, payload, fin=fin, rsv1=rsv1, mask_key=MASK)


def server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    return serialize_frame(opcode, payload, fin=fin)


Feeder = Callable[[Connection, bytes], None]


def feed_whole(conn: Connection, data: bytes) -> None:
    conn.receive_data(data)


def feed_bytewise(conn: Connection, data: bytes) -> None:
    for i in range(len(data)):
        conn.receive_data(data[i : i + 1])


FEEDERS = [pytest.param(feed_whole, id="whole"), pytest.param(feed_bytewise, id="bytewise")]


def messages(events: list[Event]) -> list[str | bytes]:
    """Reassemble data pieces into messages, checking first/fin flags."""
    result: list[str | bytes] = []
    pieces: list[str | bytes] = []
    for event in events:
        if isinstance(event, DataReceived):
            assert event.first == (not pieces)
            pieces.append(event.data)
            if event.fin:
                joined = "".join(pieces) if isinstance(pieces[0], str) else b"".join(pieces)  # type: ignore[arg-type]
                result.append(joined)
                pieces = []
    assert not pieces, "unfinished message"
    return result


def close_code_sent(conn: Connection) -> int:
    out = b"".join(conn.data_to_send())
    assert out[0] == 0x88, out
    length = out[1] & 0x7F
    offset = 2 + (4 if out[1] & 0x80 else 0)
    payload = out[offset : offset + length]
    if out[1] & 0x80:
        from wsjet.core._mask import apply_mask

        payload = apply_mask(payload, out[2:6])
    return int(struct.unpack("!H", payload[:2])[0])


# --- golden bytes ---------------------------------------------------------------------


def test_rfc_examples_unmasked_text() -> None:
    # RFC 6455 §5.7: a single-frame unmasked text message "Hello".
    conn = Connection(Side.CLIENT)
    conn.receive_data(b"\x81\x05\x48\x65\x6c\x6c\x6f")
    assert conn.events_received() == [DataReceived("Hello", True, True)]


def test_rfc_examples_masked_text() -> None:
    conn = Connection(Side.SERVER)
    conn.receive_data(b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58")
    assert conn.events_received() == [DataReceived("Hello", True, True)]


def test_rfc_examples_fragmented() -> None:
    conn = Connection(Side.CLIENT)
    conn.receive_data(b"\x01\x03\x48\x65\x6c\x80\x02\x6c\x6f")
    assert messages(conn.events_received()) == ["Hello"]


def test_client_sends_masked_golden_bytes() -> None:
    conn = Connection(Side.CLIENT, mask_key=pinned)
    conn.send_text(b"Hello")
    assert conn.data_to_send() == [b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"]


def test_server_sends_unmasked_golden_bytes() -> None:
    conn = Connection(Side.SERVER)
    conn.send_text(b"Hello")
    conn.send_ping(b"Hello")
    assert b"".join(conn.data_to_send()) == b"\x81\x05Hello\x89\x05Hello"


@pytest.mark.parametrize(
    ("length", "header"),
    [
        (0, b"\x82\x00"),
        (125, b"\x82\x7d"),
        (126, b"\x82\x7e\x00\x7e"),
        (65535, b"\x82\x7e\xff\xff"),
        (65536, b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
    ],
)
def test_three_length_encodings_round_trip(length: int, header: bytes) -> None:
    payload = bytes(range(256)) * (length // 256) + bytes(range(length % 256))
    sender = Connection(Side.SERVER)
    sender.send_binary(payload)
    wire = b"".join(sender.data_to_send())
    assert wire.startswith(header)
    for feed in (feed_whole, feed_bytewise) if length < 2000 else (feed_whole,):
        receiver = Connection(Side.CLIENT, max_size=None)
        feed(receiver, wire + b"\x89\x00")  # trailing data: a ping
        events = receiver.events_received()
        assert messages(events) == [payload]
        assert isinstance(events[-1], PingReceived)


@pytest.mark.parametrize("side", [Side.CLIENT, Side.SERVER])
@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 1023, 1024, 65535, 65536, 70000])
def test_frames_sent_match_the_frame_specification(side: Side, length: int) -> None:
    # The connection packs headers itself (no call into frames.py per frame):
    # every length encoding, FIN, RSV1, masked or not, must stay byte for byte
    # what frames.serialize_frame (the specification) makes.
    payload = bytes(range(256)) * (length // 256) + bytes(range(length % 256))
    mask = MASK if side is Side.CLIENT else None
    codec = PerMessageDeflate(is_client=side is Side.CLIENT)
    conn = Connection(side, mask_key=pinned if side is Side.CLIENT else None, codec=codec)
    conn.send_binary(payload, fin=False, compress=False)
    conn.send_continuation(payload, fin=True)
    conn.send_text(b"x" * length, compress=False)
    conn.send_ping(payload[:125])
    expected = [
        serialize_frame(Opcode.BINARY, payload, fin=False, mask_key=mask),
        serialize_frame(Opcode.CONT, payload, fin=True, mask_key=mask),
        serialize_frame(Opcode.TEXT, b"x" * length, mask_key=mask),
        serialize_frame(Opcode.PING, payload[:125], mask_key=mask),
    ]
    assert b"".join(conn.data_to_send()) == b"".join(expected)
    conn.send_binary(payload, compress=True)
    compressed = PerMessageDeflate(is_client=side is Side.CLIENT).encode(payload)
    assert b"".join(conn.data_to_send()) == serialize_frame(
        Opcode.BINARY, compressed, rsv1=True, mask_key=mask
    )


@pytest.mark.parametrize("feed", FEEDERS)
def test_masked_round_trip_client_to_server(feed: Feeder) -> None:
    client = Connection(Side.CLIENT)
    server = Connection(Side.SERVER)
    client.send_text("café ☕ 𝄞".encode())
    client.send_binary(b"\x00\xff" * 100)
    client.send_text(b"frag", fin=False)
    client.send_continuation("ment é".encode(), fin=True)
    feed(server, b"".join(client.data_to_send()))
    assert messages(server.events_received()) == ["café ☕ 𝄞", b"\x00\xff" * 100, "fragment é"]


@pytest.mark.parametrize("feed", FEEDERS)
def test_control_frames_interleave_fragmented_message(feed: Feeder) -> None:
    server = Connection(Side.SERVER)
    wire = (
        client_frame(Opcode.TEXT, b"one ", fin=False)
        + client_frame(Opcode.PING, b"p")
        + client_frame(Opcode.CONT, b"two ", fin=False)
        + client_frame(Opcode.PONG, b"q")
        + client_frame(Opcode.CONT, b"three", fin=True)
    )
    feed(server, wire)
    events = server.events_received()
    assert messages(events) == ["one two three"]
    assert PingReceived(b"p") in events and PongReceived(b"q") in events
    # The ping was answered automatically (§5.5.2).
    assert b"".join(server.data_to_send()) == b"\x8a\x01p"


def test_empty_fragments_and_empty_messages() -> None:
    server = Connection(Side.SERVER)
    wire = client_frame(Opcode.TEXT, b"") + client_frame(Opcode.BINARY, b"", fin=False)
    wire += client_frame(Opcode.CONT, b"", fin=False) + client_frame(Opcode.CONT, b"", fin=True)
    server.receive_data(wire)
    assert messages(server.events_received()) == ["", b""]


# --- protocol errors ------------------------------------------------------------------


BAD_CLIENT_INPUT = [
    ("unmasked", server_frame(Opcode.TEXT, b"hi"), 1002),
    ("rsv1 without extension", client_frame(Opcode.TEXT, b"hi", rsv1=True), 1002),
    ("rsv2", bytes([0xA1, 0x80]) + MASK, 1002),
    ("rsv3", bytes([0x91, 0x80]) + MASK, 1002),
    ("opcode 3", bytes([0x83, 0x80]) + MASK, 1002),
    ("opcode 0xB", bytes([0x8B, 0x80]) + MASK, 1002),
    ("fragmented ping", client_frame(Opcode.PING, b"", fin=False), 1002),
    ("long ping", client_frame(Opcode.PING, b"x" * 126), 1002),
    ("continuation first", client_frame(Opcode.CONT, b"x"), 1002),
    (
        "text inside fragmented",
        client_frame(Opcode.TEXT, b"a", fin=False) + client_frame(Opcode.TEXT, b"b"),
        1002,
    ),
    ("invalid utf-8", client_frame(Opcode.TEXT, b"\xff"), 1007),
    ("truncated utf-8 at end", client_frame(Opcode.TEXT, b"\xce"), 1007),
    ("surrogate", client_frame(Opcode.TEXT, b"\xed\xa0\x80"), 1007),
    ("close 1 byte", client_frame(Opcode.CLOSE, b"\x03"), 1002),
    ("close code 999", client_frame(Opcode.CLOSE, struct.pack("!H", 999)), 1002),
    ("close code 1005", client_frame(Opcode.CLOSE, struct.pack("!H", 1005)), 1002),
    ("close bad reason", client_frame(Opcode.CLOSE, b"\x03\xe8\xff"), 1007),
    ("16-bit not minimal", bytes([0x82, 0xFE, 0x00, 0x05]) + MASK + b"x" * 5, 1002),
    ("64-bit not minimal", bytes([0x82, 0xFF]) + (5).to_bytes(8, "big") + MASK, 1002),
    ("64-bit msb", bytes([0x82, 0xFF]) + (2**63).to_bytes(8, "big") + MASK, 1002),
    ("over max_size from header", bytes([0x82, 0xFF]) + (2**53).to_bytes(8, "big") + MASK, 1009),
]


@pytest.mark.parametrize("feed", FEEDERS)
@pytest.mark.parametrize(
    ("name", "wire", "code"), BAD_CLIENT_INPUT, ids=[c[0] for c in BAD_CLIENT_INPUT]
)
def test_server_fails_bad_input(feed: Feeder, name: str, wire: bytes, code: int) -> None:
    server = Connection(Side.SERVER)
    feed(server, wire)
    assert server.failure is not None, name
    assert server.failure.close_code == code
    assert close_code_sent(server) == code
    assert server.wants_eof() and server.close_expected()
    # Anything after the failure is ignored.
    server.receive_data(client_frame(Opcode.TEXT, b"ignored"))
    assert not [
        e for e in server.events_received() if isinstance(e, DataReceived) and e.data == "ignored"
    ]


def test_client_fails_masked_server_frame() -> None:
    client = Connection(Side.CLIENT, mask_key=pinned)
    client.receive_data(client_frame(Opcode.TEXT, b"hi"))
    assert client.failure is not None and "masked" in str(client.failure)
    assert close_code_sent(client) == 1002


def test_invalid_utf8_fails_before_the_frame_ends() -> None:
    # §8.1 fail fast: the bad byte arrives, the rest of the frame hasn't.
    server = Connection(Side.SERVER)
    wire = client_frame(Opcode.TEXT, "κόσμε".encode() + b"\xf4\x90\x80\x80" + b"x" * 100)
    server.receive_data(wire[:20])
    assert server.failure is not None and server.failure.close_code == 1007


def test_invalid_utf8_across_fragments_fails_at_the_bad_fragment() -> None:
    server = Connection(Side.SERVER)
    server.receive_data(client_frame(Opcode.TEXT, b"ok \xf4", fin=False))
    assert server.failure is None
    server.receive_data(client_frame(Opcode.CONT, b"\x90", fin=False))
    assert server.failure is not None and server.failure.close_code == 1007


def test_valid_utf8_split_inside_a_character() -> None:
    server = Connection(Side.SERVER)
    data = "𝄞é".encode()
    for i, byte in enumerate(data):
        server.receive_data(
            client_frame(
                Opcode.TEXT if i == 0 else Opcode.CONT, bytes([byte]), fin=i == len(data) - 1
            )
        )
    assert server.failure is None
    assert messages(server.events_received()) == ["𝄞é"]


def test_max_size_on_assembled_message() -> None:
    server = Connection(Side.SERVER, max_size=10)
    server.receive_data(client_frame(Opcode.BINARY, b"x" * 6, fin=False))
    assert server.failure is None
    server.receive_data(client_frame(Opcode.CONT, b"x" * 5, fin=True)[:2])
    assert server.failure is not None and server.failure.close_code == 1009


def test_max_size_none_is_unlimited() -> None:
    server = Connection(Side.SERVER, max_size=None)
    server.receive_data(client_frame(Opcode.BINARY, b"x" * 2_000_000))
    assert messages(server.events_received()) == [b"x" * 2_000_000]


@pytest.mark.parametrize(
    ("max_size", "refused"),
    [(10, True), (11, False), (0, True), (-5, True), (2**63 - 1, False), (2**70, False)],
)
def test_max_size_set_after_construction(max_size: int, refused: bool) -> None:
    # max_size is a property: setting it also sets the C integer the frame
    # headers are checked against (capped to 2**63 - 1, the longest frame).
    server = Connection(Side.SERVER)
    server.max_size = max_size
    assert server.max_size == max_size
    server.receive_data(client_frame(Opcode.BINARY, b"x" * 11))
    if refused:
        assert server.failure is not None and server.failure.close_code == 1009
        assert f"message over {max_size} bytes" in str(server.failure)
    else:
        assert server.failure is None
        assert messages(server.events_received()) == [b"x" * 11]


def test_max_size_set_to_none_lifts_the_limit() -> None:
    server = Connection(Side.SERVER, max_size=4)
    server.max_size = None
    server.receive_data(client_frame(Opcode.BINARY, b"x" * 100))
    assert server.failure is None
    assert messages(server.events_received()) == [b"x" * 100]


def test_max_fragments() -> None:
    server = Connection(Side.SERVER, max_fragments=3)
    server.receive_data(
        client_frame(Opcode.BINARY, b"", fin=False) + client_frame(Opcode.CONT, b"", fin=False)
    )
    server.receive_data(client_frame(Opcode.CONT, b"", fin=False))
    assert server.failure is None
    server.receive_data(client_frame(Opcode.CONT, b"", fin=True))
    assert server.failure is not None and server.failure.close_code == 1009


@pytest.mark.parametrize("opcode", [Opcode.BINARY, Opcode.TEXT])
def test_large_frame_streams_in_pieces(opcode: Opcode) -> None:
    server = Connection(Side.SERVER, max_size=None)
    payload = b"0123456789abcdef" * (WHOLE_FRAME_LIMIT // 16 + 1)
    wire = client_frame(opcode, payload)
    for start in range(0, len(wire), 4096):
        server.receive_data(wire[start : start + 4096])
    events = server.events_received()
    assert len(events) > 10  # pieces were handed over as they arrived
    expected = payload if opcode == Opcode.BINARY else payload.decode()
    assert messages(events) == [expected]


def test_text_frame_streams_below_the_whole_frame_limit() -> None:
    server = Connection(Side.SERVER)
    wire = client_frame(Opcode.TEXT, b"x" * 100_000)
    for start in range(0, len(wire), 4096):
        server.receive_data(wire[start : start + 4096])
    assert len(server.events_received()) > 10


def test_binary_frame_up_to_the_limit_arrives_whole() -> None:
    server = Connection(Side.SERVER, max_size=None)
    payload = bytes(range(256)) * (WHOLE_FRAME_LIMIT // 256)
    wire = client_frame(Opcode.BINARY, payload)
    for start in range(0, len(wire) - 4096, 4096):
        server.receive_data(wire[start : start + 4096])
        assert server.events_received() == []  # waiting for the rest of the frame
    server.receive_data(wire[start + 4096 :])
    assert server.events_received() == [DataReceived(payload, True, True)]
    server.receive_data(b"")
    assert server.events_received() == []


# --- closing handshake ----------------------------------------------------------------


@pytest.mark.parametrize("feed", FEEDERS)
def test_peer_initiated_close_is_echoed(feed: Feeder) -> None:
    server = Connection(Side.SERVER)
    feed(server, client_frame(Opcode.CLOSE, Close(1001, "bye").serialize()) + b"trailing garbage")
    assert server.events_received() == [CloseReceived(Close(1001, "bye"))]
    assert close_code_sent(server) == 1001
    assert server.close_rcvd == Close(1001, "bye") and server.close_sent == Close(1001)
    assert server.close_rcvd_then_sent is True
    assert server.state is State.CLOSING and server.wants_eof() and server.failure is None


def test_empty_close_is_echoed_empty() -> None:
    server = Connection(Side.SERVER)
    server.receive_data(client_frame(Opcode.CLOSE, b""))
    assert server.close_rcvd == Close(1005)
    assert b"".join(server.data_to_send()) == b"\x88\x00"


def test_locally_initiated_close() -> None:
    client = Connection(Side.CLIENT, mask_key=pinned)
    client.send_close(1000, "done")
    assert close_code_sent(client) == 1000
    assert client.state is State.CLOSING and client.close_expected()
    # Data frames may still arrive until the peer's close (§1.4).
    client.receive_data(
        server_frame(Opcode.TEXT, b"late") + server_frame(Opcode.CLOSE, b"\x03\xe8")
    )
    events = client.events_received()
    assert messages(events) == ["late"]
    assert client.close_rcvd == Close(1000) and client.close_rcvd_then_sent is False
    # The client waits for the server to close TCP first (§7.1.1).
    assert not client.wants_eof()
    client.receive_eof()
    assert client.state is State.CLOSED


def test_no_ping_answer_after_close_sent() -> None:
    server = Connection(Side.SERVER)
    server.send_close()
    server.data_to_send()
    server.receive_data(client_frame(Opcode.PING, b"x"))
    assert server.data_to_send() == []


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 2000, 5000])
def test_send_close_rejects_codes_not_for_the_wire(code: int) -> None:
    conn = Connection(Side.SERVER)
    if code == 1005:
        conn.send_close(1005)
        assert conn.data_to_send() == [b"\x88\x00"]
        return
    with pytest.raises(ValueError):
        conn.send_close(code)


def test_send_close_rejects_long_reason_and_double_close() -> None:
    conn = Connection(Side.SERVER)
    with pytest.raises(ValueError):
        conn.send_close(1000, "x" * 124)
    conn.send_close(1000, "x" * 123)
    with pytest.raises(InvalidState):
        conn.send_close()
    with pytest.raises(InvalidState):
        conn.send_text(b"late")
    with pytest.raises(InvalidState):
        conn.send_ping()


def test_control_payload_limit_and_continuation_misuse() -> None:
    conn = Connection(Side.SERVER)
    with pytest.raises(ValueError):
        conn.send_ping(b"x" * 126)
    with pytest.raises(InvalidState):
        conn.send_continuation(b"x", fin=True)
    conn.send_binary(b"a", fin=False)
    with pytest.raises(InvalidState):
        conn.send_text(b"b")


def test_exhaustive_close_codes() -> None:
    valid = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
    valid |= set(range(3000, 5000))
    for code in range(0, 65536):
        server = Connection(Side.SERVER)
        server.receive_data(client_frame(Opcode.CLOSE, struct.pack("!H", code)))
        if code in valid:
            assert server.failure is None, code
            assert server.close_rcvd == Close(code)
        else:
            assert server.failure is not None and server.failure.close_code == 1002, code


def test_eof_mid_message() -> None:
    server = Connection(Side.SERVER)
    server.receive_data(client_frame(Opcode.TEXT, b"abc", fin=False))
    server.receive_eof()
    assert server.state is State.CLOSED and server.eof_received
    server.receive_data(client_frame(Opcode.CONT, b"x"))  # ignored
    assert (
        messages([e for e in server.events_received() if isinstance(e, DataReceived) and e.fin])
        == []
    )


@pytest.mark.parametrize("reused_buffer", [False, True])
def test_tiny_fragments_of_one_read_are_handed_over_256_at_a_time(reused_buffer: bool) -> None:
    # One 256 KiB read can carry ~37,000 one-byte frames: the events that hold
    # them must not all exist at once (the I/O layer merges them as it goes).
    server = Connection(Side.SERVER)
    server.pause_after_message = True
    parts = [client_frame(Opcode.BINARY, b"a", fin=False)]
    parts += [client_frame(Opcode.CONT, b"a", fin=False) for _ in range(9_998)]
    parts.append(client_frame(Opcode.CONT, b"a", fin=True))
    if reused_buffer:
        # As the engine feeds it: the rest stays held after the read's buffer is reused.
        buffer = bytearray(b"".join(parts))
        server.receive_from(buffer, len(buffer))
        buffer[:] = b"\xaa" * len(buffer)
    else:
        server.receive_data(b"".join(parts))
    received: list[Event] = []
    batches = 0
    while True:
        events = server.events_received()
        assert len(events) <= 256
        received += events
        batches += 1
        if not server.held:
            break
        server.receive_data(b"")
    assert batches >= 10_000 // 256
    assert messages(received) == [b"a" * 10_000]


@pytest.mark.parametrize("compressed", [False, True])
def test_a_huge_continuation_length_cannot_wrap_the_size_check(compressed: bool) -> None:
    # 3 bytes of a message, then a continuation frame announcing 2**63 - 1 bytes:
    # "received + announced" overflows a C integer; the check must not.
    codec = PerMessageDeflate(is_client=False) if compressed else None
    server = Connection(Side.SERVER, max_size=98, codec=codec)
    payload = b"abc"
    if compressed:
        deflater = zlib.compressobj(wbits=-15)
        payload = deflater.compress(payload) + deflater.flush(zlib.Z_SYNC_FLUSH)
    first = client_frame(Opcode.BINARY, payload, fin=False)
    if compressed:
        first = bytes([first[0] | 0x40]) + first[1:]
    cont = bytes([0x80, 0xFF]) + (2**63 - 1).to_bytes(8, "big") + bytes(4) + b"xyz"
    server.receive_data(first + cont)
    assert server.failure is not None and server.failure.close_code == 1009
