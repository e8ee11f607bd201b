"""Slowloris: N connections drip a request 1 byte/s, N more send nothing.

Every one must be closed by the server at ``open_timeout`` ± 1 s after it
connected, and the server's RSS grows by less than 5 MiB while they hang on.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ._util import MiB, ServerProcess, cli, connect_tcp, request

FULL = {"dripping": 200, "silent": 200, "open_timeout": 10.0, "tolerance_s": 1.0}
SHORT = {"dripping": 50, "silent": 50, "open_timeout": 2.0, "tolerance_s": 1.0}


async def run(
    dripping: int, silent: int, open_timeout: float, tolerance_s: float
) -> dict[str, Any]:
    async with ServerProcess("echo", {"open_timeout": open_timeout}) as server:
        before = await server.stats(trim=True)
        await server.command("reset_hwm")
        data = request()
        # Per connection, its life seen from two starts: from before connecting and
        # from when connect_tcp() returned. The server's clock starts in between, when
        # it accepts. A loaded machine can resume this coroutine seconds after the
        # connection was made (CI once measured 7 ms for a 2.0 s timeout from the
        # second start), so the lower bound is checked on the first figure, which can
        # only be longer than the server's, and the upper bound on the second.
        lifetimes: list[tuple[float, float] | None] = []

        async def hold(drip: bool) -> None:
            asked = time.monotonic()
            reader, writer = await connect_tcp(server.port)
            start = time.monotonic()

            async def dripper() -> None:
                for i in range(len(data)):
                    try:
                        writer.write(data[i : i + 1])
                    except Exception:  # the server reset us: the reader sees it too
                        return
                    await asyncio.sleep(1)

            task = asyncio.create_task(dripper()) if drip else None
            try:
                async with asyncio.timeout(open_timeout + 10):
                    while await reader.read(4096):
                        pass
                now = time.monotonic()
                lifetimes.append((now - asked, now - start))
            except ConnectionError:
                now = time.monotonic()
                lifetimes.append((now - asked, now - start))
            except TimeoutError:
                lifetimes.append(None)
            finally:
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                writer.transport.abort()

        jobs = [hold(True) for _ in range(dripping)] + [hold(False) for _ in range(silent)]
        holders = asyncio.gather(*jobs)
        await asyncio.sleep(min(open_timeout / 2, 2))
        during = await server.stats()
        await holders
        after = await server.settle()
    closed = [t for t in lifetimes if t is not None]
    return {
        "connections": len(lifetimes),
        "open_at_peak": during["connections"],
        "never_closed": len(lifetimes) - len(closed),
        "open_timeout": open_timeout,
        "closed_min_s": min(asked for asked, _ in closed) if closed else None,
        "closed_max_s": max(connected for _, connected in closed) if closed else None,
        "slowest_connect_s": max(a - c for a, c in closed) if closed else None,
        "rss_growth_kib": during["hwm"] - before["rss"],
        "fds_before": before["fds"],
        "fds_after": after["fds"],
        "tolerance_s": tolerance_s,
    }


def check(r: dict[str, Any]) -> list[str]:
    failures = []
    if r["never_closed"]:
        failures.append(f"{r['never_closed']} connections never closed")
    low, high = r["open_timeout"] - r["tolerance_s"], r["open_timeout"] + r["tolerance_s"]
    if r["closed_min_s"] is None or not (low <= r["closed_min_s"] and r["closed_max_s"] <= high):
        failures.append(f"closed between {r['closed_min_s']} and {r['closed_max_s']} s")
    if r["rss_growth_kib"] >= 5 * MiB // 1024:
        failures.append(f"RSS grew {r['rss_growth_kib']} KiB")
    if r["fds_after"] != r["fds_before"]:
        failures.append(f"fds {r['fds_before']} -> {r['fds_after']}")
    return failures


if __name__ == "__main__":
    cli("slowloris", run, check, FULL, SHORT)
