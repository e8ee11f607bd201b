"""Events the Sans-I/O connection reports to the I/O layer.

:meth:`wsjet.core.connection.Connection.events_received` returns these, in the
order the peer sent them.
"""

from __future__ import annotations

import dataclasses

from .frames import Close

__all__ = ["CloseReceived", "DataReceived", "Event", "PingReceived", "PongReceived"]


@dataclasses.dataclass(slots=True)
class DataReceived:
    """A piece of an incoming message, in order.

    A message arrives as one or more pieces: the first has ``first`` set, the
    last has ``fin`` set (a message in one frame is a single piece with both).
    Pieces are handed over as soon as their bytes arrive, even mid-frame, so a
    large message can be consumed while it arrives.

    Attributes:
        data: ``str`` for a text message (already UTF-8 validated and decoded,
            RFC 6455 §8.1), ``bytes`` for a binary message.
        first: this piece starts a message.
        fin: this piece ends the message.
    """

    data: str | bytes
    first: bool
    fin: bool


@dataclasses.dataclass(slots=True)
class PingReceived:
    """A ping arrived (the connection has already queued the pong, RFC 6455 §5.5.2)."""

    data: bytes


@dataclasses.dataclass(slots=True)
class PongReceived:
    """A pong arrived (RFC 6455 §5.5.3)."""

    data: bytes


@dataclasses.dataclass(slots=True)
class CloseReceived:
    """A close frame arrived; ``close.code`` is 1005 when it carried no code."""

    close: Close


Event = DataReceived | PingReceived | PongReceived | CloseReceived
