"""wsjet: a fast, conformant asyncio WebSocket library (RFC 6455, RFC 7692).

Two faces over one engine:

* the coroutine face: :func:`serve`, :func:`connect`, ``recv()`` / ``send()``;
* the callback face: :class:`WebSocketServer`, :class:`Client`,
  :class:`WebSocketReader`, :class:`WebSocketWriter`.

Names are imported lazily (PEP 562) so that ``import wsjet.core`` — the
Sans-I/O core — never pulls in asyncio.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# First: importing the core reads WSJET_NO_EXTENSIONS and, when it is set,
# installs the import hook that loads the compiled modules from their source.
# It must be in place before any of them (wsjet.broadcast, wsjet.engine, ...)
# is found, whichever name of the package is imported first.
from . import core as _core  # noqa: F401

__version__ = "0.1.0"

# Public name -> module that defines it.
_EXPORTS = {
    "ANY_ORIGIN": "wsjet.core.origin",
    "serve": "wsjet.server",
    "unix_serve": "wsjet.server",
    "Server": "wsjet.server",
    "WebSocketServerProtocol": "wsjet.server",
    "WebSocketServer": "wsjet.server",
    "Client": "wsjet.client",
    "Buffer": "wsjet.stream.buffer",
    "WebSocketReader": "wsjet.stream.reader",
    "WebSocketWriter": "wsjet.stream.writer",
    "connect": "wsjet.client",
    "unix_connect": "wsjet.client",
    "WebSocketClientProtocol": "wsjet.client",
    "WebSocketCommonProtocol": "wsjet.protocol",
    "State": "wsjet.core.connection",
    "Close": "wsjet.core.frames",
    "CloseCode": "wsjet.core.frames",
    "Opcode": "wsjet.core.frames",
    "Headers": "wsjet.core.http",
    "Request": "wsjet.core.http",
    "Response": "wsjet.core.http",
    "DeflateOptions": "wsjet.core.deflate",
    "speedups_enabled": "wsjet.core",
    "ConcurrencyError": "wsjet.exceptions",
    "ConnectionClosed": "wsjet.exceptions",
    "ConnectionClosedError": "wsjet.exceptions",
    "ConnectionClosedOK": "wsjet.exceptions",
    "InvalidHandshake": "wsjet.exceptions",
    "InvalidHeader": "wsjet.exceptions",
    "InvalidMessage": "wsjet.exceptions",
    "InvalidOrigin": "wsjet.exceptions",
    "InvalidPayloadData": "wsjet.exceptions",
    "InvalidState": "wsjet.exceptions",
    "InvalidStatus": "wsjet.exceptions",
    "InvalidURI": "wsjet.exceptions",
    "InvalidUpgrade": "wsjet.exceptions",
    "InvalidVersion": "wsjet.exceptions",
    "NegotiationError": "wsjet.exceptions",
    "PayloadTooBig": "wsjet.exceptions",
    "ProtocolError": "wsjet.exceptions",
    "WebSocketError": "wsjet.exceptions",
    "basic_auth": "wsjet.auth",
    "route": "wsjet.routing",
    "Router": "wsjet.routing",
    "chain_process_request": "wsjet.routing",
    "reconnecting": "wsjet.reconnect",
    "ReconnectingClient": "wsjet.reconnect",
    "Backoff": "wsjet.reconnect",
    "BufferFull": "wsjet.reconnect",
    "InvalidRedirect": "wsjet.client",
    "TooManyRedirects": "wsjet.client",
    "ProxyError": "wsjet.proxy",
    "InvalidProxy": "wsjet.proxy",
    "broadcast": "wsjet.broadcast",
    "BroadcastResult": "wsjet.broadcast",
    "SlowConsumerPolicy": "wsjet.broadcast",
    "Backplane": "wsjet.pubsub",
    "InProcessBackplane": "wsjet.pubsub",
    "RedisBackplane": "wsjet.pubsub",
    "run_workers": "wsjet.workers",
}

__all__ = [
    "ANY_ORIGIN",
    "Backoff",
    "Backplane",
    "BroadcastResult",
    "Buffer",
    "BufferFull",
    "Client",
    "Close",
    "CloseCode",
    "ConcurrencyError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "DeflateOptions",
    "Headers",
    "InProcessBackplane",
    "InvalidHandshake",
    "InvalidHeader",
    "InvalidMessage",
    "InvalidOrigin",
    "InvalidPayloadData",
    "InvalidProxy",
    "InvalidRedirect",
    "InvalidState",
    "InvalidStatus",
    "InvalidURI",
    "InvalidUpgrade",
    "InvalidVersion",
    "NegotiationError",
    "Opcode",
    "PayloadTooBig",
    "ProtocolError",
    "ProxyError",
    "ReconnectingClient",
    "RedisBackplane",
    "Request",
    "Response",
    "Router",
    "Server",
    "SlowConsumerPolicy",
    "State",
    "TooManyRedirects",
    "WebSocketClientProtocol",
    "WebSocketCommonProtocol",
    "WebSocketError",
    "WebSocketReader",
    "WebSocketServer",
    "WebSocketServerProtocol",
    "WebSocketWriter",
    "__version__",
    "basic_auth",
    "broadcast",
    "chain_process_request",
    "connect",
    "reconnecting",
    "route",
    "run_workers",
    "serve",
    "speedups_enabled",
    "unix_connect",
    "unix_serve",
]

if TYPE_CHECKING:
    from .auth import basic_auth
    from .broadcast import BroadcastResult, SlowConsumerPolicy, broadcast
    from .client import (
        Client,
        InvalidRedirect,
        TooManyRedirects,
        WebSocketClientProtocol,
        connect,
        unix_connect,
    )
    from .core import speedups_enabled
    from .core.connection import State
    from .core.deflate import DeflateOptions
    from .core.frames import Close, CloseCode, Opcode
    from .core.http import Headers, Request, Response
    from .core.origin import ANY_ORIGIN
    from .exceptions import (
        ConcurrencyError,
        ConnectionClosed,
        ConnectionClosedError,
        ConnectionClosedOK,
        InvalidHandshake,
        InvalidHeader,
        InvalidMessage,
        InvalidOrigin,
        InvalidPayloadData,
        InvalidState,
        InvalidStatus,
        InvalidUpgrade,
        InvalidURI,
        InvalidVersion,
        NegotiationError,
        PayloadTooBig,
        ProtocolError,
        WebSocketError,
    )
    from .protocol import WebSocketCommonProtocol
    from .proxy import InvalidProxy, ProxyError
    from .pubsub import Backplane, InProcessBackplane, RedisBackplane
    from .reconnect import Backoff, BufferFull, ReconnectingClient, reconnecting
    from .routing import Router, chain_process_request, route
    from .server import Server, WebSocketServer, WebSocketServerProtocol, serve, unix_serve
    from .stream.buffer import Buffer
    from .stream.reader import WebSocketReader
    from .stream.writer import WebSocketWriter
    from .workers import run_workers


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'wsjet' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
