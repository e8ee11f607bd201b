"""Which web pages may open a WebSocket to a server: the Origin policy, Sans-I/O.

A browser lets any page open a WebSocket to any server, with the visitor's
cookies; what it cannot forge is the ``Origin`` header, the origin of the page
(RFC 6454 §7). RFC 6455 §10.2 and §4.2.2 step 4 leave checking it to the
server; a server that skips the check lets another site act as its logged-in
users: Cross-Site WebSocket Hijacking. RFC 6455 §4.2.1 item 7: the header "is
sent by all browser clients", and a request without it "SHOULD NOT be
interpreted as coming from a browser client": clients that are not browsers
(other servers, command-line tools, the ``websockets`` or Node ``ws``
libraries) usually send none.

The ``origins`` option of a server is one of:

* ``None`` (the default): the same-origin policy of :func:`origin_allowed`: a
  request without ``Origin`` is accepted, one with ``Origin`` only when the
  Origin names the host and port of the request's ``Host`` header;
* a sequence of rules: an exact ``str``, a compiled :class:`re.Pattern` that
  must match the whole Origin, or ``None`` for requests without ``Origin``;
* :data:`ANY_ORIGIN`: every request, whatever its Origin (no check).

:func:`parse_origins` reads the same choices from text (``WSJET_ORIGINS``,
``wsjet serve --origin``).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from typing import Final

__all__ = [
    "ANY_ORIGIN",
    "AnyOrigin",
    "OriginRule",
    "Origins",
    "origin_allowed",
    "parse_origins",
    "same_origin",
]


class AnyOrigin(enum.Enum):
    """The type of :data:`ANY_ORIGIN`, a single value."""

    ANY_ORIGIN = "*"

    def __repr__(self) -> str:
        return "wsjet.ANY_ORIGIN"


#: ``origins=ANY_ORIGIN`` accepts every request, whatever its Origin: the
#: opt-out of the same-origin default, for servers no browser should be
#: trusted on (no cookies, no ambient credentials) or that check something
#: else in ``process_request``.
ANY_ORIGIN: Final = AnyOrigin.ANY_ORIGIN

#: An item of ``origins``: an exact Origin, a pattern it must match in full, or
#: ``None`` for requests without an Origin header.
OriginRule = str | re.Pattern[str] | None

#: The ``origins`` option: ``None`` (same origin), a list of rules, or ``ANY_ORIGIN``.
Origins = Sequence[OriginRule] | AnyOrigin | None

# Default ports of the schemes a browser's Origin has for a WebSocket's page
# (RFC 6454 §4 and §6.2: the port is serialized only when not the default).
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
# Characters that an Origin's host[:port] never contains: path, query,
# fragment, user info, white space.
_NOT_IN_AUTHORITY: Final = "/?#@ \t"


def _split_authority(text: str) -> tuple[str, int | None] | None:
    """``host[:port]`` -> (lower-cased host, port or None); None when malformed.

    RFC 3986 §3.2.2-3.2.3: an IPv6 literal is bracketed; a port is digits.
    Each step is one pass over ``text``.
    """
    if not text or not text.isascii():
        return None
    if text.startswith("["):
        end = text.find("]")
        if end == -1:
            return None
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else None
    else:
        host, sep, port_text_or_empty = text.partition(":")
        port_text = port_text_or_empty if sep else None
    if not host:
        return None
    if port_text is None:
        return host.lower(), None
    if not (port_text.isdigit() and len(port_text) <= 5):
        return None
    port = int(port_text)
    if port > 65535:
        return None
    return host.lower(), port


def same_origin(origin: str, host: str) -> bool:
    """Tell whether ``origin`` names the host and port of the ``Host`` header ``host``.

    The Origin must be ``http://`` or ``https://`` followed by ``host[:port]``
    and nothing else, as browsers serialize it (RFC 6454 §6.2); ``null`` and
    other schemes never match. Hosts compare case-insensitively and exactly
    (no DNS, no suffix: ``localhost`` is not ``127.0.0.1``); ports compare
    exactly once defaulted: an absent port is 80 for ``http`` and 443 for
    ``https``, the Host's as well as the Origin's, since the Host header of
    a browser's request omits the port when it is the default of the page's
    scheme. The scheme itself is not compared with the server's: behind a
    proxy that ends TLS, a ``wss://`` page reaches a ``ws://`` server.

    Linear in the lengths of ``origin`` and ``host``.
    """
    scheme, sep, authority = origin.partition("://")
    if not sep:
        return False
    default = _DEFAULT_PORTS.get(scheme.lower())
    if default is None or any(char in authority for char in _NOT_IN_AUTHORITY):
        return False
    theirs = _split_authority(authority)
    ours = _split_authority(host.strip(" \t"))
    if theirs is None or ours is None:
        return False
    their_port = default if theirs[1] is None else theirs[1]
    our_port = default if ours[1] is None else ours[1]
    return theirs[0] == ours[0] and their_port == our_port


def origin_allowed(origin: str | None, host: str | None, origins: Origins) -> bool:
    """Apply the ``origins`` option to a request (RFC 6455 §10.2).

    Args:
        origin: the request's Origin header, or ``None`` when it has none.
        host: the request's Host header, or ``None`` when unknown.
        origins: ``None`` for the same-origin default, a sequence of rules,
            or :data:`ANY_ORIGIN`.

    Returns:
        ``None`` (same origin): ``True`` without Origin, else whether
        :func:`same_origin` holds. A sequence: whether a rule matches: a
        ``str`` equal to the Origin, a pattern matching the whole Origin
        (:meth:`re.Pattern.fullmatch`), or ``None`` when there is no Origin.
        :data:`ANY_ORIGIN`: ``True``.
    """
    if origins is ANY_ORIGIN:
        return True
    if origins is None:
        if origin is None:
            return True
        return host is not None and same_origin(origin, host)
    for rule in origins:
        if rule is None:
            if origin is None:
                return True
        elif origin is None:
            continue
        elif isinstance(rule, str):
            if origin == rule:
                return True
        elif rule.fullmatch(origin) is not None:
            return True
    return False


def parse_origins(items: Iterable[str]) -> tuple[OriginRule, ...] | AnyOrigin:
    """Read ``origins`` from text items, as ``WSJET_ORIGINS`` and ``--origin`` give them.

    Each item, stripped of white space, is ``*`` (:data:`ANY_ORIGIN`, which
    must then be the only item), ``none`` or empty (requests without an
    Origin), ``re:PATTERN`` (a regular expression the whole Origin must
    match), or an exact Origin such as ``https://example.com``.

    Raises:
        ValueError: ``*`` among other items, or a pattern that does not compile.
    """
    rules: list[OriginRule] = []
    any_origin = False
    for raw in items:
        item = raw.strip()
        if item == "*":
            any_origin = True
        elif item.lower() in ("", "none"):
            rules.append(None)
        elif item.startswith("re:"):
            try:
                rules.append(re.compile(item[3:]))
            except re.error as exc:
                raise ValueError(f"invalid pattern {item[3:]!r}: {exc}") from None
        else:
            rules.append(item)
    if any_origin:
        if rules:
            raise ValueError("'*' (any origin) must be the only item")
        return ANY_ORIGIN
    return tuple(rules)
