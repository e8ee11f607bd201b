"""Ping flood: a peer sends pings as fast as it can and never reads the pongs.

The server may buffer pongs up to ``write_limit``; then it must stop reading
(and so stop making pongs), whatever the peer sends. Its peak RSS grows by at
most ``write_limit`` + 4 MiB, and a concurrent echo client keeps being served.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import wsjet

from ._util import MiB, ServerProcess, cli, frame, open_raw

FULL = {"total": 300 * MiB, "stall_s": 3.0, "write_limit": 65536}
SHORT = {"total": 30 * MiB, "stall_s": 1.5, "write_limit": 65536}


async def run(total: int, stall_s: float, write_limit: int) -> dict[str, Any]:
    async with ServerProcess("echo", {"write_limit": write_limit, "compression": None}) as server:
        before = await server.stats(trim=True)
        await server.command("reset_hwm")
        _, writer, _ = await open_raw(server.port, rcvbuf=4096)
        writer.transport.pause_reading()  # type: ignore[attr-defined]
        ping = frame(0x9, b"p" * 125)
        batch = ping * (MiB // len(ping))
        latencies: list[float] = []
        stop = asyncio.Event()

        async def bystander() -> None:
            async with wsjet.connect(f"ws://127.0.0.1:{server.port}/", compression=None) as ws:
                while not stop.is_set():
                    start = time.monotonic()
                    await ws.send("still here?")
                    await asyncio.wait_for(ws.recv(), 10)
                    latencies.append(time.monotonic() - start)
                    await asyncio.sleep(0.02)

        echo = asyncio.create_task(bystander())
        sent = 0
        start = time.monotonic()
        stalled = False
        try:
            while sent < total:
                writer.write(batch)
                try:
                    await asyncio.wait_for(writer.drain(), stall_s)
                except TimeoutError:
                    stalled = True
                    break
                sent += len(batch)
        except ConnectionError:
            pass
        elapsed = time.monotonic() - start
        unsent = writer.transport.get_write_buffer_size()
        during = await server.stats()
        stop.set()
        await echo
        writer.transport.abort()
        after = await server.settle()
    accepted = sent + len(batch) - unsent if stalled else sent
    return {
        "offered_mib": round(total / MiB, 1),
        "accepted_by_kernel_mib": round(accepted / MiB, 1),
        "stalled": stalled,
        "elapsed_s": elapsed,
        "peak_rss_growth_kib": during["hwm"] - before["rss"],
        "write_limit": write_limit,
        "bystander_round_trips": len(latencies),
        "bystander_max_latency_ms": round(max(latencies, default=0.0) * 1000, 1),
        "fds_before": before["fds"],
        "fds_after": after["fds"],
    }


def check(r: dict[str, Any]) -> list[str]:
    failures = []
    budget = (r["write_limit"] + 4 * MiB) // 1024
    if r["peak_rss_growth_kib"] > budget:
        failures.append(f"peak RSS +{r['peak_rss_growth_kib']} KiB > write_limit + 4 MiB")
    if not r["bystander_round_trips"] or r["bystander_max_latency_ms"] > 1000:
        failures.append(f"bystander starved: max latency {r['bystander_max_latency_ms']} ms")
    if r["fds_after"] != r["fds_before"]:
        failures.append(f"fds {r['fds_before']} -> {r['fds_after']}")
    return failures


if __name__ == "__main__":
    cli("ping_flood", run, check, FULL, SHORT)
