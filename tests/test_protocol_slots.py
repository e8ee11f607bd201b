"""Connection objects keep their attributes in slots, and still take any other.

A connection sets some 40 attributes on its protocol object; kept in an
instance dict they cost 1.5 KiB per connection and most of the time taken to
make the object. They are ``__slots__`` (see ``WebSocketCommonProtocol``), so
an open connection has an empty instance dict, while applications can still
set attributes of their own and hold weak references, on both paths. (On the
pure-Python path the fields of the compiled bases, ``Engine`` and
``MessageDelivery``, are ordinary attributes, so they are in the dict there.)
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

from websockets.asyncio.client import connect as ws_connect

import wsjet
import wsjet.delivery
import wsjet.engine
from wsjet.callbacks_client import Client
from wsjet.server import WebSocketServer

from .test_compiled_bases import declared_fields
from .utils import UNIT

# C fields of the compiled bases: instance attributes on the pure-Python path.
BASE_FIELDS = declared_fields(wsjet.engine.__file__) | declared_fields(wsjet.delivery.__file__)


def instance_dict(obj: object) -> dict[str, Any]:
    """The attributes kept in the instance dict, other than the bases' fields."""
    return {k: v for k, v in vars(obj).items() if k not in BASE_FIELDS}


async def test_coroutine_face_connections_keep_no_attribute_in_a_dict() -> None:
    seen: list[wsjet.WebSocketServerProtocol] = []
    client_side: list[dict[str, Any]] = []

    async def handler(ws: wsjet.WebSocketServerProtocol) -> None:
        seen.append(ws)
        await ws.send(await ws.recv())

    async with wsjet.serve(handler, "127.0.0.1", 0, compression="deflate") as server:
        port = server.sockets[0].getsockname()[1]
        async with wsjet.connect(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            client_side.append(instance_dict(ws))
    assert client_side == [{}]
    assert instance_dict(seen[0]) == {}


async def test_callback_face_connections_keep_no_attribute_in_a_dict() -> None:
    socket = WebSocketServer("127.0.0.1", 0)
    clients: list[Client] = []
    done = asyncio.Event()

    @socket.connection
    async def on_connection(client: Client) -> None:
        clients.append(client)

        @client.message
        async def on_message(reader: Any) -> None:
            await client.writer.send(await reader.get())
            done.set()

    async with socket as listening:
        port = listening.sockets[0].getsockname()[1]
        async with ws_connect(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
            await asyncio.wait_for(done.wait(), 20 * UNIT)
            client = clients[0]
            assert instance_dict(client) == {}
            assert instance_dict(client._protocol) == {}


async def test_applications_can_still_add_attributes_and_weak_references() -> None:
    checked: list[bool] = []

    async def handler(ws: wsjet.WebSocketServerProtocol) -> None:
        ws.user = "alice"  # type: ignore[attr-defined]  # an application's own attribute
        checked.append(ws.user == "alice")  # type: ignore[attr-defined]
        checked.append(weakref.ref(ws)() is ws)
        await ws.send(await ws.recv())

    async with wsjet.serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with wsjet.connect(f"ws://127.0.0.1:{port}/") as ws:
            watched = weakref.ref(ws)
            ws.tag = 1  # type: ignore[attr-defined]
            await ws.send("x")
            assert await ws.recv() == "x"
            assert instance_dict(ws) == {"tag": 1}
    assert checked == [True, True]
    del ws
    gc.collect()
    assert watched() is None  # a weak reference does not keep the connection


def test_slots_do_not_shadow_each_other() -> None:
    # A slot declared again in a subclass would hide the base's (and waste 8 bytes).
    classes = [
        wsjet.WebSocketCommonProtocol,
        wsjet.WebSocketServerProtocol,
        wsjet.WebSocketClientProtocol,
        Client,
    ]
    from wsjet.callbacks import _CallbackServerProtocol

    classes.append(_CallbackServerProtocol)
    for cls in classes:
        own = set(cls.__dict__.get("__slots__", ()))
        assert own, f"{cls.__name__} declares no slots"
        for base in cls.__mro__[1:]:
            assert not own & set(base.__dict__.get("__slots__", ())), (cls, base)
