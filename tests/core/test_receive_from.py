"""Sans-I/O tests of Connection.receive_from: frames parsed in a buffer the caller reuses.

``receive_from(buffer, size)`` must do exactly what ``receive_data(buffer[:size])``
does, and keep no reference to ``buffer``: the caller overwrites it right after
the call (the I/O layer reads the next socket read into it).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable

import pytest

from wsjet.core.connection import Connection, Side, State
from wsjet.core.deflate import PerMessageDeflate
from wsjet.core.events import CloseReceived, DataReceived, Event, PingReceived, PongReceived
from wsjet.core.frames import Opcode, serialize_frame
from wsjet.exceptions import ProtocolError

MASK = b"\x37\xfa\x21\x3d"  # RFC 6455 §5.7's example key
GARBAGE = 0xAA
BIG_BUFFER = 256 * 1024

Message = str | bytes


def pinned() -> bytes:
    return MASK


def client_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    return serialize_frame(opcode, payload, fin=fin, mask_key=MASK)


def server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    return serialize_frame(opcode, payload, fin=fin)


def new_connection(side: Side) -> Connection:
    # A client's own frames are masked: a pinned key makes its output comparable.
    return Connection(side, mask_key=pinned if side is Side.CLIENT else None)


def snapshot(events: list[Event]) -> list[tuple[object, ...]]:
    """Events as plain tuples: type, data and the first/fin flags."""
    result: list[tuple[object, ...]] = []
    for event in events:
        if isinstance(event, DataReceived):
            result.append(("data", type(event.data), event.data, event.first, event.fin))
        elif isinstance(event, PingReceived):
            result.append(("ping", event.data))
        elif isinstance(event, PongReceived):
            result.append(("pong", event.data))
        else:
            assert isinstance(event, CloseReceived)
            result.append(("close", event.close.code, event.close.reason))
    return result


def messages(events: list[Event]) -> list[Message]:
    """Reassemble data pieces into messages, checking the first/fin flags."""
    result: list[Message] = []
    pieces: list[Message] = []
    for event in events:
        if isinstance(event, DataReceived):
            assert event.first == (not pieces), event
            pieces.append(event.data)
            if event.fin:
                if isinstance(pieces[0], str):
                    result.append("".join(pieces))  # type: ignore[arg-type]
                else:
                    result.append(b"".join(pieces))  # type: ignore[arg-type]
                pieces = []
    assert not pieces, "unfinished message"
    return result


def close_code_sent(output: bytes) -> int:
    assert output[0] == 0x88, output[:16]
    offset = 2 + (4 if output[1] & 0x80 else 0)
    payload = output[offset : offset + (output[1] & 0x7F)]
    if output[1] & 0x80:
        payload = bytes(b ^ output[2 + i % 4] for i, b in enumerate(payload))
    return int(struct.unpack("!H", payload[:2])[0])


# --- feeding ----------------------------------------------------------------------------


class Reader:
    """What the I/O layer does: one buffer, reused for every read, garbage after each."""

    def __init__(self, size: int) -> None:
        self.garbage = bytes([GARBAGE]) * size
        self.buffer = bytearray(self.garbage)

    def feed(self, conn: Connection, chunk: bytes) -> None:
        buffer = self.buffer
        buffer[: len(chunk)] = chunk
        conn.receive_from(buffer, len(chunk))
        # The next read lands here: nothing of the last one may be needed any more.
        buffer[:] = self.garbage


Feed = Callable[[Connection, bytes], None]


def run(conn: Connection, chunks: list[bytes], feed: Feed) -> tuple[list[Event], bytes]:
    """Feed every chunk, taking events and output as the I/O layer does."""
    events: list[Event] = []
    output: list[bytes] = []
    for chunk in chunks:
        feed(conn, chunk)
        while True:
            events += conn.events_received()
            output += conn.data_to_send()
            if not conn.held:
                break
            conn.receive_data(b"")
    return events, b"".join(output)


def feed_data(conn: Connection, chunk: bytes) -> None:
    conn.receive_data(chunk)


# --- random streams ---------------------------------------------------------------------

ALPHABET = "abcdefghij XYZ 0123 é ß ☕ 𝄞 \n"


def random_text(rng: random.Random, size: int) -> str:
    """Text of about ``size`` UTF-8 bytes, with multi-byte characters to split."""
    chars: list[str] = []
    total = 0
    while total < size:
        c = rng.choice(ALPHABET)
        chars.append(c)
        total += len(c.encode())
    return "".join(chars)


def random_size(rng: random.Random) -> int:
    kind = rng.random()
    if kind < 0.6:
        return rng.randint(0, 300)
    if kind < 0.8:
        return rng.randint(126, 70_000)  # 16-bit and 64-bit lengths
    return rng.randint(4096, 70_000)  # in place assembly of binary frames


def random_stream(
    rng: random.Random, receiver: Side, *, trailing_junk: bool = True
) -> tuple[bytes, list[Message]]:
    """Frames the peer of ``receiver`` sends, and the messages they carry."""
    mask = receiver is Side.SERVER

    def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
        key = rng.randbytes(4) if mask else None
        return serialize_frame(opcode, payload, fin=fin, mask_key=key)

    parts: list[bytes] = []
    sent: list[Message] = []
    budget = 400_000
    for _ in range(rng.randint(1, 12)):
        if budget <= 0:
            break
        kind = rng.random()
        if kind < 0.15:
            parts.append(frame(Opcode.PING, rng.randbytes(rng.randint(0, 125))))
            continue
        if kind < 0.2:
            parts.append(frame(Opcode.PONG, rng.randbytes(rng.randint(0, 125))))
            continue
        size = random_size(rng)
        budget -= size
        message: Message
        if rng.random() < 0.5:
            message = random_text(rng, size)
            opcode, payload = Opcode.TEXT, message.encode()
        else:
            message = rng.randbytes(size)
            opcode, payload = Opcode.BINARY, message
        sent.append(message)
        if rng.random() < 0.3 and len(payload) > 1:
            # Fragmented, with control frames in between; text may split a character.
            cuts = sorted(rng.sample(range(1, len(payload)), min(len(payload) - 1, 4)))
            pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
            for i, piece in enumerate(pieces):
                last = i == len(pieces) - 1
                parts.append(frame(opcode if i == 0 else Opcode.CONT, piece, fin=last))
                if not last and rng.random() < 0.3:
                    parts.append(frame(Opcode.PING, rng.randbytes(rng.randint(0, 20))))
        else:
            parts.append(frame(opcode, payload))
    if rng.random() < 0.8:
        parts.append(frame(Opcode.CLOSE, struct.pack("!H", 1000) + b"bye"))
        if trailing_junk and rng.random() < 0.5:
            # Ignored after the close frame: a frame, then nonsense.
            parts.append(frame(Opcode.TEXT, b"after close") + b"\xff\xfe\xfd")
    return b"".join(parts), sent


def random_chunks(rng: random.Random, data: bytes) -> list[bytes]:
    """Cut ``data`` at random places, as reads would."""
    kind = rng.random()
    if kind < 0.15 and len(data) <= 6000:
        size = rng.randint(1, 7)
        return [data[i : i + size] for i in range(0, len(data), size)] or [b""]
    if kind < 0.4:
        size = rng.randint(1, 20_000)
        return [data[i : i + size] for i in range(0, len(data), size)] or [b""]
    count = rng.randint(0, min(30, max(0, len(data) - 1)))
    cuts = sorted(rng.sample(range(1, len(data)), count)) if count else []
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    if rng.random() < 0.2:
        chunks.insert(rng.randint(0, len(chunks)), b"")  # an empty read changes nothing
    return chunks


CASES = 300


@pytest.mark.parametrize("seed", range(0, CASES, 25))
def test_receive_from_gives_what_receive_data_gives(seed: int) -> None:
    for case in range(seed, seed + 25):
        rng = random.Random(case)
        receiver = Side.SERVER if rng.random() < 0.5 else Side.CLIENT
        wire, sent = random_stream(rng, receiver)
        chunks = random_chunks(rng, wire)
        assert b"".join(chunks) == wire
        longest = max(len(c) for c in chunks)
        size = rng.choice([BIG_BUFFER, longest, longest + rng.randint(1, 100)])
        if size < longest:
            size = longest
        pause = rng.random() < 0.5

        expected_conn = new_connection(receiver)
        expected_conn.pause_after_message = pause
        expected, expected_out = run(expected_conn, chunks, feed_data)

        conn = new_connection(receiver)
        conn.pause_after_message = pause
        got, got_out = run(conn, chunks, Reader(size).feed)

        context = f"case {case}: {receiver.name} {len(wire)} bytes in {len(chunks)} reads"
        assert snapshot(got) == snapshot(expected), context
        assert got_out == expected_out, context
        assert conn.state == expected_conn.state, context
        assert conn.failure is None and expected_conn.failure is None, context
        # And both are right, not just equal.
        assert messages(got) == sent, context


class Mixed:
    """Feeds each chunk through receive_from or receive_data, as ``choices`` say."""

    def __init__(self, choices: list[bool]) -> None:
        self.choices = iter(choices)
        self.reader = Reader(BIG_BUFFER)

    def __call__(self, conn: Connection, chunk: bytes) -> None:
        if next(self.choices):
            self.reader.feed(conn, chunk)
        else:
            conn.receive_data(chunk)


@pytest.mark.parametrize("seed", range(5))
def test_interleaved_receive_data_and_receive_from(seed: int) -> None:
    rng = random.Random(1000 + seed)
    for _ in range(20):
        receiver = rng.choice([Side.SERVER, Side.CLIENT])
        wire, sent = random_stream(rng, receiver)
        chunks = random_chunks(rng, wire)
        mixed = Mixed([rng.random() < 0.5 for _ in chunks])

        expected, expected_out = run(new_connection(receiver), chunks, feed_data)
        got, got_out = run(new_connection(receiver), chunks, mixed)
        assert snapshot(got) == snapshot(expected)
        assert got_out == expected_out
        assert messages(got) == sent


def test_compressed_messages_the_same_both_ways() -> None:
    rng = random.Random(7)
    sender = Connection(Side.CLIENT, codec=PerMessageDeflate(is_client=True))
    sent: list[Message] = []
    for _ in range(40):
        size = random_size(rng)
        if rng.random() < 0.5:
            text = random_text(rng, size)
            sender.send_text(text.encode())
            sent.append(text)
        else:
            # Half random (incompressible), half repetitive.
            data = rng.randbytes(size // 2) + b"z" * (size - size // 2)
            if rng.random() < 0.3 and size > 1:
                sender.send_binary(data[:1], fin=False)
                sender.send_continuation(data[1:], fin=True)
            else:
                sender.send_binary(data)
            sent.append(data)
    wire = b"".join(sender.data_to_send())
    for _ in range(10):
        chunks = random_chunks(rng, wire)
        expected, expected_out = run(
            Connection(Side.SERVER, codec=PerMessageDeflate(is_client=False)), chunks, feed_data
        )
        got, got_out = run(
            Connection(Side.SERVER, codec=PerMessageDeflate(is_client=False)),
            chunks,
            Reader(BIG_BUFFER).feed,
        )
        assert snapshot(got) == snapshot(expected)
        assert got_out == expected_out
        assert messages(got) == sent


# --- the caller's buffer is the caller's ------------------------------------------------


@pytest.mark.parametrize(
    ("opcode", "size"),
    [
        (Opcode.TEXT, 100),  # waits whole in the connection's buffer
        (Opcode.BINARY, 3000),  # waits whole (below the assembly threshold)
        (Opcode.BINARY, 70_000),  # assembled in place, 64-bit length
        (Opcode.TEXT, 70_000),  # streamed in pieces
    ],
    ids=["text-100", "binary-3000", "binary-70000", "text-70000"],
)
@pytest.mark.parametrize("cut", [1, 2, 5, 8, 50, "middle", "last"])
def test_a_frame_split_across_reads_survives_the_buffer_reuse(
    opcode: Opcode, size: int, cut: int | str
) -> None:
    rng = random.Random(size)
    payload = ("é" * (size // 2)).encode() if opcode is Opcode.TEXT else rng.randbytes(size)
    frame = client_frame(opcode, payload)
    after = client_frame(Opcode.BINARY, b"next message")
    at = len(frame) // 2 if cut == "middle" else len(frame) - 1 if cut == "last" else int(cut)
    reader = Reader(BIG_BUFFER)
    conn = Connection(Side.SERVER)
    reader.feed(conn, frame[:at])  # the buffer is all 0xAA once this returns
    events = conn.events_received()
    reader.feed(conn, frame[at:] + after[:3])
    reader.feed(conn, after[3:])
    events += conn.events_received()
    expected = payload.decode() if opcode is Opcode.TEXT else payload
    assert messages(events) == [expected, b"next message"]
    assert conn.failure is None


def test_the_connection_keeps_no_reference_to_the_buffer() -> None:
    # A resize fails while anyone holds a view of the bytearray (BufferError).
    buffer = bytearray(1024)
    frame = client_frame(Opcode.BINARY, b"x" * 600)
    conn = Connection(Side.SERVER)
    for data in (frame[:3], frame[3:10], frame[10:400], frame[400:]):
        buffer[: len(data)] = data
        conn.receive_from(buffer, len(data))
        buffer.extend(b"\x00")  # would raise BufferError if a view were left open
        del buffer[1024:]
    assert messages(conn.events_received()) == [b"x" * 600]


def test_overwritten_buffer_does_not_change_delivered_messages() -> None:
    reader = Reader(4096)
    conn = Connection(Side.SERVER)
    reader.feed(conn, client_frame(Opcode.BINARY, b"A" * 1000) + client_frame(Opcode.TEXT, b"B"))
    events = conn.events_received()
    reader.feed(conn, client_frame(Opcode.BINARY, b"C" * 1000))
    events += conn.events_received()
    assert messages(events) == [b"A" * 1000, "B", b"C" * 1000]


# --- pause_after_message ----------------------------------------------------------------


def test_held_messages_survive_the_buffer_reuse() -> None:
    payloads = [b"one" * 10, random.Random(5).randbytes(5000), b"three", b"four" * 40]
    wire = b"".join(client_frame(Opcode.BINARY, p) for p in payloads)
    tail = client_frame(Opcode.TEXT, "fünf".encode())
    split = 3
    reader = Reader(BIG_BUFFER)
    conn = Connection(Side.SERVER)
    conn.pause_after_message = True
    reader.feed(conn, wire + tail[:split])

    assert conn.events_received() == [DataReceived(payloads[0], True, True)]
    assert conn.held
    received = []
    while conn.held:
        conn.receive_data(b"")
        received += conn.events_received()
    assert received == [DataReceived(p, True, True) for p in payloads[1:]]
    # The incomplete frame at the end was kept too, then completed by the next read.
    reader.feed(conn, tail[split:])
    assert conn.events_received() == [DataReceived("fünf", True, True)]
    assert not conn.held


def test_held_then_receive_from_appends_to_what_is_held() -> None:
    conn = Connection(Side.SERVER)
    conn.pause_after_message = True
    reader = Reader(1000)
    reader.feed(conn, client_frame(Opcode.TEXT, b"a") + client_frame(Opcode.TEXT, b"b"))
    assert conn.events_received() == [DataReceived("a", True, True)]
    assert conn.held
    # The next read arrives before the held bytes were parsed: they come first.
    reader.feed(conn, client_frame(Opcode.TEXT, b"c"))
    events = conn.events_received()
    while conn.held:
        conn.receive_data(b"")
        events += conn.events_received()
    assert messages(events) == ["b", "c"]


# --- sizes ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [-1, -100, 17, 1000, 2**70, -(2**70)])
def test_size_outside_the_buffer_is_a_value_error(size: int) -> None:
    conn = Connection(Side.SERVER)
    buffer = bytearray(client_frame(Opcode.TEXT, b"hi")) + bytearray(8)
    assert len(buffer) == 16
    with pytest.raises(ValueError, match=rf"\bsize {size}\b") as info:
        conn.receive_from(buffer, size)
    assert "16" in str(info.value)
    # Nothing was fed: the connection is as it was.
    assert conn.events_received() == []
    assert conn.failure is None and conn.state is State.OPEN
    conn.receive_from(buffer, 8)
    assert conn.events_received() == [DataReceived("hi", True, True)]


@pytest.mark.parametrize("kind", [bytes, memoryview])
def test_buffer_must_be_a_bytearray(kind: type) -> None:
    # The compiled method's signature takes a bytearray only; the pure one checks.
    conn = Connection(Side.SERVER)
    frame = client_frame(Opcode.BINARY, b"x")
    with pytest.raises(TypeError):
        conn.receive_from(kind(frame), len(frame))
    assert conn.events_received() == []


def test_size_zero_and_the_whole_buffer() -> None:
    frame = client_frame(Opcode.BINARY, b"whole")
    conn = Connection(Side.SERVER)
    conn.receive_from(bytearray(frame), 0)
    assert conn.events_received() == []
    conn.receive_from(bytearray(), 0)
    conn.receive_from(bytearray(frame), len(frame))
    assert conn.events_received() == [DataReceived(b"whole", True, True)]


def test_bytes_past_size_are_not_read() -> None:
    frame = client_frame(Opcode.BINARY, b"12345")
    buffer = bytearray(frame) + client_frame(Opcode.TEXT, b"not sent")
    conn = Connection(Side.SERVER)
    conn.receive_from(buffer, len(frame) - 2)
    assert conn.events_received() == []
    buffer[:] = bytes([GARBAGE]) * len(buffer)
    buffer[:2] = frame[-2:]
    conn.receive_from(buffer, 2)
    assert conn.events_received() == [DataReceived(b"12345", True, True)]
    assert not conn.held and conn.failure is None


# --- failures ---------------------------------------------------------------------------

RSV2 = bytes([client_frame(Opcode.TEXT, b"bad")[0] | 0x20]) + client_frame(Opcode.TEXT, b"bad")[1:]
UNMASKED = server_frame(Opcode.TEXT, b"unmasked")


@pytest.mark.parametrize("bad", [RSV2, UNMASKED], ids=["rsv2", "unmasked"])
@pytest.mark.parametrize("where", ["alone", "after a message", "split", "after pending bytes"])
def test_protocol_error_fails_like_receive_data(bad: bytes, where: str) -> None:
    good = client_frame(Opcode.TEXT, b"good")
    if where == "alone":
        chunks = [bad]
    elif where == "after a message":
        chunks = [good + bad]
    elif where == "split":
        chunks = [good[:3], good[3:] + bad[:1], bad[1:]]
    else:
        chunks = [good + good[:2], good[2:] + bad]

    def fed(feed: Feed) -> tuple[Connection, list[Event], bytes]:
        conn = Connection(Side.SERVER)
        events, output = run(conn, chunks, feed)
        return conn, events, output

    expected_conn, expected, expected_out = fed(feed_data)
    reader = Reader(BIG_BUFFER)
    conn, got, got_out = fed(reader.feed)

    assert snapshot(got) == snapshot(expected)
    assert got_out == expected_out
    assert close_code_sent(got_out) == 1002
    assert isinstance(conn.failure, ProtocolError)
    assert conn.failure.close_code == 1002
    assert str(conn.failure) == str(expected_conn.failure)
    assert conn.wants_eof() and conn.close_expected()
    assert conn.state is expected_conn.state is State.CLOSING

    # Anything after the failure is ignored, however it comes.
    for data in (good, good + good, b"\x00" * 50):
        reader.feed(conn, data)
        conn.receive_data(b"")
    assert conn.events_received() == []
    assert conn.data_to_send() == []
    assert not conn.held


def test_client_fails_a_masked_server_frame() -> None:
    conn = new_connection(Side.CLIENT)
    reader = Reader(100)
    reader.feed(conn, server_frame(Opcode.TEXT, b"ok") + client_frame(Opcode.TEXT, b"masked"))
    assert conn.events_received() == [DataReceived("ok", True, True)]
    assert conn.failure is not None and conn.failure.close_code == 1002
    assert close_code_sent(b"".join(conn.data_to_send())) == 1002
    reader.feed(conn, server_frame(Opcode.TEXT, b"later"))
    assert conn.events_received() == [] and conn.data_to_send() == []


def test_input_after_a_close_frame_is_ignored() -> None:
    conn = Connection(Side.SERVER)
    reader = Reader(1000)
    close = client_frame(Opcode.CLOSE, struct.pack("!H", 1001))
    reader.feed(conn, close + client_frame(Opcode.TEXT, b"in the same read"))
    events = conn.events_received()
    assert len(events) == 1 and isinstance(events[0], CloseReceived)
    assert events[0].close.code == 1001
    assert close_code_sent(b"".join(conn.data_to_send())) == 1001
    reader.feed(conn, client_frame(Opcode.TEXT, b"in a later read"))
    assert conn.events_received() == [] and conn.data_to_send() == []
    assert not conn.held


def test_invalid_utf8_in_a_streamed_frame_fails_with_1007() -> None:
    payload = "é".encode() * 5000 + b"\xff" + b"x" * 1000
    frame = client_frame(Opcode.TEXT, payload)
    for feed in (feed_data, Reader(BIG_BUFFER).feed):
        conn = Connection(Side.SERVER)
        _, output = run(conn, [frame[:5000], frame[5000:]], feed)
        assert conn.failure is not None and conn.failure.close_code == 1007
        assert close_code_sent(output) == 1007
