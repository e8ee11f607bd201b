"""UTF-8 across fragments, Sans-I/O, with Hypothesis (>= 10,000 examples each).

- valid text, split into frames at arbitrary byte offsets (inside characters
  too) and fed in arbitrary chunks, round-trips exactly;
- text with an invalid sequence fails the connection with 1007 before the
  frame with FIN is processed (as soon as the bad bytes arrive), and no
  complete message is ever delivered.

Close codes 0-65535 are checked one by one, Sans-I/O too, in
tests/core/test_connection.py::test_exhaustive_close_codes.
"""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsjet.core._mask import apply_mask
from wsjet.core.connection import Connection, Side
from wsjet.core.events import DataReceived

EXAMPLES = 10_000
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

# Sequences that no valid UTF-8 text contains, each detectable from its own
# bytes (with any continuation): lone continuation, overlong forms, surrogates,
# code points past U+10FFFF, bytes that never occur, a lead byte cut short.
INVALID = [
    b"\x80",
    b"\xbf",
    b"\xc0\xaf",
    b"\xc1\xbf",
    b"\xe0\x80\xaf",
    b"\xed\xa0\x80",
    b"\xed\xbf\xbf",
    b"\xf0\x80\x80\xaf",
    b"\xf4\x90\x80\x80",
    b"\xf5\x80\x80\x80",
    b"\xfe",
    b"\xff",
    b"\xc3A",
    b"\xe2\x82A",
    b"\xf0\x9f\x98A",
]


def masked(opcode: int, payload: bytes, fin: bool, key: bytes = b"\x01\x02\x03\x04") -> bytes:
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, n)
    body = apply_mask(payload, key)
    return head + key + body


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for point in points:
        pieces.append(data[last:point])
        last = point
    pieces.append(data[last:])
    return pieces


def frames_of(pieces: list[bytes]) -> list[bytes]:
    return [
        masked(0x1 if i == 0 else 0x0, piece, fin=i == len(pieces) - 1)
        for i, piece in enumerate(pieces)
    ]


def feed(conn: Connection, wire: bytes, chunk_cuts: list[int]) -> None:
    for chunk in split(wire, chunk_cuts):
        conn.receive_data(chunk)


def check_valid(text: str, cuts: list[int], chunk_cuts: list[int]) -> None:
    data = text.encode()
    conn = Connection(Side.SERVER)
    feed(conn, b"".join(frames_of(split(data, cuts))), chunk_cuts)
    assert conn.failure is None
    events = [e for e in conn.events_received() if isinstance(e, DataReceived)]
    assert events and events[-1].fin and events[0].first
    assert "".join(str(e.data) for e in events) == text


def check_invalid(text: str, at: int, bad: bytes, cuts: list[int], chunk_cuts: list[int]) -> None:
    # The bad bytes and 4 ASCII bytes after them (which settle any doubt) all
    # go before the last frame, which carries the rest of the text and FIN.
    data = text.encode()
    at = at % (len(data) + 1)
    while at and at < len(data) and 0x80 <= data[at] < 0xC0:
        at -= 1  # insert between characters, not inside one
    body = data[:at] + bad + b"abcd"
    frames = frames_of([*split(body, cuts), data[at:] or b"x"])
    wire, last = b"".join(frames), frames[-1]
    conn = Connection(Side.SERVER)
    feed(conn, wire[: len(wire) - len(last)], chunk_cuts)
    assert conn.failure is not None, (data[:at], bad)
    assert conn.failure.close_code == 1007
    conn.receive_data(last)  # ignored: nothing is parsed after a failure
    assert not any(isinstance(e, DataReceived) and e.fin for e in conn.events_received())


@SETTINGS
@given(
    text=st.text(max_size=64),
    at=st.integers(min_value=0, max_value=1000),
    bad=st.sampled_from(INVALID),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=8),
    chunk_cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=8),
)
def test_utf8_split_anywhere(
    text: str, at: int, bad: bytes, cuts: list[int], chunk_cuts: list[int]
) -> None:
    """Each example checks a valid text and the same text with an invalid sequence."""
    check_valid(text, cuts, chunk_cuts)
    check_invalid(text, at, bad, cuts, chunk_cuts)


@settings(SETTINGS, max_examples=EXAMPLES // 10)
@given(
    prefix=st.text(max_size=100),
    cut=st.sampled_from([b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xe2", b"\xf0"]),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=8),
)
def test_text_ending_mid_character_fails_1007_at_fin(
    prefix: str, cut: bytes, cuts: list[int]
) -> None:
    try:
        data = prefix.encode() + cut
    except UnicodeEncodeError:
        return
    frames = frames_of(split(data, cuts))
    conn = Connection(Side.SERVER)
    for frame in frames[:-1]:
        conn.receive_data(frame)
    assert conn.failure is None  # a character may still be completed
    conn.receive_data(frames[-1])
    assert conn.failure is not None and conn.failure.close_code == 1007
    assert not any(isinstance(e, DataReceived) and e.fin for e in conn.events_received())
