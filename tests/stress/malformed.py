"""Malformed handshakes: each kind N times; the right 4xx (or a close) within 1 s.

Meanwhile a wsjet client keeps exchanging messages with the same server; at
the end the server has logged no traceback, holds the fds it held before, and
its RSS grew by less than 2 MiB.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import wsjet

from ._util import MiB, ServerProcess, cli, connect_tcp, gather_limited, request

FULL = {"per_kind": 200, "concurrency": 50, "limit_s": 1.0}
SHORT = {"per_kind": 15, "concurrency": 20, "limit_s": 1.0}


def _swap(old: bytes, new: bytes) -> Callable[[random.Random], bytes]:
    return lambda rng: request().replace(old, new)


def _random_bytes(rng: random.Random) -> bytes:
    return rng.randbytes(rng.randint(1, 2048)) + b"\r\n\r\n"


#: kind -> (request factory, expected answer: an HTTP status, or 101 for a valid request)
KINDS: dict[str, tuple[Callable[[random.Random], bytes], int]] = {
    "no Upgrade": (_swap(b"Upgrade: websocket\r\n", b""), 400),
    "Connection: keep-alive": (_swap(b"Connection: Upgrade", b"Connection: keep-alive"), 400),
    "Upgrade: h2c": (_swap(b"Upgrade: websocket", b"Upgrade: h2c"), 400),
    "bad version": (_swap(b"Version: 13", b"Version: 8"), 426),
    "bad key": (lambda rng: request(key="c2hvcnQ="), 400),
    "duplicate key": (
        lambda rng: request(extra=b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"),
        400,
    ),
    "no Host": (_swap(b"Host: 127.0.0.1\r\n", b""), 400),
    "POST": (_swap(b"GET ", b"POST "), 405),
    "HTTP/1.0": (_swap(b" HTTP/1.1\r\n", b" HTTP/1.0\r\n"), 400),
    "129 headers": (lambda rng: request(extra=b"X-A: b\r\n" * 129), 431),
    "9 KB request line": (_swap(b"GET / ", b"GET /" + b"x" * 9000 + b" "), 414),
    "9 KB header line": (lambda rng: request(extra=b"X-Big: " + b"y" * 9000 + b"\r\n"), 431),
    "70 KB header block": (lambda rng: request(extra=(b"X-C: " + b"z" * 8000 + b"\r\n") * 9), 431),
    "NUL in value": (lambda rng: request(extra=b"X-Nul: a\0b\r\n"), 400),
    "obs-fold": (lambda rng: request(extra=b"X-Fold: a\r\n b\r\n"), 400),
    "bare LF": (lambda rng: request().replace(b"\r\n", b"\n"), 400),
    "space before colon": (lambda rng: request(extra=b"Host : x\r\n"), 400),
    "random bytes": (_random_bytes, 400),
    # No line end in either: a server that waits for one holds the socket until open_timeout.
    "TLS ClientHello": (
        lambda rng: b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64),
        400,
    ),
    "random bytes, no LF": (lambda rng: _random_bytes(rng)[:-4].replace(b"\n", b""), 400),
    "Extensions constructor,__proto__": (
        lambda rng: request(extensions="constructor,__proto__"),
        101,
    ),
    "Protocol constructor": (
        lambda rng: request(extra=b"Sec-WebSocket-Protocol: constructor, __proto__\r\n"),
        101,
    ),
}


async def _one(port: int, data: bytes, limit: float) -> tuple[int | None, float]:
    """Send ``data``; return the status answered (None: closed without one) and the delay.

    The delay runs from the request's write to the answer: the connect before
    it is the kernel's and this loop's (20 at a time on a loaded machine), not
    the server's answer.
    """
    reader, writer = await connect_tcp(port)
    start = time.monotonic()
    try:
        writer.write(data)
        try:
            async with asyncio.timeout(limit + 1):  # measured, then judged against limit
                answer = b""
                while chunk := await reader.read(65536):
                    answer += chunk
                    if answer.startswith(b"HTTP/1.1 101 ") and b"\r\n\r\n" in answer:
                        break
        except ConnectionError:
            pass
        elapsed = time.monotonic() - start
        if answer.startswith(b"HTTP/1.1 "):
            return int(answer[9:12]), elapsed
        return None, elapsed
    except TimeoutError:
        return -1, time.monotonic() - start
    finally:
        writer.transport.abort()


async def run(per_kind: int, concurrency: int, limit_s: float) -> dict[str, Any]:
    rng = random.Random(6455)
    async with ServerProcess("echo") as server:
        uri = f"ws://127.0.0.1:{server.port}/"
        echo_ok = echo_failed = 0
        stop = asyncio.Event()

        async def concurrent_echo() -> None:
            nonlocal echo_ok, echo_failed
            async with wsjet.connect(uri) as ws:
                while not stop.is_set():
                    try:
                        await ws.send("ping")
                        assert await asyncio.wait_for(ws.recv(), 5) == "ping"
                        echo_ok += 1
                    except Exception:
                        echo_failed += 1
                    await asyncio.sleep(0.01)

        # Warm up at the same concurrency (the allocator's arenas grow to their
        # working size), then take the baseline: what grows after that is kept.
        jobs = [
            (kind, make(rng), expect) for _ in range(5) for kind, (make, expect) in KINDS.items()
        ]
        await gather_limited(len(jobs), concurrency, lambda i: _one(server.port, jobs[i][1], 5))
        before = await server.settle()
        echo = asyncio.create_task(concurrent_echo())
        work = [
            (kind, make(rng), expect)
            for _ in range(per_kind)
            for kind, (make, expect) in KINDS.items()
        ]
        rng.shuffle(work)
        start = time.monotonic()
        answers = await gather_limited(
            len(work), concurrency, lambda i: _one(server.port, work[i][1], limit_s)
        )
        attack_s = time.monotonic() - start
        stop.set()
        await echo
        after = await server.settle()
        stats = await server.stats()
    wrong: dict[str, int] = {}
    slowest: dict[str, float] = {}
    for (kind, _, expect), (status, elapsed) in zip(work, answers, strict=True):
        if status != expect:
            wrong[f"{kind}: got {status}, want {expect}"] = (
                wrong.get(f"{kind}: got {status}, want {expect}", 0) + 1
            )
        slowest[kind] = max(slowest.get(kind, 0.0), elapsed)
    return {
        "kinds": len(KINDS),
        "requests": len(work),
        "attack_s": attack_s,
        "wrong_answers": wrong,
        "max_answer_s": max(slowest.values()),
        "slowest_kind": max(slowest, key=lambda k: slowest[k]),
        "echo_ok": echo_ok,
        "echo_failed": echo_failed,
        "rss_growth_kib": after["rss"] - before["rss"],
        "fds_before": before["fds"],
        "fds_after": after["fds"],
        "tasks_before": before["tasks"],
        "tasks_after": after["tasks"],
        "tracebacks": stats["tracebacks"] + server.tracebacks(),
        "errors": stats["errors"],
        "limit_s": limit_s,
    }


def check(r: dict[str, Any]) -> list[str]:
    failures = []
    if r["kinds"] < 12:
        failures.append(f"only {r['kinds']} kinds")
    if r["wrong_answers"]:
        failures.append(f"wrong answers: {r['wrong_answers']}")
    if r["max_answer_s"] > r["limit_s"]:
        failures.append(f"slowest answer {r['max_answer_s']:.3f} s ({r['slowest_kind']})")
    if r["echo_failed"] or not r["echo_ok"]:
        failures.append(f"concurrent echo: {r['echo_ok']} ok, {r['echo_failed']} failed")
    if r["rss_growth_kib"] >= 2 * MiB // 1024:
        failures.append(f"RSS grew {r['rss_growth_kib']} KiB (>= 2 MiB)")
    if r["fds_after"] != r["fds_before"]:
        failures.append(f"fds {r['fds_before']} -> {r['fds_after']}")
    if r["tasks_after"] != r["tasks_before"]:
        failures.append(f"tasks {r['tasks_before']} -> {r['tasks_after']}")
    if r["tracebacks"] or r["errors"]:
        failures.append(f"{r['tracebacks']} tracebacks, {r['errors']} error logs")
    return failures


if __name__ == "__main__":
    cli("malformed", run, check, FULL, SHORT)
