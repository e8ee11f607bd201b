"""Fan-out: one 100-byte message to 1,000 and 10,000 clients, wsjet against the others.

Usage::

    .venv/bin/python bench/fanout.py                 # the full comparison, a few minutes
    .venv/bin/python bench/fanout.py --counts 1000   # one size only

Each measurement is a server process and a client process. The client opens
``count`` plain TCP connections, does the opening handshake by hand (no
compression offered) and then only counts bytes, so that receiving costs as
little as possible. Each server greets every connection with ``w<worker>``;
the client then sends ``go K`` on one connection per server process, and each
server broadcasts the 100-byte binary message K times to all its connections:

- ``paced``: one broadcast per event loop iteration (``await asyncio.sleep(0)``
  between them), like a server publishing events as they come;
- ``burst``: ten broadcasts per iteration, like a market-data burst.

The server reports the time from its first broadcast until every transport's
write buffer is empty (everything handed to the kernel): *server rate* =
messages written per second. The client reports the time from ``go`` until
every connection received all K frames: *end-to-end rate*, which the client
process (one Python process reading 10,000 sockets) bounds too. A round is
repeated (``--rounds``, after a warm-up) and the median is reported.

Servers:

- ``wsjet``: ``wsjet.broadcast(server.connections, message)``, one frame
  queued on every connection and written once per connection per iteration;
- ``wsjet-w2``: the same in two ``wsjet.workers`` processes sharing the port
  (SO_REUSEPORT); the client triggers each worker on one of its connections;
- ``websockets``: ``websockets.asyncio.server.broadcast(server.connections, message)``;
- ``picows``: ``transport.send()`` to every transport (it has no broadcast helper).

All run on uvloop (``--loop asyncio`` for asyncio's loop). The single-process
servers are pinned to CPU 0 and the client to CPU 1 when the machine has two
CPUs or more; the workers are not pinned.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from typing import Any

SIZE = 100
MESSAGE = bytes(range(SIZE))
FRAME_SIZE = 2 + SIZE
SERVERS = ("wsjet", "wsjet-w2", "websockets", "picows")
PATIENCE = 120.0


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = 65536 if hard == resource.RLIM_INFINITY else hard
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def pin(cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > cpu:
        os.sched_setaffinity(0, {cpu})


def loop_factory(name: str) -> Any:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None


def run(main: Any, loop: str) -> Any:
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        return runner.run(main)


def parse_go(text: str) -> tuple[int, int]:
    _, rounds, per_iteration = text.split()
    return int(rounds), int(per_iteration)


async def broadcast_rounds(send_all: Any, rounds: int, per_iteration: int) -> None:
    for i in range(rounds):
        send_all()
        if (i + 1) % per_iteration == 0:
            await asyncio.sleep(0)


async def until_drained(buffered: Any) -> None:
    await asyncio.sleep(0)  # writes queued in this iteration go out at its end
    while buffered():
        await asyncio.sleep(0)


# --- servers ------------------------------------------------------------------------------


async def wsjet_main(port: int, ready: Any) -> None:
    import wsjet
    from wsjet.workers import worker_id

    async def handler(ws: wsjet.WebSocketServerProtocol) -> None:
        await ws.send(f"w{worker_id() or 0}")
        async for text in ws:
            rounds, per_iteration = parse_go(str(text))
            connections = list(server.connections)
            start = time.perf_counter()
            await broadcast_rounds(
                lambda c=connections: wsjet.broadcast(c, MESSAGE), rounds, per_iteration
            )
            await until_drained(lambda c=connections: any(p.buffered_amount for p in c))
            await ws.send(f"done {time.perf_counter() - start} {len(connections)}")

    server = await wsjet.serve(
        handler,
        "127.0.0.1",
        port,
        compression=None,
        ping_interval=None,
        reuse_port=True,
        backlog=4096,
        slow_consumer=wsjet.SlowConsumerPolicy(max_buffer=2**26),
    )
    async with server:
        ready()
        await asyncio.get_running_loop().create_future()


async def websockets_main(port: int, ready: Any) -> None:
    from websockets.asyncio.server import broadcast, serve

    async def handler(ws: Any) -> None:
        await ws.send("w0")
        async for text in ws:
            rounds, per_iteration = parse_go(str(text))
            connections = list(server.connections)
            start = time.perf_counter()
            await broadcast_rounds(
                lambda c=connections: broadcast(c, MESSAGE), rounds, per_iteration
            )
            await until_drained(
                lambda c=connections: any(x.transport.get_write_buffer_size() for x in c)
            )
            await ws.send(f"done {time.perf_counter() - start} {len(connections)}")

    async with serve(
        handler,
        "127.0.0.1",
        port,
        compression=None,
        ping_interval=None,
        backlog=4096,
        max_queue=None,
    ) as server:
        ready()
        await asyncio.get_running_loop().create_future()


async def picows_main(port: int, ready: Any) -> None:
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

    transports: list[WSTransport] = []

    def send_all() -> None:
        for peer in transports:
            peer.send(WSMsgType.BINARY, MESSAGE)

    async def go(transport: WSTransport, rounds: int, per_iteration: int) -> None:
        start = time.perf_counter()
        await broadcast_rounds(send_all, rounds, per_iteration)
        await until_drained(
            lambda: any(t.underlying_transport.get_write_buffer_size() for t in transports)
        )
        transport.send(WSMsgType.TEXT, f"done {time.perf_counter() - start} {len(transports)}")

    tasks: set[asyncio.Task[None]] = set()

    class Fanout(WSListener):  # type: ignore[misc]
        def on_ws_connected(self, transport: WSTransport) -> None:
            transports.append(transport)
            transport.send(WSMsgType.TEXT, b"w0")

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            transports.remove(transport)

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type is WSMsgType.TEXT:
                task = asyncio.ensure_future(
                    go(transport, *parse_go(frame.get_payload_as_ascii_text()))
                )
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            elif frame.msg_type is WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()

    server = await ws_create_server(lambda _request: Fanout(), "127.0.0.1", port, backlog=4096)
    ready()
    async with server:
        await asyncio.get_running_loop().create_future()


MAINS = {"wsjet": wsjet_main, "websockets": websockets_main, "picows": picows_main}


async def _worker_main(port: int) -> None:
    from wsjet.workers import ready

    await wsjet_main(port, ready)


def serve_command(args: argparse.Namespace) -> None:
    raise_fd_limit()
    if args.workers:
        from wsjet.workers import bind_reuse_port, run_workers

        with bind_reuse_port("127.0.0.1", 0) as reserved:
            port = reserved.getsockname()[1]
            status = run_workers(
                args.workers,
                _worker_main,
                port,
                loop_factory=loop_factory(args.loop),
                on_ready=lambda: print(f"ready {port}", flush=True),
            )
        raise SystemExit(status)
    pin(args.cpu)
    import socket

    with socket.socket() as probe:  # a free port (the servers bind it with SO_REUSEADDR)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    main = MAINS[args.lib]
    run(main(port, lambda: print(f"ready {port}", flush=True)), args.loop)


# --- the client -----------------------------------------------------------------------------


class Counter(asyncio.Protocol):
    """A raw WebSocket client: handshake, greeting, then bytes counted (frames on demand)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.state = "handshake"
        self.worker = -1
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.received = 0
        self.done: asyncio.Future[str] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.state == "counting":
            self.received += len(data)
            self.client.count(len(data))
            return
        self.buffer += data
        if self.state == "handshake":
            head, sep, rest = bytes(self.buffer).partition(b"\r\n\r\n")
            if not sep:
                return
            assert head.startswith(b"HTTP/1.1 101"), head[:100]
            self.buffer = bytearray(rest)
            self.state = "greeting"
        if self.state == "greeting" and len(self.buffer) >= 2:
            length = self.buffer[1] & 0x7F
            if len(self.buffer) >= 2 + length:
                self.worker = int(self.buffer[3 : 2 + length])
                del self.buffer[: 2 + length]
                self.state = "trigger" if self.done is not None else "counting"
                self.opened.set_result(None)
                if self.buffer and self.state == "counting":
                    data, self.buffer = bytes(self.buffer), bytearray()
                    self.data_received(data)
        if self.state == "trigger":
            self._frames()

    def _frames(self) -> None:
        while len(self.buffer) >= 2:
            length = self.buffer[1] & 0x7F
            if len(self.buffer) < 2 + length:
                return
            opcode = self.buffer[0] & 0x0F
            payload = bytes(self.buffer[2 : 2 + length])
            del self.buffer[: 2 + length]
            if opcode == 1 and self.done is not None and not self.done.done():
                self.done.set_result(payload.decode())
            else:
                self.received += 2 + length
                self.client.count(2 + length)

    def send_text(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert self.transport is not None
        self.transport.write(bytes([0x81, 0x80 | len(payload)]) + mask + masked)


class Client:
    """Counts the bytes all connections received, and says when a round is complete."""

    def __init__(self) -> None:
        self.total = 0
        self.target = 0
        self.complete: asyncio.Event = asyncio.Event()

    def count(self, n: int) -> None:
        self.total += n
        if self.target and self.total >= self.target:
            self.complete.set()


async def open_connection(client: Client, port: int, trigger: bool) -> Counter:
    loop = asyncio.get_running_loop()
    protocol = Counter(client)
    if trigger:
        protocol.done = loop.create_future()
    await loop.create_connection(lambda: protocol, "127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    assert protocol.transport is not None
    protocol.transport.write(request.encode())
    await asyncio.wait_for(protocol.opened, PATIENCE)
    return protocol


async def client_main(args: argparse.Namespace) -> dict[str, Any]:
    client = Client()
    connections: list[Counter] = []
    triggers: dict[int, Counter] = {}
    # Open connections in batches; every server process gets a trigger connection.
    while len(connections) + len(triggers) < args.count:
        batch = min(200, args.count - len(connections) - len(triggers))
        opened = await asyncio.gather(
            *(open_connection(client, args.port, trigger=True) for _ in range(batch))
        )
        for protocol in opened:
            if protocol.worker not in triggers:
                triggers[protocol.worker] = protocol
            else:
                protocol.state = "counting"
                connections.append(protocol)
    everyone = connections + list(triggers.values())
    results = []
    for round_ in range(args.rounds + 1):
        for trigger in triggers.values():
            trigger.done = asyncio.get_running_loop().create_future()
        client.complete.clear()
        client.total = 0
        client.target = len(everyone) * args.messages * FRAME_SIZE
        start = time.perf_counter()
        for trigger in triggers.values():
            trigger.send_text(f"go {args.messages} {args.per_iteration}")
        await asyncio.wait_for(client.complete.wait(), PATIENCE)
        end_to_end = time.perf_counter() - start
        done = [await asyncio.wait_for(t.done, PATIENCE) for t in triggers.values()]
        assert trigger.done is not None
        server_time = max(float(d.split()[1]) for d in done)
        served = sum(int(d.split()[2]) for d in done)
        assert served == len(everyone), (served, len(everyone))
        if args.verbose:
            print(
                f"round {round_}: server {server_time:.3f} s, end to end {end_to_end:.3f} s",
                file=sys.stderr,
            )
        if round_:  # the first round warms up
            results.append((server_time, end_to_end))
    for protocol in everyone:
        assert protocol.transport is not None
        protocol.transport.close()
    messages = len(everyone) * args.messages
    return {
        "clients": len(everyone),
        "processes": len(triggers),
        "server_rate": messages / statistics.median(r[0] for r in results),
        "end_to_end_rate": messages / statistics.median(r[1] for r in results),
    }


def client_command(args: argparse.Namespace) -> None:
    raise_fd_limit()
    pin(args.cpu)
    print(json.dumps(run(client_main(args), args.loop)), flush=True)


# --- the driver ------------------------------------------------------------------------------


def measure(server: str, count: int, mode: str, args: argparse.Namespace) -> dict[str, Any] | str:
    script = os.path.abspath(__file__)
    two_cpus = (os.cpu_count() or 1) >= 2
    command = [sys.executable, script, "serve", "--loop", args.loop]
    if server == "wsjet-w2":
        command += ["--workers", "2"]
    else:
        command += ["--lib", server] + (["--cpu", "0"] if two_cpus else [])
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().split()
        if not line or line[0] != "ready":
            return "did not start"
        per_iteration = 1 if mode == "paced" else 10
        messages = max(10, min(200, 200_000 // count))
        client = [sys.executable, script, "client", "--loop", args.loop]
        client += ["--port", line[1], "--count", str(count), "--messages", str(messages)]
        client += ["--per-iteration", str(per_iteration), "--rounds", str(args.rounds)]
        client += ["--cpu", "1"] if two_cpus else []
        done = subprocess.run(client, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            return "failed: " + (done.stderr.strip().splitlines() or ["?"])[-1]
        result: dict[str, Any] = json.loads(done.stdout)
        return result
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def driver(args: argparse.Namespace) -> None:
    raise_fd_limit()
    rows = []
    print(f"fan-out of a {SIZE}-byte binary message; loop: {args.loop}; cpus: {os.cpu_count()}")
    for count in args.counts:
        for mode in args.modes:
            for server in args.servers:
                result = measure(server, count, mode, args)
                if isinstance(result, str):
                    row = [str(count), mode, server, result, "", ""]
                else:
                    row = [
                        str(count),
                        mode,
                        server,
                        f"{result['server_rate'] / 1e6:.2f} M/s",
                        f"{result['end_to_end_rate'] / 1e6:.2f} M/s",
                        str(result["processes"]),
                    ]
                rows.append(row)
                print("  ".join(row), flush=True)
    header = ["clients", "mode", "server", "server rate", "end-to-end rate", "processes"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print()
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--counts", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument(
        "--modes", nargs="+", choices=("paced", "burst"), default=["paced", "burst"]
    )
    parser.add_argument("--servers", nargs="+", choices=SERVERS, default=list(SERVERS))
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (median)")
    serve = commands.add_parser("serve")
    serve.add_argument("--lib", choices=tuple(MAINS), default="wsjet")
    serve.add_argument("--workers", type=int, default=0)
    serve.add_argument("--cpu", type=int)
    serve.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    client = commands.add_parser("client")
    client.add_argument("--port", type=int, required=True)
    client.add_argument("--count", type=int, required=True)
    client.add_argument("--messages", type=int, required=True)
    client.add_argument("--per-iteration", type=int, default=1)
    client.add_argument("--rounds", type=int, default=3)
    client.add_argument("--cpu", type=int)
    client.add_argument("--verbose", action="store_true")
    client.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args()
    if args.command == "serve":
        serve_command(args)
    elif args.command == "client":
        client_command(args)
    else:
        driver(args)


if __name__ == "__main__":
    main()
