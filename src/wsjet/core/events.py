"""Events the Sans-I/O connection reports to the I/O layer.

:meth:`wsjet.core.connection.Connection.events_received` returns these, in the
order the peer sent them.
"""

from __future__ import annotations

import dataclasses

from .frames import Close

__all__ = ["CloseReceived", "DataReceived", "Event", "PingReceived", "PongReceived"]


class DataReceived:
    """A piece of an incoming message, in order.

    A message arrives as one or more pieces: the first has ``first`` set, the
    last has ``fin`` set (a message in one frame is a single piece with both).
    Pieces are handed over as soon as their bytes arrive, even mid-frame, so a
    large message can be consumed while it arrives.

    Compares equal to a ``DataReceived`` with the same attributes, like the
    other events (dataclasses); it is written out instead so that Cython
    compiles it into an extension type, made once per message.

    Attributes:
        data: ``str`` for a text message (already UTF-8 validated and decoded,
            RFC 6455 §8.1), ``bytes`` for a binary message.
        first: this piece starts a message.
        fin: this piece ends the message.
    """

    __slots__ = ("data", "fin", "first")
    __match_args__ = ("data", "first", "fin")

    data: str | bytes
    first: bool
    fin: bool

    def __init__(self, data: str | bytes, first: bool, fin: bool) -> None:
        self.data = data
        self.first = bool(first)
        self.fin = bool(fin)

    def __repr__(self) -> str:
        return f"DataReceived(data={self.data!r}, first={self.first!r}, fin={self.fin!r})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not DataReceived:
            return NotImplemented
        return (self.data, self.first, self.fin) == (other.data, other.first, other.fin)

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclasses


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
