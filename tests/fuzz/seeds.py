"""Seed inputs for each fuzz target: valid traffic, near misses and known edge cases."""

from __future__ import annotations

import struct
import zlib

from wsjet.core.deflate import PerMessageDeflate

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
REQUEST = (
    b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: " + KEY + b"\r\nOrigin: http://example.com\r\n"
    b"Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
)
RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=12\r\n\r\n"
)


def frame(
    opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False, masked: bool
) -> bytes:
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    bit = 0x80 if masked else 0
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first, bit | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, bit | 126, n)
    else:
        head = struct.pack("!BBQ", first, bit | 127, n)
    if masked:
        key = b"\x37\xfa\x21\x3d"
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        head += key
    return head + payload


def long_header(opcode: int, length: int, *, fin: bool, rsv1: bool = False, masked: bool) -> bytes:
    """A frame header with a 64-bit length and no payload after it (nor its masking key)."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    return struct.pack("!BBQ", first, (0x80 if masked else 0) | 127, length)


def compressed(data: bytes) -> bytes:
    codec = PerMessageDeflate(is_client=True, local_max_window_bits=12)
    return codec.encode(data)


def frame_seeds(masked: bool) -> list[bytes]:
    f = lambda *a, **k: frame(*a, masked=masked, **k)  # noqa: E731
    params = b"\x00\x00\xff"
    return [
        params + f(0x1, b"Hello"),
        params + f(0x2, bytes(range(240))),
        params + f(0x1, b"Hel", fin=False) + f(0x9, b"ping") + f(0x0, b"lo"),
        params + f(0x1, "κόσμε".encode()[:3], fin=False) + f(0x0, "κόσμε".encode()[3:]),
        params + f(0x8, b"\x03\xe8bye"),
        params + f(0x8, b""),
        params + f(0xA, b"pong") + f(0x2, b"x" * 130),
        # A 64-bit length over max_size (refused from the header), a 16-bit one.
        b"\x05\x13\x01" + f(0x2, b"y" * 70000)[:32],
        b"\x05\x13\xff" + f(0x2, b"z" * 200),
        b"\x00\x00\xff" + f(0x1, compressed(b"compressible " * 20), rsv1=True),
        b"\x00\x01\xff" + f(0x2, compressed(b"a" * 5000), rsv1=True) + f(0x9, b""),
        b"\x81\x00\x00" + f(0x1, b"\xed\xa0\x80"),
        b"\x00\x00\xff" + struct.pack("!BBQ", 0x82, 0xFF if masked else 0x7F, 1 << 63),
        b"\x00\x00\xff" + struct.pack("!BBH", 0x82, 0xFE if masked else 0x7E, 5),
        # Regressions: a continuation frame whose 64-bit length, added to the bytes
        # the message already has, overflows a C integer (compiled parser: the message
        # went on past max_size, and a compressed one past its bound on the wire).
        b"\x00\x05\x01"
        + f(0x2, b"abc", fin=False)
        + long_header(0x0, 2**63 - 1, fin=True, masked=masked)
        + (b"\x00\x00\x00\x00" if masked else b"")
        + b"xyz",
        b"\x00\x05\x01"
        + f(0x2, b"\x00\x00\x00\xff\xff", fin=False, rsv1=True)
        + long_header(0x0, 2**63 - 1, fin=True, masked=masked)
        + (b"\x00\x00\x00\x00" if masked else b"")
        + b"\x00\x00\x00\xff\xff" * 3,
    ]


def seeds(target: str) -> list[bytes]:
    if target.startswith("frames_server"):
        return frame_seeds(masked=True)
    if target.startswith("frames_client"):
        return frame_seeds(masked=False)
    if target == "http_request":
        return [
            b"\x00" + REQUEST,
            b"\x01" + REQUEST,
            b"\x00" + REQUEST.replace(b"\r\n", b"\n"),
            b"\x00" + REQUEST.replace(b"GET", b"POST"),
            b"\x00" + REQUEST.replace(b"Version: 13", b"Version: 8"),
            # 0x40 picks SMALL_LIMITS (6 headers, 64-byte lines, 384-byte head).
            b"\x40" + b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 7 + b"\r\n",
            b"\x41" + REQUEST,
            b"\x00\x16\x03\x01\x02\x00\x01\x00",
        ]
    if target == "http_response":
        return [
            b"\x00" + RESPONSE,
            b"\x03" + RESPONSE,
            b"\x00HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!",
            b"\x00HTTP/1.1 500 Oops\r\n\r\nbody until EOF",
            b"\x00HTTP/1.1 301 Moved\r\nLocation: ws://a/\r\nContent-Length: 0\r\n\r\n",
            b"\x00" + RESPONSE.replace(b"=12", b"=16"),
            b"\x40HTTP/1.1 500 Oops\r\nContent-Length: 60\r\n\r\n" + b"x" * 60,
            b"\x43" + RESPONSE,
        ]
    if target == "extensions_header":
        return [
            b"permessage-deflate; client_max_window_bits",
            b"permessage-deflate; server_no_context_takeover; client_max_window_bits=10",
            b'x-foo; a="b", permessage-deflate\npermessage-deflate; server_max_window_bits=8',
            b"constructor,__proto__",
            b'permessage-deflate; client_max_window_bits="15"',
        ]
    if target == "subprotocols_header":
        return [b"chat, superchat", b"a,,b\nc", b"__proto__", b" , "]
    if target == "deflate_decoder":
        zeros = zlib.compressobj(9, zlib.DEFLATED, -9)
        bomb = zeros.compress(bytes(1 << 20)) + zeros.flush(zlib.Z_SYNC_FLUSH)
        return [
            b"\x04\x00\xff" + compressed(b"hello hello hello"),
            b"\x04\x03\x01" + bomb[:-4],
            b"\x07\x00\xff" + b"\x00\x00\x00\xff\xff" * 10,
            b"\x04\x00\xff\x03\x00",
            b"\x04\x00\xff\x03\x00extra",
        ]
    if target == "core_chunks":
        return [
            b"\x00\x00\x05hello\x81\x03abc\x12\x04\x00\x01\x02\x03\x83\x02hi\x05\x00",
            b"\x01\x40\x08compress\xc1\x03xyz\x02\x07fragmen\x95\x00",
            b"\x00\x47\x05junk!\x10\x00",
        ]
    if target == "mask_parity":
        return [b"abcd", b"\x00\x00\x00\x00" + bytes(100), b"abc", bytes(4) + bytes(range(256)) * 3]
    raise KeyError(target)
