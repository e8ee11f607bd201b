"""HTTP Basic authentication for servers (RFC 7617): :func:`basic_auth`.

:func:`basic_auth` builds a ``process_request`` hook for :func:`~wsjet.serve`.
It answers ``401 Unauthorized`` with a ``WWW-Authenticate`` challenge before
the upgrade when the credentials are missing or wrong, and records the user
name on the connection (``websocket.username``) when they are right::

    async with wsjet.serve(
        handler, "127.0.0.1", 8765,
        process_request=wsjet.basic_auth("chat", credentials=("alice", "s3cret")),
    ):
        ...

Credentials compare in constant time (:func:`hmac.compare_digest`, over every
configured pair), so response timing tells nothing about how much of a user
name or password was right. Use it over ``wss://`` only: Basic credentials
travel in clear text.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from .core import handshake
from .core.http import Headers, Request, Response

if TYPE_CHECKING:
    from .server import WebSocketServerProtocol

__all__ = ["basic_auth", "parse_basic_authorization"]

Credentials = tuple[str, str]
CheckCredentials = Callable[[str, str], "bool | Awaitable[bool]"]
BasicAuthHook = Callable[["WebSocketServerProtocol", Request], Awaitable[Response | None]]


def parse_basic_authorization(value: str) -> Credentials | None:
    """Decode an ``Authorization: Basic ...`` header value.

    Args:
        value: the header's value.

    Returns:
        ``(username, password)``, or ``None`` when the value is not valid
        Basic credentials (another scheme, bad base64, no colon, bad UTF-8).
    """
    scheme, _, token = value.strip(" \t").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(" \t").encode("ascii"), validate=True)
        text = decoded.decode("utf-8")
    except (binascii.Error, UnicodeError):
        return None
    username, colon, password = text.partition(":")
    if not colon:
        return None
    return username, password


def _quote(text: str) -> str:
    """Make ``text`` an RFC 7230 quoted-string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _normalize(credentials: Credentials | Iterable[Credentials]) -> list[tuple[bytes, bytes]]:
    if isinstance(credentials, tuple) and len(credentials) == 2:
        first, second = credentials
        if isinstance(first, str) and isinstance(second, str):
            credentials = [(first, second)]
    pairs: list[tuple[bytes, bytes]] = []
    for pair in credentials:
        if not (
            isinstance(pair, tuple)
            and len(pair) == 2
            and isinstance(pair[0], str)
            and isinstance(pair[1], str)
        ):
            raise TypeError(f"credentials must be (username, password) pairs of str, not {pair!r}")
        pairs.append((pair[0].encode(), pair[1].encode()))
    if not pairs:
        raise ValueError("credentials is empty: nobody could log in")
    return pairs


def basic_auth(
    realm: str = "",
    credentials: Credentials | Iterable[Credentials] | None = None,
    check: CheckCredentials | None = None,
) -> BasicAuthHook:
    """Build a ``process_request`` hook enforcing HTTP Basic authentication.

    Give exactly one of ``credentials`` and ``check``. A request without
    valid credentials gets ``401 Unauthorized`` with
    ``WWW-Authenticate: Basic realm="<realm>", charset="UTF-8"``; the body is a
    fixed sentence that never repeats request data. A request with valid
    credentials goes on to the handshake, and ``connection.username`` holds
    the user name. To use it with other hooks, combine them with
    :func:`~wsjet.routing.chain_process_request`.

    Args:
        realm: the protection space named in the challenge (printable text).
        credentials: one ``(username, password)`` pair or several. Every pair
            is compared, in constant time, on every request.
        check: ``check(username, password)`` returning ``bool`` or an awaitable
            of ``bool``, to look credentials up elsewhere. Comparing in
            constant time is then up to it.

    Returns:
        An async ``process_request(connection, request)`` hook for
        :func:`~wsjet.serve`.

    Raises:
        TypeError: neither or both of ``credentials`` and ``check`` are given,
            or ``credentials`` holds something other than pairs of ``str``.
        ValueError: ``credentials`` is empty, or ``realm`` cannot go in a header.
    """
    if (credentials is None) == (check is None):
        raise TypeError("give either credentials or check, not both nor neither")
    challenge = f"Basic realm={_quote(realm)}, charset={_quote('UTF-8')}"
    # Fail now, not on the first request, if the realm can't go in a header.
    Headers([("WWW-Authenticate", challenge)])

    if credentials is not None:
        pairs = _normalize(credentials)

        def verify(username: str, password: str) -> bool:
            user, secret = username.encode(), password.encode()
            found = False
            # No early exit: the time taken doesn't depend on which pair matched.
            for known_user, known_secret in pairs:
                user_ok = hmac.compare_digest(user, known_user)
                secret_ok = hmac.compare_digest(secret, known_secret)
                found |= user_ok & secret_ok
            return found

        checker: CheckCredentials = verify
    else:
        assert check is not None
        checker = check

    def unauthorized() -> Response:
        response = handshake.reject(401, "Unauthorized: valid credentials are required.\n")
        response.headers.add("WWW-Authenticate", challenge)
        return response

    async def process_request(
        connection: WebSocketServerProtocol, request: Request
    ) -> Response | None:
        values = request.headers.get_all("Authorization")
        if len(values) != 1:
            return unauthorized()
        parsed = parse_basic_authorization(values[0])
        if parsed is None:
            return unauthorized()
        username, password = parsed
        valid = checker(username, password)
        if inspect.isawaitable(valid):
            valid = await valid
        if not valid:
            connection.logger.info("basic auth: invalid credentials")
            return unauthorized()
        # WebSocketServerProtocol.username; set dynamically so that any
        # connection class (or a test double) works.
        connection.username = username
        return None

    return process_request
