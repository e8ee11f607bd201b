"""Wire values and frame encoding of RFC 6455 §5.

This module knows the *format* of frames: opcodes, close codes, the close
payload, and how to serialize a frame header. Reading frames incrementally is
the connection's job (:mod:`wsjet.core.connection`), because a frame's
meaning depends on the connection's state.
"""

from __future__ import annotations

import dataclasses
import enum
import struct

from ..exceptions import InvalidPayloadData, ProtocolError
from .mask import apply_mask, encode_header

__all__ = [
    "CONTROL_OPCODES",
    "DATA_OPCODES",
    "Close",
    "CloseCode",
    "Opcode",
    "is_valid_close_code",
    "serialize_frame",
]


class Opcode(enum.IntEnum):
    """Frame opcodes (RFC 6455 §5.2, §11.8)."""

    CONT = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


DATA_OPCODES = frozenset({Opcode.CONT, Opcode.TEXT, Opcode.BINARY})
CONTROL_OPCODES = frozenset({Opcode.CLOSE, Opcode.PING, Opcode.PONG})


class CloseCode(enum.IntEnum):
    """Close status codes (RFC 6455 §7.4.1, IANA registry)."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    # 1004 is reserved.
    NO_STATUS_RCVD = 1005  # never on the wire
    ABNORMAL_CLOSURE = 1006  # never on the wire
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015  # never on the wire


# Codes 1000-2999 an endpoint may put in a close frame: those defined by RFC 6455
# and registered with IANA since. 1004 is reserved, 1005/1006/1015 are
# "MUST NOT be set as a status code in a Close control frame" (§7.4.1).
_SENDABLE_REGISTERED = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)


def is_valid_close_code(code: int) -> bool:
    """Tell whether ``code`` may appear in a close frame (RFC 6455 §7.4).

    3000-3999 are registered by libraries and frameworks, 4000-4999 are for
    private use; both are valid on the wire.
    """
    return code in _SENDABLE_REGISTERED or 3000 <= code <= 4999


_CLOSE_CODE_NAMES = {code.value: code.name for code in CloseCode}


@dataclasses.dataclass(frozen=True, slots=True)
class Close:
    """The payload of a close frame: a status code and a UTF-8 reason.

    A close frame with an empty payload is represented by code 1005
    (``NO_STATUS_RCVD``), which is never serialized (RFC 6455 §7.1.5).
    """

    code: int
    reason: str = ""

    def __str__(self) -> str:
        name = _CLOSE_CODE_NAMES.get(self.code)
        if name is None:
            if 3000 <= self.code <= 3999:
                name = "registered"
            elif 4000 <= self.code <= 4999:
                name = "private use"
            else:
                name = "unknown"
        text = f"{self.code} ({name.lower().replace('_', ' ')})"
        return f"{text} {self.reason}" if self.reason else text

    @classmethod
    def parse(cls, payload: bytes) -> Close:
        """Decode a close frame's payload (RFC 6455 §5.5.1).

        Raises:
            ProtocolError: a one-byte payload or a code not allowed on the wire.
            InvalidPayloadData: the reason is not valid UTF-8.
        """
        if len(payload) == 0:
            return cls(CloseCode.NO_STATUS_RCVD)
        if len(payload) == 1:
            raise ProtocolError("close frame payload of 1 byte: a code takes 2")
        (code,) = struct.unpack_from("!H", payload)
        if not is_valid_close_code(code):
            raise ProtocolError(f"invalid close code {code}")
        try:
            reason = payload[2:].decode()
        except UnicodeDecodeError as exc:
            raise InvalidPayloadData("close reason is not valid UTF-8") from exc
        return cls(code, reason)

    def serialize(self) -> bytes:
        """Encode as a close frame payload; 1005 becomes an empty payload."""
        if self.code == CloseCode.NO_STATUS_RCVD:
            return b""
        return struct.pack("!H", self.code) + self.reason.encode()


def serialize_frame(
    opcode: int,
    payload: bytes | bytearray | memoryview,
    *,
    fin: bool = True,
    rsv1: bool = False,
    mask_key: bytes | None = None,
) -> bytes:
    """Encode one frame: header, and the payload masked when ``mask_key`` is given.

    The three payload-length encodings of RFC 6455 §5.2 are chosen minimally:
    7 bits up to 125, 16 bits up to 65535, 64 bits beyond.
    """
    return frame_header(opcode, len(payload), fin=fin, rsv1=rsv1, mask_key=mask_key) + (
        bytes(payload) if mask_key is None else apply_mask(payload, mask_key)
    )


def frame_header(
    opcode: int,
    length: int,
    *,
    fin: bool = True,
    rsv1: bool = False,
    mask_key: bytes | None = None,
) -> bytes:
    """Encode a frame header for a payload of ``length`` bytes (RFC 6455 §5.2)."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    return encode_header(first, length, mask_key)
