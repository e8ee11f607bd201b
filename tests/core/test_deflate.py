"""Tests for wsjet.core.deflate (RFC 7692 permessage-deflate)."""

from __future__ import annotations

import itertools
import os
import random
import tracemalloc
import zlib

import pytest
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.extensions.permessage_deflate import PerMessageDeflate as TheirCodec
from websockets.frames import Frame, Opcode
from websockets.headers import parse_extension

from wsjet.core.deflate import (
    DEFAULT_COMPRESS_LEVEL,
    DEFAULT_MEM_LEVEL,
    DEFAULT_SERVER_WINDOW_BITS,
    EXTENSION_NAME,
    DeflateOptions,
    ExtensionList,
    PerMessageDeflate,
    client_negotiate,
    client_offer,
    server_negotiate,
)
from wsjet.exceptions import InvalidPayloadData, NegotiationError, PayloadTooBig

TEXT = b"".join(
    b"message %d: the quick brown fox jumps over the lazy dog. " % i for i in range(200)
)
KiB = 1024
MiB = 1024 * KiB


def parse(header: str) -> ExtensionList:
    """Parse a header value with websockets' parser, an independent implementation."""
    return [(str(name), list(params)) for name, params in parse_extension(header)]


def pair(
    server: DeflateOptions, client: DeflateOptions
) -> tuple[PerMessageDeflate, PerMessageDeflate]:
    """Negotiate through header strings; return (server codec, client codec)."""
    negotiated = server_negotiate(parse(client_offer(client)), server)
    assert negotiated is not None
    header, server_codec = negotiated
    client_codec = client_negotiate(parse(header), client)
    assert client_codec is not None
    return server_codec, client_codec


def peers(
    *,
    server_nct: bool = False,
    client_nct: bool = False,
    server_bits: int = 15,
    client_bits: int = 15,
) -> tuple[PerMessageDeflate, PerMessageDeflate]:
    server = PerMessageDeflate(
        is_client=False,
        local_no_context_takeover=server_nct,
        remote_no_context_takeover=client_nct,
        local_max_window_bits=server_bits,
        remote_max_window_bits=client_bits,
    )
    client = PerMessageDeflate(
        is_client=True,
        local_no_context_takeover=client_nct,
        remote_no_context_takeover=server_nct,
        local_max_window_bits=client_bits,
        remote_max_window_bits=server_bits,
    )
    return server, client


def decode_all(
    codec: PerMessageDeflate, pieces: list[bytes], max_length: int | None = None
) -> bytes:
    out = b""
    for index, piece in enumerate(pieces):
        left = None if max_length is None else max_length - len(out)
        out += codec.decode(piece, end_of_message=index == len(pieces) - 1, max_length=left)
    return out


class StrictInflater:
    """Inflate messages one output byte per call, so every back-reference must
    fit the window (zlib only checks distances that reach past its output buffer)."""

    def __init__(self, window_bits: int) -> None:
        self.inflater = zlib.decompressobj(-window_bits)

    def __call__(self, data: bytes) -> bytes:
        return strict_inflate(data, 0, self.inflater)


def strict_inflate(
    data: bytes, window_bits: int, inflater: zlib._Decompress | None = None
) -> bytes:
    """Inflate one message strictly, with a fresh inflater unless given one."""
    if inflater is None:
        inflater = zlib.decompressobj(-window_bits)
    out = []
    data += b"\x00\x00\xff\xff"
    while data:
        out.append(inflater.decompress(data, 1))
        data = inflater.unconsumed_tail
    while chunk := inflater.decompress(b"", 1):
        out.append(chunk)
    return b"".join(out)


# --- options --------------------------------------------------------------------------


def test_option_defaults() -> None:
    assert DeflateOptions() == DeflateOptions.client_default()
    assert DeflateOptions().compress_level == DEFAULT_COMPRESS_LEVEL == 3
    assert DeflateOptions().mem_level == DEFAULT_MEM_LEVEL == 5
    server = DeflateOptions.server_default()
    assert server.server_max_window_bits == server.client_max_window_bits == 12
    assert DEFAULT_SERVER_WINDOW_BITS == 12
    assert not server.server_no_context_takeover and not server.client_no_context_takeover


@pytest.mark.parametrize(
    "kwargs",
    [
        {"server_max_window_bits": 7},
        {"server_max_window_bits": 16},
        {"client_max_window_bits": 7},
        {"client_max_window_bits": 16},
        {"mem_level": 0},
        {"mem_level": 10},
        {"compress_level": -2},
        {"compress_level": 10},
    ],
)
def test_option_ranges(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        DeflateOptions(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"local_max_window_bits": 7},
        {"remote_max_window_bits": 16},
        {"mem_level": 0},
        {"compress_level": 10},
    ],
)
def test_codec_ranges(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        PerMessageDeflate(is_client=True, **kwargs)  # type: ignore[arg-type]


def test_option_bounds_accepted() -> None:
    DeflateOptions(
        server_max_window_bits=8, client_max_window_bits=15, mem_level=1, compress_level=-1
    )
    DeflateOptions(
        server_max_window_bits=15, client_max_window_bits=8, mem_level=9, compress_level=9
    )


# --- client offer ---------------------------------------------------------------------


def test_client_offer_default() -> None:
    assert client_offer(DeflateOptions()) == "permessage-deflate; client_max_window_bits"


def test_client_offer_everything() -> None:
    options = DeflateOptions(
        server_no_context_takeover=True,
        client_no_context_takeover=True,
        server_max_window_bits=10,
        client_max_window_bits=9,
    )
    assert client_offer(options) == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=10; client_max_window_bits=9"
    )


# --- server negotiation ---------------------------------------------------------------


def negotiate(
    offer: str, options: DeflateOptions | None = None
) -> tuple[str, PerMessageDeflate] | None:
    return server_negotiate(parse(offer), options or DeflateOptions())


def test_server_plain_offer() -> None:
    # RFC 7692 §7.1 (and §5.2 example): the simplest offer and response.
    result = negotiate("permessage-deflate")
    assert result is not None
    header, codec = result
    assert header == "permessage-deflate"
    assert not codec.is_client
    assert (codec.local_max_window_bits, codec.remote_max_window_bits) == (15, 15)
    assert not codec.local_no_context_takeover and not codec.remote_no_context_takeover


def test_server_defaults_against_client_defaults() -> None:
    result = negotiate(client_offer(DeflateOptions()), DeflateOptions.server_default())
    assert result is not None
    header, codec = result
    assert header == "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
    assert (codec.local_max_window_bits, codec.remote_max_window_bits) == (12, 12)


def test_server_obeys_requested_server_window() -> None:
    # RFC 7692 §7.1.2.1: answer with the requested value or less.
    for mine, expected in ((None, 10), (12, 10), (9, 9), (15, 10)):
        result = negotiate(
            "permessage-deflate; server_max_window_bits=10",
            DeflateOptions(server_max_window_bits=mine),
        )
        assert result is not None
        assert result[0] == f"permessage-deflate; server_max_window_bits={expected}"
        assert result[1].local_max_window_bits == expected


def test_server_requested_window_8() -> None:
    result = negotiate("permessage-deflate; server_max_window_bits=8")
    assert result is not None
    assert result[0] == "permessage-deflate; server_max_window_bits=8"
    assert result[1].local_max_window_bits == 8


def test_server_client_window_without_value() -> None:
    # RFC 7692 §7.1.2.2: no value lets the server choose, or not answer at all.
    result = negotiate("permessage-deflate; client_max_window_bits")
    assert result is not None
    assert result[0] == "permessage-deflate"
    assert result[1].remote_max_window_bits == 15
    result = negotiate(
        "permessage-deflate; client_max_window_bits", DeflateOptions(client_max_window_bits=9)
    )
    assert result is not None
    assert result[0] == "permessage-deflate; client_max_window_bits=9"
    assert result[1].remote_max_window_bits == 9


def test_server_client_window_with_value() -> None:
    # The client's value is a promise: the server needn't answer, or answers lower.
    result = negotiate("permessage-deflate; client_max_window_bits=10")
    assert result is not None
    assert result[0] == "permessage-deflate"
    assert result[1].remote_max_window_bits == 10
    for mine, expected in ((12, 10), (9, 9)):
        result = negotiate(
            "permessage-deflate; client_max_window_bits=10",
            DeflateOptions(client_max_window_bits=mine),
        )
        assert result is not None
        assert result[0] == f"permessage-deflate; client_max_window_bits={expected}"
        assert result[1].remote_max_window_bits == expected


def test_server_never_sends_unoffered_client_window() -> None:
    # RFC 7692 §7.1.2.2: MUST NOT include client_max_window_bits if not offered.
    result = negotiate("permessage-deflate", DeflateOptions(client_max_window_bits=9))
    assert result is not None
    assert "client_max_window_bits" not in result[0]
    assert result[1].remote_max_window_bits == 15


def test_server_sends_unrequested_server_window() -> None:
    result = negotiate("permessage-deflate", DeflateOptions(server_max_window_bits=11))
    assert result is not None
    assert result[0] == "permessage-deflate; server_max_window_bits=11"
    assert result[1].local_max_window_bits == 11


def test_server_context_takeover_flags() -> None:
    result = negotiate("permessage-deflate; server_no_context_takeover")
    assert result is not None
    assert result[0] == "permessage-deflate; server_no_context_takeover"
    assert result[1].local_no_context_takeover and not result[1].remote_no_context_takeover
    result = negotiate("permessage-deflate; client_no_context_takeover")
    assert result is not None
    assert result[0] == "permessage-deflate; client_no_context_takeover"
    assert result[1].remote_no_context_takeover and not result[1].local_no_context_takeover
    options = DeflateOptions(server_no_context_takeover=True, client_no_context_takeover=True)
    result = negotiate("permessage-deflate", options)
    assert result is not None
    assert result[0] == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    )
    assert result[1].local_no_context_takeover and result[1].remote_no_context_takeover


def test_server_full_offer() -> None:
    result = negotiate(
        "permessage-deflate; client_no_context_takeover; server_no_context_takeover; "
        "client_max_window_bits=9; server_max_window_bits=10",
        DeflateOptions.server_default(),
    )
    assert result is not None
    header, codec = result
    assert header == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=10; client_max_window_bits=9"
    )
    assert (codec.local_max_window_bits, codec.remote_max_window_bits) == (10, 9)
    assert codec.local_no_context_takeover and codec.remote_no_context_takeover


BAD_PARAMS = [
    "server_no_context_takeover=1",
    "client_no_context_takeover=yes",
    "server_max_window_bits",
    "server_max_window_bits=7",
    "server_max_window_bits=16",
    "server_max_window_bits=08",
    "server_max_window_bits=ten",
    "server_max_window_bits=-9",
    "client_max_window_bits=7",
    "client_max_window_bits=16",
    "client_max_window_bits=010",
    "unknown_param",
    "unknown_param=1",
    "server_no_context_takeover; server_no_context_takeover",
    "client_no_context_takeover; client_no_context_takeover",
    "server_max_window_bits=10; server_max_window_bits=10",
    "client_max_window_bits; client_max_window_bits=10",
    "client_max_window_bits; client_max_window_bits",
]


@pytest.mark.parametrize("params", BAD_PARAMS)
def test_server_declines_bad_offer(params: str) -> None:
    # RFC 7692 §7: decline an offer with an unknown, invalid or duplicated parameter.
    assert negotiate(f"permessage-deflate; {params}") is None
    # ... and goes on with the next offer.
    result = negotiate(f"permessage-deflate; {params}, permessage-deflate")
    assert result is not None
    assert result[0] == "permessage-deflate"


@pytest.mark.parametrize(
    "name", ["server_no_context_takeover", "server_max_window_bits", "client_max_window_bits"]
)
def test_server_declines_empty_value(name: str) -> None:
    # A quoted empty string, which some parsers would let through.
    offer: ExtensionList = [(EXTENSION_NAME, [(name, "")])]
    assert server_negotiate(offer, DeflateOptions()) is None
    with pytest.raises(NegotiationError):
        client_negotiate(offer, DeflateOptions())


@pytest.mark.parametrize("bits", range(8, 16))
def test_server_accepts_every_window(bits: int) -> None:
    result = negotiate(
        f"permessage-deflate; server_max_window_bits={bits}; client_max_window_bits={bits}"
    )
    assert result is not None
    assert result[1].local_max_window_bits == result[1].remote_max_window_bits == bits


def test_server_quoted_value() -> None:
    # The parser unquotes: "10" and 10 are the same value (RFC 7692 §7.1).
    result = negotiate('permessage-deflate; server_max_window_bits="10"')
    assert result is not None
    assert result[0] == "permessage-deflate; server_max_window_bits=10"


def test_server_preference_order() -> None:
    # RFC 7692 §5.2 example: the first offer is preferred, the second is a fallback.
    offer = (
        "permessage-deflate; client_max_window_bits; server_max_window_bits=10, "
        "permessage-deflate; client_max_window_bits"
    )
    result = negotiate(offer)
    assert result is not None
    assert result[0] == "permessage-deflate; server_max_window_bits=10"
    offer = (
        "permessage-deflate; client_max_window_bits=20, permessage-deflate; client_max_window_bits"
    )
    result = negotiate(offer, DeflateOptions(client_max_window_bits=11))
    assert result is not None
    assert result[0] == "permessage-deflate; client_max_window_bits=11"


def test_server_skips_other_extensions() -> None:
    result = negotiate("x-webkit-deflate-frame, permessage-deflate; server_no_context_takeover")
    assert result is not None
    assert result[0] == "permessage-deflate; server_no_context_takeover"
    assert negotiate("x-webkit-deflate-frame; max_window_bits=10") is None
    assert server_negotiate([], DeflateOptions()) is None


# --- client negotiation ---------------------------------------------------------------


def accept(response: str, options: DeflateOptions | None = None) -> PerMessageDeflate | None:
    return client_negotiate(parse(response) if response else [], options or DeflateOptions())


def test_client_no_extension() -> None:
    assert accept("") is None


def test_client_plain_response() -> None:
    codec = accept("permessage-deflate")
    assert codec is not None
    assert codec.is_client
    assert (codec.local_max_window_bits, codec.remote_max_window_bits) == (15, 15)
    assert not codec.local_no_context_takeover and not codec.remote_no_context_takeover


def test_client_full_response() -> None:
    codec = accept(
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=10; client_max_window_bits=9"
    )
    assert codec is not None
    assert (codec.local_max_window_bits, codec.remote_max_window_bits) == (9, 10)
    assert codec.local_no_context_takeover and codec.remote_no_context_takeover


def test_client_keeps_its_promises() -> None:
    # RFC 7692 §7.1.1.2, §7.1.2.2: what the client offered binds it anyway.
    options = DeflateOptions(client_no_context_takeover=True, client_max_window_bits=10)
    codec = accept("permessage-deflate; client_max_window_bits=12", options)
    assert codec is not None
    assert codec.local_no_context_takeover
    assert codec.local_max_window_bits == 10
    codec = accept("permessage-deflate", options)
    assert codec is not None
    assert codec.local_max_window_bits == 10
    codec = accept("permessage-deflate; client_max_window_bits=8", options)
    assert codec is not None
    assert codec.local_max_window_bits == 8


def test_client_accepts_unrequested_server_params() -> None:
    # RFC 7692 §7.1.1.1, §7.1.2.1: the server may add these on its own.
    codec = accept("permessage-deflate; server_no_context_takeover; server_max_window_bits=9")
    assert codec is not None
    assert codec.remote_no_context_takeover
    assert codec.remote_max_window_bits == 9


def test_client_accepts_smaller_server_window() -> None:
    codec = accept(
        "permessage-deflate; server_max_window_bits=8", DeflateOptions(server_max_window_bits=10)
    )
    assert codec is not None
    assert codec.remote_max_window_bits == 8


@pytest.mark.parametrize(
    ("response", "options", "detail"),
    [
        ("x-foo", DeflateOptions(), "extension x-foo was not offered"),
        ("permessage-deflate, x-foo", DeflateOptions(), "extension x-foo was not offered"),
        (
            "permessage-deflate, permessage-deflate",
            DeflateOptions(),
            "permessage-deflate accepted more than once",
        ),
        ("permessage-deflate; foo", DeflateOptions(), "unknown parameter foo"),
        (
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            DeflateOptions(),
            "duplicate parameter server_no_context_takeover",
        ),
        (
            "permessage-deflate; client_max_window_bits=9; client_max_window_bits=9",
            DeflateOptions(),
            "duplicate parameter client_max_window_bits",
        ),
        (
            "permessage-deflate; client_no_context_takeover=1",
            DeflateOptions(),
            "client_no_context_takeover takes no value",
        ),
        (
            "permessage-deflate; client_max_window_bits",
            DeflateOptions(),
            "client_max_window_bits needs a value",
        ),
        (
            "permessage-deflate; server_max_window_bits",
            DeflateOptions(),
            "server_max_window_bits needs a value",
        ),
        (
            "permessage-deflate; server_max_window_bits=16",
            DeflateOptions(),
            "server_max_window_bits must be an integer from 8 to 15",
        ),
        (
            "permessage-deflate; server_max_window_bits=7",
            DeflateOptions(),
            "server_max_window_bits must be an integer from 8 to 15",
        ),
        (
            "permessage-deflate; client_max_window_bits=09",
            DeflateOptions(),
            "client_max_window_bits must be an integer from 8 to 15",
        ),
        (
            "permessage-deflate; server_max_window_bits=12",
            DeflateOptions(server_max_window_bits=10),
            "server_max_window_bits=12 is above the 10 asked",
        ),
        (
            "permessage-deflate",
            DeflateOptions(server_max_window_bits=10),
            "server_max_window_bits=10 was requested but not acknowledged",
        ),
        (
            "permessage-deflate",
            DeflateOptions(server_no_context_takeover=True),
            "server_no_context_takeover was requested but not acknowledged",
        ),
    ],
)
def test_client_rejects(response: str, options: DeflateOptions, detail: str) -> None:
    with pytest.raises(NegotiationError) as info:
        accept(response, options)
    assert info.value.name == "Sec-WebSocket-Extensions"
    assert info.value.value is not None
    assert detail in str(info.value)


def test_client_rejection_shows_header() -> None:
    with pytest.raises(NegotiationError) as info:
        accept("permessage-deflate; server_max_window_bits=20")
    assert info.value.value == "permessage-deflate; server_max_window_bits=20"


@pytest.mark.parametrize(
    "client",
    [
        DeflateOptions(),
        DeflateOptions(client_max_window_bits=9),
        DeflateOptions(server_max_window_bits=8, client_no_context_takeover=True),
        DeflateOptions(server_no_context_takeover=True, server_max_window_bits=14),
    ],
)
@pytest.mark.parametrize(
    "server",
    [
        DeflateOptions(),
        DeflateOptions.server_default(),
        DeflateOptions(server_no_context_takeover=True, client_max_window_bits=8),
    ],
)
def test_negotiated_pairs_agree(server: DeflateOptions, client: DeflateOptions) -> None:
    server_codec, client_codec = pair(server, client)
    assert server_codec.local_max_window_bits == client_codec.remote_max_window_bits
    assert server_codec.remote_max_window_bits >= client_codec.local_max_window_bits
    assert server_codec.local_no_context_takeover == client_codec.remote_no_context_takeover
    assert server_codec.remote_no_context_takeover == client_codec.local_no_context_takeover
    for message in (TEXT, b"", TEXT[:100]):
        assert (
            server_codec.decode(client_codec.encode(message), end_of_message=True, max_length=None)
            == message
        )
        assert (
            client_codec.decode(server_codec.encode(message), end_of_message=True, max_length=None)
            == message
        )


# --- codec ----------------------------------------------------------------------------


def test_repr() -> None:
    assert repr(PerMessageDeflate(is_client=True, local_max_window_bits=9)) == (
        "PerMessageDeflate(is_client=True, remote_no_context_takeover=False, "
        "local_no_context_takeover=False, remote_max_window_bits=15, local_max_window_bits=9)"
    )


@pytest.mark.parametrize(
    ("server_nct", "client_nct"), list(itertools.product([False, True], repeat=2))
)
def test_round_trip_context_takeover(server_nct: bool, client_nct: bool) -> None:
    server, client = peers(server_nct=server_nct, client_nct=client_nct)
    blob = os.urandom(4000)
    messages = [blob, blob, b"", TEXT[:500], TEXT, TEXT]
    sent, received = [], []
    for message in messages:
        payload = server.encode(message)
        assert client.decode(payload, end_of_message=True, max_length=None) == message
        sent.append(len(payload))
        payload = client.encode(message)
        assert server.decode(payload, end_of_message=True, max_length=None) == message
        received.append(len(payload))
    # With context takeover, repeating a message costs a few bytes.
    assert (sent[1] < 100) == (not server_nct)
    assert (received[1] < 100) == (not client_nct)


def test_no_context_takeover_resets_inflater() -> None:
    # A peer that keeps its context while we assume it doesn't: the second
    # message refers to the first, which our fresh inflater lacks.
    sender = PerMessageDeflate(is_client=True)
    receiver = PerMessageDeflate(is_client=False, remote_no_context_takeover=True)
    assert receiver.decode(sender.encode(TEXT), end_of_message=True, max_length=None) == TEXT
    with pytest.raises(InvalidPayloadData, match="invalid compressed data"):
        receiver.decode(sender.encode(TEXT), end_of_message=True, max_length=None)


@pytest.mark.parametrize("server_bits", range(8, 16))
@pytest.mark.parametrize("client_bits", [8, 9, 12, 15])
def test_round_trip_window_bits(server_bits: int, client_bits: int) -> None:
    server, client = peers(server_bits=server_bits, client_bits=client_bits)
    from_server, from_client = StrictInflater(server_bits), StrictInflater(client_bits)
    for message in (TEXT, os.urandom(1000) * 5, TEXT):
        payload = server.encode(message)
        assert from_server(payload) == message
        assert client.decode(payload, end_of_message=True, max_length=None) == message
        payload = client.encode(message)
        assert from_client(payload) == message
        assert server.decode(payload, end_of_message=True, max_length=None) == message


def test_strict_inflate_detects_far_references() -> None:
    # The helper above really checks the window: 15-bit output breaks a 256-byte window.
    data = os.urandom(300) * 10
    payload = PerMessageDeflate(is_client=True).encode(data)
    assert strict_inflate(payload, 15) == data
    with pytest.raises(zlib.error, match="too far back"):
        strict_inflate(payload, 8)


def test_window_8_fits_256_bytes() -> None:
    # Compressing with 9 window bits for a negotiated 8 (see the module docstring):
    # no back-reference reaches further than 256 bytes, whatever the data.
    rng = random.Random(7692)
    for level in (1, 3, 6, 9):
        codec = PerMessageDeflate(is_client=False, local_max_window_bits=8, compress_level=level)
        inflate = StrictInflater(8)
        for _ in range(10):
            alphabet = bytes(rng.randrange(256) for _ in range(rng.randrange(2, 30)))
            data = bytes(rng.choice(alphabet) for _ in range(rng.randrange(1, 5000)))
            data += data[: rng.randrange(len(data) + 1)]
            assert inflate(codec.encode(data)) == data


@pytest.mark.parametrize("server_nct", [False, True])
@pytest.mark.parametrize("piece", [1, 7, 100, 5000])
def test_fragmented_round_trip(server_nct: bool, piece: int) -> None:
    server, client = peers(server_nct=server_nct)
    for _ in range(3):
        fragments = [TEXT[:3000], b"", TEXT[3000:6000], TEXT[6000:]]
        payload = b""
        for index, fragment in enumerate(fragments):
            payload += server.encode(fragment, end_of_message=index == len(fragments) - 1)
        pieces = [payload[i : i + piece] for i in range(0, len(payload), piece)]
        assert decode_all(client, pieces) == TEXT


def test_fragments_decoded_as_sent() -> None:
    # Each fragment flushes, so the receiver gets its data before the message ends.
    server, client = peers()
    first = server.encode(TEXT[:1000], end_of_message=False)
    assert first.endswith(b"\x00\x00\xff\xff")
    assert client.decode(first, end_of_message=False, max_length=None) == TEXT[:1000]
    last = server.encode(TEXT[1000:2000])
    assert client.decode(last, end_of_message=True, max_length=None) == TEXT[1000:2000]


def test_empty_message() -> None:
    # RFC 7692 §7.2.1: 00 00 00 ff ff less its last 4 bytes leaves a single 0x00.
    for bits in (8, 12, 15):
        server, client = peers(server_bits=bits)
        for _ in range(3):
            assert server.encode(b"") == b"\x00"
            assert client.decode(b"\x00", end_of_message=True, max_length=0) == b""
    server, client = peers()
    assert server.encode(b"", end_of_message=False) == b"\x00\x00\x00\xff\xff"
    assert server.encode(b"", end_of_message=False) == b"\x00\x00\x00\xff\xff"
    assert server.encode(b"") == b"\x00"
    assert (
        client.decode(b"\x00\x00\x00\xff\xff" * 2 + b"\x00", end_of_message=True, max_length=0)
        == b""
    )
    # An empty last fragment after a flushed one.
    payload = server.encode(b"abc", end_of_message=False) + server.encode(b"")
    assert client.decode(payload, end_of_message=True, max_length=None) == b"abc"
    assert client.decode(server.encode(b"abc"), end_of_message=True, max_length=None) == b"abc"


def test_buffer_types() -> None:
    server, client = peers()
    payload = server.encode(memoryview(bytearray(TEXT)))
    assert client.decode(memoryview(payload), end_of_message=True, max_length=None) == TEXT
    payload = server.encode(bytearray(TEXT[:10]))
    assert client.decode(bytearray(payload), end_of_message=True, max_length=None) == TEXT[:10]


def test_rfc_7692_examples() -> None:
    # RFC 7692 §7.2.3.1: "Hello" compressed with no context takeover.
    hello = bytes.fromhex("f248cdc9c90700")
    codec = PerMessageDeflate(is_client=True, remote_no_context_takeover=True)
    assert codec.decode(hello, end_of_message=True, max_length=5) == b"Hello"
    assert codec.decode(hello, end_of_message=True, max_length=5) == b"Hello"
    # §7.2.3.2: the second "Hello" sent with context takeover refers to the first.
    codec = PerMessageDeflate(is_client=True)
    assert codec.decode(hello, end_of_message=True, max_length=None) == b"Hello"
    second = bytes.fromhex("f200110000")
    assert codec.decode(second, end_of_message=True, max_length=None) == b"Hello"
    # §7.2.3.1: the same message split over two frames.
    codec = PerMessageDeflate(is_client=True)
    assert codec.decode(hello[:3], end_of_message=False, max_length=5) == b"He"
    assert codec.decode(hello[3:], end_of_message=True, max_length=3) == b"llo"
    # §7.2.3.3: a deflate block with no compression.
    stored = bytes.fromhex("000500faff48656c6c6f00")
    codec = PerMessageDeflate(is_client=True)
    assert codec.decode(stored, end_of_message=True, max_length=None) == b"Hello"
    # §7.2.3.4: a block with BFINAL set to 1; the next message starts a new stream.
    final = bytes.fromhex("f348cdc9c90700")
    codec = PerMessageDeflate(is_client=True)
    assert codec.decode(final, end_of_message=True, max_length=None) == b"Hello"
    assert codec.decode(final, end_of_message=True, max_length=None) == b"Hello"
    # §7.2.3.5: two deflate blocks in one message.
    two = bytes.fromhex("f24805000000ffffcac9c90700")
    codec = PerMessageDeflate(is_client=True)
    assert codec.decode(two, end_of_message=True, max_length=None) == b"Hello"


def test_final_block_in_pieces() -> None:
    deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
    payload = deflater.compress(TEXT) + deflater.flush()
    codec = PerMessageDeflate(is_client=False)
    assert decode_all(codec, [payload[:100], payload[100:], b""]) == TEXT


def test_data_after_final_block() -> None:
    final = bytes.fromhex("f348cdc9c90700")
    codec = PerMessageDeflate(is_client=True)
    with pytest.raises(InvalidPayloadData, match="data after the final block"):
        codec.decode(final + b"\x00", end_of_message=True, max_length=None)
    codec = PerMessageDeflate(is_client=True)
    assert codec.decode(final, end_of_message=False, max_length=None) == b"Hello"
    with pytest.raises(InvalidPayloadData, match="data after the final block"):
        codec.decode(b"\xf2", end_of_message=False, max_length=None)


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xff\xff\xff",  # reserved block type 3
        b"\x01\x05\x00\x00\x00",  # stored block whose LEN and NLEN disagree
        bytes(range(7, 200)),
        b"\xff" * 5000,  # the large-payload path
    ],
)
def test_corrupt_data(payload: bytes) -> None:
    codec = PerMessageDeflate(is_client=False)
    with pytest.raises(InvalidPayloadData, match="invalid compressed data") as info:
        codec.decode(payload, end_of_message=True, max_length=None)
    assert info.value.close_code == 1007


def test_corrupt_data_mid_message() -> None:
    codec = PerMessageDeflate(is_client=False)
    with pytest.raises(InvalidPayloadData):
        codec.decode(b"\x07", end_of_message=False, max_length=100)


# --- size limits ----------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 100, 4095, 4096, 100_000, 256 * KiB, 256 * KiB + 1, 600_000])
@pytest.mark.parametrize("compressible", [True, False])
def test_max_length(size: int, compressible: bool) -> None:
    # Covers both ways of appending the trailer (compressed sizes below and above
    # 4 KiB) and inflating in one call or by 256 KiB chunks.
    message = (TEXT * 100)[:size] if compressible else os.urandom(size)
    server, client = peers(server_nct=True)
    payload = server.encode(message)
    assert client.decode(payload, end_of_message=True, max_length=size) == message
    assert client.decode(payload, end_of_message=True, max_length=size + 1) == message
    assert client.decode(payload, end_of_message=True, max_length=None) == message
    with pytest.raises(PayloadTooBig) as info:
        client.decode(payload, end_of_message=True, max_length=size - 1)
    assert info.value.close_code == 1009


def test_max_length_across_pieces() -> None:
    server, client = peers()
    payload = server.encode(TEXT)
    pieces = [payload[i : i + 50] for i in range(0, len(payload), 50)]
    assert decode_all(client, pieces, max_length=len(TEXT)) == TEXT
    server, client = peers()
    payload = server.encode(TEXT)
    pieces = [payload[i : i + 50] for i in range(0, len(payload), 50)]
    with pytest.raises(PayloadTooBig):
        decode_all(client, pieces, max_length=len(TEXT) - 1)


def test_negative_max_length() -> None:
    # A caller already over its limit must not turn the limit off (0 means none in zlib).
    server, client = peers()
    with pytest.raises(PayloadTooBig):
        client.decode(server.encode(b"x"), end_of_message=True, max_length=-1)
    server, client = peers()
    assert client.decode(server.encode(b""), end_of_message=True, max_length=-1) == b""


def test_decompression_bomb() -> None:
    # 256 MiB of zeros deflate to about 256 KiB; fed in 64 KiB pieces, the
    # codec must give up after inflating barely more than the limit, and never
    # hold much more than the limit (a single 64 KiB piece inflates to 64 MiB).
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(MiB)
    payload = b"".join(deflater.compress(zeros) for _ in range(256)) + deflater.flush(
        zlib.Z_SYNC_FLUSH
    )
    del zeros
    assert len(payload) < MiB
    pieces = [payload[i : i + 64 * KiB] for i in range(0, len(payload), 64 * KiB)]
    max_length = 16 * MiB
    codec = PerMessageDeflate(is_client=False)
    tracemalloc.start()
    try:
        received = 0
        fed = 0
        with pytest.raises(PayloadTooBig):
            for index, piece in enumerate(pieces):
                fed += 1
                end = index == len(pieces) - 1
                received += len(
                    codec.decode(piece, end_of_message=end, max_length=max_length - received)
                )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert fed == 1
    assert received == 0
    assert peak < max_length + 2 * MiB


def test_decompression_bomb_late() -> None:
    # The limit is crossed after several pieces: memory stays bounded all along.
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(MiB)
    payload = b"".join(deflater.compress(zeros) for _ in range(64)) + deflater.flush(
        zlib.Z_SYNC_FLUSH
    )
    pieces = [payload[i : i + 1024] for i in range(0, len(payload), 1024)]
    max_length = 8 * MiB
    codec = PerMessageDeflate(is_client=False)
    tracemalloc.start()
    try:
        received = 0
        fed = 0
        with pytest.raises(PayloadTooBig):
            for piece in pieces:
                fed += 1
                received += len(
                    codec.decode(piece, end_of_message=False, max_length=max_length - received)
                )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert 1 < fed < len(pieces)
    assert received <= max_length
    assert peak < max_length + 2 * MiB


# --- interoperability with websockets' implementation ----------------------------------


def their_codec(mine: PerMessageDeflate) -> TheirCodec:
    """websockets' codec for the peer of ``mine``."""
    return TheirCodec(
        remote_no_context_takeover=mine.local_no_context_takeover,
        local_no_context_takeover=mine.remote_no_context_takeover,
        remote_max_window_bits=mine.local_max_window_bits,
        local_max_window_bits=mine.remote_max_window_bits,
    )


def their_decode(codec: TheirCodec, payloads: list[bytes]) -> bytes:
    out = b""
    for index, payload in enumerate(payloads):
        opcode = Opcode.BINARY if index == 0 else Opcode.CONT
        frame = Frame(opcode, payload, fin=index == len(payloads) - 1, rsv1=index == 0)
        out += bytes(codec.decode(frame, max_size=None).data)
    return out


def their_encode(codec: TheirCodec, fragments: list[bytes]) -> list[bytes]:
    out = []
    for index, fragment in enumerate(fragments):
        opcode = Opcode.BINARY if index == 0 else Opcode.CONT
        frame = codec.encode(Frame(opcode, fragment, fin=index == len(fragments) - 1))
        assert frame.rsv1 == (index == 0)
        out.append(bytes(frame.data))
    return out


@pytest.mark.parametrize(
    ("server_nct", "client_nct"), list(itertools.product([False, True], repeat=2))
)
@pytest.mark.parametrize(("server_bits", "client_bits"), [(15, 15), (12, 12), (8, 9), (10, 15)])
def test_interop_codec(
    server_nct: bool, client_nct: bool, server_bits: int, client_bits: int
) -> None:
    server, _ = peers(
        server_nct=server_nct,
        client_nct=client_nct,
        server_bits=server_bits,
        client_bits=client_bits,
    )
    theirs = their_codec(server)
    messages = [
        [TEXT],
        [TEXT],
        [b""],
        [TEXT[:1000], TEXT[1000:5000], b"", TEXT[5000:]],
        [os.urandom(2000)],
    ]
    for fragments in messages:
        message = b"".join(fragments)
        ours = [
            server.encode(fragment, end_of_message=index == len(fragments) - 1)
            for index, fragment in enumerate(fragments)
        ]
        assert their_decode(theirs, ours) == message
        payloads = their_encode(theirs, fragments)
        assert decode_all(server, payloads, max_length=len(message)) == message


@pytest.mark.parametrize(
    "factory",
    [
        ClientPerMessageDeflateFactory(),
        ClientPerMessageDeflateFactory(client_max_window_bits=None),
        ClientPerMessageDeflateFactory(
            server_no_context_takeover=True,
            client_no_context_takeover=True,
            server_max_window_bits=10,
            client_max_window_bits=11,
        ),
        ClientPerMessageDeflateFactory(server_max_window_bits=8),
    ],
)
@pytest.mark.parametrize("options", [DeflateOptions(), DeflateOptions.server_default()])
def test_interop_their_client(
    factory: ClientPerMessageDeflateFactory, options: DeflateOptions
) -> None:
    offer = [(EXTENSION_NAME, list(factory.get_request_params()))]
    result = server_negotiate(offer, options)
    assert result is not None
    header, ours = result
    [(_, params)] = parse(header)
    theirs = factory.process_response_params(params, [])
    assert isinstance(theirs, TheirCodec)
    for message in (TEXT, TEXT, b"", TEXT[:10]):
        assert their_decode(theirs, [ours.encode(message)]) == message
        assert decode_all(ours, their_encode(theirs, [message])) == message


@pytest.mark.parametrize(
    "factory",
    [
        ServerPerMessageDeflateFactory(),
        ServerPerMessageDeflateFactory(server_max_window_bits=12, client_max_window_bits=12),
        ServerPerMessageDeflateFactory(
            server_no_context_takeover=True,
            client_no_context_takeover=True,
            server_max_window_bits=9,
            client_max_window_bits=8,
        ),
    ],
)
@pytest.mark.parametrize(
    "options",
    [
        DeflateOptions(),
        DeflateOptions(server_max_window_bits=10, client_max_window_bits=13),
        DeflateOptions(server_no_context_takeover=True, client_no_context_takeover=True),
    ],
)
def test_interop_their_server(
    factory: ServerPerMessageDeflateFactory, options: DeflateOptions
) -> None:
    [(name, params)] = parse(client_offer(options))
    response, theirs = factory.process_request_params(params, [])
    ours = client_negotiate([(name, list(response))], options)
    assert ours is not None
    assert isinstance(theirs, TheirCodec)
    for message in (TEXT, TEXT, b"", TEXT[:10]):
        assert their_decode(theirs, [ours.encode(message)]) == message
        assert decode_all(ours, their_encode(theirs, [message])) == message
