"""Soak: N clients exchange messages with an echo server for ``duration`` seconds.

Each client sends bursts of 1-4 numbered messages of random size and checks
that the echoes come back complete and in order. Targets: nothing lost or
reordered; the server's RSS flat from the first sample to the last; fds and
tasks back at their baseline once the clients left.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import wsjet

from ._util import MiB, ServerProcess, cli

FULL = {"clients": 500, "duration": 300.0, "flat_mib": 8.0}
SHORT = {"clients": 100, "duration": 10.0, "flat_mib": 8.0}


async def run(clients: int, duration: float, flat_mib: float) -> dict[str, Any]:
    async with ServerProcess("echo") as server:
        uri = f"ws://127.0.0.1:{server.port}/"
        before = await server.stats(trim=True)
        sent = exchanged = reordered = 0
        errors: list[str] = []
        samples: list[tuple[float, int]] = []
        deadline = time.monotonic() + duration

        async def client(i: int) -> None:
            nonlocal sent, exchanged, reordered
            rng = random.Random(i)
            seq = 0
            try:
                async with wsjet.connect(uri, open_timeout=60) as ws:
                    while time.monotonic() < deadline:
                        burst = []
                        for _ in range(rng.randint(1, 4)):
                            message = f"{i}:{seq}:" + "m" * rng.randint(0, 4000)
                            burst.append(message)
                            await ws.send(message)
                            sent += 1
                            seq += 1
                        for message in burst:
                            echo = await asyncio.wait_for(ws.recv(), 30)
                            if echo != message:
                                reordered += 1
                            exchanged += 1
                        await asyncio.sleep(rng.random() * 0.05)
            except (wsjet.WebSocketError, TimeoutError, OSError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

        async def sampler() -> None:
            start = time.monotonic()
            while time.monotonic() < deadline:
                await asyncio.sleep(max(duration / 20, 0.5))
                stats = await server.stats(trim=True)
                samples.append((round(time.monotonic() - start, 1), stats["rss"]))

        sampling = asyncio.create_task(sampler())
        await asyncio.gather(*(client(i) for i in range(clients)))
        await sampling
        after = await server.settle()
        stats = await server.stats()
    first = samples[min(2, len(samples) - 1)][1] if samples else 0
    last = samples[-1][1] if samples else 0
    return {
        "clients": clients,
        "duration_s": duration,
        "messages_exchanged": exchanged,
        "lost": sent - exchanged,
        "reordered_or_corrupt": reordered,
        "client_errors": errors[:5],
        "rss_first_sample_kib": first,
        "rss_last_sample_kib": last,
        "rss_drift_kib": last - first,
        "flat_mib": flat_mib,
        "fds_before": before["fds"],
        "fds_after": after["fds"],
        "tasks_before": before["tasks"],
        "tasks_after": after["tasks"],
        "server_errors": stats["errors"],
    }


def check(r: dict[str, Any]) -> list[str]:
    failures = []
    if r["lost"] or r["reordered_or_corrupt"] or r["client_errors"]:
        failures.append(
            f"lost {r['lost']}, reordered {r['reordered_or_corrupt']}, errors {r['client_errors']}"
        )
    if r["rss_drift_kib"] > r["flat_mib"] * MiB // 1024:
        failures.append(f"RSS drifted by {r['rss_drift_kib']} KiB")
    if r["fds_after"] != r["fds_before"] or r["tasks_after"] != r["tasks_before"]:
        failures.append(
            f"fds {r['fds_before']} -> {r['fds_after']}, "
            f"tasks {r['tasks_before']} -> {r['tasks_after']}"
        )
    if r["server_errors"]:
        failures.append(f"{r['server_errors']} server error logs")
    return failures


if __name__ == "__main__":
    cli("soak", run, check, FULL, SHORT)
