"""The compiled Connection and its pure-Python source must behave identically.

``wsjet.core.connection`` is compiled by Cython from its own ``.py`` file; this
test loads that ``.py`` a second time, as plain Python, and feeds both the
same random byte streams cut at random places: valid and broken frames, every
payload length 0-300, the 16- and 64-bit length boundaries, a 1 MiB message,
fragmented and compressed messages, pings and closes, in both roles. Events,
output bytes, states and failures must be the same after every chunk.

On the pure-Python path (``WSJET_NO_EXTENSIONS=1``) both sides are the same
source and the test only checks itself.
"""

from __future__ import annotations

import importlib.util
import os
import random
import struct
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import wsjet
from wsjet.core import connection as normal
from wsjet.core.deflate import PerMessageDeflate


def load_pure_twin() -> ModuleType:
    """Import connection.py from source, whatever the normal import gives."""
    source = Path(normal.__file__).with_name("connection.py")
    spec = importlib.util.spec_from_file_location("wsjet.core._pure_connection", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pure = load_pure_twin()


def test_the_twins_are_what_they_claim() -> None:
    assert pure.__file__ is not None and pure.__file__.endswith("connection.py")
    compiled = not normal.__file__.endswith(".py")  # type: ignore[union-attr]
    assert compiled is wsjet.speedups_enabled()
    assert compiled is not bool(os.environ.get("WSJET_NO_EXTENSIONS"))


def pinned_keys(seed: int) -> Any:
    rng = random.Random(seed)
    return lambda: rng.randbytes(4)


def make_pair(side: str, *, deflate: bool, max_size: int | None, seed: int) -> list[Any]:
    pair = []
    for module in (normal, pure):
        codec = PerMessageDeflate(is_client=side == "CLIENT") if deflate else None
        pair.append(
            module.Connection(
                module.Side[side],
                max_size=max_size,
                max_fragments=64,
                codec=codec,
                mask_key=pinned_keys(seed) if side == "CLIENT" else None,
            )
        )
    return pair


def snapshot(conn: Any) -> tuple[Any, ...]:
    events = [repr(event) for event in conn.events_received()]
    output = b"".join(conn.data_to_send())
    failure = None if conn.failure is None else (type(conn.failure), str(conn.failure))
    return (
        events,
        output,
        conn.state.name,
        conn.close_rcvd,
        conn.close_sent,
        conn.close_rcvd_then_sent,
        failure,
        conn.held,
        conn.close_expected(),
        conn.wants_eof(),
    )


def frame(
    rng: random.Random,
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool,
    long_form: bool = False,
) -> bytes:
    """A frame, sometimes with a non-minimal length, masked with a random key."""
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    bit = 0x80 if masked else 0
    n = len(payload)
    if long_form:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    elif n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not masked:
        return head + payload
    key = rng.randbytes(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def random_stream(rng: random.Random, *, masked: bool, deflate: bool) -> bytes:
    """A mix of valid traffic, and now and then a mistake or a close."""
    out = bytearray()
    encoder = PerMessageDeflate(is_client=masked) if deflate else None
    for _ in range(rng.randint(1, 12)):
        kind = rng.random()
        size = rng.choice([rng.randint(0, 300), 125, 126, 127, 65535, 65536, rng.randint(0, 9)])
        payload = rng.randbytes(size)
        if kind < 0.35:
            out += frame(rng, 2, payload, masked=masked)
        elif kind < 0.5:
            text = "".join(rng.choice("aé€😀\n") for _ in range(rng.randint(0, 80))).encode()
            if rng.random() < 0.1:
                text = text[: max(0, len(text) - 1)]  # maybe cut a character: 1007
            out += frame(rng, 1, text, masked=masked)
        elif kind < 0.62:
            parts = [payload[i : i + 40] for i in range(0, len(payload), 40)] or [b""]
            for i, part in enumerate(parts):
                opcode = 2 if i == 0 else 0
                out += frame(rng, opcode, part, fin=i == len(parts) - 1, masked=masked)
                if rng.random() < 0.2:
                    out += frame(rng, 9, rng.randbytes(rng.randint(0, 125)), masked=masked)
        elif kind < 0.7 and encoder is not None:
            data = encoder.encode(payload)
            out += frame(rng, 2, data, rsv=0x40, masked=masked)
        elif kind < 0.8:
            out += frame(rng, rng.choice([9, 10]), payload[:125], masked=masked)
        elif kind < 0.86:
            out += frame(rng, 2, payload[:200], masked=masked, long_form=True)  # 1002
        elif kind < 0.9:
            out += frame(rng, rng.randint(0, 15), payload[:20], masked=masked)
        elif kind < 0.94:
            out += frame(rng, 2, payload[:10], masked=not masked)  # wrong masking
        elif kind < 0.97:
            code = rng.choice([1000, 1001, 1005, 999, 1004, 3000, 4999, 5000])
            body = b"" if code == 1005 else struct.pack("!H", code) + b"bye"
            out += frame(rng, 8, body, masked=masked)
        else:
            out += rng.randbytes(rng.randint(1, 12))  # noise
    return bytes(out)


def feed_both(pair: list[Any], stream: bytes, rng: random.Random) -> None:
    cuts = sorted(rng.sample(range(len(stream) + 1), min(len(stream) + 1, rng.randint(0, 8))))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    for piece in pieces:
        for conn in pair:
            conn.receive_data(piece)
        assert snapshot(pair[0]) == snapshot(pair[1])
        while pair[0].held:  # what the I/O layer does after each message
            for conn in pair:
                conn.receive_data(b"")
            assert snapshot(pair[0]) == snapshot(pair[1])


@pytest.mark.parametrize("side", ["SERVER", "CLIENT"])
@pytest.mark.parametrize("deflate", [False, True])
@pytest.mark.parametrize("pause", [False, True])
def test_random_streams(side: str, deflate: bool, pause: bool) -> None:
    rng = random.Random(f"{side}{deflate}{pause}")
    for round_ in range(150):
        pair = make_pair(side, deflate=deflate, max_size=rng.choice([None, 70_000]), seed=round_)
        for conn in pair:
            conn.pause_after_message = pause
        stream = random_stream(rng, masked=side == "SERVER", deflate=deflate)
        feed_both(pair, stream, rng)


@pytest.mark.parametrize("side", ["SERVER", "CLIENT"])
def test_every_length_and_a_large_message(side: str) -> None:
    rng = random.Random(side)
    masked = side == "SERVER"
    sizes = [*range(301), 65535, 65536, 2**20]
    for size in sizes:
        pair = make_pair(side, deflate=False, max_size=None, seed=size)
        stream = frame(rng, 2, rng.randbytes(size), masked=masked)
        feed_both(pair, stream, rng)


@pytest.mark.parametrize("side", ["SERVER", "CLIENT"])
def test_sending(side: str) -> None:
    rng = random.Random(side)
    for round_ in range(100):
        pair = make_pair(side, deflate=round_ % 2 == 1, max_size=None, seed=round_)
        for _ in range(5):
            payload = rng.randbytes(rng.choice([0, 5, 125, 126, 1023, 1024, 70_000]))
            how = rng.randrange(5)
            for conn in pair:
                if how == 0:
                    conn.send_binary(payload)
                elif how == 1:
                    conn.send_text(payload.hex().encode())
                elif how == 2:
                    conn.send_binary(payload, fin=False)
                    conn.send_continuation(payload[:7], fin=True)
                elif how == 3:
                    conn.send_ping(payload[:125])
                else:
                    conn.send_pong(payload[:125])
            assert snapshot(pair[0]) == snapshot(pair[1])
        for conn in pair:
            conn.send_close(1000, "done")
        assert snapshot(pair[0]) == snapshot(pair[1])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=6))
def test_arbitrary_bytes(data: bytes, cuts: list[int]) -> None:
    for side in ("SERVER", "CLIENT"):
        pair = make_pair(side, deflate=True, max_size=1000, seed=0)
        points = sorted({c for c in cuts if c <= len(data)})
        for a, b in zip([0, *points], [*points, len(data)], strict=True):
            for conn in pair:
                conn.receive_data(data[a:b])
            assert snapshot(pair[0]) == snapshot(pair[1])
