"""Default limits and timeouts, each overridable from the environment.

Read once, when wsjet is imported. A keyword argument always wins over the
environment; the environment wins over the built-in value. ``none`` (or an
empty string) means "no limit" where the keyword accepts ``None``. A value that
doesn't parse raises :class:`ValueError` naming the variable, at import time,
rather than running with a limit nobody asked for. The table is in
``docs/security.md``.

Two policies are read from text of their own: ``WSJET_COMPRESSION`` is
``deflate`` or ``none``; ``WSJET_ORIGINS`` is a comma-separated allow-list
whose items are exact origins, ``re:PATTERN`` (matched in full; a pattern
can't contain a comma), ``none`` or an empty item (requests without an
Origin header), or ``*`` alone (any origin): see
:func:`wsjet.core.origin.parse_origins`.
"""

from __future__ import annotations

import os
from typing import Literal

from .origin import AnyOrigin, OriginRule, parse_origins

__all__ = [
    "CLOSE_TIMEOUT",
    "COMPRESSION",
    "MAX_BODY",
    "MAX_CONNECTIONS",
    "MAX_FRAGMENTS",
    "MAX_HEADERS",
    "MAX_HEADER_BYTES",
    "MAX_LINE",
    "MAX_NEGOTIATION_BYTES",
    "MAX_QUEUE",
    "MAX_REDIRECTS",
    "MAX_SIZE",
    "OPEN_TIMEOUT",
    "ORIGINS",
    "PING_INTERVAL",
    "PING_TIMEOUT",
    "SHUTDOWN_GRACE",
    "WRITE_LIMIT",
]


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None else value.strip()


def _int(name: str, default: int) -> int:
    raw = _raw(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected a whole number") from None
    if value < 0:
        raise ValueError(f"{name}={raw!r}: expected a number >= 0")
    return value


def _optional_int(name: str, default: int | None) -> int | None:
    raw = _raw(name)
    if raw is None:
        return default
    return None if raw.lower() in ("", "none") else _int(name, 0)


def _float(name: str, default: float) -> float:
    raw = _raw(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected a number of seconds") from None
    if not value >= 0:  # also rejects NaN
        raise ValueError(f"{name}={raw!r}: expected a number of seconds >= 0")
    return value


def _optional_float(name: str, default: float | None) -> float | None:
    raw = _raw(name)
    if raw is None:
        return default
    return None if raw.lower() in ("", "none") else _float(name, 0.0)


def _compression(name: str) -> Literal["deflate"] | None:
    raw = _raw(name)
    if raw is None or raw.lower() == "deflate":
        return "deflate"
    if raw.lower() in ("", "none"):
        return None
    raise ValueError(f"{name}={raw!r}: expected 'deflate' or 'none'")


def _origins(name: str) -> tuple[OriginRule, ...] | AnyOrigin | None:
    raw = os.environ.get(name)
    if raw is None:
        return None  # the same-origin policy
    try:
        return parse_origins(raw.split(","))
    except ValueError as exc:
        raise ValueError(f"{name}={raw!r}: {exc}") from None


#: Opening handshake (HTTP/1.1, RFC 7230).
MAX_LINE = _int("WSJET_MAX_LINE", 8192)
MAX_HEADERS = _int("WSJET_MAX_HEADERS", 128)
MAX_HEADER_BYTES = _int("WSJET_MAX_HEADER_BYTES", 65536)
MAX_BODY = _int("WSJET_MAX_BODY", 65536)
#: Value bytes of Sec-WebSocket-Protocol, and of Sec-WebSocket-Extensions, all
#: lines of each combined (requests): a few offers take tens of bytes.
MAX_NEGOTIATION_BYTES = _int("WSJET_MAX_NEGOTIATION_BYTES", 4096)
OPEN_TIMEOUT = _optional_float("WSJET_OPEN_TIMEOUT", 10.0)

#: Messages.
MAX_SIZE = _optional_int("WSJET_MAX_SIZE", 2**20)
MAX_FRAGMENTS = _int("WSJET_MAX_FRAGMENTS", 131_072)
MAX_QUEUE = _optional_int("WSJET_MAX_QUEUE", 32)
WRITE_LIMIT = _int("WSJET_WRITE_LIMIT", 2**16)

#: Timers.
CLOSE_TIMEOUT = _float("WSJET_CLOSE_TIMEOUT", 10.0)
PING_INTERVAL = _optional_float("WSJET_PING_INTERVAL", 20.0)
PING_TIMEOUT = _optional_float("WSJET_PING_TIMEOUT", 20.0)
SHUTDOWN_GRACE = _float("WSJET_SHUTDOWN_GRACE", 1.0)

#: Server and client policies.
MAX_CONNECTIONS = _optional_int("WSJET_MAX_CONNECTIONS", None)
MAX_REDIRECTS = _int("WSJET_MAX_REDIRECTS", 10)
#: permessage-deflate, both roles: ``"deflate"`` or ``None`` (off).
COMPRESSION = _compression("WSJET_COMPRESSION")
#: Server: ``None`` is the same-origin policy (see :mod:`wsjet.core.origin`).
ORIGINS = _origins("WSJET_ORIGINS")
