"""route(): path routing with 404 before the upgrade; the select_subprotocol option."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence

import pytest
import websockets
from websockets.asyncio.client import connect as ws_connect

import wsjet


def port_of(server: wsjet.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


async def chat(ws: wsjet.WebSocketServerProtocol) -> None:
    await ws.send("chat")


async def room(ws: wsjet.WebSocketServerProtocol, name: str) -> None:
    await ws.send(json.dumps({"room": name, "path": ws.path}))


async def member(ws: wsjet.WebSocketServerProtocol, name: str, user: str) -> None:
    await ws.send(json.dumps({"room": name, "user": user}))


async def files(ws: wsjet.WebSocketServerProtocol, rest: str) -> None:
    await ws.send(json.dumps({"rest": rest}))


async def special(ws: wsjet.WebSocketServerProtocol) -> None:
    await ws.send("special")


ROUTES = {
    "/chat": chat,
    "/rooms/special": special,  # before the template: wins for this exact path
    "/rooms/{name}": room,
    "/rooms/{name}/members/{user}": member,
    "/files/{rest:path}": files,
}


@pytest.fixture
async def port() -> AsyncIterator[int]:
    async with wsjet.route(ROUTES).serve("127.0.0.1", 0) as server:
        yield port_of(server)


async def first_message(uri: str) -> str | bytes:
    async with ws_connect(uri) as client:
        return await client.recv()


async def test_exact_route(port: int) -> None:
    assert await first_message(f"ws://127.0.0.1:{port}/chat") == "chat"


async def test_parameters_as_keyword_arguments(port: int) -> None:
    message = await first_message(f"ws://127.0.0.1:{port}/rooms/lobby?x=1")
    assert json.loads(message) == {"room": "lobby", "path": "/rooms/lobby?x=1"}
    message = await first_message(f"ws://127.0.0.1:{port}/rooms/a%20b%2Fc/members/z%C3%BC")
    assert json.loads(message) == {"room": "a b/c", "user": "zü"}
    message = await first_message(f"ws://127.0.0.1:{port}/files/a/b/c.txt")
    assert json.loads(message) == {"rest": "a/b/c.txt"}


async def test_first_match_wins(port: int) -> None:
    assert await first_message(f"ws://127.0.0.1:{port}/rooms/special") == "special"


@pytest.mark.parametrize(
    "path",
    ["/", "/chat/", "/chatroom", "/rooms", "/rooms/", "/rooms/a/b", "/files/", "/CHAT", "/x/chat"],
)
async def test_unknown_paths_get_404_before_upgrade(port: int, path: str) -> None:
    with pytest.raises(websockets.InvalidStatus) as info:
        await ws_connect(f"ws://127.0.0.1:{port}{path}")
    assert info.value.response.status_code == 404


async def test_404_with_wsjet_client_and_no_reflection(port: int) -> None:
    with pytest.raises(wsjet.InvalidStatus) as info:
        await wsjet.connect(f"ws://127.0.0.1:{port}/%3Cscript%3E")
    assert info.value.status_code == 404
    assert b"script" not in info.value.response.body
    # A plain HTTP GET (no upgrade) to an unknown path gets 404 too.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.1 404 Not Found\r\n")
    assert b"nowhere" not in answer


async def test_router_with_serve_and_its_own_hook() -> None:
    router = wsjet.route(ROUTES)
    async with wsjet.serve(router, "127.0.0.1", 0, process_request=router.process_request) as s:
        assert await first_message(f"ws://127.0.0.1:{port_of(s)}/chat") == "chat"
        with pytest.raises(websockets.InvalidStatus):
            await ws_connect(f"ws://127.0.0.1:{port_of(s)}/nope")


async def test_router_chains_another_process_request() -> None:
    auth = wsjet.basic_auth("r", credentials=("u", "p"))
    # Given to route() or to Router.serve(): both run after the route check.
    for router, options in [
        (wsjet.route(ROUTES, process_request=auth), {}),
        (wsjet.route(ROUTES), {"process_request": auth}),
    ]:
        async with router.serve("127.0.0.1", 0, **options) as server:
            port = port_of(server)
            with pytest.raises(websockets.InvalidStatus) as info:
                await ws_connect(f"ws://127.0.0.1:{port}/nope")
            assert info.value.response.status_code == 404
            with pytest.raises(websockets.InvalidStatus) as info:
                await ws_connect(f"ws://127.0.0.1:{port}/chat")
            assert info.value.response.status_code == 401
            assert await first_message(f"ws://u:p@127.0.0.1:{port}/chat") == "chat"


async def test_serve_installs_the_router_404_hook() -> None:
    async with wsjet.serve(wsjet.route(ROUTES), "127.0.0.1", 0) as server:
        with pytest.raises(websockets.InvalidStatus) as info:
            await ws_connect(f"ws://127.0.0.1:{port_of(server)}/nope")
        assert info.value.response.status_code == 404


async def test_router_without_hook_closes_unknown_paths_1008() -> None:
    # process_request=None explicitly: no 404 before the upgrade, 1008 after it.
    async with wsjet.serve(wsjet.route(ROUTES), "127.0.0.1", 0, process_request=None) as server:
        async with ws_connect(f"ws://127.0.0.1:{port_of(server)}/nope") as client:
            with pytest.raises(websockets.ConnectionClosedError) as info:
                await client.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1008


async def test_router_on_a_unix_socket(tmp_path: object) -> None:
    path = f"{tmp_path}/router.sock"
    async with wsjet.route(ROUTES).unix_serve(path):
        async with wsjet.unix_connect(path, "ws://localhost/rooms/u") as client:
            assert json.loads(await client.recv())["room"] == "u"  # type: ignore[arg-type]
        with pytest.raises(wsjet.InvalidStatus):
            await wsjet.unix_connect(path, "ws://localhost/elsewhere")


def test_match_and_invalid_templates() -> None:
    router = wsjet.route(ROUTES)
    assert router.routes == list(ROUTES)
    assert router.match("/rooms/x") == (room, {"name": "x"})
    assert router.match("/rooms/x/") is None
    for bad in ["chat", "/{x", "/x}", "/{1x}", "/{a}/{a}", "/{a:int}"]:
        with pytest.raises(ValueError):
            wsjet.route({bad: chat})


async def test_select_subprotocol_option() -> None:
    offered_seen: list[Sequence[str]] = []

    def pick(ws: wsjet.WebSocketServerProtocol, offered: Sequence[str]) -> str | None:
        offered_seen.append(list(offered))
        return offered[-1] if offered else None

    async def handler(ws: wsjet.WebSocketServerProtocol) -> None:
        await ws.send(ws.subprotocol or "")

    async with wsjet.serve(handler, "127.0.0.1", 0, select_subprotocol=pick) as server:
        uri = f"ws://127.0.0.1:{port_of(server)}/"
        async with ws_connect(uri, subprotocols=["a", "b"]) as client:  # type: ignore[list-item]
            assert client.subprotocol == "b"
            assert await client.recv() == "b"
        async with wsjet.connect(uri, subprotocols=["x", "y"]) as wclient:
            assert wclient.subprotocol == "y"
            assert await wclient.recv() == "y"
        async with wsjet.connect(uri) as wclient:
            assert wclient.subprotocol is None
    assert offered_seen == [["a", "b"], ["x", "y"], []]
