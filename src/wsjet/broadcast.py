"""Sending one message to many connections: :func:`broadcast`.

The message is framed once and the same bytes are queued on every receiver
(:meth:`~wsjet.core.connection.Connection.send_frame_bytes`), then written to
its transport. :func:`broadcast` is a plain function: it never waits for a
receiver, so one peer that doesn't read cannot slow the others down.

Writes are coalesced: a receiver's frames queued by the broadcasts of one
event loop iteration are written together, with one system call, as soon as
the iteration ends (``loop.call_soon``), or earlier when anything else is sent
on that connection (order is kept: everything goes through the connection's
output queue). A burst of broadcasts then costs one write per receiver, not
one per message and receiver.

Compression (RFC 7692). A server compresses a broadcast once per group of
receivers whose codecs would produce the same bytes: those that negotiated
``server_no_context_takeover`` (each message then starts from an empty
window) with the same window size, compression level and memory level. A
receiver whose connection keeps its compression context (no
``server_no_context_takeover``) gets the message **uncompressed** (RSV1 off,
which RFC 7692 §6.1 always allows): its compressor's window must stay in step
with the peer's, so a shared compressed frame would corrupt the next message,
and compressing for each receiver would cost what broadcasting is meant to
save. To compress once for everybody, have the server ask for it:
``serve(..., compression=DeflateOptions(server_no_context_takeover=True))``.
Messages shorter than a connection's ``compression_threshold`` go uncompressed,
as :meth:`~wsjet.protocol.WebSocketCommonProtocol.send` does.

Slow consumers. Before queuing, each receiver's unsent buffer
(:attr:`~wsjet.protocol.WebSocketCommonProtocol.buffered_amount`, plus the
frames queued and not yet written) is compared with the
:class:`SlowConsumerPolicy` bound: when the frame would take it past
``max_buffer``, the receiver is either skipped for this message (``"skip"``)
or closed with ``close_code`` (``"close"``; 1013 by default, or 1008). So the
memory a receiver holds for broadcasts never exceeds the bound.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
import types
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final, Literal, TypeAlias

from .core.connection import Side, State
from .core.deflate import PerMessageDeflate
from .core.frames import CloseCode, Opcode, frame_header, is_valid_close_code
from .exceptions import InvalidState
from .protocol import WebSocketCommonProtocol

if TYPE_CHECKING:
    from .callbacks_client import Client

__all__ = [
    "DEFAULT_MAX_BUFFER",
    "BroadcastResult",
    "Receiver",
    "SlowConsumer",
    "SlowConsumerPolicy",
    "broadcast",
    "slow_consumer_policy",
]

logger = logging.getLogger("wsjet.broadcast")

#: Default bound on a receiver's unsent bytes, in bytes (1 MiB).
DEFAULT_MAX_BUFFER: Final = 2**20


@dataclasses.dataclass(frozen=True, slots=True)
class SlowConsumerPolicy:
    """What :func:`broadcast` does with a receiver that falls behind.

    Attributes:
        max_buffer: most bytes a receiver may have waiting to be sent,
            broadcast frame included; a frame that would go past it triggers
            ``action``.
        action: ``"skip"``: the receiver misses this message and stays
            connected; ``"close"``: the connection is closed with
            ``close_code``.
        close_code: the close code of ``"close"``: 1013 (try again later) by
            default, or 1008 (policy violation), or an application code.
        reason: the close reason of ``"close"``.

    Raises:
        ValueError: an unknown action, a negative bound, or a close code not
            allowed in a close frame.
    """

    max_buffer: int = DEFAULT_MAX_BUFFER
    action: Literal["skip", "close"] = "skip"
    close_code: int = CloseCode.TRY_AGAIN_LATER
    reason: str = "slow consumer"

    def __post_init__(self) -> None:
        if self.action not in ("skip", "close"):
            raise ValueError(f"action must be 'skip' or 'close', not {self.action!r}")
        if self.max_buffer < 0:
            raise ValueError("max_buffer must not be negative")
        if not is_valid_close_code(self.close_code) or self.close_code == CloseCode.NORMAL_CLOSURE:
            raise ValueError(f"close code {self.close_code} is not a slow-consumer close code")
        if len(self.reason.encode()) > 123:
            raise ValueError("reason is longer than 123 bytes of UTF-8")


#: What a ``slow_consumer=`` option takes: a policy, or an action with the default bound.
SlowConsumer: TypeAlias = SlowConsumerPolicy | Literal["skip", "close"]

_DEFAULT_POLICY: Final = SlowConsumerPolicy()


def slow_consumer_policy(value: SlowConsumer | None) -> SlowConsumerPolicy:
    """Turn a ``slow_consumer=`` option into a :class:`SlowConsumerPolicy`.

    ``None`` is the default policy (skip past :data:`DEFAULT_MAX_BUFFER`);
    ``"skip"`` and ``"close"`` take the default bound.

    Raises:
        ValueError: any other string.
        TypeError: any other type.
    """
    if value is None:
        return _DEFAULT_POLICY
    if isinstance(value, SlowConsumerPolicy):
        return value
    if isinstance(value, str):
        return SlowConsumerPolicy(action=value)
    raise TypeError(f"slow_consumer must be a SlowConsumerPolicy, 'skip' or 'close', not {value!r}")


@dataclasses.dataclass(slots=True)
class BroadcastResult:
    """What happened to one broadcast.

    Attributes:
        delivered: receivers the message was queued for.
        skipped: receivers that didn't get it: not open (connecting, closing
            or closed), sending a fragmented message of their own, or over
            the bound with the ``"skip"`` policy.
        closed: receivers closed by the ``"close"`` policy.
    """

    delivered: int = 0
    skipped: int = 0
    closed: int = 0

    def __iadd__(self, other: BroadcastResult) -> BroadcastResult:
        self.delivered += other.delivered
        self.skipped += other.skipped
        self.closed += other.closed
        return self


#: A receiver: a connection of the coroutine face, or a callback face's Client.
Receiver: TypeAlias = "WebSocketCommonProtocol | Client"


def broadcast(
    connections: Iterable[Receiver],
    message: str | bytes | bytearray | memoryview,
    *,
    slow_consumer: SlowConsumer | None = None,
    compress: bool | None = None,
) -> BroadcastResult:
    """Send ``message`` to every connection of ``connections``, without waiting.

    ``str`` is sent as a text message, bytes-like as a binary one. The frame
    is built once (compressed once per group of compatible codecs, see the
    module docstring) and the same bytes are written to every receiver.
    Receivers that are not open are skipped; nothing is raised for them.

    Args:
        connections: server connections
            (:class:`~wsjet.server.WebSocketServerProtocol`) or callback-face
            clients (:class:`~wsjet.client.Client`); client connections work
            too, framed one by one since a client masks each frame.
        message: the message.
        slow_consumer: the policy for receivers that fall behind; by default
            each receiver's server's (the ``slow_consumer`` option of
            :func:`~wsjet.server.serve`), else skip past 1 MiB.
        compress: ``False`` sends the message uncompressed to everybody;
            ``None`` (default) compresses where it can be done once.

    Returns:
        How many receivers got it, were skipped, or were closed.

    Raises:
        TypeError: ``message`` is neither ``str`` nor bytes-like.
    """
    if isinstance(message, str):
        return broadcast_frame(
            connections, Opcode.TEXT, message.encode(), slow_consumer, compress=compress
        )
    if isinstance(message, bytes | bytearray | memoryview):
        return broadcast_frame(
            connections, Opcode.BINARY, bytes(message), slow_consumer, compress=compress
        )
    raise TypeError(f"message must be str or bytes-like, not {type(message).__name__}")


def broadcast_frame(
    connections: Iterable[Receiver],
    opcode: int,
    payload: bytes,
    slow_consumer: SlowConsumer | None = None,
    *,
    compress: bool | None = None,
) -> BroadcastResult:
    """Like :func:`broadcast`, for a payload already encoded (UTF-8 for TEXT).

    Args:
        connections: as for :func:`broadcast`.
        opcode: :attr:`~wsjet.core.frames.Opcode.TEXT` or ``BINARY``.
        payload: the message's bytes.
        slow_consumer: as for :func:`broadcast`.
        compress: as for :func:`broadcast`.

    Returns:
        How many receivers got it, were skipped, or were closed.
    """
    fixed = None if slow_consumer is None else slow_consumer_policy(slow_consumer)
    delivered, skipped, closed = _queue_everywhere(connections, opcode, payload, fixed, compress)
    return BroadcastResult(delivered, skipped, closed)


def _queue_everywhere(
    connections: Iterable[Receiver],
    opcode: int,
    payload: bytes,
    fixed: SlowConsumerPolicy | None,
    compress: bool | None,
) -> tuple[int, int, int]:
    """Queue the message for each receiver: how many got it, were skipped, were closed.

    The loop over every receiver of every broadcast, compiled (broadcast.pxd):
    what it reads of each connection are C fields of the engine and the
    connection.
    """
    plain = frame_header(opcode, len(payload)) + payload
    size = len(payload)
    may_compress = compress is not False
    compressed: dict[tuple[int, int, int], bytes] = {}
    delivered = skipped = closed = 0
    # Most broadcasts go to the connections of one server: remember its policy.
    last_server: object = None
    policy = _DEFAULT_POLICY if fixed is None else fixed
    # Bounds past sys.maxsize mean no bound: the compiled loop compares C integers.
    max_buffer = min(policy.max_buffer, sys.maxsize)
    # Receivers with frames queued but not written yet, per event loop.
    pending: dict[WebSocketCommonProtocol, None] | None = None
    pending_loop: asyncio.AbstractEventLoop | None = None
    for receiver in connections:
        protocol = receiver if isinstance(receiver, WebSocketCommonProtocol) else receiver._protocol
        connection = protocol.connection
        transport = protocol.transport
        if connection is None or transport is None or protocol._lost:
            skipped += 1
            continue
        if fixed is None:
            server = getattr(protocol, "server", None)
            if server is not last_server:
                last_server = server
                policy = getattr(server, "slow_consumer", None) or _DEFAULT_POLICY
                max_buffer = min(policy.max_buffer, sys.maxsize)
        frame = plain
        is_client = connection.side is Side.CLIENT
        codec = connection.codec
        # A client's frames are framed (and compressed) one by one: _send_one.
        if (
            codec is not None
            and may_compress
            and not is_client
            and type(codec) is PerMessageDeflate
            and codec.local_no_context_takeover
            and size >= connection.compression_threshold
        ):
            bits = max(codec.local_max_window_bits, 9)  # what the codec itself uses
            key = (bits, codec.compress_level, codec.mem_level)
            shared = compressed.get(key)
            if shared is None:
                shared = compressed[key] = _compress(opcode, payload, key)
            frame = shared
        # Unsent: what the transport holds, and what waits in the connection
        # (frames queued by earlier broadcasts of this loop iteration).
        backlog = transport.get_write_buffer_size() + connection.output_size()
        if backlog + len(frame) > max_buffer:
            if policy.action == "close" and _close_slow(protocol, policy):
                closed += 1
            else:
                skipped += 1
            continue
        if is_client:
            if _send_one(protocol, opcode, payload, compress):
                delivered += 1
            else:
                skipped += 1
        elif connection.send_frame_bytes(frame, opcode):
            loop = protocol.loop
            if loop is not pending_loop:
                pending_loop = loop
                pending = _pending.get(loop)
                if pending is None:
                    pending = _pending[loop] = {}
                    loop.call_soon(_flush_pending, loop)
            assert pending is not None
            pending[protocol] = None
            delivered += 1
        else:
            skipped += 1
    return delivered, skipped, closed


def _compress(opcode: int, payload: bytes, key: tuple[int, int, int]) -> bytes:
    """Compress a message for receivers without context takeover; return its frame."""
    bits, level, mem_level = key
    deflate = PerMessageDeflate(
        is_client=False,
        local_no_context_takeover=True,
        local_max_window_bits=bits,
        compress_level=level,
        mem_level=mem_level,
    )
    body = deflate.encode(payload)
    return frame_header(opcode, len(body), rsv1=True) + body


# Per event loop, the receivers whose broadcast frames wait for _flush_pending.
_pending: dict[asyncio.AbstractEventLoop, dict[WebSocketCommonProtocol, None]] = {}


def _flush_pending(loop: asyncio.AbstractEventLoop) -> None:
    """Write the frames the broadcasts of the last loop iteration queued."""
    for protocol in _pending.pop(loop, {}):
        if not protocol._lost:
            protocol._flush()


def _close_slow(protocol: WebSocketCommonProtocol, policy: SlowConsumerPolicy) -> bool:
    """Start the closing handshake with a slow receiver; tell whether it was open."""
    connection = protocol.connection
    if connection is None or connection.state is not State.OPEN or connection.close_sent:
        return False
    protocol.logger.info(
        "closing slow consumer with %d: %d bytes unsent (bound %d)",
        policy.close_code,
        protocol.buffered_amount,
        policy.max_buffer,
    )
    connection.send_close(policy.close_code, policy.reason)
    protocol._flush()
    return True


def _send_one(
    protocol: WebSocketCommonProtocol, opcode: int, payload: bytes, compress: bool | None
) -> bool:
    """Frame the message for one client connection (it masks every frame)."""
    connection = protocol.connection
    assert connection is not None
    try:
        if opcode == Opcode.TEXT:
            connection.send_text(payload, compress=compress)
        else:
            connection.send_binary(payload, compress=compress)
    except InvalidState:
        return False
    protocol._flush()
    return True


class _CallableModule(types.ModuleType):
    """This module, callable as :func:`broadcast`.

    ``wsjet.broadcast`` names both the function (exported lazily by the
    package) and this module: whichever Python's import system left on the
    package, ``wsjet.broadcast(connections, message)`` must work.
    """

    def __call__(
        self,
        connections: Iterable[Receiver],
        message: str | bytes | bytearray | memoryview,
        *,
        slow_consumer: SlowConsumer | None = None,
        compress: bool | None = None,
    ) -> BroadcastResult:
        return broadcast(connections, message, slow_consumer=slow_consumer, compress=compress)


sys.modules[__name__].__class__ = _CallableModule
