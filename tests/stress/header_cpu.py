"""Header-parser CPU: 8 KiB adversarial header values, whole and dripped 1 byte at a time.

Two measurements:

- *parser*: in this process, the server's whole handshake path (RequestReader,
  check_request, subprotocol and extension parsing, deflate negotiation, the
  Origin check) on each adversarial request, with ``time.process_time``; the
  same at 1, 2, 4 and 8 KiB shows whether the cost is linear in size;
- *server*: the CPU time (user + system) the server process spends per
  adversarial request over TCP, and per dripped request (1 byte per write).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from wsjet.core import handshake
from wsjet.core.http import RequestReader
from wsjet.exceptions import InvalidHandshake
from wsjet.extensions import negotiate_server

from ._util import ROOT, ServerProcess, child_env, cli, connect_tcp, gather_limited, request

FULL = {"size": 8192, "reps": 200, "server_requests": 200, "dripped": 4}
SHORT = {"size": 8192, "reps": 30, "server_requests": 30, "dripped": 1}

#: kind -> (header name, value maker: length -> value)
ADVERSARIAL: dict[str, tuple[bytes, Callable[[int], bytes]]] = {
    "Protocol a,a,a": (b"Sec-WebSocket-Protocol", lambda n: b"a," * n),
    "Protocol commas": (b"Sec-WebSocket-Protocol", lambda n: b"a" + b" ," * n),
    "Protocol one token": (b"Sec-WebSocket-Protocol", lambda n: b"p" * n),
    "Extensions params": (b"Sec-WebSocket-Extensions", lambda n: b"x" + b";a=b" * n),
    "Extensions offers": (
        b"Sec-WebSocket-Extensions",
        lambda n: b", ".join([b"permessage-deflate; server_max_window_bits=16"] * n),
    ),
    "Extensions valid offers": (
        b"Sec-WebSocket-Extensions",
        lambda n: b", ".join(
            [b"x-unknown; a=1", b"permessage-deflate; client_max_window_bits"] * n
        ),
    ),
    "Extensions quoted": (
        b"Sec-WebSocket-Extensions",
        lambda n: b'x; y="' + b"\\a" * (n // 2 - 5) + b'"',
    ),
    "Extensions unterminated": (b"Sec-WebSocket-Extensions", lambda n: b'x; y="' + b"\\a" * n),
    "Extensions OWS": (b"Sec-WebSocket-Extensions", lambda n: b"x" + b" \t" * n + b";"),
    "Extensions commas": (b"Sec-WebSocket-Extensions", lambda n: b", " * n + b"x"),
    "Origin long": (b"Origin", lambda n: b"http://" + b"a" * n),
    "Origin dots": (b"Origin", lambda n: b"http://" + b"a." * n),
    "Host brackets": (b"X-Host", lambda n: b"[" * n),
    "Version spaces": (b"X-Version", lambda n: b"1" + b" " * n + b"3"),
}


def build(kind: str, size: int) -> bytes:
    """A valid handshake with one adversarial header line of ``size`` bytes (CRLF excluded)."""
    name, make = ADVERSARIAL[kind]
    room = size - len(name) - 2
    value = make(room)[:room]
    return request(extra=name + b": " + value + b"\r\n")


def server_path(data: bytes, origins: frozenset[str]) -> None:
    """What a wsjet server runs on a request before its handler (or its 4xx)."""
    reader = RequestReader()
    try:
        req = reader.feed(data)
        assert req is not None
        handshake.check_request(req)
        handshake.select_subprotocol(handshake.parse_subprotocols(req.headers), ["chat"])
        negotiate_server(req.headers, "deflate")
        _ = req.headers.get("Origin") in origins
    except InvalidHandshake as exc:
        handshake.reject_for(exc).serialize()


def dripped_path(data: bytes) -> None:
    reader = RequestReader()
    try:
        for i in range(len(data)):
            reader.feed(data[i : i + 1])
    except InvalidHandshake:
        pass


def _cpu_per_call(fn: Callable[[], None], reps: int) -> float:
    """Seconds of CPU per call: the best of 5 batches (least disturbed by the machine)."""
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        for _ in range(reps):
            fn()
        best = min(best, (time.process_time() - start) / reps)
    return best


def parser_figures(size: int, reps: int) -> dict[str, Any]:
    """The in-process measurements; run in a clean child (no coverage, no dev mode)."""
    origins = frozenset({"https://example.com"})
    parser_ms: dict[str, float] = {}
    linearity: dict[str, float] = {}
    plain_cost = _cpu_per_call(lambda: server_path(request(), origins), reps)
    for kind in ADVERSARIAL:
        costs = {}
        for n in (size // 8, size):
            data = build(kind, n)
            costs[n] = _cpu_per_call(lambda data=data: server_path(data, origins), reps)
        parser_ms[kind] = costs[size] * 1000
        # Extra cost over a plain request at size, over 8x the extra cost at size/8:
        # 1.0 when linear, 8.0 when quadratic. Only judged when the extra cost
        # at full size is measurable (over 0.2 ms).
        extra_small = max(costs[size // 8] - plain_cost, 2e-6)
        extra_full = costs[size] - plain_cost
        linearity[kind] = extra_full / (8 * extra_small) if extra_full > 2e-4 else 0.0
    # Informational: a whole 64 KiB header block of adversarial Extensions values
    # (7 lines of 8 KiB, the most the block limit lets through).
    name = b"Sec-WebSocket-Extensions: "
    line = name + b"x" + b";a=b" * ((size - len(name) - 1) // 4)  # valid to its end
    block = request(extra=(line + b"\r\n") * 7)
    block_ms = _cpu_per_call(lambda: server_path(block, origins), max(reps // 5, 3)) * 1000
    drip_ms = {}
    for n in (size // 4, size // 2, size):
        data = build("Extensions params", n)
        drip_ms[n] = _cpu_per_call(lambda data=data: dripped_path(data), max(reps // 10, 3)) * 1000
    worst = max(parser_ms, key=lambda k: parser_ms[k])
    return {
        "parser_ms": {k: round(v, 3) for k, v in parser_ms.items()},
        "parser_worst_ms": parser_ms[worst],
        "parser_worst_kind": worst,
        "parser_linearity": {k: round(v, 2) for k, v in linearity.items()},
        "parser_64k_block_ms (info)": block_ms,
        "parser_dripped_ms": {str(k): round(v, 3) for k, v in drip_ms.items()},
    }


async def run(size: int, reps: int, server_requests: int, dripped: int) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import json, sys, tests.stress.header_cpu as m;"
        "print(json.dumps(m.parser_figures(int(sys.argv[1]), int(sys.argv[2]))))",
        str(size),
        str(reps),
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=child_env(),
    )
    out, _ = await proc.communicate()
    figures = json.loads(out)

    async with ServerProcess("echo", {"compression": "deflate"}) as server:
        port = server.port

        async def one(data: bytes) -> None:
            reader, writer = await connect_tcp(port)
            writer.write(data)
            with contextlib.suppress(TimeoutError, ConnectionError, asyncio.IncompleteReadError):
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            writer.transport.abort()

        async def drip(data: bytes) -> None:
            reader, writer = await connect_tcp(port)
            for i in range(len(data)):
                writer.write(data[i : i + 1])
                await writer.drain()
                if i % 16 == 0:
                    await asyncio.sleep(0)
            with contextlib.suppress(TimeoutError, ConnectionError, asyncio.IncompleteReadError):
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            writer.transport.abort()

        # Baseline: CPU per plain valid request, to subtract connection overhead.
        plain = request()
        await gather_limited(20, 10, lambda i: one(plain))
        cpu0 = (await server.stats())["cpu"]
        await gather_limited(server_requests, 10, lambda i: one(plain))
        cpu1 = (await server.stats())["cpu"]
        plain_ms = (cpu1 - cpu0) / server_requests * 1000
        server_ms: dict[str, float] = {}
        for kind in ADVERSARIAL:
            data = build(kind, size)
            cpu0 = (await server.stats())["cpu"]
            await gather_limited(server_requests, 10, lambda i, data=data: one(data))
            cpu1 = (await server.stats())["cpu"]
            server_ms[kind] = (cpu1 - cpu0) / server_requests * 1000
        server_drip_ms = {}
        for n in (size // 2, size):
            data = build("Extensions params", n)
            cpu0 = (await server.stats())["cpu"]
            reads0 = (await server.stats())["reads"]
            await gather_limited(dripped, dripped, lambda i, data=data: drip(data))
            stats = await server.stats()
            server_drip_ms[n] = (stats["cpu"] - cpu0) / dripped * 1000
            server_drip_ms[f"reads_{n}"] = (stats["reads"] - reads0) / dripped
    return {
        "size": size,
        **figures,
        "server_plain_request_ms": plain_ms,
        "server_ms": {k: round(v, 3) for k, v in server_ms.items()},
        "server_worst_extra_ms": max(server_ms.values()) - plain_ms,
        "server_dripped_ms": {str(k): round(v, 3) for k, v in server_drip_ms.items()},
    }


def check(r: dict[str, Any]) -> list[str]:
    failures = []
    if r["parser_worst_ms"] > 5:
        failures.append(f"parser: {r['parser_worst_ms']:.2f} ms for {r['parser_worst_kind']}")
    if r["server_worst_extra_ms"] > 5:
        failures.append(f"server: {r['server_worst_extra_ms']:.2f} ms over a plain request")
    # Linear: 8x the size costs at most ~8x (generous: 16x) the extra work.
    bad = {k: v for k, v in r["parser_linearity"].items() if v > 2.0}
    if bad:
        failures.append(f"superlinear parsing: {bad}")
    drip = {int(k): v for k, v in r["parser_dripped_ms"].items()}
    sizes = sorted(drip)
    if drip[sizes[-1]] > 4 * drip[sizes[0]] * 1.5:
        failures.append(f"dripped parsing is superlinear: {drip}")
    return failures


if __name__ == "__main__":
    cli("header_cpu", run, check, FULL, SHORT)
