"""Header-parser CPU: 8 KiB adversarial header values, whole 64 KiB header blocks, and
requests dripped 1 byte at a time.

Two measurements:

- *parser*: in this process, the server's whole handshake path (RequestReader,
  check_request with its cap on Sec-WebSocket-Protocol / -Extensions, the
  default same-origin check against Host, subprotocol and extension parsing,
  deflate negotiation) on each adversarial request, with ``time.process_time``:
  one 8 KiB line (over the 4 KiB cap of the negotiation headers: refused), one
  line of half that (within the cap: parsed, the most work a request can
  ask), and a whole 64 KiB header block of such lines; the cost at 1/16 and
  1/2 of the size shows whether it is linear;
- *server*: the CPU time (user + system) the server process spends per
  adversarial request over TCP, whole-block ones included, and per dripped
  request (1 byte per write).
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
from wsjet.core.origin import Origins, origin_allowed
from wsjet.exceptions import InvalidHandshake, InvalidOrigin
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
    "Origin port": (b"Origin", lambda n: b"http://127.0.0.1:" + b"0" * n),
    "Origin brackets": (b"Origin", lambda n: b"http://[" + b":" * n),
    # Host replaces the request's own Host line (a second one would be a 400); the
    # request has an Origin naming 127.0.0.1, for the same-origin check to read it.
    "Host long": (b"Host", lambda n: b"a" * n),
    "Host brackets": (b"Host", lambda n: b"[" * n),
    "Host colons": (b"Host", lambda n: b"a" + b":" * n),
    # The same-origin check compares all of them: Origin and Host both n bytes.
    "Origin = Host": (b"Origin+Host", lambda n: b"a" * n),
    "Version spaces": (b"X-Version", lambda n: b"1" + b" " * n + b"3"),
}

#: Whole header blocks: 7 lines of ``size`` bytes of one kind (the most 64 KiB holds).
BLOCKS = [
    "Extensions params",
    "Extensions valid offers",
    "Extensions quoted",
    "Protocol a,a,a",
    "Origin long",
    "Version spaces",
]


def _line(kind: str, size: int) -> bytes:
    name, make = ADVERSARIAL[kind]
    room = size - len(name) - 2
    return name + b": " + make(room)[:room]


def build(kind: str, size: int, lines: int = 1) -> bytes:
    """A handshake with ``lines`` adversarial header lines of ``size`` bytes (CRLF excluded)."""
    name, make = ADVERSARIAL[kind]
    if name == b"Host":  # with an Origin, so that the same-origin check reads the Host
        data = request(extra=b"Origin: http://127.0.0.1\r\n")
        return data.replace(b"Host: 127.0.0.1", _line(kind, size), 1)
    if name == b"Origin+Host":
        room = size - len(b"Origin: http://")  # the longer of the two lines
        host = make(room)[:room]
        data = request(extra=b"Origin: http://" + host + b"\r\n")
        return data.replace(b"Host: 127.0.0.1", b"Host: " + host, 1)
    return request(extra=(_line(kind, size) + b"\r\n") * lines)


def server_path(data: bytes, origins: Origins = None) -> None:
    """What a wsjet server runs on a request before its handler (or its 4xx).

    ``origins=None`` is the server's default: the same-origin policy.
    """
    reader = RequestReader()
    try:
        req = reader.feed(data)
        assert req is not None
        handshake.check_request(req)
        origin = req.headers.get_all("Origin")
        if len(origin) > 1 or not origin_allowed(
            origin[0] if origin else None, req.headers.get("Host"), origins
        ):
            raise InvalidOrigin("Origin", None, "not allowed")
        handshake.select_subprotocol(handshake.parse_subprotocols(req.headers), ["chat"])
        negotiate_server(req.headers, "deflate")
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
    parser_ms: dict[str, float] = {}
    half_ms: dict[str, float] = {}
    linearity: dict[str, float] = {}
    plain = request()
    small, half = size // 16, size // 2
    for kind in ADVERSARIAL:
        # The plain request and the three sizes are measured in turns, three
        # rounds, best of each: the ratio below divides by a small difference,
        # which a burst of load during one measurement alone would distort.
        inputs = {0: plain, **{n: build(kind, n) for n in (small, half, size)}}
        costs = dict.fromkeys(inputs, float("inf"))
        for _ in range(3):
            for n, data in inputs.items():
                cost = _cpu_per_call(lambda data=data: server_path(data), reps)
                costs[n] = min(costs[n], cost)
        plain_cost = costs[0]
        parser_ms[kind] = costs[size] * 1000
        half_ms[kind] = costs[half] * 1000
        # Extra cost over a plain request at size/2, over 8x the extra cost at
        # size/16: 1.0 when linear, 8.0 when quadratic. size/2 rather than size:
        # at 8 KiB the negotiation headers are over their cap and refused unparsed,
        # at 4 KiB they are parsed. Only judged when the extra cost at size/2 is
        # measurable (over 0.2 ms).
        extra_small = max(costs[small] - plain_cost, 2e-6)
        extra_half = costs[half] - plain_cost
        linearity[kind] = extra_half / (8 * extra_small) if extra_half > 2e-4 else 0.0
    # Whole 64 KiB header blocks: 7 adversarial lines of size bytes each, the most
    # the block limit lets through.
    block_ms = {}
    for kind in BLOCKS:
        block = build(kind, size, lines=7)
        cost = _cpu_per_call(lambda block=block: server_path(block), max(reps // 5, 3))
        block_ms[kind] = cost * 1000
    # The three sizes in turns, three rounds, best of each, as above: measured one
    # after the other, a burst of load during the last two alone made linear
    # parsing look superlinear (1.5, 5.2, 10.4 ms where a quiet run gives 1.4,
    # 2.7, 5.4).
    drips = {n: build("Extensions params", n) for n in (size // 4, size // 2, size)}
    drip_ms = dict.fromkeys(drips, float("inf"))
    for _ in range(3):
        for n, data in drips.items():
            cost = _cpu_per_call(lambda data=data: dripped_path(data), max(reps // 10, 3))
            drip_ms[n] = min(drip_ms[n], cost * 1000)
    every = {f"{k} ({size} B)": v for k, v in parser_ms.items()}
    every.update({f"{k} ({half} B)": v for k, v in half_ms.items()})
    worst = max(every, key=lambda k: every[k])
    worst_block = max(block_ms, key=lambda k: block_ms[k])
    return {
        "parser_ms": {k: round(v, 3) for k, v in parser_ms.items()},
        f"parser_{half}_ms": {k: round(v, 3) for k, v in half_ms.items()},
        "parser_worst_ms": every[worst],
        "parser_worst_kind": worst,
        "parser_block_ms": {k: round(v, 3) for k, v in block_ms.items()},
        "parser_block_worst_ms": block_ms[worst_block],
        "parser_block_worst_kind": worst_block,
        "parser_linearity": {k: round(v, 2) for k, v in linearity.items()},
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
        cases = [(kind, build(kind, size)) for kind in ADVERSARIAL]
        cases += [(f"{kind} (64 KiB block)", build(kind, size, lines=7)) for kind in BLOCKS]
        for kind, data in cases:
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
    # A whole header block is one request too: the same 5 ms.
    if r["parser_block_worst_ms"] > 5:
        failures.append(
            f"parser: {r['parser_block_worst_ms']:.2f} ms for a 64 KiB block of"
            f" {r['parser_block_worst_kind']}"
        )
    if r["server_worst_extra_ms"] > 5:
        failures.append(f"server: {r['server_worst_extra_ms']:.2f} ms over a plain request")
    # Linear: 8x the size costs at most ~8x (generous: 16x) the extra work.
    bad = {k: v for k, v in r["parser_linearity"].items() if v > 2.0}
    if bad:
        failures.append(f"superlinear parsing: {bad}")
    drip = {int(k): v for k, v in r["parser_dripped_ms"].items()}
    sizes = sorted(drip)
    # 4x the size: 4x the cost when linear, 16x when quadratic. The slack (2.5x,
    # as the parser's 2.0 above) absorbs a CPU shared with other processes:
    # under a full test run, 4x the size has measured up to 6.4x the cost.
    if drip[sizes[-1]] > 4 * drip[sizes[0]] * 2.5:
        failures.append(f"dripped parsing is superlinear: {drip}")
    return failures


if __name__ == "__main__":
    cli("header_cpu", run, check, FULL, SHORT)
