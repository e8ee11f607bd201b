"""Exceptions raised by wsjet.

Every exception derives from :class:`WebSocketError`. The tree separates what
the *peer* did wrong (remote errors, each carrying the close code or HTTP
status the library answers with) from what the *application* did wrong (local
errors)::

    WebSocketError
    ├── ConnectionClosed                 the connection is closed (rcvd / sent close frames)
    │   ├── ConnectionClosedOK           ... with 1000 or 1001 on both sides
    │   └── ConnectionClosedError        ... any other way (1006 when TCP just dropped)
    ├── InvalidHandshake                 the opening handshake failed
    │   ├── InvalidMessage               malformed HTTP (status 400)
    │   │   ├── RequestLineTooLong       request line / header line over the limit (414 / 431)
    │   │   └── HeadersTooLarge          too many headers, block or one header too big (431)
    │   ├── InvalidHeader                a header is missing or has a bad value (400)
    │   │   ├── InvalidUpgrade           Upgrade / Connection headers wrong (400)
    │   │   ├── InvalidVersion           Sec-WebSocket-Version is not 13 (426)
    │   │   ├── InvalidOrigin            Origin not allowed (403)
    │   │   └── NegotiationError         subprotocol / extension negotiation failed
    │   ├── InvalidStatus                client side: the server answered other than 101
    │   └── InvalidURI                   the URI given to connect() is not ws:// or wss://
    ├── ProtocolError                    the peer broke RFC 6455 (close 1002)
    │   ├── InvalidPayloadData           bad UTF-8 text or close reason (close 1007)
    │   └── PayloadTooBig                message over ``max_size`` (close 1009)
    ├── InvalidState                     local misuse: operation not allowed in this state
    └── ConcurrencyError                 local misuse: two coroutines recv() at once

:class:`ProtocolError` and its subclasses carry ``close_code``: the code the
connection is failed with (RFC 6455 §7.4.1). :class:`InvalidHandshake` and its
subclasses carry ``status``: the HTTP status a server answers with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .core.frames import Close
    from .core.handshake import Response

__all__ = [
    "ConcurrencyError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "HeadersTooLarge",
    "InvalidHandshake",
    "InvalidHeader",
    "InvalidMessage",
    "InvalidOrigin",
    "InvalidPayloadData",
    "InvalidState",
    "InvalidStatus",
    "InvalidURI",
    "InvalidUpgrade",
    "InvalidVersion",
    "NegotiationError",
    "PayloadTooBig",
    "ProtocolError",
    "RequestLineTooLong",
    "WebSocketError",
]


class WebSocketError(Exception):
    """Root of every exception raised by wsjet."""


# --- closed connections -------------------------------------------------------------


class ConnectionClosed(WebSocketError):
    """Raised when using a connection that is closed or closing.

    Attributes:
        rcvd: the close frame received from the peer, or ``None`` if none arrived.
        sent: the close frame sent to the peer, or ``None`` if none was sent.
        rcvd_then_sent: whether the peer's close frame came before ours, when both exist.
    """

    def __init__(
        self,
        rcvd: Close | None,
        sent: Close | None,
        rcvd_then_sent: bool | None = None,
    ) -> None:
        self.rcvd = rcvd
        self.sent = sent
        self.rcvd_then_sent = rcvd_then_sent
        super().__init__(self._describe())

    def _describe(self) -> str:
        if self.rcvd is None and self.sent is None:
            return "no close frame received or sent"
        if self.rcvd is None:
            return f"sent {self.sent}; no close frame received"
        if self.sent is None:
            return f"received {self.rcvd}; no close frame sent"
        if self.rcvd_then_sent:
            return f"received {self.rcvd}; then sent {self.sent}"
        return f"sent {self.sent}; then received {self.rcvd}"

    @property
    def code(self) -> int:
        """The close code received, 1005 if the frame had none, 1006 if none arrived."""
        return 1006 if self.rcvd is None else self.rcvd.code

    @property
    def reason(self) -> str:
        """The close reason received, or an empty string."""
        return "" if self.rcvd is None else self.rcvd.reason


class ConnectionClosedOK(ConnectionClosed):
    """The connection closed cleanly: 1000 or 1001 received and sent."""


class ConnectionClosedError(ConnectionClosed):
    """The connection closed with an error code, or without a closing handshake."""


# --- opening handshake ----------------------------------------------------------------


class InvalidHandshake(WebSocketError):
    """The opening handshake failed.

    Attributes:
        status: the HTTP status a server answers this error with.
    """

    status: int = 400


class InvalidMessage(InvalidHandshake):
    """The HTTP request or response is malformed."""


class RequestLineTooLong(InvalidMessage):
    """The request line or a header line is longer than the limit."""

    def __init__(self, message: str, status: int = 431) -> None:
        super().__init__(message)
        self.status = status


class HeadersTooLarge(InvalidMessage):
    """There are too many header lines, the header block is too large, or one header is.

    Attributes:
        header: the name of the header whose lines, all combined, are over
            their limit; ``None`` when the whole block is to blame.
    """

    status = 431

    def __init__(self, message: str, header: str | None = None) -> None:
        super().__init__(message)
        self.header = header


class InvalidHeader(InvalidHandshake):
    """A required header is missing or has an invalid value.

    Attributes:
        name: the header's name.
        value: its value, or ``None`` when it is missing.
    """

    def __init__(self, name: str, value: str | None = None, detail: str = "") -> None:
        self.name = name
        self.value = value
        if value is None:
            message = f"missing {name} header"
        elif value == "":
            message = f"empty {name} header"
        else:
            message = f"invalid {name} header: {value!r}"
        if detail:
            message = f"{message} ({detail})"
        super().__init__(message)


class InvalidUpgrade(InvalidHeader):
    """The Upgrade or Connection header does not ask for a WebSocket upgrade."""


class InvalidVersion(InvalidHeader):
    """Sec-WebSocket-Version is not 13 (RFC 6455 §4.4: answer 426)."""

    status = 426


class InvalidOrigin(InvalidHeader):
    """The Origin header is not allowed (answer 403)."""

    status = 403


class NegotiationError(InvalidHeader):
    """Subprotocol or extension negotiation failed."""


class InvalidStatus(InvalidHandshake):
    """The server answered the opening handshake with a status other than 101.

    Attributes:
        response: the HTTP response received.
    """

    def __init__(self, response: Response) -> None:
        self.response = response
        super().__init__(f"server rejected WebSocket connection: HTTP {response.status}")

    @property
    def status_code(self) -> int:
        """The HTTP status code the server answered with."""
        return self.response.status


class InvalidURI(InvalidHandshake):
    """The URI is not a valid ws:// or wss:// URI."""

    def __init__(self, uri: str, detail: str) -> None:
        self.uri = uri
        super().__init__(f"{uri!r} isn't a valid WebSocket URI: {detail}")


# --- framing ---------------------------------------------------------------------------


class ProtocolError(WebSocketError):
    """The peer broke the WebSocket protocol.

    Attributes:
        close_code: the close code the connection is failed with (RFC 6455 §7.4.1).
    """

    close_code: int = 1002


class InvalidPayloadData(ProtocolError):
    """A text message or a close reason is not valid UTF-8 (RFC 6455 §8.1)."""

    close_code = 1007


class PayloadTooBig(ProtocolError):
    """A message is larger than ``max_size``."""

    close_code = 1009


# --- local misuse ----------------------------------------------------------------------


class InvalidState(WebSocketError):
    """The operation is not allowed in the connection's current state."""


class ConcurrencyError(WebSocketError, RuntimeError):
    """Two coroutines tried to do at once what must be done one at a time."""
