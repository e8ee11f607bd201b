"""Environment overrides of the default limits (docs/security.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from websockets.asyncio.client import connect as ws_connect

import wsjet
from wsjet.extensions import offer_client


def run_with_env(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WSJET_")}
    return subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True
    )


def test_built_in_defaults() -> None:
    result = run_with_env(
        "from wsjet.core import defaults as d\n"
        "print(d.MAX_SIZE, d.MAX_QUEUE, d.MAX_LINE, d.PING_INTERVAL, d.MAX_CONNECTIONS,\n"
        "      d.COMPRESSION, d.ORIGINS, d.MAX_NEGOTIATION_BYTES)"
    )
    assert result.stdout.split() == [
        "1048576", "32", "8192", "20.0", "None", "deflate", "None", "4096"
    ]  # fmt: skip


def test_overrides_reach_the_api() -> None:
    code = (
        "import inspect, wsjet, wsjet.server\n"
        "from wsjet.core.http import HTTPLimits\n"
        "p = inspect.signature(wsjet.WebSocketCommonProtocol.__init__).parameters\n"
        "print(p['max_size'].default, p['max_queue'].default, p['ping_interval'].default,\n"
        "      p['max_fragments'].default, HTTPLimits().max_headers, wsjet.server.SHUTDOWN_GRACE)"
    )
    result = run_with_env(
        code,
        WSJET_MAX_SIZE="none",
        WSJET_MAX_QUEUE="4",
        WSJET_PING_INTERVAL="none",
        WSJET_MAX_FRAGMENTS="1000",
        WSJET_MAX_HEADERS="16",
        WSJET_SHUTDOWN_GRACE="0.5",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["None", "4", "None", "1000", "16", "0.5"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WSJET_MAX_SIZE", "1MB"),
        ("WSJET_CLOSE_TIMEOUT", "-1"),
        ("WSJET_PING_TIMEOUT", "nan"),
        ("WSJET_COMPRESSION", "zstd"),
        ("WSJET_COMPRESSION", "on"),
        ("WSJET_ORIGINS", "*,https://a.test"),
        ("WSJET_ORIGINS", "re:("),
        ("WSJET_MAX_NEGOTIATION_BYTES", "4k"),
    ],
)
def test_bad_values_fail_at_import_naming_the_variable(name: str, value: str) -> None:
    result = run_with_env("import wsjet.core.defaults", **{name: value})
    assert result.returncode != 0
    assert name in result.stderr and "ValueError" in result.stderr


async def test_max_fragments_keyword() -> None:
    async def echo(ws: wsjet.WebSocketServerProtocol) -> None:
        async for message in ws:
            await ws.send(message)

    # websockets sends an iterable as one frame per item plus a final empty frame.
    async with wsjet.serve(echo, "127.0.0.1", 0, max_fragments=4) as server:
        port = server.sockets[0].getsockname()[1]
        async with ws_connect(f"ws://127.0.0.1:{port}/") as client:
            await client.send(["a", "b", "c"])
            assert await client.recv() == "abc"
            await client.send(["a", "b", "c", "d"])
            await client.wait_closed()
        assert client.close_code == 1009


# A server with default options and wsjet clients, in a child process with the
# environment under test: what each client got (101, or the HTTP status).
PROBE = """
import asyncio, json, sys
import wsjet

async def idle(ws):
    await ws.wait_closed()

async def status(uri, **options):
    try:
        async with wsjet.connect(uri, **options) as client:
            return [101, client.request_headers.get("Sec-WebSocket-Extensions"),
                    client.response_headers.get("Sec-WebSocket-Extensions")]
    except wsjet.InvalidStatus as exc:
        return [exc.status_code]

async def main():
    server_options = json.loads(sys.argv[1])
    if server_options.pop("any_origin", False):
        server_options["origins"] = wsjet.ANY_ORIGIN
    clients = json.loads(sys.argv[2])
    async with wsjet.serve(idle, "127.0.0.1", 0, **server_options) as server:
        port = server.sockets[0].getsockname()[1]
        uri = f"ws://127.0.0.1:{port}/"
        results = []
        for options in clients:
            if options.get("origin") == "SAME":
                options["origin"] = f"http://127.0.0.1:{port}"
            results.append(await status(uri, **options))
        print(json.dumps(results))

asyncio.run(main())
"""


def probe(server: dict[str, Any], clients: list[dict[str, Any]], **env: str) -> list[Any]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WSJET_")}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(server), json.dumps(clients)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    answer: list[Any] = json.loads(result.stdout)
    return answer


DEFLATE_OFFER = offer_client("deflate")


def test_compression_override() -> None:
    """WSJET_COMPRESSION=none turns deflate off in both roles; compression= wins."""
    clients: list[dict[str, Any]] = [{}, {"compression": "deflate"}]
    default, client_kw = probe({}, clients)
    assert default[0] == 101 and default[1].startswith("permessage-deflate")
    assert default[2].startswith("permessage-deflate")
    for value in ("none", "NONE", ""):
        default, client_kw = probe({}, clients, WSJET_COMPRESSION=value)
        assert default == [101, None, None]  # neither offered nor accepted
        assert client_kw[:2] == [101, DEFLATE_OFFER] and client_kw[2] is None  # server: off
    ((_, offered, accepted),) = probe(
        {"compression": "deflate"}, [{"compression": "deflate"}], WSJET_COMPRESSION="none"
    )
    assert offered == DEFLATE_OFFER and accepted.startswith("permessage-deflate")
    ((_, offered, accepted),) = probe({}, [{}], WSJET_COMPRESSION=" Deflate ")
    assert offered == DEFLATE_OFFER and accepted.startswith("permessage-deflate")


ORIGIN_CLIENTS: list[dict[str, Any]] = [
    {},  # no Origin
    {"origin": "SAME"},  # http://127.0.0.1:PORT, the server's own origin
    {"origin": "https://a.test"},
    {"origin": "https://chat.b.test"},
    {"origin": "https://chat.b.test.evil"},
    {"origin": "https://evil.test"},
]


def statuses(results: list[Any]) -> list[int]:
    return [result[0] for result in results]


def test_origins_override() -> None:
    """WSJET_ORIGINS: an allow-list (exact, re:, none), '*', or unset (same origin)."""
    assert statuses(probe({}, ORIGIN_CLIENTS)) == [101, 101, 403, 403, 403, 403]
    allow = r"https://a.test, re:https://([a-z]+\.)?b\.test ,none"
    assert statuses(probe({}, ORIGIN_CLIENTS, WSJET_ORIGINS=allow)) == [
        101, 403, 101, 101, 403, 403
    ]  # fmt: skip
    without_none = "https://a.test"
    assert statuses(probe({}, ORIGIN_CLIENTS, WSJET_ORIGINS=without_none)) == [
        403, 403, 101, 403, 403, 403
    ]  # fmt: skip
    assert statuses(probe({}, ORIGIN_CLIENTS, WSJET_ORIGINS="")) == [
        101, 403, 403, 403, 403, 403
    ]  # fmt: skip
    assert statuses(probe({}, ORIGIN_CLIENTS, WSJET_ORIGINS=" * ")) == [101] * 6
    # The keyword wins: origins=None is the same-origin policy whatever the environment.
    assert statuses(probe({"origins": None}, ORIGIN_CLIENTS, WSJET_ORIGINS="*")) == [
        101, 101, 403, 403, 403, 403
    ]  # fmt: skip
    assert statuses(probe({"any_origin": True}, ORIGIN_CLIENTS, WSJET_ORIGINS="none")) == (
        [101] * 6
    )


def test_max_negotiation_bytes_override() -> None:
    clients: list[dict[str, Any]] = [
        {"subprotocols": ["p" * 100], "compression": None},
        {"subprotocols": ["p" * 101], "compression": None},
        {"subprotocols": ["p" * 50, "q" * 48], "compression": None},  # "p..., q...": 100
    ]
    assert statuses(probe({}, clients)) == [101, 101, 101]
    assert statuses(probe({}, clients, WSJET_MAX_NEGOTIATION_BYTES="100")) == [101, 431, 101]
    # The client's own deflate offer counts too: 125 bytes.
    assert statuses(probe({}, [{}], WSJET_MAX_NEGOTIATION_BYTES="100")) == [431]
    result = run_with_env(
        "from wsjet.core.http import HTTPLimits\nprint(HTTPLimits().max_negotiation_bytes)",
        WSJET_MAX_NEGOTIATION_BYTES="100",
    )
    assert result.stdout.split() == ["100"]
