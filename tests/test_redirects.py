"""connect() follows redirects: at most 10, credentials kept only within one origin."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.http11 import Request as WsRequest
from websockets.http11 import Response as WsResponse

import wsjet
from wsjet.core.http import Headers, Request, Response


def port_of(server: wsjet.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


def redirect(status: int, location: str) -> Response:
    return Response(status, "Redirect", Headers([("Location", location), ("Content-Length", "0")]))


async def report(ws: wsjet.WebSocketServerProtocol) -> None:
    """Send the request path and headers back as JSON."""
    headers = {name.lower(): value for name, value in ws.request_headers.items()}
    await ws.send(json.dumps({"path": ws.path, "headers": headers}))


class Redirector:
    """A wsjet server answering each request with ``rule(path)``: a redirect, or None."""

    def __init__(self, rule: Callable[[str], Response | None], **options: Any) -> None:
        self.rule = rule
        self.options = options
        self.requests: list[tuple[str, dict[str, str]]] = []

    def process_request(
        self, ws: wsjet.WebSocketServerProtocol, request: Request
    ) -> Response | None:
        self.requests.append((request.path, {k.lower(): v for k, v in request.headers.items()}))
        return self.rule(request.path)

    def serve(self) -> wsjet.serve:
        return wsjet.serve(
            report, "127.0.0.1", 0, process_request=self.process_request, **self.options
        )


@pytest.fixture
async def final() -> AsyncIterator[tuple[Redirector, int]]:
    """The server redirects end at: it never redirects and reports what it got."""
    target = Redirector(lambda path: None)
    async with target.serve() as server:
        yield target, port_of(server)


async def test_same_origin_redirect_keeps_credentials() -> None:
    def rule(path: str) -> Response | None:
        return redirect(302, "/new?x=1") if path == "/old" else None

    redirector = Redirector(rule)
    async with redirector.serve() as server:
        port = port_of(server)
        headers = {"Cookie": "session=1", "X-Trace": "t"}
        async with wsjet.connect(f"ws://u:p@127.0.0.1:{port}/old", extra_headers=headers) as ws:
            report = json.loads(await ws.recv())
    assert report["path"] == "/new?x=1"
    assert report["headers"]["cookie"] == "session=1"
    assert report["headers"]["authorization"] == "Basic dTpw"  # u:p
    assert [path for path, _ in redirector.requests] == ["/old", "/new?x=1"]


async def test_cross_origin_redirect_drops_credentials(final: tuple[Redirector, int]) -> None:
    _, target_port = final
    # localhost and 127.0.0.1 are different origins even on the same port number.
    for location in (
        f"ws://127.0.0.1:{target_port}/landed",
        f"ws://localhost:{target_port}/landed",
    ):
        redirector = Redirector(lambda path: redirect(307, location))  # noqa: B023
        async with redirector.serve() as server:
            port = port_of(server)
            headers = {"Cookie": "session=1", "Authorization": "Bearer t0ken", "X-Trace": "t"}
            uri = f"ws://127.0.0.1:{port}/start"
            async with wsjet.connect(uri, extra_headers=headers) as ws:
                report = json.loads(await ws.recv())
            assert report["path"] == "/landed"
            assert "cookie" not in report["headers"] and "authorization" not in report["headers"]
            assert report["headers"]["x-trace"] == "t"
            # The first server got them: it is the origin they were meant for.
            assert redirector.requests[0][1]["authorization"] == "Bearer t0ken"
            # Credentials from the URI aren't carried over either.
            async with wsjet.connect(f"ws://u:p@127.0.0.1:{port}/start") as ws:
                report = json.loads(await ws.recv())
            assert "authorization" not in report["headers"]


async def test_dropped_credentials_stay_dropped() -> None:
    """A → B → A: what was dropped for B is not sent back to A either."""
    hops: dict[str, str] = {}

    def rule_a(path: str) -> Response | None:
        return redirect(302, hops["a"]) if path == "/start" else None

    def rule_b(path: str) -> Response | None:
        return redirect(302, hops["b"])

    a, b = Redirector(rule_a), Redirector(rule_b)
    async with a.serve() as server_a, b.serve() as server_b:
        hops["a"] = f"ws://127.0.0.1:{port_of(server_b)}/b"
        hops["b"] = f"ws://127.0.0.1:{port_of(server_a)}/back"
        uri = f"ws://127.0.0.1:{port_of(server_a)}/start"
        async with wsjet.connect(uri, extra_headers={"Cookie": "c=1"}) as ws:
            report = json.loads(await ws.recv())
    assert report["path"] == "/back" and "cookie" not in report["headers"]
    assert "cookie" not in b.requests[0][1]


async def test_redirect_loop_capped_at_10() -> None:
    redirector = Redirector(lambda path: redirect(302, path))
    async with redirector.serve() as server:
        with pytest.raises(wsjet.TooManyRedirects) as info:
            await wsjet.connect(f"ws://127.0.0.1:{port_of(server)}/loop")
    assert len(redirector.requests) == 11  # the request, then 10 redirects followed
    assert isinstance(info.value, wsjet.InvalidStatus) and info.value.status_code == 302
    assert "10 redirects" in str(info.value)


async def test_max_redirects_option() -> None:
    chain = {"/": "/hop1", "/hop1": "/hop2", "/hop2": "/hop3"}

    def rule(path: str) -> Response | None:
        return redirect(301, chain[path]) if path in chain else None

    redirector = Redirector(rule)
    async with redirector.serve() as server:
        uri = f"ws://127.0.0.1:{port_of(server)}/"
        with pytest.raises(wsjet.TooManyRedirects):
            await wsjet.connect(uri, max_redirects=2)
        assert [path for path, _ in redirector.requests] == ["/", "/hop1", "/hop2"]
        async with wsjet.connect(uri, max_redirects=3) as ws:
            assert json.loads(await ws.recv())["path"] == "/hop3"
        with pytest.raises(wsjet.TooManyRedirects):
            await wsjet.connect(uri, max_redirects=0)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirect_statuses_and_http_locations(
    status: int, final: tuple[Redirector, int]
) -> None:
    _, target_port = final
    redirector = Redirector(
        lambda path: redirect(status, f"http://127.0.0.1:{target_port}/via-http")
    )
    async with (
        redirector.serve() as server,
        wsjet.connect(f"ws://127.0.0.1:{port_of(server)}/") as ws,
    ):
        assert json.loads(await ws.recv())["path"] == "/via-http"


async def test_not_followed() -> None:
    # A 3xx without Location is just an InvalidStatus; an invalid Location is refused.
    cases: list[tuple[Response, type[Exception]]] = [
        (Response(302, "Found", Headers([("Content-Length", "0")])), wsjet.InvalidStatus),
        (redirect(300, "/elsewhere"), wsjet.InvalidStatus),
        (redirect(302, "ftp://127.0.0.1/x"), wsjet.InvalidRedirect),
        (redirect(302, "ws://127.0.0.1:99999/"), wsjet.InvalidRedirect),
        (redirect(302, "ws://127.0.0.1/#fragment"), wsjet.InvalidRedirect),
    ]
    for response, error in cases:
        redirector = Redirector(lambda path: response)  # noqa: B023
        async with redirector.serve() as server:
            with pytest.raises(error) as info:
                await wsjet.connect(f"ws://127.0.0.1:{port_of(server)}/")
            if error is wsjet.InvalidStatus:
                assert not isinstance(info.value, wsjet.InvalidRedirect)


async def test_ws_to_wss_followed_wss_to_ws_refused(
    tls_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = tls_files
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    # The default context made for the wss:// hop trusts the test certificate.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    secure = Redirector(lambda path: None, ssl=server_context)
    async with secure.serve() as tls_server:
        tls_port = port_of(tls_server)
        upgrade = Redirector(lambda path: redirect(301, f"wss://localhost:{tls_port}/secure"))
        async with upgrade.serve() as plain_server:
            async with wsjet.connect(f"ws://127.0.0.1:{port_of(plain_server)}/") as ws:
                assert json.loads(await ws.recv())["path"] == "/secure"
                assert ws.transport is not None
                assert ws.transport.get_extra_info("sslcontext") is not None
            plain_port = port_of(plain_server)
            secure.rule = lambda path: redirect(302, f"ws://127.0.0.1:{plain_port}/")
            context = ssl.create_default_context(cafile=str(cert))
            with pytest.raises(wsjet.InvalidRedirect, match="downgrade"):
                await wsjet.connect(f"wss://localhost:{tls_port}/", ssl=context)
            assert len(upgrade.requests) == 1  # never went to the ws:// server


async def test_redirect_from_websockets_server(final: tuple[Redirector, int]) -> None:
    _, target_port = final

    def process_request(connection: ServerConnection, request: WsRequest) -> WsResponse | None:
        response = connection.respond(302, "")
        response.headers["Location"] = f"ws://127.0.0.1:{target_port}/from-websockets"
        return response

    async def never(ws: ServerConnection) -> None:  # pragma: no cover - never upgraded
        pass

    async with ws_serve(never, "127.0.0.1", 0, process_request=process_request) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with wsjet.connect(f"ws://127.0.0.1:{port}/") as ws:
            assert json.loads(await ws.recv())["path"] == "/from-websockets"


async def test_redirects_on_unix_socket(tmp_path: Path) -> None:
    def rule(path: str) -> Response | None:
        if path == "/same":
            return redirect(302, "/moved")
        if path == "/cross":
            return redirect(302, "ws://elsewhere.test/")
        return None

    redirector = Redirector(rule)
    path = str(tmp_path / "r.sock")
    async with wsjet.unix_serve(report, path, process_request=redirector.process_request):
        async with wsjet.unix_connect(path, "ws://localhost/same") as ws:
            assert json.loads(await ws.recv())["path"] == "/moved"
        with pytest.raises(wsjet.InvalidRedirect, match="Unix socket"):
            await wsjet.unix_connect(path, "ws://localhost/cross")
