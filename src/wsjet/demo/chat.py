"""The demo chat room behind ``wsjet serve``, built on wsjet's public API only.

One port answers both plain HTTP and WebSocket: :meth:`ChatRoom.process_request`
is the ``process_request`` hook of :func:`wsjet.serve`. It answers ``GET /`` with
the chat page, ``GET /healthz`` with ``200 OK``, anything else with 404, and lets
upgrade requests for ``/ws`` (or ``/``) through to :meth:`ChatRoom.handler`.

The wire protocol is JSON text messages:

* client to server: ``{"type": "hello", "name": ...}`` joins the room or changes
  the name; ``{"type": "say", "text": ...}`` posts a message to everyone.
* server to client: ``welcome`` (your name, the users, the negotiated
  extensions), ``users`` (the user list, after every join, leave and rename),
  ``notice`` (someone joined, left or was renamed), ``message`` (a post: who,
  what, when) and ``error``.

A binary message is sent back to its sender only, untouched: the page's
"256 KiB test message" uses it to check that a large message makes the round
trip intact (and compressed, when the browser negotiated permessage-deflate).

Each member has a bounded outbound queue drained by its own writer task, so a
slow reader never holds up the others: a member whose queue overflows is
disconnected with 1008 instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import unicodedata
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from wsjet import (
    ConnectionClosed,
    Headers,
    Request,
    Response,
    WebSocketServerProtocol,
)

__all__ = ["MAX_NAME", "MAX_TEXT", "ChatRoom", "Member", "load_page", "plain_response"]

logger = logging.getLogger("wsjet.demo")

#: Longest user name, in characters.
MAX_NAME = 32
#: Longest chat message, in characters.
MAX_TEXT = 4000
#: Messages waiting for one member before it counts as too slow and is dropped.
QUEUE_SIZE = 256

_SECURITY_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
]
# The page has no external assets: everything is inline; it only talks to its own origin.
_PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "connect-src 'self' ws: wss:; img-src data:; base-uri 'none'; form-action 'none'"
)


def load_page() -> bytes:
    """Return the chat page (HTML with inline CSS and JavaScript), from package data."""
    return resources.files("wsjet.demo").joinpath("static/index.html").read_bytes()


def plain_response(
    status: int,
    reason: str,
    body: bytes,
    content_type: str = "text/plain; charset=utf-8",
    *,
    head: bool = False,
    extra: list[tuple[str, str]] | None = None,
) -> Response:
    """Build a plain HTTP response that closes the connection after the body."""
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
            *_SECURITY_HEADERS,
            *(extra or []),
        ]
    )
    return Response(status, reason, headers, b"" if head else body)


def _is_upgrade(request: Request) -> bool:
    return request.headers.get("Upgrade", "").strip().lower() == "websocket"


def clean_name(raw: object) -> str | None:
    """Normalise a user name: trimmed, printable, at most :data:`MAX_NAME` characters."""
    if not isinstance(raw, str):
        return None
    # Whitespace of any kind becomes one space; other control and format characters go.
    name = "".join(
        " " if ch.isspace() else ch
        for ch in raw
        if ch.isspace() or unicodedata.category(ch)[0] != "C"
    )
    name = " ".join(name.split())[:MAX_NAME]
    return name or None


@dataclass(eq=False)
class Member:
    """One connection in the room."""

    websocket: WebSocketServerProtocol
    number: int
    name: str | None = None
    outbox: asyncio.Queue[str | bytes | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_SIZE)
    )


class ChatRoom:
    """A chat room: serves the page and runs one handler per WebSocket connection.

    Use it with :func:`wsjet.serve`::

        room = ChatRoom()
        async with wsjet.serve(room.handler, host, port, process_request=room.process_request):
            ...
    """

    def __init__(self) -> None:
        self.members: dict[WebSocketServerProtocol, Member] = {}
        self._page = load_page()
        self._count = 0

    # --- plain HTTP ------------------------------------------------------------------------

    def process_request(
        self, connection: WebSocketServerProtocol, request: Request
    ) -> Response | None:
        """The ``process_request`` hook: plain HTTP for the page, None to upgrade."""
        path = request.path.split("?", 1)[0]
        if _is_upgrade(request):
            if path in ("/ws", "/"):
                return None  # the library runs the WebSocket handshake
            return plain_response(404, "Not Found", b"No WebSocket endpoint here: use /ws.\n")
        if request.method not in ("GET", "HEAD"):
            return plain_response(
                405, "Method Not Allowed", b"GET only.\n", extra=[("Allow", "GET, HEAD")]
            )
        head = request.method == "HEAD"
        if path in ("/", "/index.html"):
            return plain_response(
                200,
                "OK",
                self._page,
                "text/html; charset=utf-8",
                head=head,
                extra=[("Content-Security-Policy", _PAGE_CSP)],
            )
        if path == "/healthz":
            return plain_response(200, "OK", b"OK\n", head=head)
        if path == "/ws":
            return None  # a GET without Upgrade: the library answers it (426 / 400)
        return plain_response(404, "Not Found", b"Not found.\n", head=head)

    # --- WebSocket -------------------------------------------------------------------------

    def users(self) -> list[str]:
        """The names of the members who joined, in joining order."""
        return [m.name for m in self.members.values() if m.name is not None]

    def _unique(self, wanted: str, member: Member) -> str:
        taken = {m.name for m in self.members.values() if m is not member}
        name, n = wanted, 1
        while name in taken:
            n += 1
            suffix = f" ({n})"
            name = wanted[: MAX_NAME - len(suffix)] + suffix
        return name

    def _post(self, member: Member, message: str | bytes) -> None:
        try:
            member.outbox.put_nowait(message)
        except asyncio.QueueFull:
            logger.info("#%d is too slow: disconnecting", member.number)
            # Drop what it could not keep up with and make its writer close the connection.
            while not member.outbox.empty():
                member.outbox.get_nowait()
            member.outbox.put_nowait(None)

    def send(self, member: Member, **message: Any) -> None:
        """Queue one JSON message for ``member``."""
        self._post(member, json.dumps(message, ensure_ascii=False))

    def broadcast(self, **message: Any) -> None:
        """Queue one JSON message for every member who joined."""
        text = json.dumps(message, ensure_ascii=False)
        for member in list(self.members.values()):
            if member.name is not None:
                self._post(member, text)

    async def _writer(self, member: Member) -> None:
        websocket = member.websocket
        while True:
            message = await member.outbox.get()
            if message is None:
                await websocket.close(1008, "too slow")
                return
            await websocket.send(message)

    async def handler(self, websocket: WebSocketServerProtocol) -> None:
        """Run one connection: join, relay messages, leave."""
        self._count += 1
        member = Member(websocket, self._count)
        self.members[websocket] = member
        extensions = websocket.response_headers.get("Sec-WebSocket-Extensions")
        logger.info(
            "#%d connected from %s (extensions: %s)",
            member.number,
            _address(websocket.remote_address),
            extensions or "none",
        )
        writer = asyncio.create_task(self._writer(member))
        try:
            async for message in websocket:
                if isinstance(message, bytes):
                    self._post(member, message)  # the round-trip test: back to the sender
                else:
                    self._receive(member, message, extensions)
        except ConnectionClosed:
            pass
        finally:
            del self.members[websocket]
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await writer
            logger.info(
                "#%d disconnected (close code %s)", member.number, websocket.close_code or "-"
            )
            if member.name is not None:
                self.broadcast(type="notice", text=f"{member.name} left")
                self.broadcast(type="users", users=self.users())

    def _receive(self, member: Member, raw: str, extensions: str | None) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            self.send(member, type="error", text="messages are JSON objects")
            return
        if not isinstance(message, dict):
            self.send(member, type="error", text="messages are JSON objects")
            return
        kind = message.get("type")
        if kind == "hello":
            wanted = clean_name(message.get("name"))
            if wanted is None:
                self.send(member, type="error", text="pick a name")
                return
            old, member.name = member.name, self._unique(wanted, member)
            if old == member.name:
                return
            self.send(
                member,
                type="welcome",
                name=member.name,
                users=self.users(),
                extensions=extensions or "",
            )
            if old is None:
                logger.info("#%d joined as %r", member.number, member.name)
                self.broadcast(type="notice", text=f"{member.name} joined")
            else:
                self.broadcast(type="notice", text=f"{old} is now {member.name}")
            self.broadcast(type="users", users=self.users())
        elif kind == "say":
            text = message.get("text")
            if member.name is None:
                self.send(member, type="error", text="join first: send your name")
            elif not isinstance(text, str) or not text.strip():
                self.send(member, type="error", text="empty message")
            elif len(text) > MAX_TEXT:
                self.send(member, type="error", text=f"messages are at most {MAX_TEXT} characters")
            else:
                self.broadcast(
                    type="message", name=member.name, text=text, time=int(time.time() * 1000)
                )
        else:
            self.send(member, type="error", text=f"unknown message type: {kind!r}")


def _address(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address) if address else "a Unix socket"
