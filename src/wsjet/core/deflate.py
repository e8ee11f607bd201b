"""The permessage-deflate extension of RFC 7692: negotiation and codec.

Negotiation works on parsed ``Sec-WebSocket-Extensions`` values,
``[(extension name, [(param name, value or None), ...]), ...]``: a client sends
:func:`client_offer` and checks the answer with :func:`client_negotiate`; a
server answers with :func:`server_negotiate`. Each side gets one
:class:`PerMessageDeflate` for the connection, which feeds it frame payloads
(RSV1 is the connection's business).

Defaults, measured with zlib 1.2.13 on JSON messages of 200 B to 200 KB:
compression level 3 runs 1.5-1.7x as fast as zlib's default 6 from 2 KB up
(1.2x at 200 B) for output about 10% larger; memLevel 5 needs a 38 KiB
compressor instead of 150 KiB at the default 8 (12-bit window), no slower and
compressing as well; a server asks for 12-bit windows both ways, which costs
about 6% of output size against 15 bits.

Memory per connection (``python bench/deflate_memory.py``, tracemalloc, one
message each way): 49.3 KiB at the server defaults (compressor 38.0 KiB,
decompressor 11.3 KiB); 189.3 KiB with 15-bit windows both ways; none between
messages without context takeover, as the zlib objects are then dropped at the
end of each message.

zlib-ng, measured and not used: its compressor ran 1.0-1.6x as fast as zlib's
at level 3 on Autobahn's test files (2-3x at level 1; ``python
bench/deflate_speed.py --backends zlib,zlib_ng``), but holds about 126 KiB
whatever the memLevel (its hash table has a fixed size) against zlib's 24 KiB,
and a server keeps one per connection with context takeover. Its inflater's
gain (1.2-2x) did not come with a smaller footprint either.

Window bits 8: zlib won't make a raw deflater with a 256-byte window, so we
compress with 9. That is still valid for a 256-byte window (RFC 7692
§7.1.2.1): zlib never emits a distance beyond its window size less
``MIN_LOOKAHEAD`` (262), i.e. 250 for 512 bytes. Inflating uses the
negotiated size: zlib's raw inflater accepts 8.

Errors: corrupt data raises :class:`~wsjet.exceptions.InvalidPayloadData`
(1007; RFC 7692 names no code, and 1007 is for data inconsistent with the
message); going over the caller's limit raises
:class:`~wsjet.exceptions.PayloadTooBig` (1009). After either, the codec is in
an undefined state: fail the connection.
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Final, TypeAlias

from ..exceptions import InvalidPayloadData, NegotiationError, PayloadTooBig

__all__ = [
    "DEFAULT_COMPRESS_LEVEL",
    "DEFAULT_MEM_LEVEL",
    "DEFAULT_SERVER_WINDOW_BITS",
    "EXTENSION_NAME",
    "DeflateOptions",
    "ExtensionList",
    "PerMessageDeflate",
    "client_negotiate",
    "client_offer",
    "server_negotiate",
]

EXTENSION_NAME: Final = "permessage-deflate"
"""The extension token of RFC 7692 §7."""

DEFAULT_COMPRESS_LEVEL: Final = 3
"""zlib compression level used unless configured (see the module docstring)."""

DEFAULT_MEM_LEVEL: Final = 5
"""zlib memLevel used unless configured (see the module docstring)."""

DEFAULT_SERVER_WINDOW_BITS: Final = 12
"""Window bits a server asks for in both directions by default."""

ExtensionList: TypeAlias = list[tuple[str, list[tuple[str, str | None]]]]
"""A parsed ``Sec-WebSocket-Extensions`` value, as the handshake module returns it."""

_HEADER: Final = "Sec-WebSocket-Extensions"
_SERVER_NCT: Final = "server_no_context_takeover"
_CLIENT_NCT: Final = "client_no_context_takeover"
_SERVER_BITS: Final = "server_max_window_bits"
_CLIENT_BITS: Final = "client_max_window_bits"
# RFC 7692 §7.1.2.1: a decimal integer from 8 to 15 without leading zeroes.
_WINDOW_BITS: Final = {str(bits): bits for bits in range(8, 16)}
# RFC 7692 §7.2.1 / §7.2.2: the tail of an empty stored block, which the sender
# strips after a sync flush and the receiver appends back.
_TRAILER: Final = b"\x00\x00\xff\xff"
# Below this size, copying a payload to append the trailer is cheaper than a
# second call to decompress().
_COPY_LIMIT: Final = 4096
# Most bytes inflated per call when there is a limit (see _inflate).
_CHUNK: Final = 256 * 1024
_REPR_FIELDS: Final = (
    "is_client",
    "remote_no_context_takeover",
    "local_no_context_takeover",
    "remote_max_window_bits",
    "local_max_window_bits",
)


def _check_window_bits(name: str, bits: int | None) -> None:
    if bits is not None and not 8 <= bits <= 15:
        raise ValueError(f"{name} must be between 8 and 15, got {bits}")


def _check_zlib_levels(compress_level: int, mem_level: int) -> None:
    if not -1 <= compress_level <= 9:
        raise ValueError(f"compress_level must be between -1 and 9, got {compress_level}")
    if not 1 <= mem_level <= 9:
        raise ValueError(f"mem_level must be between 1 and 9, got {mem_level}")


@dataclasses.dataclass(frozen=True, slots=True)
class DeflateOptions:
    """What one side wants from permessage-deflate (RFC 7692 §7.1).

    A client offers the flags set, ``server_max_window_bits`` if set, and always
    ``client_max_window_bits``: without a value when ``None`` so the server may
    choose (RFC 7692 §7.1.2.2), else with that value, which it then never exceeds.

    A server adds the flags set even if not offered (RFC 7692 §7.1.1), caps its
    own window at ``server_max_window_bits`` (the client may ask lower), and the
    client's at ``client_max_window_bits`` if the client offered that parameter.

    ``compress_level`` and ``mem_level`` are local zlib settings.

    Raises:
        ValueError: window bits outside 8..15, level outside -1..9 or memory
            level outside 1..9.
    """

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int | None = None
    client_max_window_bits: int | None = None
    compress_level: int = DEFAULT_COMPRESS_LEVEL
    mem_level: int = DEFAULT_MEM_LEVEL

    def __post_init__(self) -> None:
        _check_window_bits("server_max_window_bits", self.server_max_window_bits)
        _check_window_bits("client_max_window_bits", self.client_max_window_bits)
        _check_zlib_levels(self.compress_level, self.mem_level)

    @classmethod
    def server_default(cls) -> DeflateOptions:
        """Server defaults: 12-bit windows both ways, to bound per-connection memory."""
        return cls(
            server_max_window_bits=DEFAULT_SERVER_WINDOW_BITS,
            client_max_window_bits=DEFAULT_SERVER_WINDOW_BITS,
        )

    @classmethod
    def client_default(cls) -> DeflateOptions:
        """Client defaults: no limits asked, the server chooses the client's window."""
        return cls()


def _parse_params(params: list[tuple[str, str | None]], *, response: bool) -> dict[str, int | None]:
    """Map parameter names to window bits or None; ValueError if RFC 7692 §7 forbids them."""
    parsed: dict[str, int | None] = {}
    for name, value in params:
        if name in parsed:
            raise ValueError(f"duplicate parameter {name}")
        if name in (_SERVER_NCT, _CLIENT_NCT):
            # RFC 7692 §7.1.1.1, §7.1.1.2: these parameters have no value.
            if value is not None:
                raise ValueError(f"{name} takes no value, got {value!r}")
        elif name in (_SERVER_BITS, _CLIENT_BITS):
            # RFC 7692 §7.1.2.2: only the client's offer may leave
            # client_max_window_bits without a value.
            if value is None and (response or name == _SERVER_BITS):
                raise ValueError(f"{name} needs a value")
            if value is not None and value not in _WINDOW_BITS:
                raise ValueError(f"{name} must be an integer from 8 to 15, got {value!r}")
        else:
            raise ValueError(f"unknown parameter {name}")
        parsed[name] = None if value is None else _WINDOW_BITS[value]
    return parsed


def _build(name: str, params: list[tuple[str, str | None]]) -> str:
    return "; ".join([name, *(key if value is None else f"{key}={value}" for key, value in params)])


def _min_bits(*values: int | None) -> int | None:
    present = [value for value in values if value is not None]
    return min(present) if present else None


def client_offer(options: DeflateOptions) -> str:
    """Build the ``Sec-WebSocket-Extensions`` value a client sends (RFC 7692 §7.1).

    Example: ``permessage-deflate; client_max_window_bits`` for the defaults.
    """
    params: list[tuple[str, str | None]] = []
    if options.server_no_context_takeover:
        params.append((_SERVER_NCT, None))
    if options.client_no_context_takeover:
        params.append((_CLIENT_NCT, None))
    if options.server_max_window_bits is not None:
        params.append((_SERVER_BITS, str(options.server_max_window_bits)))
    # Always offered: it costs nothing and lets the server bound the memory it
    # spends inflating our messages (RFC 7692 §7.1.2.2).
    bits = options.client_max_window_bits
    params.append((_CLIENT_BITS, None if bits is None else str(bits)))
    return _build(EXTENSION_NAME, params)


def server_negotiate(
    offers: ExtensionList, options: DeflateOptions
) -> tuple[str, PerMessageDeflate] | None:
    """Accept the client's preferred valid permessage-deflate offer.

    Offers are taken in order (the client's preference). One with an unknown,
    duplicated or invalid parameter is declined (RFC 7692 §7); other
    extensions are skipped: this module negotiates permessage-deflate only.

    Args:
        offers: the client's ``Sec-WebSocket-Extensions``, parsed.
        options: what this server wants.

    Returns:
        The response's header value and the server's codec, or ``None`` when no
        offer is acceptable.
    """
    for name, params in offers:
        if name != EXTENSION_NAME:
            continue
        try:
            offer = _parse_params(params, response=False)
        except ValueError:
            continue
        response: list[tuple[str, str | None]] = []
        # RFC 7692 §7.1.1: the server must echo server_no_context_takeover and
        # may add either flag; a client that offered client_no_context_takeover
        # won't use context takeover whether or not we echo it.
        server_nct = _SERVER_NCT in offer or options.server_no_context_takeover
        client_nct = _CLIENT_NCT in offer or options.client_no_context_takeover
        if server_nct:
            response.append((_SERVER_NCT, None))
        if client_nct:
            response.append((_CLIENT_NCT, None))
        # RFC 7692 §7.1.2.1: answer with the requested value or a smaller one;
        # the server may also send it unrequested.
        server_bits = _min_bits(offer.get(_SERVER_BITS), options.server_max_window_bits)
        if server_bits is not None:
            response.append((_SERVER_BITS, str(server_bits)))
        # RFC 7692 §7.1.2.2: only if offered; the client's value is a promise.
        client_bits = offered = offer.get(_CLIENT_BITS)
        if _CLIENT_BITS in offer and options.client_max_window_bits is not None:
            client_bits = _min_bits(offered, options.client_max_window_bits)
            response.append((_CLIENT_BITS, str(client_bits)))
        codec = PerMessageDeflate(
            is_client=False,
            remote_no_context_takeover=client_nct,
            local_no_context_takeover=server_nct,
            remote_max_window_bits=client_bits or 15,
            local_max_window_bits=server_bits or 15,
            compress_level=options.compress_level,
            mem_level=options.mem_level,
        )
        return _build(EXTENSION_NAME, response), codec
    return None


def client_negotiate(response: ExtensionList, options: DeflateOptions) -> PerMessageDeflate | None:
    """Check the server's answer to the offer built by :func:`client_offer`.

    Args:
        response: the server's ``Sec-WebSocket-Extensions``, parsed.
        options: the options the offer was built from.

    Returns:
        The client's codec, or ``None`` when the server accepted no extension.

    Raises:
        NegotiationError: the response accepts something we did not offer or
            breaks RFC 7692 §7.1; the client must fail the connection.
    """
    if not response:
        return None
    value = ", ".join(_build(name, params) for name, params in response)

    def fail(detail: str) -> NegotiationError:
        return NegotiationError(_HEADER, value, detail)

    for name, _ in response:
        if name != EXTENSION_NAME:
            raise fail(f"extension {name} was not offered")
    if len(response) > 1:
        raise fail(f"{EXTENSION_NAME} accepted more than once")
    try:
        accepted = _parse_params(response[0][1], response=True)
    except ValueError as exc:
        raise fail(str(exc)) from None
    requested = options.server_max_window_bits
    server_bits = accepted.get(_SERVER_BITS)
    if requested is not None:
        # RFC 7692 §7.1.2.1: the server must answer with our value or less.
        if server_bits is None:
            raise fail(f"{_SERVER_BITS}={requested} was requested but not acknowledged")
        if server_bits > requested:
            raise fail(f"{_SERVER_BITS}={server_bits} is above the {requested} asked")
    if options.server_no_context_takeover and _SERVER_NCT not in accepted:
        # RFC 7692 §7.1.1.1: the server must acknowledge this request.
        raise fail(f"{_SERVER_NCT} was requested but not acknowledged")
    # RFC 7692 §7.1.2.2: our offered value binds us even if the server answers
    # with a larger one.
    local_bits = _min_bits(accepted.get(_CLIENT_BITS), options.client_max_window_bits)
    return PerMessageDeflate(
        is_client=True,
        remote_no_context_takeover=_SERVER_NCT in accepted,
        # RFC 7692 §7.1.1.2: if we offered it, we keep to it even if not echoed.
        local_no_context_takeover=_CLIENT_NCT in accepted or options.client_no_context_takeover,
        remote_max_window_bits=server_bits or 15,
        local_max_window_bits=local_bits or 15,
        compress_level=options.compress_level,
        mem_level=options.mem_level,
    )


class PerMessageDeflate:
    """The compression state of one connection (RFC 7692 §7.2).

    ``local`` is this side, ``remote`` the peer: a client compresses with the
    ``client_*`` parameters and a server with the ``server_*`` ones.

    Attributes:
        is_client: whether this is the client's side.
        remote_no_context_takeover: the peer resets its compressor after each message.
        local_no_context_takeover: we reset ours after each message.
        remote_max_window_bits: the peer's largest LZ77 window, which we inflate with.
        local_max_window_bits: our largest LZ77 window.
        compress_level: zlib compression level.
        mem_level: zlib memLevel.

    Raises:
        ValueError: a window size outside 8..15 or a zlib level out of range.
    """

    __slots__ = (
        "_deflater",
        "_inflater",
        "compress_level",
        "is_client",
        "local_max_window_bits",
        "local_no_context_takeover",
        "mem_level",
        "remote_max_window_bits",
        "remote_no_context_takeover",
    )

    def __init__(
        self,
        *,
        is_client: bool,
        remote_no_context_takeover: bool = False,
        local_no_context_takeover: bool = False,
        remote_max_window_bits: int = 15,
        local_max_window_bits: int = 15,
        compress_level: int = DEFAULT_COMPRESS_LEVEL,
        mem_level: int = DEFAULT_MEM_LEVEL,
    ) -> None:
        _check_window_bits("remote_max_window_bits", remote_max_window_bits)
        _check_window_bits("local_max_window_bits", local_max_window_bits)
        _check_zlib_levels(compress_level, mem_level)
        self.is_client = is_client
        self.remote_no_context_takeover = remote_no_context_takeover
        self.local_no_context_takeover = local_no_context_takeover
        self.remote_max_window_bits = remote_max_window_bits
        self.local_max_window_bits = local_max_window_bits
        self.compress_level = compress_level
        self.mem_level = mem_level
        # Made on first use, and dropped after each message when there is no
        # context takeover, so an idle connection then holds no zlib memory.
        self._inflater: zlib._Decompress | None = None
        self._deflater: zlib._Compress | None = None

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)}" for name in _REPR_FIELDS)
        return f"PerMessageDeflate({fields})"

    def decode(
        self,
        data: bytes | bytearray | memoryview,
        *,
        end_of_message: bool,
        max_length: int | None,
    ) -> bytes:
        """Inflate the next piece of a compressed message.

        Call it with each frame payload of the message in order, or with parts
        of them as they arrive.

        Args:
            data: compressed bytes.
            end_of_message: whether ``data`` ends the message.
            max_length: how many more decompressed bytes the caller accepts for
                this message, or ``None`` for no limit. Inflating stops one byte
                past it, so a small payload can't make us allocate much more.

        Returns:
            The bytes inflated from ``data``; possibly empty.

        Raises:
            PayloadTooBig: inflating would give more than ``max_length`` bytes.
            InvalidPayloadData: ``data`` isn't valid DEFLATE data.
        """
        inflater = self._inflater
        if inflater is None:
            inflater = self._inflater = zlib.decompressobj(-self.remote_max_window_bits)
        try:
            if not end_of_message:
                out = _inflate(inflater, data, max_length)
            elif len(data) < _COPY_LIMIT:
                # RFC 7692 §7.2.2: append the empty block the sender stripped.
                out = _inflate(inflater, bytes(data) + _TRAILER, max_length)
            else:
                out = _inflate(inflater, data, max_length)
                left = None if max_length is None else max_length - len(out)
                rest = _inflate(inflater, _TRAILER, left)
                out = out + rest if rest else out
        except zlib.error as exc:
            raise InvalidPayloadData(f"invalid compressed data: {exc}") from exc
        if inflater.eof:
            # RFC 7692 §7.2.3.4: a message may end with a BFINAL block; only the
            # trailer we appended may follow it. The stream is over, so the next
            # message needs a fresh inflater.
            extra = inflater.unused_data
            if extra and not (end_of_message and extra == _TRAILER):
                raise InvalidPayloadData("invalid compressed data: data after the final block")
        if end_of_message and (self.remote_no_context_takeover or inflater.eof):
            self._inflater = None
        return out

    def encode(self, data: bytes | bytearray | memoryview, *, end_of_message: bool = True) -> bytes:
        """Compress a message, or one fragment of it.

        Each call ends with a sync flush so that the fragment can be sent now.

        Args:
            data: the message's bytes, or the next fragment's.
            end_of_message: whether ``data`` ends the message.

        Returns:
            The payload to send. The last fragment's is never empty: an empty
            message compresses to a single ``00`` byte (RFC 7692 §7.2.1).
        """
        deflater = self._deflater
        if deflater is None:
            # zlib can't make a raw deflater with 8 window bits; 9 is still
            # safe for a 256-byte window (see the module docstring).
            wbits = max(self.local_max_window_bits, 9)
            deflater = self._deflater = zlib.compressobj(
                self.compress_level, zlib.DEFLATED, -wbits, self.mem_level
            )
        # compress() runs even on empty data: it makes zlib emit the flush
        # marker again after an earlier sync flush, instead of nothing.
        body = deflater.compress(data)
        tail = deflater.flush(zlib.Z_SYNC_FLUSH)
        if not end_of_message:
            return body + tail
        if self.local_no_context_takeover:
            self._deflater = None
        # RFC 7692 §7.2.1: remove the 00 00 ff ff ending the sync flush.
        return body + tail[:-4]


def _inflate(
    inflater: zlib._Decompress, data: bytes | bytearray | memoryview, limit: int | None
) -> bytes:
    if limit is None:
        return inflater.decompress(data)
    # Ask for one byte more than allowed: getting it proves the message too big.
    # Past _CHUNK, go by chunks: one call for the whole limit would peak at
    # twice the limit, as CPython gathers its output blocks into one.
    limit = max(limit, 0)  # 0 would mean "no limit" to zlib; stay at 1 byte
    want = limit + 1 if limit < _CHUNK else _CHUNK
    out = inflater.decompress(data, want)
    if len(out) < want:
        # zlib stopped for want of input, not of room: nothing is pending.
        return out
    chunks = [out]
    size = len(out)
    while size <= limit:
        want = min(limit + 1 - size, _CHUNK)
        out = inflater.decompress(inflater.unconsumed_tail, want)
        chunks.append(out)
        size += len(out)
        if len(out) < want:
            return b"".join(chunks)
    raise PayloadTooBig(f"decompressed message is over the size limit ({limit} bytes left)")
