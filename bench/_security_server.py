"""websockets or aiohttp under attack, in its own process, for ``bench/security_compare.py``.

``python bench/_security_server.py CONFIG``, where ``CONFIG`` is the JSON that
``tests.stress._server`` takes (``{"handler": NAME, "options": {...}, "params":
{...}}``) plus ``"library": "websockets" | "aiohttp"``. The options use wsjet's
keyword names; each library gets its nearest equivalent (table below). The
process speaks the same line protocol on stdin / stdout as
``tests/stress/_server.py`` (``stats``, ``trim``, ``reset_hwm``, ``close``,
``quit``), so the stress scenarios drive all three servers the same way.

=================  ===================================  =====================================
wsjet keyword      websockets 17 (asyncio.server.serve)  aiohttp 3.14 (web.WebSocketResponse)
=================  ===================================  =====================================
max_size           max_size                             max_msg_size
open_timeout       open_timeout                         AppRunner keepalive_timeout (closes a
                                                        connection that has not sent a whole
                                                        request; aiohttp has no open timeout)
close_timeout      close_timeout                        timeout (close handshake) and the
                                                        runner's shutdown_timeout
ping_interval      ping_interval (+ ping_timeout)       heartbeat
write_limit        write_limit                          writer_limit
compression        compression ("deflate" / None)       compress (True / False)
=================  ===================================  =====================================

``close`` is bounded here (``2 x close_timeout + 2`` s): websockets'
``wait_closed()`` waits for every handler, so a handler that ignores the close
would hang it; the answer then says ``"hung": true``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

# The command loop and the counters of wsjet's own stress server (run with the
# repository root on PYTHONPATH, as bench/_security_harness.py does).
from tests.stress._server import COUNTERS, LogCounter, count_loop_errors, serve_commands


def _close_cap(options: dict[str, Any]) -> float:
    close_timeout = options.get("close_timeout")
    return 2 * float(close_timeout if close_timeout is not None else 10) + 2


def _count_send() -> None:
    COUNTERS["sends"] += 1
    COUNTERS["last_send"] = time.monotonic()


class _Running:
    """What the command loop needs from a library's server."""

    def __init__(
        self,
        port: int,
        connections: Callable[[], int],
        close: Callable[[], Awaitable[None]],
    ) -> None:
        self.port = port
        self.connections = connections
        self.close = close


# --- websockets ---------------------------------------------------------------------------


async def _start_websockets(handler: str, options: dict[str, Any], params: dict[str, Any]) -> Any:
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed

    size = int(params.get("size", 65536 if handler == "producer" else 1024))
    count = int(params.get("count", 10))

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async def producer(ws: ServerConnection) -> None:
        chunk = b"x" * size
        with contextlib.suppress(ConnectionClosed):
            while True:
                await ws.send(chunk)
                _count_send()

    async def ten(ws: ServerConnection) -> None:
        for i in range(count):
            await ws.send(f"{i:06d}".ljust(size, "."))
        COUNTERS["sent_all"] += 1
        if ws.request is not None and ws.request.path == "/stubborn":
            await asyncio.sleep(3600)
        async for _ in ws:
            pass

    async def closer(ws: ServerConnection) -> None:
        await ws.close()

    async def sink(ws: ServerConnection) -> None:
        await ws.wait_closed()

    handlers = {"echo": echo, "producer": producer, "ten": ten, "closer": closer, "sink": sink}
    keywords: dict[str, Any] = {"backlog": 1024}
    for name in (
        "max_size",
        "max_queue",
        "open_timeout",
        "close_timeout",
        "ping_interval",
        "ping_timeout",
        "write_limit",
        "compression",
    ):
        if name in options:
            keywords[name] = options[name]
    server = await serve(handlers[handler], "127.0.0.1", 0, **keywords)
    cap = _close_cap(options)

    async def close() -> None:
        server.close()
        await asyncio.wait_for(server.wait_closed(), cap)

    port = next(iter(server.sockets)).getsockname()[1]
    # One handler task per TCP connection, from accept to the end of the handler:
    # the analogue of wsjet's Server.connections (open and opening connections).
    return _Running(port, lambda: len(server.handler_tasks), close)


# --- aiohttp ------------------------------------------------------------------------------


async def _start_aiohttp(handler: str, options: dict[str, Any], params: dict[str, Any]) -> Any:
    from aiohttp import WSCloseCode, WSMsgType, web

    size = int(params.get("size", 65536 if handler == "producer" else 1024))
    count = int(params.get("count", 10))
    sockets: set[web.WebSocketResponse] = set()
    close_timeout = options.get("close_timeout", 10.0)
    open_timeout = options.get("open_timeout", 10.0)

    def response() -> web.WebSocketResponse:
        keywords: dict[str, Any] = {
            "max_msg_size": options.get("max_size", 1 << 20) or 0,
            "compress": options.get("compression", "deflate") is not None,
            "heartbeat": options.get("ping_interval"),
        }
        if close_timeout is not None:
            keywords["timeout"] = close_timeout
        if "write_limit" in options:
            keywords["writer_limit"] = options["write_limit"]
        return web.WebSocketResponse(**keywords)

    async def serve_one(
        request: web.Request, body: Callable[[web.WebSocketResponse], Awaitable[None]]
    ) -> web.WebSocketResponse:
        ws = response()
        await ws.prepare(request)
        sockets.add(ws)
        try:
            await body(ws)
        finally:
            sockets.discard(ws)
        return ws

    async def echo(ws: web.WebSocketResponse) -> None:
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                await ws.send_str(message.data)
            elif message.type == WSMsgType.BINARY:
                await ws.send_bytes(message.data)

    async def producer(ws: web.WebSocketResponse) -> None:
        chunk = b"x" * size
        with contextlib.suppress(ConnectionError):
            while not ws.closed:
                await ws.send_bytes(chunk)
                _count_send()

    def ten(path: str) -> Callable[[web.WebSocketResponse], Awaitable[None]]:
        async def body(ws: web.WebSocketResponse) -> None:
            for i in range(count):
                await ws.send_str(f"{i:06d}".ljust(size, "."))
            COUNTERS["sent_all"] += 1
            if path == "/stubborn":
                await asyncio.sleep(3600)
            async for _ in ws:
                pass

        return body

    async def closer(ws: web.WebSocketResponse) -> None:
        await ws.close()

    async def handle(request: web.Request) -> web.StreamResponse:
        if handler == "ten":
            return await serve_one(request, ten(request.path))
        bodies = {"echo": echo, "producer": producer, "closer": closer}
        return await serve_one(request, bodies[handler])

    async def going_away(app: web.Application) -> None:
        # aiohttp's documented shutdown pattern: close every WebSocket with 1001.
        await asyncio.gather(
            *(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown") for ws in sockets),
            return_exceptions=True,
        )

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    app.on_shutdown.append(going_away)
    runner_options: dict[str, Any] = {"access_log": None}
    if open_timeout is not None:
        # From connection_made until a whole request has arrived (aiohttp >= 3.12).
        runner_options["keepalive_timeout"] = open_timeout
    if close_timeout is not None:
        runner_options["shutdown_timeout"] = close_timeout
    runner = web.AppRunner(app, **runner_options)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    server = runner.server
    assert server is not None
    port = runner.addresses[0][1]
    cap = _close_cap(options)

    async def close() -> None:
        await asyncio.wait_for(runner.cleanup(), cap)

    return _Running(port, lambda: len(server.connections), close)


# --- the command loop: tests/stress/_server.py's ------------------------------------------


async def main(config: dict[str, Any]) -> None:
    library = config["library"]
    # On the root logger only: every library logger propagates there, and a
    # record is counted once.
    logging.getLogger().addHandler(LogCounter())
    logging.getLogger(library).setLevel(logging.INFO)
    count_loop_errors(asyncio.get_running_loop())
    start = {"websockets": _start_websockets, "aiohttp": _start_aiohttp}[library]
    options = dict(config.get("options", {}))
    running = await start(config["handler"], options, dict(config.get("params", {})))
    print(json.dumps({"port": running.port, "pid": os.getpid()}), flush=True)
    closed = False

    async def close() -> dict[str, Any]:
        nonlocal closed
        began = time.monotonic()
        hung = False
        try:
            if not closed:
                closed = True
                await running.close()
        except TimeoutError:
            hung = True
        return {"elapsed": time.monotonic() - began, "hung": hung}

    await serve_commands(running.connections, close)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(close(), 5)
    sys.stdout.flush()
    # A handler that ignored the close may still be sleeping: leave without waiting for it.
    os._exit(0)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
