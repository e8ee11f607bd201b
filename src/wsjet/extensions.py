"""Extension negotiation for the opening handshake: permessage-deflate (RFC 7692).

Connects the ``compression`` option of :func:`~wsjet.server.serve` and
:func:`~wsjet.client.connect` to the Sans-I/O codec in :mod:`wsjet.core.deflate`.
``compression`` is ``"deflate"`` (the default settings), a
:class:`~wsjet.core.deflate.DeflateOptions` for custom settings, or ``None``.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from .core import deflate, handshake
from .core.http import Headers
from .exceptions import NegotiationError

__all__ = ["Compression", "negotiate_client", "negotiate_server", "offer_client"]

Compression = Literal["deflate"] | deflate.DeflateOptions | None


def _options(compression: Compression, *, server: bool) -> deflate.DeflateOptions | None:
    if compression is None:
        return None
    if compression == "deflate":
        return (
            deflate.DeflateOptions.server_default()
            if server
            else deflate.DeflateOptions.client_default()
        )
    if isinstance(compression, deflate.DeflateOptions):
        return compression
    raise ValueError(f"unsupported compression: {compression!r}")


def offer_client(compression: Compression) -> str | None:
    """The ``Sec-WebSocket-Extensions`` value a client offers, or ``None``.

    Two offers, in order of preference (RFC 7692 §5.1): ours, then the same with
    ``client_no_context_takeover`` for servers that only accept clients willing to
    reset their compressor after each message (§7.1.1.2). A server picks the first
    it accepts; most accept the first.
    """
    options = _options(compression, server=False)
    if options is None:
        return None
    offer = deflate.client_offer(options)
    if options.client_no_context_takeover:
        return offer
    fallback = dataclasses.replace(options, client_no_context_takeover=True)
    return f"{offer}, {deflate.client_offer(fallback)}"


def negotiate_server(
    headers: Headers, compression: Compression
) -> tuple[str | None, deflate.PerMessageDeflate | None]:
    """Accept the client's first acceptable offer; return the response header and codec.

    Offers we cannot accept are declined, not failed (RFC 7692 §5).
    """
    options = _options(compression, server=True)
    if options is None or "Sec-WebSocket-Extensions" not in headers:
        return None, None
    accepted = deflate.server_negotiate(handshake.parse_extensions(headers), options)
    if accepted is None:
        return None, None
    return accepted


def negotiate_client(
    headers: Headers, compression: Compression
) -> deflate.PerMessageDeflate | None:
    """Check the server's extensions answer; return the codec, if one was agreed.

    Raises:
        NegotiationError: the server accepted something we did not offer.
    """
    if "Sec-WebSocket-Extensions" not in headers:
        return None
    response = handshake.parse_extensions(headers)
    options = _options(compression, server=False)
    if options is None:
        raise NegotiationError(
            "Sec-WebSocket-Extensions",
            headers["Sec-WebSocket-Extensions"],
            "no extension was offered",
        )
    return deflate.client_negotiate(response, options)
