"""basic_auth(), chain_process_request() and the origins allow-list, on loopback servers.

The ``websockets`` client is the independent peer; raw sockets check the exact
HTTP answers.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import connect as ws_connect

import wsjet
from wsjet import auth
from wsjet.auth import parse_basic_authorization
from wsjet.core.http import Headers, Request, Response


async def whoami(ws: wsjet.WebSocketServerProtocol) -> None:
    await ws.send(getattr(ws, "username", None) or "<nobody>")
    async for message in ws:
        await ws.send(message)


def port_of(server: wsjet.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def raw_request(port: int, *headers: str, path: str = "/", host: str = "127.0.0.1") -> bytes:
    """Send a WebSocket upgrade request with extra header lines; return the whole answer."""
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        *headers,
    ]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        if head.startswith(b"HTTP/1.1 101 "):
            return head  # the connection stays open
        return head + await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.fixture
async def alice_server() -> AsyncIterator[int]:
    hook = wsjet.basic_auth(realm="chat room", credentials=("alice", "s3cret"))
    async with wsjet.serve(whoami, "127.0.0.1", 0, process_request=hook) as server:
        yield port_of(server)


# --- 401 / 101 with the websockets client ----------------------------------------------


async def test_401_without_credentials(alice_server: int) -> None:
    with pytest.raises(websockets.InvalidStatus) as info:
        await ws_connect(f"ws://127.0.0.1:{alice_server}/")
    response = info.value.response
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="chat room", charset="UTF-8"'


async def test_401_with_wrong_password_or_user(alice_server: int) -> None:
    for userinfo in ("alice:wrong", "bob:s3cret", "alice:s3cret2", "alic:s3cret"):
        with pytest.raises(websockets.InvalidStatus) as info:
            await ws_connect(f"ws://{userinfo}@127.0.0.1:{alice_server}/")
        assert info.value.response.status_code == 401


async def test_101_with_credentials_websockets_client(alice_server: int) -> None:
    async with ws_connect(f"ws://alice:s3cret@127.0.0.1:{alice_server}/") as client:
        assert await client.recv() == "alice"  # ws.username on the server side
        await client.send("hello")
        assert await client.recv() == "hello"


async def test_101_with_credentials_wsjet_client(alice_server: int) -> None:
    # Credentials in the URI become an Authorization header...
    async with wsjet.connect(f"ws://alice:s3cret@127.0.0.1:{alice_server}/") as client:
        assert await client.recv() == "alice"
    # ...or the header is given explicitly.
    headers = {"Authorization": basic("alice", "s3cret")}
    async with wsjet.connect(f"ws://127.0.0.1:{alice_server}/", extra_headers=headers) as client:
        assert await client.recv() == "alice"
    with pytest.raises(wsjet.InvalidStatus) as info:
        await wsjet.connect(f"ws://alice:nope@127.0.0.1:{alice_server}/")
    assert info.value.status_code == 401


async def test_malformed_authorization_headers_get_401(alice_server: int) -> None:
    good = basic("alice", "s3cret")
    cases = [
        ("Authorization: Bearer abc",),
        ("Authorization: Basic !!!notbase64",),
        ("Authorization: Basic " + base64.b64encode(b"no-colon").decode(),),
        ("Authorization: Basic " + base64.b64encode(b"alice:\xff\xfe").decode(),),
        ("Authorization: Basic",),
        (f"Authorization: {good}", f"Authorization: {good}"),  # ambiguous: two headers
    ]
    for headers in cases:
        answer = await raw_request(alice_server, *headers)
        assert answer.startswith(b"HTTP/1.1 401 Unauthorized\r\n"), headers
    answer = await raw_request(alice_server, f"Authorization: {good}")
    assert answer.startswith(b"HTTP/1.1 101 ")


async def test_401_body_does_not_reflect_request_data(alice_server: int) -> None:
    probe = "<script>alert(1)</script>"
    answer = await raw_request(
        alice_server, f"Authorization: {basic(probe, probe)}", f"X-Probe: {probe}", path="/x?q=1"
    )
    assert answer.startswith(b"HTTP/1.1 401 ")
    assert b"script" not in answer and b"X-Probe" not in answer and b"q=1" not in answer
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"Content-Length: %d" % len(body) in head


async def test_several_credentials_and_utf8() -> None:
    hook = wsjet.basic_auth(credentials=[("alice", "a"), ("bob", "b"), ("zoë", "pässwörd")])
    async with wsjet.serve(whoami, "127.0.0.1", 0, process_request=hook) as server:
        port = port_of(server)
        for user, password in [("alice", "a"), ("bob", "b"), ("zoë", "pässwörd")]:
            answer = await raw_request(port, f"Authorization: {basic(user, password)}")
            assert answer.startswith(b"HTTP/1.1 101 "), user
        for user, password in [("alice", "b"), ("bob", "a"), ("zoe", "pässwörd")]:
            answer = await raw_request(port, f"Authorization: {basic(user, password)}")
            assert answer.startswith(b"HTTP/1.1 401 "), user
        # Not UTF-8 then, but the realm default is empty and the charset announced.
        assert b'WWW-Authenticate: Basic realm="", charset="UTF-8"' in answer


async def test_every_pair_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """No early exit: the same number of compare_digest calls whoever logs in."""
    calls: list[tuple[bytes, bytes]] = []
    real = auth.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    pairs = [("alice", "a"), ("bob", "b"), ("carol", "c")]
    hook = wsjet.basic_auth(credentials=pairs)
    async with wsjet.serve(whoami, "127.0.0.1", 0, process_request=hook) as server:
        counts = []
        for user, password in [("alice", "a"), ("carol", "c"), ("mallory", "x"), ("bob", "")]:
            calls.clear()
            await raw_request(port_of(server), f"Authorization: {basic(user, password)}")
            counts.append(len(calls))
            assert all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in calls)
    assert counts == [2 * len(pairs)] * 4


@pytest.mark.parametrize("is_async", [False, True])
async def test_check_callable(is_async: bool) -> None:
    seen: list[tuple[str, str]] = []

    def check(user: str, password: str) -> bool:
        seen.append((user, password))
        return password == user[::-1]

    async def async_check(user: str, password: str) -> bool:
        await asyncio.sleep(0)
        return check(user, password)

    hook = wsjet.basic_auth("r", check=async_check if is_async else check)
    async with wsjet.serve(whoami, "127.0.0.1", 0, process_request=hook) as server:
        async with ws_connect(f"ws://abc:cba@127.0.0.1:{port_of(server)}/") as client:
            assert await client.recv() == "abc"
        with pytest.raises(websockets.InvalidStatus):
            await ws_connect(f"ws://abc:abc@127.0.0.1:{port_of(server)}/")
    assert seen == [("abc", "cba"), ("abc", "abc")]


def test_basic_auth_arguments() -> None:
    with pytest.raises(TypeError):
        wsjet.basic_auth("r")
    with pytest.raises(TypeError):
        wsjet.basic_auth("r", credentials=("a", "b"), check=lambda u, p: True)
    with pytest.raises(ValueError):
        wsjet.basic_auth("r", credentials=[])
    with pytest.raises(TypeError):
        wsjet.basic_auth("r", credentials=[("a", 1)])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        wsjet.basic_auth("line\nbreak", credentials=("a", "b"))


async def test_realm_is_quoted() -> None:
    hook = wsjet.basic_auth('say "hi" \\o/', credentials=("a", "b"))
    request = Request("/", Headers())
    response = await hook(None, request)  # type: ignore[arg-type]
    assert response is not None and response.status == 401
    assert response.headers["WWW-Authenticate"] == r'Basic realm="say \"hi\" \\o/", charset="UTF-8"'


def test_parse_basic_authorization() -> None:
    assert parse_basic_authorization(basic("a", "b:c")) == ("a", "b:c")
    assert parse_basic_authorization("basic " + base64.b64encode(b"u:").decode()) == ("u", "")
    assert parse_basic_authorization("Digest x") is None
    assert parse_basic_authorization("Basic") is None
    assert parse_basic_authorization("Basic ====") is None


# --- chain_process_request --------------------------------------------------------------


async def test_chain_health_check_before_auth() -> None:
    order: list[str] = []

    def health(ws: wsjet.WebSocketServerProtocol, request: Request) -> Response | None:
        order.append("health")
        if request.path == "/healthz":
            return Response(200, "OK", Headers([("Content-Length", "3")]), b"OK\n")
        return None

    async def stamp(ws: wsjet.WebSocketServerProtocol, request: Request) -> None:
        order.append("stamp")

    hook = wsjet.chain_process_request(
        health, None, wsjet.basic_auth("r", credentials=("u", "p")), stamp
    )
    async with wsjet.serve(whoami, "127.0.0.1", 0, process_request=hook) as server:
        port = port_of(server)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await reader.read()).endswith(b"\r\n\r\nOK\n")
        writer.close()
        await writer.wait_closed()
        assert order == ["health"]
        assert (await raw_request(port)).startswith(b"HTTP/1.1 401 ")
        assert order == ["health", "health"]  # auth answered: stamp never ran
        async with ws_connect(f"ws://u:p@127.0.0.1:{port}/") as client:
            assert await client.recv() == "u"
        assert order == ["health", "health", "health", "stamp"]


# --- origins ----------------------------------------------------------------------------


async def origin_status(port: int, origin: str | None) -> int:
    try:
        async with ws_connect(f"ws://127.0.0.1:{port}/", origin=origin) as client:  # type: ignore[arg-type]
            await client.send("x")
            assert await client.recv() == "x"
    except websockets.InvalidStatus as exc:
        return exc.response.status_code
    return 101


async def echo(ws: wsjet.WebSocketServerProtocol) -> None:
    async for message in ws:
        await ws.send(message)


async def test_origins_exact_and_regex_reject_suffix_tricks() -> None:
    origins: list[Any] = [
        "https://example.com",
        re.compile(r"https://([a-z0-9-]+\.)?example\.org(:\d+)?"),
    ]
    async with wsjet.serve(echo, "127.0.0.1", 0, origins=origins) as server:
        port = port_of(server)
        expected = {
            "https://example.com": 101,
            "https://chat.example.org": 101,
            "https://example.org:8443": 101,
            "https://evil-example.com": 403,  # the suffix trick
            "https://example.com.evil": 403,
            "https://evilexample.org": 403,
            "https://example.org.evil.net": 403,  # a search() would accept it
            "http://example.com": 403,
            "https://EXAMPLE.com": 403,
            "https://example.com/": 403,
            "null": 403,
        }
        for origin, status in expected.items():
            assert await origin_status(port, origin) == status, origin
        assert await origin_status(port, None) == 403  # no Origin: not in the list


async def test_origins_none_allows_clients_without_origin() -> None:
    async with wsjet.serve(echo, "127.0.0.1", 0, origins=[None, "https://a.test"]) as server:
        port = port_of(server)
        assert await origin_status(port, None) == 101
        assert await origin_status(port, "https://a.test") == 101
        assert await origin_status(port, "https://b.test") == 403


async def test_403_body_does_not_echo_the_origin() -> None:
    async with wsjet.serve(echo, "127.0.0.1", 0, origins=["https://a.test"]) as server:
        answer = await raw_request(port_of(server), "Origin: https://<evil>.test")
    assert answer.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert b"evil" not in answer


def same_origin_expectations(port: int) -> dict[str | None, int]:
    """What the default policy answers a client of ws://127.0.0.1:PORT/ for each Origin."""
    other = port + 1 if port < 65535 else port - 1
    return {
        None: 101,  # no Origin: not a browser (RFC 6455 §4.2.1 item 7)
        f"http://127.0.0.1:{port}": 101,  # the page this server served
        f"https://127.0.0.1:{port}": 101,  # scheme not compared (TLS ended by a proxy)
        f"HTTP://127.0.0.1:{port}": 101,
        f"http://127.0.0.1:{other}": 403,  # another port is another origin
        "http://127.0.0.1": 403,  # port 80
        f"http://localhost:{port}": 403,  # hosts compare as written, no DNS
        f"http://127.0.0.1.evil.test:{port}": 403,
        f"http://evil.test/127.0.0.1:{port}": 403,
        f"http://127.0.0.1:{port}/": 403,  # not a serialized origin
        f"http://user@127.0.0.1:{port}": 403,
        f"ws://127.0.0.1:{port}": 403,  # browsers send the page's http(s) origin
        "https://anything.test": 403,
        "null": 403,  # sandboxed frames, file:// pages
    }


async def test_default_origins_same_origin_only() -> None:
    """CSWSH: by default a page of another origin can't open a WebSocket; others can."""
    async with wsjet.serve(echo, "127.0.0.1", 0) as server:
        port = port_of(server)
        for origin, status in same_origin_expectations(port).items():
            assert await origin_status(port, origin) == status, origin


async def test_default_same_origin_through_the_callback_face() -> None:
    socket = wsjet.WebSocketServer("127.0.0.1", 0)

    @socket.connection
    async def on_connection(client: wsjet.Client) -> None:
        @client.message
        async def on_message(reader: wsjet.WebSocketReader) -> None:
            await client.writer.send(await reader.get())

    async with socket as server:
        port = server.sockets[0].getsockname()[1]
        for origin, status in same_origin_expectations(port).items():
            assert await origin_status(port, origin) == status, origin


async def test_default_origins_compare_host_and_port_with_the_host_header() -> None:
    async with wsjet.serve(echo, "127.0.0.1", 0) as server:
        port = port_of(server)
        expected = [
            ("chat.example", "https://chat.example", 101),
            ("chat.example:443", "https://chat.example", 101),  # default ports filled in
            ("chat.example", "https://chat.example:443", 101),
            ("chat.example", "http://chat.example", 101),
            ("chat.example:80", "http://chat.example", 101),
            ("CHAT.Example", "https://chat.EXAMPLE", 101),  # hosts are case-insensitive
            ("[::1]:8443", "https://[::1]:8443", 101),
            ("chat.example:8443", "https://chat.example:8443", 101),
            ("chat.example", "https://chat.example:8443", 403),
            ("chat.example:8443", "https://chat.example", 403),
            ("chat.example:80", "https://chat.example", 403),  # https means 443
            ("chat.example", "https://api.chat.example", 403),  # no subdomains
            ("api.chat.example", "https://chat.example", 403),
            ("chat.example", "https://chat.example.", 403),
            ("chat.example", "https://evil.example", 403),
        ]
        for host, origin, status in expected:
            answer = await raw_request(port, f"Origin: {origin}", host=host)
            assert answer.startswith(b"HTTP/1.1 %d " % status), (host, origin, answer[:40])


async def test_any_origin_opt_out_accepts_every_origin() -> None:
    async with wsjet.serve(echo, "127.0.0.1", 0, origins=wsjet.ANY_ORIGIN) as server:
        port = port_of(server)
        for origin in [*same_origin_expectations(port), "https://evil.test", "null"]:
            assert await origin_status(port, origin) == 101, origin
        # Several Origin headers are refused with any other policy, not this one.
        answer = await raw_request(port, "Origin: https://a.test", "Origin: https://b.test")
        assert answer.startswith(b"HTTP/1.1 101 ")


async def test_default_403_is_a_fixed_sentence() -> None:
    async with wsjet.serve(echo, "127.0.0.1", 0) as server:
        answer = await raw_request(port_of(server), "Origin: https://<evil>.test")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert body == b"Failed to open a WebSocket connection: origin not allowed.\n"


async def test_several_origin_headers_are_refused() -> None:
    """RFC 6454 §7.3: one Origin at most; a second one must not slip past the check."""
    async with wsjet.serve(echo, "127.0.0.1", 0) as server:
        port = port_of(server)
        same = f"Origin: http://127.0.0.1:{port}"
        assert (await raw_request(port, same, host=f"127.0.0.1:{port}")).startswith(
            b"HTTP/1.1 101 "
        )
        for pair in [(same, "Origin: https://evil.test"), ("Origin: https://evil.test", same)]:
            answer = await raw_request(port, *pair, host=f"127.0.0.1:{port}")
            assert answer.startswith(b"HTTP/1.1 403 "), pair
    async with wsjet.serve(echo, "127.0.0.1", 0, origins=["https://a.test"]) as server:
        answer = await raw_request(port_of(server), "Origin: https://a.test", same)
        assert answer.startswith(b"HTTP/1.1 403 ")
        answer = await raw_request(port_of(server), "Origin: https://a.test")
        assert answer.startswith(b"HTTP/1.1 101 ")


async def test_origins_argument_checked() -> None:
    handler: Any = echo
    with pytest.raises(TypeError, match="ANY_ORIGIN"):
        await wsjet.serve(handler, "127.0.0.1", 0, origins="https://a.test")
    with pytest.raises(TypeError):
        await wsjet.serve(handler, "127.0.0.1", 0, origins="*")
    with pytest.raises(TypeError):
        await wsjet.serve(handler, "127.0.0.1", 0, origins=[wsjet.ANY_ORIGIN])
    with pytest.raises(TypeError):
        await wsjet.serve(handler, "127.0.0.1", 0, origins=[b"https://a.test"])
