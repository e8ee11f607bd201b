"""Churn: handshakes then TCP RST, at every stage; the server ends where it started.

Connection ``i`` completes the opening handshake, then: every third one sends
part of a frame; the others send nothing, half a fragmented message, a close
frame (RST during the closing handshake) or only half a request (RST during the
opening handshake); then each resets TCP (SO_LINGER 0). Afterwards the server
holds the fds and tasks it held before, its RSS grew less than 16 MiB, and it
logged no error.
"""

from __future__ import annotations

import time
from typing import Any

from ._util import (
    MiB,
    ServerProcess,
    cli,
    connect_tcp,
    frame,
    gather_limited,
    header,
    open_raw,
    request,
    reset,
)

FULL = {"total": 10_000, "concurrency": 200}
SHORT = {"total": 900, "concurrency": 100}

STAGES = ("idle", "mid-frame", "mid-handshake", "mid-fragmented", "closing")


def stage_of(i: int) -> str:
    if i % 3 == 1:
        return "mid-frame"
    if i % 3 == 0:
        return "idle"
    return ("mid-handshake", "mid-fragmented", "closing")[(i // 3) % 3]


async def _one(port: int, i: int) -> str:
    stage = stage_of(i)
    try:
        if stage == "mid-handshake":
            _, writer = await connect_tcp(port)
            writer.write(request()[:40])
        else:
            _, writer, _head = await open_raw(port)
            if stage == "mid-frame":
                writer.write(header(0x2, 1000) + b"x" * 10)
            elif stage == "mid-fragmented":
                writer.write(frame(0x1, b"first half", fin=False) + frame(0x0, b"more", fin=False))
            elif stage == "closing":
                writer.write(frame(0x8, b"\x03\xe8"))
            await writer.drain()
    except (ConnectionError, OSError, TimeoutError) as exc:
        return f"{stage}: {type(exc).__name__}"
    reset(writer)
    return "ok"


async def run(total: int, concurrency: int) -> dict[str, Any]:
    async with ServerProcess("echo") as server:
        await gather_limited(concurrency, concurrency, lambda i: _one(server.port, i))
        before = await server.settle()
        start = time.monotonic()
        outcomes = await gather_limited(total, concurrency, lambda i: _one(server.port, i))
        elapsed = time.monotonic() - start
        after = await server.settle()
        stats = await server.stats()
    problems: dict[str, int] = {}
    for outcome in outcomes:
        if outcome != "ok":
            problems[outcome] = problems.get(outcome, 0) + 1
    return {
        "connections": total,
        "elapsed_s": elapsed,
        "client_side_problems": problems,
        "open_after": after["connections"],
        "fds_before": before["fds"],
        "fds_after": after["fds"],
        "tasks_before": before["tasks"],
        "tasks_after": after["tasks"],
        "rss_growth_kib": after["rss"] - before["rss"],
        "errors": stats["errors"],
        "tracebacks": stats["tracebacks"] + server.tracebacks(),
        "log_samples": stats["log_samples"][:3],
    }


def check(r: dict[str, Any]) -> list[str]:
    failures = []
    if r["fds_after"] != r["fds_before"]:
        failures.append(f"fds {r['fds_before']} -> {r['fds_after']}")
    if r["tasks_after"] != r["tasks_before"]:
        failures.append(f"tasks {r['tasks_before']} -> {r['tasks_after']}")
    if r["open_after"]:
        failures.append(f"{r['open_after']} connections still open")
    if r["rss_growth_kib"] >= 16 * MiB // 1024:
        failures.append(f"RSS grew {r['rss_growth_kib']} KiB")
    if r["errors"] or r["tracebacks"]:
        failures.append(f"{r['errors']} error logs, {r['tracebacks']} tracebacks")
    return failures


if __name__ == "__main__":
    cli("churn", run, check, FULL, SHORT)
