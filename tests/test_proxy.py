"""connect(proxy=...): HTTP CONNECT and SOCKS5 proxies written here, on loopback.

The proxies are small asyncio servers: they record what they were asked and
relay bytes both ways, so the tests can check that a ``wss://`` session goes
through the tunnel encrypted end to end.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve

import wsjet
from wsjet.core.uri import parse_uri
from wsjet.proxy import InvalidProxy, Proxy, ProxyError, get_proxy, parse_proxy

from .utils import UNIT

# --- test peers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost, 127.0.0.1 and backend.test, made by openssl."""
    folder = tmp_path_factory.mktemp("proxy-tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,DNS:backend.test,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def server_tls(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*tls_files)
    return context


@pytest.fixture
def client_tls(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(tls_files[0]))


async def echo(ws: wsjet.WebSocketServerProtocol) -> None:
    async for message in ws:
        await ws.send(message)


def port_of(server: wsjet.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: bytearray) -> None:
    try:
        while data := await reader.read(65536):
            log += data
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


class RelayProxy:
    """Base of the test proxies: a loopback server relaying tunnels and recording them."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: set[asyncio.StreamWriter] = set()
        #: Bytes relayed from the client to the server, per tunnel.
        self.upstream: list[bytearray] = []
        #: Host names resolved by the proxy to 127.0.0.1 (names that don't resolve elsewhere).
        self.hosts = {"backend.test", "localhost", "127.0.0.1"}

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> RelayProxy:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0, ssl=ssl_context)
        return self

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()

    def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            await self.handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()
            self.writers.discard(writer)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def open_target(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        if host not in self.hosts:
            return None
        try:
            return await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return None

    async def relay(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        target: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        upstream = bytearray()
        self.upstream.append(upstream)
        self.writers.add(target[1])
        try:
            await asyncio.gather(
                pipe(reader, target[1], upstream), pipe(target[0], writer, bytearray())
            )
        finally:
            target[1].close()
            self.writers.discard(target[1])


@dataclasses.dataclass
class ConnectRequest:
    target: str
    headers: dict[str, str]


class ConnectProxy(RelayProxy):
    """An HTTP CONNECT proxy; with ``credentials``, it demands Proxy-Authorization."""

    def __init__(self, credentials: tuple[str, str] | None = None, mode: str = "relay") -> None:
        super().__init__()
        self.credentials = credentials
        self.mode = mode  # "relay", "silent" (never answers), "hangup", "chatty"
        self.requests: list[ConnectRequest] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")[:-2]
        method, target, _ = lines[0].split(" ")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        self.requests.append(ConnectRequest(target, headers))
        if self.mode == "silent":
            await reader.read()
            return
        if self.mode == "hangup":
            return
        if method != "CONNECT":
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        if self.credentials is not None:
            token = base64.b64encode(":".join(self.credentials).encode()).decode()
            if headers.get("proxy-authorization") != f"Basic {token}":
                writer.write(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                    b'Proxy-Authenticate: Basic realm="proxy"\r\nContent-Length: 0\r\n\r\n'
                )
                return
        host, _, port = target.rpartition(":")
        upstream = await self.open_target(host.strip("[]"), int(port))
        if upstream is None:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        # HTTP/1.0 status lines are common among proxies: accept them.
        writer.write(b"HTTP/1.0 200 Connection established\r\n\r\n")
        if self.mode == "chatty":
            writer.write(b"unexpected")
        await self.relay(reader, writer, upstream)


class Socks5Proxy(RelayProxy):
    """A SOCKS5 proxy (RFC 1928), with username/password authentication (RFC 1929)."""

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        super().__init__()
        self.credentials = credentials
        self.requests: list[tuple[int, str, int]] = []  # (address type, host, port)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        version, count = await reader.readexactly(2)
        assert version == 5
        methods = await reader.readexactly(count)
        wanted = 0x00 if self.credentials is None else 0x02
        if wanted not in methods:
            writer.write(b"\x05\xff")
            return
        writer.write(bytes([5, wanted]))
        if self.credentials is not None:
            _, length = await reader.readexactly(2)
            user = (await reader.readexactly(length)).decode()
            (length,) = await reader.readexactly(1)
            password = (await reader.readexactly(length)).decode()
            ok = (user, password) == self.credentials
            writer.write(b"\x01\x00" if ok else b"\x01\x01")
            if not ok:
                return
        _, command, _, kind = await reader.readexactly(4)
        if kind == 1:
            host = socket.inet_ntop(socket.AF_INET, await reader.readexactly(4))
        elif kind == 4:
            host = socket.inet_ntop(socket.AF_INET6, await reader.readexactly(16))
        else:
            (length,) = await reader.readexactly(1)
            host = (await reader.readexactly(length)).decode()
        port = int.from_bytes(await reader.readexactly(2), "big")
        self.requests.append((kind, host, port))
        upstream = await self.open_target(host, port) if command == 1 else None
        if upstream is None:
            writer.write(b"\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00")  # connection refused
            return
        writer.write(b"\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x00")
        await self.relay(reader, writer, upstream)


@contextlib.asynccontextmanager
async def running(
    proxy: RelayProxy, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[RelayProxy]:
    await proxy.start(ssl_context)
    try:
        yield proxy
    finally:
        await proxy.close()


@pytest.fixture
async def tls_echo(server_tls: ssl.SSLContext) -> AsyncIterator[int]:
    async with wsjet.serve(echo, "127.0.0.1", 0, ssl=server_tls) as server:
        yield port_of(server)


@pytest.fixture
async def plain_echo() -> AsyncIterator[int]:
    async with wsjet.serve(echo, "127.0.0.1", 0) as server:
        yield port_of(server)


# --- HTTP CONNECT ------------------------------------------------------------------------


async def test_wss_through_connect_proxy(tls_echo: int, client_tls: ssl.SSLContext) -> None:
    async with running(ConnectProxy()) as proxy:
        uri = f"wss://localhost:{tls_echo}/"
        async with wsjet.connect(uri, ssl=client_tls, proxy=f"http://127.0.0.1:{proxy.port}") as ws:
            await ws.send("through the tunnel")
            assert await ws.recv() == "through the tunnel"
            await ws.send(b"\x01" * 50_000)
            assert await ws.recv() == b"\x01" * 50_000
        assert isinstance(proxy, ConnectProxy)
        [request] = proxy.requests
        assert request.target == f"localhost:{tls_echo}"
        assert request.headers["host"] == f"localhost:{tls_echo}"
        assert request.headers["user-agent"].startswith("wsjet/")
        assert "proxy-authorization" not in request.headers
        # TLS inside the tunnel: the proxy relayed a TLS handshake record, never the upgrade.
        [upstream] = proxy.upstream
        assert upstream[:1] == b"\x16"
        assert b"Upgrade" not in upstream and b"through the tunnel" not in upstream


async def test_ws_through_connect_proxy_to_websockets_server() -> None:
    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        await ws.send(f"{ws.request.path} {ws.request.headers['Host']}")

    async with ws_serve(handler, "127.0.0.1", 0) as server, running(ConnectProxy()) as proxy:
        port = next(iter(server.sockets)).getsockname()[1]
        uri = f"ws://backend.test:{port}/hello?x=1"  # only the proxy knows this name
        async with wsjet.connect(uri, proxy=f"http://127.0.0.1:{proxy.port}") as ws:
            assert await ws.recv() == f"/hello?x=1 backend.test:{port}"
        assert b"GET /hello?x=1 HTTP/1.1" in proxy.upstream[0]


async def test_proxy_authentication(plain_echo: int) -> None:
    async with running(ConnectProxy(credentials=("pr oxy", "p@ss:wörd"))) as proxy:
        assert isinstance(proxy, ConnectProxy)
        uri = f"ws://127.0.0.1:{plain_echo}/"
        good = f"http://pr%20oxy:p%40ss%3Aw%C3%B6rd@127.0.0.1:{proxy.port}"
        async with wsjet.connect(uri, proxy=good) as ws:
            await ws.send("authenticated")
            assert await ws.recv() == "authenticated"
        token = base64.b64encode("pr oxy:p@ss:wörd".encode()).decode()
        assert proxy.requests[0].headers["proxy-authorization"] == f"Basic {token}"
        # The proxy's credentials never reach the server.
        assert b"Authorization" not in proxy.upstream[0]

        for bad in [
            f"http://127.0.0.1:{proxy.port}",
            f"http://pr%20oxy:nope@127.0.0.1:{proxy.port}",
        ]:
            with pytest.raises(ProxyError) as info:
                await wsjet.connect(uri, proxy=bad)
            assert info.value.status_code == 407
            assert info.value.response is not None
            assert info.value.response.headers["Proxy-Authenticate"] == 'Basic realm="proxy"'
            assert not info.value.transient
            assert "nope" not in str(info.value)


async def test_bad_gateway_is_a_transient_proxy_error() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        dead_port = free.getsockname()[1]
    async with running(ConnectProxy()) as proxy:
        with pytest.raises(ProxyError) as info:
            await wsjet.connect(
                f"ws://127.0.0.1:{dead_port}/", proxy=f"http://127.0.0.1:{proxy.port}"
            )
        assert info.value.status_code == 502 and info.value.transient
        assert isinstance(info.value, wsjet.InvalidHandshake)


async def test_proxy_misbehaving(plain_echo: int) -> None:
    uri = f"ws://127.0.0.1:{plain_echo}/"
    async with running(ConnectProxy(mode="hangup")) as proxy:
        with pytest.raises(ProxyError, match="closed the connection") as info:
            await wsjet.connect(uri, proxy=f"http://127.0.0.1:{proxy.port}")
        assert info.value.transient
    async with running(ConnectProxy(mode="chatty")) as proxy:
        with pytest.raises(ProxyError, match="data after its response"):
            await wsjet.connect(uri, proxy=f"http://127.0.0.1:{proxy.port}")
    async with running(ConnectProxy(mode="silent")) as proxy:
        with pytest.raises(TimeoutError):
            await wsjet.connect(uri, proxy=f"http://127.0.0.1:{proxy.port}", open_timeout=4 * UNIT)


async def test_unreachable_proxy_is_an_oserror(plain_echo: int) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        dead_port = free.getsockname()[1]
    for scheme in ("http", "socks5"):
        with pytest.raises(OSError):
            await wsjet.connect(
                f"ws://127.0.0.1:{plain_echo}/", proxy=f"{scheme}://127.0.0.1:{dead_port}"
            )


async def test_https_proxy_carries_wss(
    tls_echo: int, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    """TLS to the proxy, and TLS to the server inside it."""
    async with running(ConnectProxy(), ssl_context=server_tls) as proxy:
        async with wsjet.connect(
            f"wss://localhost:{tls_echo}/",
            ssl=client_tls,
            proxy=f"https://localhost:{proxy.port}",
            proxy_ssl=client_tls,
        ) as ws:
            await ws.send("tls in tls")
            assert await ws.recv() == "tls in tls"
            await ws.send("x" * 100_000)
            assert await ws.recv() == "x" * 100_000
        assert proxy.upstream[0][:1] == b"\x16"


async def test_https_proxy_carries_ws(
    plain_echo: int, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    async with running(ConnectProxy(), ssl_context=server_tls) as proxy:
        uri = f"ws://127.0.0.1:{plain_echo}/"
        proxy_uri = f"https://localhost:{proxy.port}"
        async with wsjet.connect(uri, proxy=proxy_uri, proxy_ssl=client_tls) as ws:
            await ws.send("plain in tls")
            assert await ws.recv() == "plain in tls"
        with pytest.raises(ssl.SSLCertVerificationError):
            await wsjet.connect(uri, proxy=proxy_uri)  # the default context doesn't trust it


# --- SOCKS5 ------------------------------------------------------------------------------


async def test_wss_through_socks5(tls_echo: int, client_tls: ssl.SSLContext) -> None:
    async with running(Socks5Proxy()) as proxy:
        assert isinstance(proxy, Socks5Proxy)
        uri = f"wss://127.0.0.1:{tls_echo}/"
        async with wsjet.connect(
            uri, ssl=client_tls, proxy=f"socks5://127.0.0.1:{proxy.port}"
        ) as ws:
            await ws.send("socks")
            assert await ws.recv() == "socks"
        assert proxy.requests == [(1, "127.0.0.1", tls_echo)]  # an IPv4 address
        assert proxy.upstream[0][:1] == b"\x16"


async def test_socks5h_lets_the_proxy_resolve_with_credentials(plain_echo: int) -> None:
    async with running(Socks5Proxy(credentials=("user", "secret"))) as proxy:
        assert isinstance(proxy, Socks5Proxy)
        uri = f"ws://backend.test:{plain_echo}/"
        async with wsjet.connect(uri, proxy=f"socks5h://user:secret@127.0.0.1:{proxy.port}") as ws:
            await ws.send("resolved remotely")
            assert await ws.recv() == "resolved remotely"
        assert proxy.requests == [(3, "backend.test", plain_echo)]  # a domain name
        with pytest.raises(ProxyError):
            await wsjet.connect(uri, proxy=f"socks5h://user:wrong@127.0.0.1:{proxy.port}")


async def test_socks5_refused_target_is_transient() -> None:
    async with running(Socks5Proxy()) as proxy:
        with pytest.raises(ProxyError) as info:
            await wsjet.connect("ws://unknown.test/", proxy=f"socks5h://127.0.0.1:{proxy.port}")
        assert info.value.transient


async def test_socks_without_python_socks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "python_socks", None)
    monkeypatch.setitem(sys.modules, "python_socks.async_.asyncio", None)
    with pytest.raises(ImportError, match=r"python-socks.*wsjet\[socks\]"):
        await wsjet.connect("ws://127.0.0.1:1/", proxy="socks5://127.0.0.1:1080")


# --- proxy URLs and the environment ------------------------------------------------------


def test_parse_proxy() -> None:
    assert parse_proxy("http://proxy.example") == Proxy("http", "proxy.example", 80)
    assert parse_proxy("https://proxy.example/") == Proxy("https", "proxy.example", 443)
    assert parse_proxy("SOCKS5H://[::1]:9050") == Proxy("socks5h", "::1", 9050)
    assert parse_proxy("http://u%40x:p%3A@h:3128") == Proxy("http", "h", 3128, "u@x", "p:")
    assert parse_proxy("http://u@h").password == ""
    assert "p%3A" not in repr(parse_proxy("http://u:p%3A@h"))
    for bad in [
        "ftp://h",
        "h:3128",
        "http://",
        "http://h/path",
        "http://h?q",
        "http://h#f",
        "http://h:99999",
        "http://h:0",
        "http://h\n",
    ]:
        with pytest.raises(InvalidProxy):
            parse_proxy(bad)
    with pytest.raises(InvalidProxy) as info:
        parse_proxy("ftp://user:hunter2@h")
    assert "hunter2" not in str(info.value)
    with pytest.raises(InvalidProxy):
        wsjet.connect("ws://h/", proxy="gopher://h")
    with pytest.raises(TypeError):
        wsjet.connect("ws://h/", proxy=False)  # type: ignore[arg-type]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("http", "https", "ws", "wss", "all", "no"):
        monkeypatch.delenv(f"{name}_proxy", raising=False)
        monkeypatch.delenv(f"{name.upper()}_PROXY", raising=False)
    monkeypatch.delenv("REQUEST_METHOD", raising=False)
    return monkeypatch


def test_get_proxy_from_environment(clean_env: pytest.MonkeyPatch) -> None:
    wss, ws = parse_uri("wss://example.com/"), parse_uri("ws://example.com:8080/")
    assert get_proxy(wss) is None and get_proxy(ws) is None
    clean_env.setenv("https_proxy", "http://secure-proxy:3128")
    clean_env.setenv("http_proxy", "http://plain-proxy:3128")
    assert get_proxy(wss) == "http://secure-proxy:3128"
    assert get_proxy(ws) == "http://plain-proxy:3128"
    clean_env.delenv("https_proxy")
    clean_env.setenv("ALL_PROXY", "socks5h://all-proxy:1080")
    assert get_proxy(wss) == "socks5h://all-proxy:1080"
    clean_env.setenv("no_proxy", "other.org,.example.com")
    assert get_proxy(wss) is None and get_proxy(ws) is None
    assert get_proxy(parse_uri("wss://example.org/")) == "socks5h://all-proxy:1080"
    clean_env.setenv("no_proxy", "*")
    assert get_proxy(parse_uri("wss://example.org/")) is None
    clean_env.delenv("no_proxy")
    for loopback in ("ws://localhost/", "ws://127.0.0.1:9/", "ws://[::1]/", "ws://a.localhost/"):
        assert get_proxy(parse_uri(loopback)) is None


async def test_connect_uses_environment_proxy(
    clean_env: pytest.MonkeyPatch, plain_echo: int
) -> None:
    async with running(ConnectProxy()) as proxy:
        assert isinstance(proxy, ConnectProxy)
        clean_env.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
        async with wsjet.connect(f"ws://backend.test:{plain_echo}/") as ws:
            await ws.send("via the environment")
            assert await ws.recv() == "via the environment"
        assert [r.target for r in proxy.requests] == [f"backend.test:{plain_echo}"]
        # Loopback targets go direct, and so does everything with proxy=None.
        async with wsjet.connect(f"ws://127.0.0.1:{plain_echo}/") as ws:
            await ws.send("direct")
            assert await ws.recv() == "direct"
        uri = f"ws://backend.test:{plain_echo}/"
        async with wsjet.connect(uri, proxy=None, host="127.0.0.1") as ws:
            await ws.send("direct too")
            assert await ws.recv() == "direct too"
        assert len(proxy.requests) == 1
