"""unix_serve() / unix_connect() on Unix domain sockets, with websockets as the peer."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest
from websockets.asyncio.client import unix_connect as ws_unix_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import unix_serve as ws_unix_serve

import wsjet

from .utils import UNIT


async def echo(ws: wsjet.WebSocketServerProtocol) -> None:
    async for message in ws:
        await ws.send(message)


async def describe(ws: wsjet.WebSocketServerProtocol) -> None:
    await ws.send(f"{ws.path} {ws.request_headers.get('Host')}")


async def test_wsjet_both_sides(tmp_path: Path) -> None:
    path = str(tmp_path / "echo.sock")
    async with wsjet.unix_serve(echo, path) as server:
        assert server.sockets[0].family.name == "AF_UNIX"
        async with wsjet.unix_connect(path) as client:
            await client.send("over a unix socket")
            assert await client.recv() == "over a unix socket"
            await client.send(b"\x00" * 100_000)
            assert await client.recv() == b"\x00" * 100_000


async def test_uri_sets_path_and_host(tmp_path: Path) -> None:
    path = str(tmp_path / "describe.sock")
    async with wsjet.unix_serve(describe, path):
        async with wsjet.unix_connect(path) as client:
            assert await client.recv() == "/ localhost"
        async with wsjet.unix_connect(path, "ws://chat.internal:8080/room?x=1") as client:
            assert await client.recv() == "/room?x=1 chat.internal:8080"


async def test_wsjet_server_websockets_client(tmp_path: Path) -> None:
    path = str(tmp_path / "ws.sock")
    async with wsjet.unix_serve(echo, path), ws_unix_connect(path) as client:
        await client.send("hello")
        assert await client.recv() == "hello"


async def test_websockets_server_wsjet_client(tmp_path: Path) -> None:
    path = str(tmp_path / "peer.sock")

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        await ws.send(ws.request.path)
        async for message in ws:
            await ws.send(message)

    uri = "ws://localhost/from-wsjet"
    async with ws_unix_serve(handler, path), wsjet.unix_connect(path, uri) as client:
        assert await client.recv() == "/from-wsjet"
        await client.send("ping")
        assert await client.recv() == "ping"


async def test_tls_over_unix_socket(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    path = str(tmp_path / "tls.sock")
    async with (
        wsjet.unix_serve(echo, path, ssl=server_context),
        wsjet.unix_connect(path, "wss://localhost/", ssl=client_context) as client,
    ):
        await client.send("secret")
        assert await client.recv() == "secret"


async def test_connect_to_missing_socket(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await wsjet.unix_connect(str(tmp_path / "nobody-here.sock"))


async def test_proxy_from_environment_ignored_on_unix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An unreachable proxy in the environment doesn't matter for a Unix socket.
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("all_proxy", "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    path = str(tmp_path / "env.sock")
    async with wsjet.unix_serve(echo, path), wsjet.unix_connect(path, "ws://example.com/") as c:
        await c.send("direct")
        assert await c.recv() == "direct"


async def test_reconnect_iterator_on_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "iter.sock")
    seen = []
    async with wsjet.unix_serve(describe, path):
        backoff = wsjet.Backoff(initial=UNIT)
        async for client in wsjet.unix_connect(path, "ws://localhost/again", backoff=backoff):
            seen.append(await client.recv())
            if len(seen) == 2:
                await client.close()
                break
    assert seen == ["/again localhost", "/again localhost"]


async def test_callback_face_on_a_unix_path(tmp_path: Path) -> None:
    from wsjet.client import Client
    from wsjet.server import WebSocketServer
    from wsjet.stream.reader import WebSocketReader

    path = str(tmp_path / "callbacks.sock")
    socket = WebSocketServer(None, 0, unix_path=path)
    seen: list[tuple[str, int]] = []

    @socket.connection
    async def on_connection(client: Client) -> None:
        seen.append((client.addr, client.port))

        @client.message
        async def on_message(reader: WebSocketReader) -> None:
            await client.writer.send(await reader.get())

    async with socket:
        async with wsjet.unix_connect(path) as first, wsjet.unix_connect(path) as second:
            await first.send("over a Unix socket")
            assert await first.recv() == "over a Unix socket"
            await second.send(b"\x00binary")
            assert await second.recv() == b"\x00binary"
            assert len(socket.clients) == 2  # distinct keys for the two Unix peers
    assert len(set(seen)) == 2
