"""Benchmark clients, one library per process: ``python bench/clients.py LIB WORKLOAD URL``.

Workloads:

- ``echo``: for each of ``--workloads`` (``SIZExPIPELINE``), send PIPELINE
  messages of SIZE bytes, read as many echoes back, repeat; for ``--warmup``
  seconds unmeasured, then for ``--duration`` seconds measured. One line per
  workload. Prints ``{"count": n, "seconds": t, "slices": [[n, t], ...]}``.
- ``connections`` (picows only): a conversation with the driver, one JSON
  line per step, each step waiting for a line on stdin so the driver can read
  the server's memory in between: ``warm`` (20 connections opened, used once
  and closed), ``opened`` (``--count`` connections opened, ``--concurrency``
  handshakes in flight, with the handshake time), ``used`` (one 32-byte echo
  on each), then every connection closes.
- ``fanout`` (picows only): ``--count`` connections; one message on the first
  makes the server send 100 bytes to all; once all got it, again. Prints
  the number of broadcasts like ``echo`` prints messages. With
  ``--compression deflate`` the clients offer permessage-deflate and decode
  every compressed frame themselves (picows leaves compression to the
  application), and check every message.

Libraries: ``picows`` (callback API), ``wsjet`` / ``websockets`` / ``aiohttp``
(coroutine APIs), ``raw`` (pre-built masked frames over plain TCP, for the
raw echo server: the same bytes on the wire with no WebSocket code at all).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (
    FANOUT_SIZE,
    MAX_SIZE,
    Clock,
    client_frame,
    cpu_seconds,
    payload,
    pin,
    raise_fd_limit,
    run,
    say,
    stolen_seconds,
    wait_for_driver,
)

LIBS = ("picows", "wsjet", "websockets", "aiohttp", "raw")
DEFLATE_OFFER = {"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"}

Send = Callable[[bytes], Awaitable[Any]]
Recv = Callable[[], Awaitable[Any]]


class CpuMeter:
    """CPU seconds used by this client and the server (if its pid is known) since creation."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self.start_client = cpu_seconds()
        self.start_server = None if server_pid is None else cpu_seconds(server_pid)
        self.start_steal = stolen_seconds()

    def used(self) -> float | None:
        """Server + client CPU seconds, or None when the server's pid is unknown."""
        return self.fields()["cpu"]

    def server_used(self) -> float | None:
        """The server's CPU seconds alone, or None when its pid is unknown."""
        if self.server_pid is None or self.start_server is None:  # both or neither
            return None
        return cpu_seconds(self.server_pid) - self.start_server

    def fields(self) -> dict[str, float | None]:
        """As ``say()`` fields: ``cpu`` (server + client), ``server_cpu``, and ``steal``.

        ``steal``: seconds the hypervisor took from this client's CPU meanwhile.
        """
        server = self.server_used()
        client = cpu_seconds() - self.start_client
        return {
            "cpu": None if server is None else server + client,
            "server_cpu": server,
            "steal": stolen_seconds() - self.start_steal,
        }


# --- coroutine clients --------------------------------------------------------------------


async def echo_loop(send: Send, recv: Recv, data: bytes, pipeline: int, clock: Clock) -> int:
    """Round trips until ``clock`` says stop; returns the number of messages echoed."""
    count = 0
    while True:
        for _ in range(pipeline):
            await send(data)
        for _ in range(pipeline):
            reply = await recv()
        count += pipeline
        if not clock.tick(count):
            break
    if len(reply) != len(data):
        raise RuntimeError(f"echo of {len(data)} bytes came back as {len(reply)}")
    return count


async def open_wsjet(url: str, deflate: bool) -> tuple[Send, Recv, Callable[[], Awaitable[Any]]]:
    import wsjet

    ws = await wsjet.connect(
        url, compression="deflate" if deflate else None, ping_interval=None, max_size=MAX_SIZE
    )
    return ws.send, ws.recv, ws.close


async def open_websockets(
    url: str, deflate: bool
) -> tuple[Send, Recv, Callable[[], Awaitable[Any]]]:
    from websockets.asyncio.client import connect

    ws = await connect(
        url, compression="deflate" if deflate else None, ping_interval=None, max_size=MAX_SIZE
    )
    return ws.send, ws.recv, ws.close


async def open_aiohttp(url: str, deflate: bool) -> tuple[Send, Recv, Callable[[], Awaitable[Any]]]:
    import aiohttp

    session = aiohttp.ClientSession()
    ws = await session.ws_connect(
        url, compress=15 if deflate else 0, max_msg_size=MAX_SIZE, autoping=True
    )
    if deflate and not ws.compress:
        raise RuntimeError("the server did not accept permessage-deflate")

    async def recv() -> bytes:
        msg = await ws.receive()
        if msg.type != aiohttp.WSMsgType.BINARY:
            raise RuntimeError(f"unexpected {msg.type!r}")
        return msg.data  # type: ignore[no-any-return]

    async def close() -> None:
        await ws.close()
        await session.close()

    return ws.send_bytes, recv, close


OPENERS: dict[str, Any] = {
    "wsjet": open_wsjet,
    "websockets": open_websockets,
    "aiohttp": open_aiohttp,
}


async def echo_coroutines(lib: str, url: str, args: argparse.Namespace) -> None:
    send, recv, close = await OPENERS[lib](url, args.compression == "deflate")
    for size, pipeline in args.workloads:
        data = payload(size)
        await echo_loop(send, recv, data, pipeline, Clock(args.warmup))
        cpu = CpuMeter(args.server_pid)
        clock = Clock(args.duration, args.slice)
        count = await echo_loop(send, recv, data, pipeline, clock)
        say(size=size, pipeline=pipeline, **cpu.fields(), **clock.result(count))
    await close()


# --- picows ---------------------------------------------------------------------------------


def picows_listener_class() -> Any:
    from picows import WSFrame, WSListener, WSMsgType, WSTransport

    class EchoListener(WSListener):  # type: ignore[misc]
        """Sends a batch, counts the echoes, sends the next batch until time is up."""

        transport: WSTransport
        done: asyncio.Future[None] | None = None

        def __init__(self) -> None:
            self.data = b""
            self.pipeline = 1
            self.pending = 0
            self.count = 0
            self.clock = Clock(0.0)
            self.last_size = -1

        def on_ws_connected(self, transport: WSTransport) -> None:
            self.transport = transport

        def start(self, data: bytes, pipeline: int, clock: Clock) -> asyncio.Future[None]:
            self.data, self.pipeline, self.count, self.clock = data, pipeline, 0, clock
            self.done = asyncio.get_running_loop().create_future()
            self.send_batch()
            return self.done

        def send_batch(self) -> None:
            send, data = self.transport.send, self.data
            for _ in range(self.pipeline):
                send(WSMsgType.BINARY, data)
            self.pending = self.pipeline

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            kind = frame.msg_type
            if kind is WSMsgType.CLOSE or kind is WSMsgType.PING or kind is WSMsgType.PONG:
                return
            self.last_size = frame.payload_size
            if not frame.fin:
                return
            self.pending -= 1
            if self.pending:
                return
            self.count += self.pipeline
            if self.clock.tick(self.count):
                self.send_batch()
            elif self.done is not None and not self.done.done():
                self.done.set_result(None)

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            if self.done is not None and not self.done.done():
                self.done.set_exception(ConnectionError("server disconnected"))

    return EchoListener


def picows_close(transport: Any) -> None:
    """Closing handshake started (1000), then TCP closes once the buffer is flushed."""
    from picows import WSCloseCode

    transport.send_close(WSCloseCode.OK)
    transport.disconnect()


async def picows_connect(url: str, factory: Any, deflate_offer: bool = False) -> Any:
    from picows import ws_connect

    headers = DEFLATE_OFFER if deflate_offer else None
    _, listener = await ws_connect(factory, url, max_frame_size=MAX_SIZE, extra_headers=headers)
    return listener


async def echo_picows(url: str, args: argparse.Namespace) -> None:
    if args.compression == "deflate":
        raise SystemExit("picows has no permessage-deflate")
    listener = await picows_connect(url, picows_listener_class())
    for size, pipeline in args.workloads:
        data = payload(size)
        await listener.start(data, pipeline, Clock(args.warmup))
        cpu = CpuMeter(args.server_pid)
        clock = Clock(args.duration, args.slice)
        await listener.start(data, pipeline, clock)
        used = cpu.fields()
        if listener.last_size != len(data):
            raise RuntimeError(f"echo of {len(data)} bytes came back as {listener.last_size}")
        say(size=size, pipeline=pipeline, **used, **clock.result(listener.count))
    picows_close(listener.transport)


async def connections_picows(url: str, args: argparse.Namespace) -> None:
    """The ``connections`` conversation (see the module docstring)."""
    listener_class = picows_listener_class()
    deflate = args.compression == "deflate"
    small = payload(32)

    async def open_many(n: int) -> list[Any]:
        gate = asyncio.Semaphore(args.concurrency)

        async def one() -> Any:
            async with gate:
                return await picows_connect(url, listener_class, deflate)

        return list(await asyncio.gather(*(one() for _ in range(n))))

    async def use(listeners: list[Any]) -> None:
        await asyncio.gather(*(listener.start(small, 1, Clock(0.0)) for listener in listeners))

    async def close(listeners: list[Any]) -> None:
        for listener in listeners:
            picows_close(listener.transport)
        await asyncio.gather(*(listener.transport.wait_disconnected() for listener in listeners))

    warm = await open_many(20)
    await use(warm)
    await close(warm)
    await asyncio.sleep(0.3)
    say(event="warm")
    wait_for_driver()
    start = time.perf_counter()
    listeners = await open_many(args.count)
    say(event="opened", count=args.count, seconds=time.perf_counter() - start)
    wait_for_driver()
    await use(listeners)
    await asyncio.sleep(0.2)
    say(event="used")
    wait_for_driver()
    await close(listeners)


class Inflater:
    """permessage-deflate on the receiving side (RFC 7692 §7.2.2), for the picows client.

    picows hands over frames with their RSV1 bit and leaves compression to the
    application. One per connection: without ``server_no_context_takeover``
    a message may refer back to the earlier ones, so the window is kept; a
    server that resets its compressor per message sends data that decodes
    the same way.
    """

    def __init__(self) -> None:
        self.zlib = zlib.decompressobj(-zlib.MAX_WBITS)

    def inflate(self, data: bytes) -> bytes:
        # The sender removed the empty stored block's 00 00 ff ff (§7.2.1): put it back.
        out = self.zlib.decompress(data + b"\x00\x00\xff\xff")
        if self.zlib.eof:  # the message ended with a final block: a new stream follows
            self.zlib = zlib.decompressobj(-zlib.MAX_WBITS)
        return out


async def fanout_picows(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """The ``fanout`` workload; with ``--compression deflate`` every frame is decoded."""
    from picows import WSFrame, WSListener, WSMsgType, WSTransport

    loop = asyncio.get_running_loop()
    deflate = args.compression == "deflate"
    expected = payload(FANOUT_SIZE)
    state: dict[str, Any] = {"received": 0, "done": None, "compressed": 0, "wire": 0}

    class Receiver(WSListener):  # type: ignore[misc]
        def on_ws_connected(self, transport: WSTransport) -> None:
            self.transport = transport
            self.inflater = Inflater() if deflate else None

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type is not WSMsgType.BINARY:
                return
            state["wire"] += frame.payload_size
            if frame.rsv1:
                if self.inflater is None:
                    raise RuntimeError("a compressed frame without permessage-deflate")
                state["compressed"] += 1
                data = self.inflater.inflate(frame.get_payload_as_bytes())
            else:
                data = frame.get_payload_as_bytes()
            if data != expected:
                raise RuntimeError(f"broadcast of {len(expected)} bytes came as {len(data)}")
            state["received"] += 1
            if state["received"] == args.count:
                state["done"].set_result(None)

    gate = asyncio.Semaphore(args.concurrency)

    async def one() -> Any:
        async with gate:
            return await picows_connect(url, Receiver, deflate)

    listeners = list(await asyncio.gather(*(one() for _ in range(args.count))))
    await asyncio.sleep(0.5)  # let the server finish registering everyone
    trigger = listeners[0].transport

    async def broadcasts(clock: Clock) -> int:
        n = 0
        while True:
            state["received"] = 0
            state["done"] = loop.create_future()
            trigger.send(WSMsgType.BINARY, b"go")
            await state["done"]
            n += 1
            if not clock.tick(n):
                return n

    await broadcasts(Clock(args.warmup))
    state["compressed"] = state["wire"] = 0
    cpu = CpuMeter(args.server_pid)
    clock = Clock(args.duration, args.slice)
    count = await broadcasts(clock)
    used = cpu.used()
    for listener in listeners:
        picows_close(listener.transport)
    messages = count * args.count
    return {
        "cpu": used,
        # What went over the wire: the share of compressed messages, and payload
        # bytes per message (100 uncompressed).
        "compressed": state["compressed"] / messages,
        "wire_bytes": state["wire"] / messages,
        **clock.result(count),
    }


# --- raw TCP --------------------------------------------------------------------------------


class RawClient(asyncio.BufferedProtocol):
    """Writes pre-built masked frames, counts the bytes echoed back."""

    def __init__(self) -> None:
        self.buffer = memoryview(bytearray(2**20))
        self.transport: asyncio.Transport | None = None
        self.frame = b""
        self.pipeline = 1
        self.expected = 0
        self.received = 0
        self.count = 0
        self.clock = Clock(0.0)
        self.done: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def start(self, frame: bytes, pipeline: int, clock: Clock) -> asyncio.Future[None]:
        self.frame, self.pipeline, self.count, self.clock = frame, pipeline, 0, clock
        self.expected = len(frame) * pipeline
        self.done = asyncio.get_running_loop().create_future()
        self.send_batch()
        return self.done

    def send_batch(self) -> None:
        assert self.transport is not None
        write, frame = self.transport.write, self.frame
        for _ in range(self.pipeline):
            write(frame)
        self.received = 0

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.received += nbytes
        if self.received < self.expected:
            return
        self.count += self.pipeline
        if self.clock.tick(self.count):
            self.send_batch()
        elif self.done is not None and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError("server disconnected"))


async def echo_raw(url: str, args: argparse.Namespace) -> None:
    host, port = url.split("//", 1)[1].strip("/").rsplit(":", 1)
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_connection(RawClient, host, int(port))
    for size, pipeline in args.workloads:
        frame = client_frame(payload(size))
        await client.start(frame, pipeline, Clock(args.warmup))
        cpu = CpuMeter(args.server_pid)
        clock = Clock(args.duration, args.slice)
        await client.start(frame, pipeline, clock)
        say(size=size, pipeline=pipeline, **cpu.fields(), **clock.result(client.count))
    transport.close()


# --- main -------------------------------------------------------------------------------------


async def main_async(args: argparse.Namespace) -> None:
    lib, workload, url = args.lib, args.workload, args.url
    if workload == "echo":
        if lib == "picows":
            await echo_picows(url, args)
        elif lib == "raw":
            await echo_raw(url, args)
        else:
            await echo_coroutines(lib, url, args)
    elif lib != "picows":
        raise SystemExit(f"the {workload} workload uses the picows client")
    elif workload == "connections":
        await connections_picows(url, args)
    else:
        say(**await fanout_picows(url, args))


def workload_list(text: str) -> list[tuple[int, int]]:
    """``"32x1,1024x100"`` -> ``[(32, 1), (1024, 100)]``."""
    pairs = []
    for item in text.split(","):
        size, _, pipeline = item.partition("x")
        pairs.append((int(size), int(pipeline or 1)))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("lib", choices=LIBS)
    parser.add_argument("workload", choices=("echo", "connections", "fanout"))
    parser.add_argument("url")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    parser.add_argument("--compression", choices=("off", "deflate"), default="off")
    parser.add_argument(
        "--workloads",
        type=workload_list,
        default=[(32, 1)],
        help="echo workloads as SIZExPIPELINE, comma-separated (default 32x1)",
    )
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--slice", type=float, default=0.25, help="seconds per rate sample")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    parser.add_argument(
        "--server-pid", type=int, default=None, help="also report server + client CPU time"
    )
    args = parser.parse_args()
    pin(args.cpu)
    raise_fd_limit()
    run(main_async(args), args.loop)


if __name__ == "__main__":
    main()
