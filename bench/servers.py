"""Benchmark servers, one library per process: ``python bench/servers.py LIB [options]``.

Every server echoes each message back unchanged (``--mode echo``) or, in
``--mode fanout``, answers any message by sending a 100-byte binary message
to every connected client. Once listening it prints one JSON line,
``{"port": ..., "pid": ...}``, and serves until SIGTERM or SIGINT.

Libraries (``LIB``):

- ``wsjet-cb``: wsjet's callback face (``wsjet.server.WebSocketServer``);
- ``wsjet-co``: wsjet's coroutine face (``wsjet.serve``);
- ``picows``: picows' callback API (``ws_create_server`` + ``WSListener``);
- ``websockets``: ``websockets.asyncio.server.serve``;
- ``aiohttp``: ``aiohttp.web.WebSocketResponse``;
- ``raw``: an ``asyncio.BufferedProtocol`` TCP echo, no WebSocket at all (the
  ceiling; echo mode only).

Keepalive pings are off everywhere; every library accepts messages up to
16 MiB; ``--compression deflate`` lets the server accept permessage-deflate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import FANOUT_SIZE, MAX_SIZE, payload, pin, raise_fd_limit, run, say

LIBS = ("wsjet-cb", "wsjet-co", "picows", "websockets", "aiohttp", "raw")
BROADCAST = payload(FANOUT_SIZE)

# wsjet.broadcast() frames a message once for all receivers; without it (an
# older wsjet), the fan-out workload loops over send().
try:
    from wsjet.broadcast import broadcast as BROADCAST_HELPER
except ImportError:  # pragma: no cover - depends on the wsjet version
    BROADCAST_HELPER = None

#: How each server fans out, reported to the driver.
FANOUT_METHODS = {
    "wsjet-cb": "wsjet.broadcast(server.clients.values(), msg)"
    if BROADCAST_HELPER is not None
    else "await client.writer.send() per client (no wsjet.broadcast)",
    "wsjet-co": "wsjet.broadcast(server.connections, msg)"
    if BROADCAST_HELPER is not None
    else "await ws.send() per connection (no wsjet.broadcast)",
    "picows": "transport.send() per transport (no broadcast helper)",
    "websockets": "websockets.asyncio.server.broadcast()",
    "aiohttp": "await ws.send_bytes() per connection (no broadcast helper)",
    "raw": "n/a",
}


#: With permessage-deflate, how the fan-out servers compress, reported to the driver.
FANOUT_DEFLATE = {
    "wsjet-cb": "compressed once (server_no_context_takeover)",
    "wsjet-co": "compressed once (server_no_context_takeover)",
    "websockets": "compressed per connection",
    "aiohttp": "compressed per connection",
}


def wsjet_compression(mode: str, deflate: bool) -> Any:
    """wsjet's ``compression=`` for the workload.

    A fan-out server asks for ``server_no_context_takeover``, as wsjet's
    docs advise for broadcasting: then ``broadcast()`` compresses a message
    once for every receiver. With the default (context takeover) each
    connection's compressor must stay in step with its peer, so a broadcast
    goes uncompressed (RFC 7692 §6.1 allows it).
    """
    if not deflate:
        return None
    if mode == "fanout":
        from wsjet import DeflateOptions

        return DeflateOptions(server_no_context_takeover=True)
    return "deflate"


async def start_wsjet_cb(mode: str, deflate: bool) -> tuple[int, Any]:
    from wsjet.server import WebSocketServer

    server = WebSocketServer(
        "127.0.0.1",
        0,
        compression=wsjet_compression(mode, deflate),
        ping_interval=None,
        max_size=MAX_SIZE,
    )

    if mode == "echo":

        @server.connection
        async def on_connection(client: Any) -> None:
            @client.message
            async def on_message(reader: Any) -> None:
                await client.writer.send(await reader.get())

    elif BROADCAST_HELPER is not None:
        broadcast = BROADCAST_HELPER

        @server.connection
        async def on_connection(client: Any) -> None:
            @client.message
            async def on_message(reader: Any) -> None:
                await reader.get()
                broadcast(server.clients.values(), BROADCAST)

    else:

        @server.connection
        async def on_connection(client: Any) -> None:
            @client.message
            async def on_message(reader: Any) -> None:
                await reader.get()
                for peer in list(server.clients.values()):
                    await peer.writer.send(BROADCAST)

    listening = await server.start()
    return listening.sockets[0].getsockname()[1], server.close


async def start_wsjet_co(mode: str, deflate: bool) -> tuple[int, Any]:
    import wsjet

    if mode == "echo":

        async def handler(ws: Any) -> None:
            async for message in ws:
                await ws.send(message)

    elif BROADCAST_HELPER is not None:
        broadcast = BROADCAST_HELPER

        async def handler(ws: Any) -> None:
            async for _ in ws:
                broadcast(ws.server.connections, BROADCAST)

    else:

        async def handler(ws: Any) -> None:
            async for _ in ws:
                for peer in list(ws.server.connections):
                    with contextlib.suppress(wsjet.ConnectionClosed):
                        await peer.send(BROADCAST)

    server = await wsjet.serve(
        handler,
        "127.0.0.1",
        0,
        compression=wsjet_compression(mode, deflate),
        ping_interval=None,
        max_size=MAX_SIZE,
    )

    async def close() -> None:
        server.close()
        await server.wait_closed()

    return server.sockets[0].getsockname()[1], close


async def start_websockets(mode: str, deflate: bool) -> tuple[int, Any]:
    from websockets.asyncio.server import broadcast, serve

    if mode == "echo":

        async def handler(ws: Any) -> None:
            async for message in ws:
                await ws.send(message)

    else:

        async def handler(ws: Any) -> None:
            async for _ in ws:
                broadcast(server.connections, BROADCAST)

    server = await serve(
        handler,
        "127.0.0.1",
        0,
        compression="deflate" if deflate else None,
        ping_interval=None,
        max_size=MAX_SIZE,
    )

    async def close() -> None:
        server.close()
        await server.wait_closed()

    return server.sockets[0].getsockname()[1], close


async def start_aiohttp(mode: str, deflate: bool) -> tuple[int, Any]:
    from aiohttp import WSMsgType, web

    peers: set[web.WebSocketResponse] = set()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=deflate, max_msg_size=MAX_SIZE, autoping=True)
        await ws.prepare(request)
        peers.add(ws)
        try:
            async for msg in ws:
                if mode == "fanout":
                    for peer in list(peers):
                        if not peer.closed:
                            await peer.send_bytes(BROADCAST)
                elif msg.type == WSMsgType.BINARY:
                    await ws.send_bytes(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    await ws.send_str(msg.data)
        finally:
            peers.discard(ws)
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner.addresses[0][1], runner.cleanup


async def start_picows(mode: str, deflate: bool) -> tuple[int, Any]:
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

    transports: set[WSTransport] = set()

    class Echo(WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            kind = frame.msg_type
            if kind is WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()
            elif kind is not WSMsgType.PING and kind is not WSMsgType.PONG:
                transport.send(kind, frame.get_payload_as_memoryview(), frame.fin)

    class Fanout(WSListener):  # type: ignore[misc]
        def on_ws_connected(self, transport: WSTransport) -> None:
            transports.add(transport)

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            transports.discard(transport)

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            kind = frame.msg_type
            if kind is WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()
            elif kind is WSMsgType.BINARY or kind is WSMsgType.TEXT:
                for peer in transports:
                    peer.send(WSMsgType.BINARY, BROADCAST)

    listener = Echo if mode == "echo" else Fanout
    server = await ws_create_server(lambda _request: listener(), "127.0.0.1", 0)

    async def close() -> None:
        server.close()

    return server.sockets[0].getsockname()[1], close


class RawEcho(asyncio.BufferedProtocol):
    """TCP echo into one preallocated buffer: the cost of the loop and the kernel only."""

    def __init__(self) -> None:
        self.buffer = bytearray(2**20)
        self.view = memoryview(self.buffer)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view

    def buffer_updated(self, nbytes: int) -> None:
        assert self.transport is not None
        # A copy: the transport may keep what it cannot send at once.
        self.transport.write(self.buffer[:nbytes])


async def start_raw(mode: str, deflate: bool) -> tuple[int, Any]:
    if mode != "echo":
        raise SystemExit("the raw TCP server only echoes")
    server = await asyncio.get_running_loop().create_server(RawEcho, "127.0.0.1", 0)

    async def close() -> None:
        server.close()

    return server.sockets[0].getsockname()[1], close


STARTERS: dict[str, Any] = {
    "wsjet-cb": start_wsjet_cb,
    "wsjet-co": start_wsjet_co,
    "picows": start_picows,
    "websockets": start_websockets,
    "aiohttp": start_aiohttp,
    "raw": start_raw,
}


async def serve(lib: str, mode: str, deflate: bool) -> None:
    port, close = await STARTERS[lib](mode, deflate)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def stopping() -> None:
        if not stop.done():
            stop.set_result(None)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping)
    how = FANOUT_METHODS[lib]
    if deflate and lib in FANOUT_DEFLATE:
        how += "; " + FANOUT_DEFLATE[lib]
    say(port=port, pid=os.getpid(), fanout=how)
    await stop
    with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
        await asyncio.wait_for(close(), 5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("lib", choices=LIBS)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    parser.add_argument("--mode", choices=("echo", "fanout"), default="echo")
    parser.add_argument("--compression", choices=("off", "deflate"), default="off")
    parser.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    parser.add_argument("--profile", metavar="FILE", help="run under cProfile, dump stats here")
    args = parser.parse_args()
    pin(args.cpu)
    raise_fd_limit()
    coro = serve(args.lib, args.mode, args.compression == "deflate")
    if args.profile:
        import cProfile
        import time

        # CPU time of this process only: on a shared core, wall time would
        # charge a write() with the peer's run until it yields the CPU back.
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        try:
            run(coro, args.loop)
        finally:
            profiler.disable()
            profiler.dump_stats(args.profile)
    else:
        run(coro, args.loop)


if __name__ == "__main__":
    main()
