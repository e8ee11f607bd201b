"""The WebSocket connection state machine (RFC 6455 §5-§7), for both roles.

Sans-I/O: bytes go in through :meth:`Connection.receive_data` and
:meth:`Connection.receive_eof`; events come out of
:meth:`Connection.events_received` and bytes to write out of
:meth:`Connection.data_to_send`. The connection never touches a socket or a
clock; the I/O layer reads :meth:`Connection.close_expected` and
:meth:`Connection.wants_eof` to know when TCP should end.

A connection starts OPEN: the opening handshake (:mod:`wsjet.core.handshake`)
happens before it exists, and any bytes that followed the handshake are fed to
it first.
"""

from __future__ import annotations

import codecs
import enum
import logging
import os
from collections.abc import Callable
from typing import Protocol

from ..exceptions import InvalidPayloadData, InvalidState, PayloadTooBig, ProtocolError
from . import defaults
from . import mask as masking
from .events import CloseReceived, DataReceived, Event, PingReceived, PongReceived
from .frames import Close, CloseCode, Opcode, is_valid_close_code
from .mask import (
    apply_mask,
    encode_frame,
    encode_header,
    fill_payload,
    finish_payload,
    new_payload,
)

__all__ = [
    "DEFAULT_MAX_FRAGMENTS",
    "WHOLE_FRAME_LIMIT",
    "Connection",
    "MessageCodec",
    "Side",
    "State",
]

_LOGGER = logging.getLogger("wsjet")

#: Most frames one message may take, empty ones included. Autobahn 9.3.1 sends
#: 65,536 fragments; beyond twice that a peer is only burning our CPU.
DEFAULT_MAX_FRAGMENTS = defaults.MAX_FRAGMENTS

#: Frames at least this long that arrive over several reads are unmasked into
#: the message as they come, rather than waiting whole in the receive buffer.
_ASSEMBLY_MIN = 4096

#: With ``pause_after_message``, parsing also stops once this many pieces of a
#: message wait in :meth:`Connection.events_received`.
_MAX_PENDING_PIECES = 256

#: Default :attr:`Connection.whole_frame_limit`: the size of the largest
#: binary message taken in one step rather than streamed.
WHOLE_FRAME_LIMIT = 2**20


class Side(enum.Enum):
    """Which end of the connection we are: it decides the masking rules (§5.1)."""

    SERVER = "server"
    CLIENT = "client"


class State(enum.IntEnum):
    """Connection states of RFC 6455 §4, §7."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


class MessageCodec(Protocol):
    """What the connection needs of a per-message extension (RFC 7692)."""

    def decode(
        self, data: bytes | bytearray | memoryview, *, end_of_message: bool, max_length: int | None
    ) -> bytes: ...

    def encode(
        self, data: bytes | bytearray | memoryview, *, end_of_message: bool = True
    ) -> bytes: ...


class _MaskKeys:
    """Masking keys from the OS's CSPRNG (RFC 6455 §10.3), drawn 4 KiB at a time."""

    __slots__ = ("_pool", "_pos")

    def __init__(self) -> None:
        self._pool = b""
        self._pos = 0

    def __call__(self) -> bytes:
        if self._pos >= len(self._pool):
            self._pool = os.urandom(4096)
            self._pos = 0
        key = self._pool[self._pos : self._pos + 4]
        self._pos += 4
        return key


# Header bits, opcodes and states as plain module constants: the parser uses
# them on every frame, and looking an enum member up on its class costs ~0.1 µs
# on Python 3.11 (the compiled module keeps them as C ints, connection.pxd).
_FIN, _RSV1, _RSV23, _OPCODE, _MASKED = 0x80, 0x40, 0x30, 0x0F, 0x80
_FIN_OR_RSV1 = _FIN | _RSV1
_CONT, _TEXT, _BINARY = int(Opcode.CONT), int(Opcode.TEXT), int(Opcode.BINARY)
_CLOSE, _PING, _PONG = int(Opcode.CLOSE), int(Opcode.PING), int(Opcode.PONG)
#: Bit ``n`` is set when opcode ``n`` is defined (RFC 6455 §5.2, §11.8).
_KNOWN_OPCODE_BITS = sum(1 << int(op) for op in Opcode)
_OPEN, _CLOSING, _CLOSED = State.OPEN, State.CLOSING, State.CLOSED
#: Unmasked frames up to this size are copied behind their header: the copy
#: costs less than writing two buffers (a writev and its bookkeeping in the
#: event loop: about 1,500 instructions more per message at 1 KiB, callgrind).
_COPY_FRAME_LIMIT = 16 * 1024
#: Frame payloads are shorter than 2**63 octets (§5.2): a size limit above
#: that limits no frame, and capped to it, it fits the compiled C integers.
_LONGEST_FRAME = 2**63 - 1


class Connection:
    """One WebSocket connection's protocol state, after the opening handshake.

    Args:
        side: :attr:`Side.SERVER` or :attr:`Side.CLIENT`.
        max_size: largest incoming message in bytes (after decompression);
            ``None`` for no limit. Larger messages fail the connection with 1009.
        max_fragments: most frames one incoming message may take.
        codec: the negotiated permessage-deflate codec, if any.
        compression_threshold: outgoing messages smaller than this many bytes
            are sent uncompressed even when a codec is negotiated.
        mask_key: source of masking keys (a client masks every frame, §5.3);
            tests pin it to get golden bytes.
        logger: where frames are logged at DEBUG level.
    """

    def __init__(
        self,
        side: Side,
        *,
        max_size: int | None = 2**20,
        max_fragments: int = DEFAULT_MAX_FRAGMENTS,
        codec: MessageCodec | None = None,
        compression_threshold: int = 0,
        mask_key: Callable[[], bytes] | None = None,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] = _LOGGER,
    ) -> None:
        self.side = side
        self.state = State.OPEN
        self.max_size = max_size
        self.max_fragments = max_fragments
        self.codec = codec
        self.compression_threshold = compression_threshold
        #: Unfragmented, uncompressed binary messages up to this size are
        #: buffered whole and handed over at once; larger ones stream in pieces.
        self.whole_frame_limit = WHOLE_FRAME_LIMIT
        self.logger = logger
        self._debug = logger.isEnabledFor(logging.DEBUG)
        self._mask_key = (
            mask_key if mask_key is not None else (_MaskKeys() if side is Side.CLIENT else None)
        )
        # §5.1: clients mask, servers don't; each side fails the other's mistake.
        self._expect_masked = side is Side.SERVER

        #: Close frames received and sent, once they are.
        self.close_rcvd: Close | None = None
        self.close_sent: Close | None = None
        self.close_rcvd_then_sent: bool | None = None
        #: The protocol error the peer made, when the connection failed because of it.
        self.failure: ProtocolError | None = None
        self.eof_received = False

        self._buffer = bytearray()
        self._parsed = 0  # how far the last _parse_from() got
        self._events: list[Event] = []
        self._output: list[bytes] = []
        self._output_size = 0
        self._parsing = True
        self._eof_wanted = False

        # The message being assembled in place (see _assemble): its buffer, how
        # much of it is filled, its masking key, and its opcode.
        self._assembly: bytes | bytearray | None = None
        self._assembly_pos = 0
        self._assembly_key: bytes | None = None
        self._assembly_opcode = 0
        # The frame whose payload is being received (data frames stream it).
        self._frame_remaining = 0
        self._frame_fin = False
        self._frame_mask: bytes | None = None
        self._frame_offset = 0
        # The message being received: its opcode (None between messages), size so
        # far, frame count, whether it is compressed, and its UTF-8 decoder.
        self._msg_opcode: int | None = None
        self._msg_size = 0
        self._msg_frames = 0
        self._msg_compressed = False
        self._msg_wire = 0
        self._msg_pieces = 0
        #: Stop parsing after each complete message (see :attr:`held`).
        self.pause_after_message = False
        self._held = False
        #: While True, answer pings later, with one pong for the latest (RFC 6455 §5.5.3).
        self.defer_pongs = False
        self._pending_pong: bytes | None = None
        self._decoder: codecs.IncrementalDecoder | None = None
        # The message being sent when it is fragmented: whether it is compressed.
        self._out_msg: bool | None = None

    # --- the I/O layer's side of the contract ---------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes received from the network."""
        if not self._parsing:
            return  # after a close frame or a failure, the rest is discarded (§5.5.1)
        self._held = False
        try:
            if self._assembly is not None and not self._buffer:
                # Unmask the read straight into the message being assembled.
                used = self._assemble(data, 0, len(data))
                if used:
                    data = memoryview(data)[used:]
            self._buffer += data
            self._parse()
        except ProtocolError as exc:
            self._fail(exc)

    def receive_from(self, buffer: bytearray, size: int) -> None:
        """Feed ``buffer[:size]``: bytes received into a buffer the caller reuses.

        It does what ``receive_data(buffer[:size])`` does, without copying the
        bytes first when no earlier ones are waiting: frames are parsed in
        ``buffer`` itself and only an incomplete frame at its end is kept (as a
        copy). The connection keeps no reference to ``buffer``, so the caller
        may read into it again once this returns.

        Raises:
            TypeError: ``buffer`` is not a ``bytearray``.
            ValueError: ``size`` is outside ``buffer``.
        """
        if not isinstance(buffer, bytearray):  # as the compiled signature demands
            raise TypeError(f"buffer must be a bytearray, not {type(buffer).__name__}")
        # Compiled, end is a C integer (compared without making Python ones),
        # and a size beyond its range, like any negative one, is outside the buffer.
        try:
            end = size
        except OverflowError:
            end = -1
        if not 0 <= end <= len(buffer):
            raise ValueError(f"size {size} is outside a buffer of {len(buffer)} bytes")
        if not self._parsing:
            return  # as in receive_data
        if self._buffer:
            # Earlier bytes wait for the rest of their frame: append, then parse.
            with memoryview(buffer) as view, view[:end] as data:
                self.receive_data(data)
            return
        self._held = False
        try:
            self._parse_from(buffer, end)
        except ProtocolError as exc:
            self._fail(exc)
            return
        if self._parsed < end and self._parsing:
            with memoryview(buffer) as view, view[self._parsed : end] as rest:
                self._buffer += rest

    @property
    def max_size(self) -> int | None:
        """Largest incoming message in bytes (after decompression); ``None``: no limit."""
        return self._max_size

    @max_size.setter
    def max_size(self, value: int | None) -> None:
        self._max_size = value
        # What a frame's header is checked against (_check_size): a C integer
        # when compiled, so checking a frame makes no Python integers.
        # Below -1 every frame is refused just the same.
        self._frame_size_limit = (
            _LONGEST_FRAME if value is None else max(-1, min(value, _LONGEST_FRAME))
        )

    def receive_eof(self) -> None:
        """Tell the connection that the peer closed TCP (or it was lost)."""
        self.eof_received = True
        self._parsing = False
        self.state = State.CLOSED

    @property
    def held(self) -> bool:
        """Whether parsing stopped early, as ``pause_after_message`` asks.

        It stops after each complete message, and after 256 pieces of one. The
        bytes after that stay buffered; ``receive_data(b"")`` parses on. False
        when no bytes are left to parse.
        """
        return self._held and self._parsing and len(self._buffer) > 0

    def flush_pong(self) -> None:
        """Send the pong deferred while ``defer_pongs`` was set, if any."""
        payload, self._pending_pong = self._pending_pong, None
        if payload is not None and self.close_sent is None and self.state is State.OPEN:
            self._write_frame(_PONG, payload, True, False)

    def events_received(self) -> list[Event]:
        """Return the events parsed since the last call, in order."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[bytes]:
        """Return the bytes to write since the last call, as a list of buffers."""
        output, self._output = self._output, []
        self._output_size = 0
        return output

    def output_size(self) -> int:
        """Tell how many bytes :meth:`data_to_send` would return now."""
        return self._output_size

    def close_expected(self) -> bool:
        """Tell whether TCP is expected to close soon: a close frame was sent.

        The I/O layer then bounds the wait with its close timeout.
        """
        return self.close_sent is not None or self.failure is not None

    def wants_eof(self) -> bool:
        """Tell whether this side should close TCP now, after flushing its data.

        The server does once the closing handshake is complete (RFC 6455 §7.1.1);
        either side does after failing the connection (§7.1.7). A client whose
        handshake completed waits for the server to close first.
        """
        return self._eof_wanted

    # --- sending ------------------------------------------------------------------------

    def send_text(self, data: bytes, *, fin: bool = True, compress: bool | None = None) -> None:
        """Send a text frame; ``data`` is UTF-8 encoded already."""
        self._send_data(_TEXT, data, fin, compress)

    def send_binary(
        self,
        data: bytes | bytearray | memoryview,
        *,
        fin: bool = True,
        compress: bool | None = None,
    ) -> None:
        """Send a binary frame."""
        self._send_data(_BINARY, data, fin, compress)

    def send_continuation(self, data: bytes | bytearray | memoryview, *, fin: bool) -> None:
        """Send the next frame of a fragmented message started with ``fin=False``."""
        if self._out_msg is None:
            raise InvalidState("no fragmented message in progress")
        self._send_data(_CONT, data, fin, self._out_msg)

    def send_frame_bytes(self, data: bytes, opcode: int) -> bool:
        """Queue a whole data frame serialized elsewhere, e.g. once for many receivers.

        The frame must be a server's (unmasked), final (FIN set) TEXT or BINARY
        frame with ``opcode``; RSV1 may be set only when a codec is negotiated,
        and the payload must then be what this connection's codec may send.
        Nothing of the frame is checked beyond its first byte.

        Args:
            data: the frame: header and payload.
            opcode: :attr:`Opcode.TEXT` or :attr:`Opcode.BINARY`.

        Returns:
            ``True`` when queued; ``False`` when the connection can't take a
            message now: not OPEN, a close frame sent, or a fragmented message
            of ours in progress.

        Raises:
            ValueError: on a client connection (frames must be masked one by
                one), or when the frame's first byte doesn't fit.
        """
        if self.close_sent is not None or self.state is not _OPEN or self._out_msg is not None:
            return False
        if self._mask_key is not None:
            raise ValueError("a client masks every frame: it cannot send a prebuilt frame")
        if (opcode != _TEXT and opcode != _BINARY) or not data:
            raise ValueError("send_frame_bytes sends a TEXT or a BINARY frame")
        first = data[0]
        if first & (_FIN | _RSV23 | _OPCODE) != _FIN | opcode or (
            first & _RSV1 and self.codec is None
        ):
            raise ValueError(f"not a final, unmasked {Opcode(opcode).name} frame: {first:#04x}")
        if self._debug:
            length = data[1] & 0x7F
            start = 2 + (2 if length == 126 else 8 if length == 127 else 0)
            payload = memoryview(data)[start:]
            self._log_frame(">", opcode, payload, True, bool(first & _RSV1))
        self._output.append(data)
        self._output_size += len(data)
        return True

    def send_ping(self, data: bytes = b"") -> None:
        """Send a ping; ``data`` is at most 125 bytes (§5.5)."""
        self._check_control(data)
        self._write_frame(_PING, data, True, False)

    def send_pong(self, data: bytes = b"") -> None:
        """Send a pong; ``data`` is at most 125 bytes (§5.5)."""
        self._check_control(data)
        self._write_frame(_PONG, data, True, False)

    def send_close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake (§7.1.2), or answer the peer's close.

        ``code`` 1005 sends a close frame without a code; then ``reason`` must be empty.
        """
        if self.close_sent is not None or self.state is State.CLOSED:
            raise InvalidState(f"connection is {self.state.name}: close frame already sent")
        if code == CloseCode.NO_STATUS_RCVD:
            if reason:
                raise ValueError("a close frame without a code cannot carry a reason")
        elif not is_valid_close_code(code):
            raise ValueError(f"close code {code} is not allowed in a close frame")
        close = Close(code, reason)
        payload = close.serialize()
        if len(payload) > 125:
            raise ValueError("close reason is longer than 123 bytes of UTF-8")
        self._write_frame(_CLOSE, payload, True, False)
        self.close_sent = close
        if self.close_rcvd is not None:
            self.close_rcvd_then_sent = True
            if self.side is Side.SERVER:
                self._eof_wanted = True
        self.state = State.CLOSING

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the connection (§7.1.7): send a close frame if possible, then close TCP."""
        if self.close_sent is None and self.state is not State.CLOSED:
            self.send_close(code, reason)
        self._parsing = False
        self._eof_wanted = True

    # --- sending internals ------------------------------------------------------------

    def _check_control(self, data: bytes) -> None:
        if len(data) > 125:
            raise ValueError("control frame payload is longer than 125 bytes")
        if self.close_sent is not None or self.state is not _OPEN:
            raise InvalidState(f"connection is {self.state.name}")

    def _send_data(
        self, opcode: int, data: bytes | bytearray | memoryview, fin: bool, compress: bool | None
    ) -> None:
        if self.close_sent is not None or self.state is not _OPEN:
            raise InvalidState(f"connection is {self.state.name}")
        if opcode != _CONT:
            if self._out_msg is not None:
                raise InvalidState("a fragmented message is in progress")
            if compress is None:
                compress = self.codec is not None and (
                    not fin or len(data) >= self.compression_threshold
                )
            else:
                compress = compress and self.codec is not None
        rsv1 = bool(compress) and opcode != _CONT
        if compress:
            assert self.codec is not None
            data = self.codec.encode(data, end_of_message=fin)
        self._out_msg = None if fin else bool(compress)
        self._write_frame(opcode, data, fin, rsv1)

    def _write_frame(
        self, opcode: int, data: bytes | bytearray | memoryview, fin: bool, rsv1: bool
    ) -> None:
        if self._debug:
            self._log_frame(">", opcode, data, fin, rsv1)
        mask_key = self._mask_key() if self._mask_key is not None else None
        length = len(data)
        first = (_FIN if fin else 0) | (_RSV1 if rsv1 else 0) | opcode
        if mask_key is not None or length <= _COPY_FRAME_LIMIT:
            # A client's frame (masked: copied anyway) or a small one: header and
            # payload in one buffer, built by one call (§5.2), one write.
            frame = encode_frame(first, data, mask_key)
            self._output.append(frame)
            self._output_size += len(frame)
            return
        # A large server frame: the payload is not copied behind its header.
        header = encode_header(first, length, None)
        self._output.append(header)
        # A mutable buffer could change before the transport sends it.
        self._output.append(data if isinstance(data, bytes) else bytes(data))
        self._output_size += len(header) + length

    def _log_frame(
        self,
        direction: str,
        opcode: int,
        data: bytes | bytearray | memoryview,
        fin: bool,
        rsv1: bool,
        length: int | None = None,
    ) -> None:
        size = len(data) if length is None else length
        preview = bytes(data[:24])
        text = opcode == Opcode.TEXT or (opcode == Opcode.CONT and self._msg_opcode == Opcode.TEXT)
        # repr() escapes control characters, so a peer cannot forge log lines.
        shown = repr(preview.decode(errors="replace")) if text and not rsv1 else preview.hex(" ")
        more = "..." if size > 24 else ""
        flags = ("" if fin else " [continued]") + (" [compressed]" if rsv1 else "")
        self.logger.debug(
            "%s %s %s%s (%d bytes)%s", direction, Opcode(opcode).name, shown, more, size, flags
        )

    # --- receiving ------------------------------------------------------------------------

    def _fail(self, exc: ProtocolError) -> None:
        self.failure = exc
        reason = str(exc).encode()[:123].decode(errors="ignore")
        self.fail(exc.close_code, reason)

    def _parse(self) -> None:
        buf = self._buffer
        try:
            self._parse_from(buf, len(buf))
        finally:
            del buf[: self._parsed]

    def _parse_from(self, buf: bytearray, end: int) -> None:
        """Parse the frames in ``buf[:end]``; leave in ``_parsed`` how far it got."""
        pos = 0
        try:
            while self._parsing and not self._held:
                if self._assembly is not None:
                    pos += self._assemble(buf, pos, end)
                    if self._assembly is not None:
                        break  # the rest of the frame is still to come
                    continue
                if self._frame_remaining:
                    # Stream a data frame's payload as it arrives.
                    n = min(self._frame_remaining, end - pos)
                    if n == 0:
                        break
                    self._frame_remaining -= n
                    with memoryview(buf) as view, view[pos : pos + n] as chunk:
                        pos += n
                        self._receive_payload(chunk)
                    continue
                if end - pos < 2:
                    break
                first = buf[pos]
                second = buf[pos + 1]
                length = second & 0x7F
                opcode = first & _OPCODE
                self._check_header(first, second, opcode, length)
                header_size = 2
                if length == 126:
                    header_size = 4
                    if end - pos < 4:
                        break
                    length = (buf[pos + 2] << 8) | buf[pos + 3]
                    if length < 126:
                        raise ProtocolError("payload length not minimally encoded (16 bits)")
                elif length == 127:
                    header_size = 10
                    if end - pos < 10:
                        break
                    # §5.2: "the most significant bit MUST be 0".
                    if buf[pos + 2] & 0x80:
                        raise ProtocolError("payload length has its most significant bit set")
                    # Octet by octet: compiled, C arithmetic on the buffer, where
                    # int.from_bytes() would copy a slice and make an integer.
                    length = 0
                    for at in range(pos + 2, pos + 10):
                        length = (length << 8) | buf[at]
                    if length < 65536:
                        raise ProtocolError("payload length not minimally encoded (64 bits)")
                if opcode < _CLOSE:
                    self._check_size(first, opcode, length)
                key_at = -1  # where the masking key is in buf, if the frame is masked
                if second & _MASKED:
                    if end - pos < header_size + 4:
                        break
                    key_at = pos + header_size
                    header_size += 4
                start = pos + header_size
                if opcode >= _CLOSE:
                    # Control frames are handled whole; they are at most 125 bytes.
                    if end - start < length:
                        break
                    pos = start + length
                    self._receive_control(opcode, masking.extract_payload(buf, start, pos, key_at))
                elif first & _FIN_OR_RSV1 == _FIN and opcode != _CONT and end - start >= length:
                    # A whole, final, uncompressed frame that starts a message: hand
                    # the message over in one step, without the streaming machinery.
                    pos = start + length
                    # masking.extract_payload, not a name imported from it: compiled,
                    # the call is to C with C integers (mask.pxd), no Python ones made.
                    self._receive_message(opcode, masking.extract_payload(buf, start, pos, key_at))
                elif (
                    first & _FIN_OR_RSV1 == _FIN
                    and opcode == _BINARY
                    and length <= self.whole_frame_limit
                ):
                    # The same for a binary frame still arriving, up to whole_frame_limit:
                    # a small one waits in the receive buffer, a larger one is unmasked
                    # into the message read by read (a text frame streams instead, to
                    # fail on invalid UTF-8 as it arrives, §8.1).
                    if length < _ASSEMBLY_MIN:
                        break
                    pos = start
                    self._assembly = new_payload(length)
                    self._assembly_pos = 0
                    self._assembly_key = None if key_at < 0 else bytes(buf[key_at:start])
                    self._assembly_opcode = opcode
                else:
                    mask = None if key_at < 0 else bytes(buf[key_at:start])
                    pos = start
                    self._start_data_frame(first, opcode, length, mask)
        finally:
            self._parsed = pos

    def _assemble(self, source: bytes | bytearray | memoryview, start: int, end: int) -> int:
        """Unmask what ``source[start:end]`` holds of the message being assembled.

        Returns how many bytes were used; hands the message over once complete.
        """
        target = self._assembly
        assert target is not None
        filled = self._assembly_pos
        n = min(len(target) - filled, end - start)
        key = self._assembly_key
        if key is not None and filled & 3:
            key = key[filled & 3 :] + key[: filled & 3]  # the key of octet `filled` (§5.3)
        fill_payload(target, filled, source, start, start + n, key)
        filled += n
        self._assembly_pos = filled
        if filled == len(target):
            self._assembly = None
            self._receive_message(self._assembly_opcode, finish_payload(target))
        return n

    def _check_header(self, first: int, second: int, opcode: int, length: int) -> None:
        if not (_KNOWN_OPCODE_BITS >> opcode) & 1:
            raise ProtocolError(f"unknown opcode {opcode:#x}")
        if first & _RSV23:
            raise ProtocolError("reserved bits RSV2/RSV3 set without an extension")
        if first & _RSV1 and (self.codec is None or (opcode != _TEXT and opcode != _BINARY)):
            raise ProtocolError(f"reserved bit RSV1 set on a {Opcode(opcode).name} frame")
        if bool(second & _MASKED) != self._expect_masked:
            raise ProtocolError(
                "client frame is not masked" if self._expect_masked else "server frame is masked"
            )
        if opcode >= _CLOSE:
            if not first & _FIN:
                raise ProtocolError(f"fragmented {Opcode(opcode).name} frame")
            if length > 125:
                raise ProtocolError(f"{Opcode(opcode).name} frame payload longer than 125 bytes")
        elif opcode == _CONT:
            if self._msg_opcode is None:
                raise ProtocolError("continuation frame without a message in progress")
        elif self._msg_opcode is not None:
            raise ProtocolError(f"{Opcode(opcode).name} frame while a message is in progress")

    def _check_size(self, first: int, opcode: int, length: int) -> None:
        # Refuse from the header alone, before buffering any of the payload.
        if opcode == _CONT:
            frames, size, compressed = self._msg_frames, self._msg_size, self._msg_compressed
            wire = self._msg_wire
        else:
            frames, size, compressed, wire = 0, 0, bool(first & _RSV1), 0
        if frames >= self.max_fragments:
            raise PayloadTooBig(f"message has more than {self.max_fragments} fragments")
        max_size = self._max_size
        if max_size is None:
            return
        if not compressed:
            # Compared by subtraction: the compiled module adds C integers, and a
            # 64-bit length near 2**63 would wrap around (found by the parity fuzzer).
            if length > self._frame_size_limit - size:
                raise PayloadTooBig(
                    f"message over {max_size} bytes ({size} received, next frame {length})"
                )
            return
        # DEFLATE never expands data by more than 5 bytes per 64 KiB stored block,
        # plus a 5-byte flush per fragment: a compressed message longer than this
        # on the wire cannot inflate within max_size (and empty blocks, which
        # inflate to nothing, cannot stream forever). Only computed for compressed
        # frames: max_size may be any int, so this is Python integer arithmetic.
        limit = max_size + (max_size >> 3) + 8 * (frames + 1) + 1024
        if length > limit - wire:
            raise PayloadTooBig(
                f"compressed message over {limit} bytes ({wire} received, next frame {length})"
            )

    def _start_data_frame(self, first: int, opcode: int, length: int, mask: bytes | None) -> None:
        fin = bool(first & _FIN)
        if opcode != _CONT:
            self._msg_opcode = opcode
            self._msg_size = 0
            self._msg_frames = 0
            self._msg_pieces = 0
            self._msg_compressed = bool(first & _RSV1)
            self._decoder = None
        self._msg_frames += 1
        self._msg_wire = (self._msg_wire if opcode == _CONT else 0) + length
        self._frame_opcode = opcode
        self._frame_length = length
        self._frame_fin = fin
        self._frame_mask = mask
        self._frame_offset = 0
        self._frame_remaining = length
        if length == 0:
            self._receive_payload(memoryview(b""))

    def _receive_message(self, opcode: int, payload: bytes) -> None:
        """Hand over a message that came whole in one uncompressed frame."""
        if self._debug:
            self._log_frame("<", opcode, payload, True, False)
        data: str | bytes = payload
        if opcode == _TEXT:
            try:
                data = payload.decode()
            except UnicodeDecodeError as exc:
                raise InvalidPayloadData(f"invalid UTF-8 in text message: {exc.reason}") from exc
        self._events.append(DataReceived(data, True, True))
        self._held = self.pause_after_message

    def _receive_payload(self, chunk: memoryview) -> None:
        mask = self._frame_mask
        if mask is not None:
            offset = self._frame_offset & 3
            if offset:
                mask = mask[offset:] + mask[:offset]
            self._frame_offset += len(chunk)
            data = apply_mask(chunk, mask)
        else:
            data = bytes(chunk)
        end = self._frame_fin and self._frame_remaining == 0
        if self._debug and self._frame_remaining + len(data) == self._frame_length:
            # The frame's first bytes: log it once, with a preview.
            rsv1 = self._msg_compressed and self._frame_opcode != _CONT
            self._log_frame(
                "<", self._frame_opcode, data, self._frame_fin, rsv1, self._frame_length
            )
        if self._msg_compressed:
            assert self.codec is not None
            limit = None if self._max_size is None else self._max_size - self._msg_size
            data = self.codec.decode(data, end_of_message=end, max_length=limit)
        self._msg_size += len(data)
        if self._max_size is not None and self._msg_size > self._max_size:
            raise PayloadTooBig(f"message over {self._max_size} bytes after decompression")
        piece: str | bytes = data
        if self._msg_opcode == _TEXT:
            piece = self._decode_text(data, end)
        if not piece and not end:
            return  # nothing to hand over yet
        self._events.append(DataReceived(piece, self._msg_pieces == 0, end))
        self._msg_pieces += 1
        if end:
            self._msg_opcode = None
            self._held = self.pause_after_message
        elif len(self._events) >= _MAX_PENDING_PIECES:
            # One read can carry tens of thousands of tiny frames: let the I/O
            # layer take (and merge) these pieces before parsing on.
            self._held = self.pause_after_message

    def _decode_text(self, data: bytes, end: bool) -> str:
        # §8.1: fail on invalid UTF-8 as soon as the bad byte arrives.
        try:
            if self._decoder is None:
                if end and self._msg_pieces == 0:
                    return data.decode()  # a whole message in hand: the fast path
                self._decoder = codecs.getincrementaldecoder("utf-8")()
            text = self._decoder.decode(data, end)
        except UnicodeDecodeError as exc:
            raise InvalidPayloadData(f"invalid UTF-8 in text message: {exc.reason}") from exc
        pending = self._decoder.getstate()[0]
        # CPython waits for a third byte before rejecting a surrogate (ED A0-BF).
        if len(pending) >= 2 and pending[0] == 0xED and pending[1] >= 0xA0:
            raise InvalidPayloadData("invalid UTF-8 in text message: surrogate code point")
        return text

    def _receive_control(self, opcode: int, payload: bytes) -> None:
        if self._debug:
            self._log_frame("<", opcode, payload, True, False)
        if opcode == _PING:
            # §5.5.2: answer with a pong carrying the same data, unless closing.
            if self.close_sent is None:
                if self.defer_pongs:
                    self._pending_pong = payload
                else:
                    self._write_frame(_PONG, payload, True, False)
            self._events.append(PingReceived(payload))
        elif opcode == _PONG:
            self._events.append(PongReceived(payload))
        else:
            self._receive_close(payload)

    def _receive_close(self, payload: bytes) -> None:
        close = Close.parse(payload)  # may raise ProtocolError / InvalidPayloadData
        self.close_rcvd = close
        self._parsing = False  # §5.5.1: nothing follows a close frame
        if self.close_sent is None:
            # §5.5.1: answer with a close frame, echoing the code.
            self.close_rcvd_then_sent = True
            echo = (
                close.code if close.code != CloseCode.NO_STATUS_RCVD else CloseCode.NO_STATUS_RCVD
            )
            self.send_close(echo)
        else:
            self.close_rcvd_then_sent = False
        if self.side is Side.SERVER:
            self._eof_wanted = True
        self.state = State.CLOSING
        self._events.append(CloseReceived(close))
