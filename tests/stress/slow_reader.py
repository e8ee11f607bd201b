"""Slow reader: the handler loops ``send(64 KiB)``; the client never reads.

``send()`` must block once ``write_limit`` is buffered (the kernel's socket
buffers take their share first), and the server's RSS stays flat: it grows
by less than ``write_limit`` + 1 MiB over ``duration`` seconds.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ._util import MiB, ServerProcess, cli, open_raw

FULL = {"duration": 5.0, "write_limit": 65536}
SHORT = {"duration": 2.0, "write_limit": 65536}


async def run(duration: float, write_limit: int) -> dict[str, Any]:
    options = {"write_limit": write_limit, "compression": None}
    async with ServerProcess("producer", options, {"size": 65536}) as server:
        before = await server.stats(trim=True)
        await server.command("reset_hwm")
        _, writer, _ = await open_raw(server.port, rcvbuf=4096)
        writer.transport.pause_reading()  # type: ignore[attr-defined]
        await asyncio.sleep(duration)
        during = await server.stats()
        writer.transport.abort()
        after = await server.settle()
    return {
        "duration_s": duration,
        "sends_returned": during["sends"],
        "mib_sent": round(during["sends"] * 65536 / MiB, 2),
        "send_blocked_for_s": round(during["time"] - during["last_send"], 2),
        "peak_rss_growth_kib": during["hwm"] - before["rss"],
        "write_limit": write_limit,
        "handler_tasks_after": after["tasks"] - before["tasks"],
    }


def check(r: dict[str, Any]) -> list[str]:
    failures = []
    if r["send_blocked_for_s"] < r["duration_s"] / 2:
        failures.append(f"send() did not block ({r['sends_returned']} sends returned)")
    if r["peak_rss_growth_kib"] >= (r["write_limit"] + MiB) // 1024:
        failures.append(f"peak RSS +{r['peak_rss_growth_kib']} KiB >= write_limit + 1 MiB")
    if r["handler_tasks_after"]:
        failures.append(f"{r['handler_tasks_after']} tasks left after the client left")
    return failures


if __name__ == "__main__":
    cli("slow_reader", run, check, FULL, SHORT)
