"""Interop with Node's `ws` (pinned by tests/node/package-lock.json), both ways.

* `ws` as a client (tests/node/client.js) against a wsjet server;
* `ws` as a server (tests/node/server.js) for the wsjet client.

Covered: text, binary, fragmented messages (``ws.send(data, {fin: false})``),
ping/pong, close codes, subprotocols and permessage-deflate (checked on the
wire: the peer's socket byte counters). The JS peers print JSON lines.

Needs Node.js and ``npm ci --prefix tests/node`` (``scripts/install-system-deps.sh``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

import wsjet

NODE_DIR = Path(__file__).parent / "node"
#: Deadlock guard for one Node peer run.
PATIENCE = 60.0


@pytest.fixture(scope="module")
def node() -> str:
    """The node executable, with `ws` installed from the lock file."""
    executable = shutil.which("node")
    if executable is None:
        pytest.fail("node is not installed: install Node.js >= 18 (Debian: apt-get install nodejs)")
    if not (NODE_DIR / "node_modules" / "ws" / "package.json").is_file():
        pytest.fail("Node's ws is missing: run `npm ci --prefix tests/node` "
                    "(scripts/install-system-deps.sh does)")  # fmt: skip
    version = json.loads((NODE_DIR / "node_modules" / "ws" / "package.json").read_text())
    locked = json.loads((NODE_DIR / "package-lock.json").read_text())
    assert version["version"] == locked["packages"]["node_modules/ws"]["version"]
    return executable


def compressible_text(size: int) -> str:
    """Text that deflate shrinks a lot (the same recipe as tests/node/common.js)."""
    words = ["wsjet", "node", "deflate", "frame", "window", "inflate", "socket", "message"]
    parts: list[str] = []
    length = 0
    i = 0
    while length < size:
        part = f"{words[(i * 7 + (i >> 3)) % len(words)]}{i % 97} "
        parts.append(part)
        length += len(part)
        i += 1
    return "".join(parts)[:size]


# --- ws client -> wsjet server ----------------------------------------------------------


async def test_ws_client_against_wsjet_server(node: str) -> None:
    closes: dict[str, list[tuple[int | None, str | None]]] = {"/echo": [], "/ping": []}
    pongs: list[float] = []

    async def handler(ws: wsjet.WebSocketServerProtocol, path: str) -> None:
        if path == "/echo":
            try:
                async for message in ws:
                    await ws.send(message)
            except wsjet.ConnectionClosed as exc:
                closes[path].append((exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, None))
            else:
                closes[path].append((1000, None))
        elif path == "/ping":
            pongs.append(await ws.ping(b"wsjet-ping"))
            await ws.send("pong received")
            async for _ in ws:
                pass
        elif path == "/close":
            code = int(await ws.recv())
            await ws.close(code, "bye from wsjet")

    async with wsjet.serve(handler, "127.0.0.1", 0, subprotocols=["interop.v1"]) as server:
        port = server.sockets[0].getsockname()[1]
        process = await asyncio.create_subprocess_exec(
            node,
            str(NODE_DIR / "client.js"),
            str(port),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), PATIENCE)
    steps = {line["step"]: line for line in map(json.loads, out.decode().splitlines())}
    assert process.returncode == 0 and "error" not in steps, (steps.get("error"), err.decode())
    assert "done" in steps

    assert steps["open"]["extensions"] == "permessage-deflate"
    assert steps["open"]["protocol"] == "interop.v1"
    for result in steps["text"]["results"]:
        assert result["back"] == result["sent"] and result["isBinary"] is False
    assert [r["length"] for r in steps["binary"]["results"]] == [4, 0, 100_000]
    for result in steps["binary"]["results"]:
        assert result["same"] is True and result["isBinary"] is True

    fragmented = steps["fragmented"]
    assert fragmented["text"] == "fragmented" and fragmented["textIsBinary"] is False
    assert fragmented["binary"] == [1, 2, 3, 4, 5] and fragmented["binaryIsBinary"] is True
    assert fragmented["bigSame"] is True

    compression = steps["compression"]
    assert compression["same"] is True
    # Both directions crossed the wire deflated: far fewer bytes than the 200 kB message
    # (wsjet's server asks for 4 KiB windows, so it compresses less than ws does).
    assert compression["wireWritten"] < compression["size"] // 2
    assert compression["wireRead"] < compression["size"] // 2

    assert steps["ping"]["pong"] == "node-ping"
    # wsjet's closing frame echoes the code (RFC 6455 §5.5.1), not the reason.
    assert steps["client-close"]["code"] == 4000
    assert closes["/echo"][0] == (4000, "bye from node")

    assert steps["server-ping"] == {
        "step": "server-ping",
        "ping": "wsjet-ping",
        "after": "pong received",
    }
    assert len(pongs) == 1 and pongs[0] >= 0
    for result in steps["server-close"]["results"]:
        assert result["code"] == result["wanted"]
        assert result["reason"] == "bye from wsjet"
    assert [r["code"] for r in steps["server-close"]["results"]] == [1000, 1001, 3000, 4999]

    assert steps["no-compression"] == {"step": "no-compression", "extensions": "", "back": "plain"}


# --- wsjet client -> ws server ----------------------------------------------------------


class NodeServer:
    """tests/node/server.js, running: its port and the events it printed."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.port = port
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.events.append(json.loads(line))
            self._changed.set()

    async def event(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Wait for an event that ``predicate`` accepts."""

        async def wait() -> dict[str, Any]:
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                if self._reader.done():
                    raise AssertionError(f"server.js ended; events: {self.events}")
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(wait(), PATIENCE)

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"


@pytest.fixture
async def node_server(node: str) -> AsyncIterator[NodeServer]:
    process = await asyncio.create_subprocess_exec(
        node,
        str(NODE_DIR / "server.js"),
        "0",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stdin is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), PATIENCE)
        ready = json.loads(line)
        assert ready["event"] == "listening", line
        server = NodeServer(process, ready["port"])
        yield server
        assert not [e for e in server.events if e["event"] == "error"], server.events
    finally:
        process.stdin.close()  # server.js stops when its stdin ends
        with contextlib.suppress(ProcessLookupError):
            await asyncio.wait_for(process.wait(), PATIENCE)
        if process.returncode is None:  # pragma: no cover - only when server.js hangs
            process.kill()
            await process.wait()
    assert process.returncode == 0
    await server._reader


MESSAGES: list[str | bytes] = [
    "hello",
    "café ☕ 𝄞",
    "",
    b"\x00\x01\xff",
    b"",
    os.urandom(100_000),
    "x" * 70_000,
]


async def test_wsjet_client_echo_against_ws_server(node_server: NodeServer) -> None:
    async with wsjet.connect(node_server.url("/echo"), subprotocols=["interop.v1"]) as ws:
        assert ws.subprotocol == "interop.v1"
        assert "permessage-deflate" in ws.response_headers["Sec-WebSocket-Extensions"]
        for message in MESSAGES:
            await ws.send(message)
            assert await ws.recv() == message
        # Fragmented: ws reassembles the frames into one message and echoes it.
        await ws.send(["frag", "ment", "ed"])
        assert await ws.recv() == "fragmented"
        await ws.send([b"\x01\x02", b"\x03", b"\x04\x05"])
        assert await ws.recv() == b"\x01\x02\x03\x04\x05"
        big = compressible_text(150_000)
        await ws.send([big[:50_000], big[50_000:100_000], big[100_000:]])
        assert await ws.recv() == big
        # Ping with a payload: ws answers, and reports what it saw.
        latency = await ws.ping(b"wsjet-ping")
        assert latency >= 0
        await node_server.event(lambda e: e["event"] == "ping" and e["data"] == "wsjet-ping")
        await ws.close(4002, "bye from wsjet")
    assert ws.close_code == 4002  # ws echoes the code in its close frame
    close = await node_server.event(lambda e: e["event"] == "close" and e["path"] == "/echo")
    assert (close["code"], close["reason"]) == (4002, "bye from wsjet")


async def test_wsjet_client_compression_on_the_wire(node_server: NodeServer) -> None:
    async with wsjet.connect(node_server.url("/echo")) as ws:
        await ws.send("stats")
        before = json.loads(await ws.recv())
        assert before["extensions"] == "permessage-deflate"
        payload = compressible_text(200_000)
        await ws.send(payload)
        assert await ws.recv() == payload
        await ws.send("stats")
        after = json.loads(await ws.recv())
    # ws's socket counters: the 200 kB message crossed the wire deflated both ways.
    assert after["bytesRead"] - before["bytesRead"] < len(payload) // 2
    assert after["bytesWritten"] - before["bytesWritten"] < len(payload) // 2


async def test_wsjet_client_without_compression(node_server: NodeServer) -> None:
    async with wsjet.connect(node_server.url("/echo"), compression=None) as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response_headers
        await ws.send("stats")
        assert json.loads(await ws.recv())["extensions"] == ""
        await ws.send(b"raw")
        assert await ws.recv() == b"raw"


async def test_wsjet_client_receives_fragmented_messages(node_server: NodeServer) -> None:
    async with wsjet.connect(node_server.url("/fragments")) as ws:
        assert await ws.recv() == "fragmented"
        assert await ws.recv() == b"\x01\x02\x03\x04\x05"
        assert await ws.recv() == compressible_text(150_000)
        assert await ws.recv() == "done"


async def test_wsjet_client_answers_pings(node_server: NodeServer) -> None:
    async with wsjet.connect(node_server.url("/ping")) as ws:
        assert await ws.recv() == "pong:node-ping"


@pytest.mark.parametrize("code", [1000, 1001, 3000, 4999])
async def test_wsjet_client_sees_close_codes(node_server: NodeServer, code: int) -> None:
    async with wsjet.connect(node_server.url(f"/close/{code}")) as ws:
        expected = wsjet.ConnectionClosedOK if code in (1000, 1001) else wsjet.ConnectionClosedError
        with pytest.raises(expected) as info:
            await ws.recv()
        assert info.value.rcvd is not None
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (code, "bye from node")
        await ws.wait_closed()
    assert ws.close_code == code
    assert ws.close_reason == "bye from node"
