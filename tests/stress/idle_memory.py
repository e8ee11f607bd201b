"""Memory per idle connection, measured as the server process's RSS over N connections.

Three figures: without compression; with permessage-deflate negotiated but no
message yet; with permessage-deflate after one message each way (the zlib
contexts then live on, with context takeover).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import wsjet

from ._util import ServerProcess, cli, gather_limited

FULL = {"connections": 1000}
SHORT = {"connections": 200}

MESSAGE = json.dumps({"type": "update", "id": 12345, "values": list(range(40))})


async def _measure(connections: int, compression: str | None, exchange: bool) -> float:
    async with ServerProcess("echo", {"compression": compression}) as server:
        uri = f"ws://127.0.0.1:{server.port}/"
        options: dict[str, Any] = {"compression": compression, "ping_interval": None}

        async def warm(_: int) -> None:
            async with wsjet.connect(uri, **options) as ws:
                await ws.send(MESSAGE)
                await ws.recv()

        await gather_limited(50, 50, warm)
        before = await server.settle()
        clients: list[wsjet.WebSocketClientProtocol] = []

        async def open_one(_: int) -> None:
            ws = await wsjet.connect(uri, open_timeout=30, **options)
            clients.append(ws)
            if exchange:
                await ws.send(MESSAGE)
                await ws.recv()

        try:
            await gather_limited(connections, 100, open_one)
            await asyncio.sleep(0.2)
            during = await server.stats(trim=True)
            assert during["connections"] == connections, during["connections"]
        finally:
            await asyncio.gather(*(ws.close() for ws in clients))
        return (during["rss"] - before["rss"]) / connections


async def run(connections: int) -> dict[str, Any]:
    return {
        "connections": connections,
        "kib_per_connection_no_compression": round(await _measure(connections, None, False), 1),
        "kib_per_connection_deflate_no_message": round(
            await _measure(connections, "deflate", False), 1
        ),
        "kib_per_connection_deflate_after_message": round(
            await _measure(connections, "deflate", True), 1
        ),
    }


def check(r: dict[str, Any]) -> list[str]:
    failures = []
    if r["kib_per_connection_no_compression"] > 16:
        failures.append(f"{r['kib_per_connection_no_compression']} KiB per connection > 16")
    if r["kib_per_connection_deflate_after_message"] > 64:
        failures.append(
            f"{r['kib_per_connection_deflate_after_message']} KiB per deflate connection > 64"
        )
    return failures


if __name__ == "__main__":
    cli("idle_memory", run, check, FULL, SHORT)
