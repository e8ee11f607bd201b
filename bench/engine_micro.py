"""CPU cost of one echoed message in wsjet's server, without sockets.

``python bench/engine_micro.py [--profile]`` builds a real server connection
(callback face and coroutine face), completes the opening handshake over a
fake transport, then feeds it masked client frames one at a time and counts
the echoes it writes. It reports CPU microseconds per message: the engine's own
cost, free of the kernel, the event loop's I/O and the other process that
make ``run.py``'s numbers noisy. With ``--profile`` it prints where that time
goes (cProfile, own time per function). With ``--pipeline N`` each read
carries N messages back to back, as from a peer that sends many before
reading: the coroutine face's handler then answers them all in one turn.

Use it to iterate on ``wsjet.protocol`` / ``wsjet.core.connection``: a change
that makes these numbers smaller makes ``run.py``'s server numbers larger.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import client_frame, payload

REQUEST = (
    b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class FakeTransport(asyncio.Transport):
    """Counts what the protocol writes; sends nothing anywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.written = 0
        self.closing = False

    def write(self, data: Any) -> None:
        self.writes += 1
        self.written += len(data)

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name in ("peername", "sockname"):
            return ("127.0.0.1", 12345)
        return default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True


async def connection_factory(face: str) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """A started echo server of ``face``; return (protocol factory, close).

    The factory makes the protocol the listening server would make for a new
    TCP connection (private API: this tool follows the engine's internals).
    """
    if face == "cb":
        from wsjet.server import WebSocketServer

        server = WebSocketServer("127.0.0.1", 0, compression=None, ping_interval=None)

        @server.connection
        async def on_connection(client: Any) -> None:
            @client.message
            async def on_message(reader: Any) -> None:
                await client.writer.send(await reader.get())

        await server.start()
        close = server.close
        from wsjet.callbacks import _CallbackServerProtocol

        handle = server._handle  # one bound method for all, as the listening server has

        def factory() -> Any:
            return _CallbackServerProtocol(
                handle,
                server.ws_server,
                read_limit=server.read_limit,
                **server.options,
            )

    else:
        import wsjet

        async def handler(ws: Any) -> None:
            async for message in ws:
                await ws.send(message)

        serving = wsjet.serve(handler, "127.0.0.1", 0, compression=None, ping_interval=None)
        ws_server = await serving

        async def close() -> None:
            ws_server.close()
            await ws_server.wait_closed()

        def factory() -> Any:
            return serving.create_protocol(serving.handler, ws_server, **serving.options)

    return factory, close


async def open_many(factory: Callable[[], Any], count: int) -> list[tuple[Any, FakeTransport]]:
    """Open ``count`` connections made by ``factory`` over fake transports.

    The handshakes' tasks run every 100 connections, as the loop would let
    them, and once more at the end; the caller checks they completed.
    """
    opened = []
    for i in range(count):
        protocol, transport = factory(), FakeTransport()
        protocol.connection_made(transport)
        protocol.data_received(REQUEST)
        opened.append((protocol, transport))
        if i % 100 == 99:
            for _ in range(4):
                await asyncio.sleep(0)
    for _ in range(4):
        await asyncio.sleep(0)
    return opened


async def close_all(opened: list[tuple[Any, FakeTransport]]) -> None:
    """Lose the connections of :func:`open_many` and let their tasks end."""
    for protocol, _ in opened:
        protocol.connection_lost(None)
    for _ in range(10):
        await asyncio.sleep(0)


def loop_runner(name: str) -> Callable[[Any], Any]:
    """``asyncio.run`` or ``uvloop.run``."""
    if name == "uvloop":
        import uvloop

        return uvloop.run  # type: ignore[no-any-return]
    return asyncio.run


async def open_connection(face: str) -> tuple[Any, FakeTransport, Callable[[], Any]]:
    """A wsjet server connection, handshake done, on a fake transport."""
    factory, close = await connection_factory(face)
    protocol = factory()
    transport = FakeTransport()
    protocol.connection_made(transport)
    protocol.data_received(REQUEST)
    for _ in range(20):  # the handshake and the connection callback run in tasks
        await asyncio.sleep(0)
    if transport.writes != 1:
        raise RuntimeError("the opening handshake did not complete")
    return protocol, transport, close


async def measure(
    face: str,
    size: int,
    seconds: float,
    repeat: int,
    chunk: int,
    profile: bool,
    buffered: bool,
    pipeline: int = 1,
) -> tuple[float, str]:
    protocol, transport, close = await open_connection(face)
    # A pipelining peer's frames arrive back to back: `pipeline` of them per round.
    frame = client_frame(payload(size)) * pipeline
    # TCP hands a large frame over in pieces: feed it the same way.
    pieces = [frame[i : i + chunk] for i in range(0, len(frame), chunk)]
    if buffered:
        # What the event loop does for a BufferedProtocol: read into the
        # protocol's buffer (here a copy, the kernel's part), then hand it over.
        get_buffer, buffer_updated = protocol.get_buffer, protocol.buffer_updated

        def feed(piece: bytes) -> None:
            n = len(piece)
            get_buffer(n)[:n] = piece
            buffer_updated(n)

    else:
        feed = protocol.data_received
    sleep = asyncio.sleep
    # The callback face answers inside data_received when the message came
    # whole; otherwise (and always for the coroutine face) a task answers:
    # one loop iteration per message.
    needs_loop = face == "co" or len(pieces) > 1

    async def run(n: int) -> None:
        for _ in range(n):
            for piece in pieces:
                feed(piece)
            if needs_loop:
                await sleep(0)

    await run(1000)  # warm-up
    n = 1000
    while True:  # calibrate: about `seconds` of work
        start = time.process_time()
        await run(n)
        elapsed = time.process_time() - start
        if elapsed > seconds / 4:
            break
        n *= 4
    n = max(1000, int(n * seconds / elapsed))
    best = float("inf")
    profiler = cProfile.Profile() if profile else None
    for _ in range(1 if profile else repeat):  # best of `repeat`: noise only adds time
        before = transport.written
        if profiler is not None:
            profiler.enable()
        # CPU time, not wall time: on a busy machine, time spent descheduled
        # is not the engine's.
        start = time.process_time()
        await run(n)
        best = min(best, time.process_time() - start)
        if profiler is not None:
            profiler.disable()
        if transport.written - before < n * pipeline * (size + 2):
            raise RuntimeError(
                f"{n * pipeline} messages in, {transport.written - before} bytes out"
            )
    report = ""
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(25)
        text = out.getvalue()
        report = text[text.index("   ncalls") :]
    await close()
    return best / (n * pipeline) * 1e6, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", default="cb,co", help="cb (callback), co (coroutine)")
    parser.add_argument("--sizes", default="32,1024,65536,1048576")
    parser.add_argument("--seconds", type=float, default=0.5, help="per repeat")
    parser.add_argument("--repeat", type=int, default=5, help="report the best of this many")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    parser.add_argument(
        "--chunk",
        type=int,
        default=65536,
        help="bytes per read handed over (what one socket read gives; default 64 KiB)",
    )
    parser.add_argument("--profile", action="store_true", help="print a cProfile per run")
    parser.add_argument(
        "--feed",
        choices=("buffered", "bytes"),
        default="buffered",
        help="hand reads over as the event loop does for wsjet (get_buffer/buffer_updated)"
        " or as bytes (data_received)",
    )
    parser.add_argument(
        "--pipeline", type=int, default=1, help="messages per round, sent back to back (1)"
    )
    args = parser.parse_args()
    runner = loop_runner(args.loop)
    for face in args.faces.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            micros, report = runner(
                measure(
                    face,
                    size,
                    args.seconds,
                    args.repeat,
                    args.chunk,
                    args.profile,
                    args.feed == "buffered",
                    args.pipeline,
                )
            )
            print(f"wsjet-{face} {size:>8} B: {micros:8.2f} us/message", flush=True)
            if report:
                print(report)


if __name__ == "__main__":
    main()
