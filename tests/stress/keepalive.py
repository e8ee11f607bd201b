"""Keepalive with 0.5 s timers (ping_interval = ping_timeout = 0.5 s).

- peers that ignore pings are closed with 1011 at 1.0 ± 0.2 s after opening,
  by a wsjet server and by a wsjet client alike;
- busy, healthy peers (streaming 64 KiB messages both ways as fast as they go)
  are never closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import wsjet

from ._util import ServerProcess, accept_upgrade, cli, gather_limited, open_raw, read_close

FULL = {"ignorers": 50, "busy": 20, "busy_s": 10.0}
SHORT = {"ignorers": 10, "busy": 4, "busy_s": 3.0}

TIMERS = {"ping_interval": 0.5, "ping_timeout": 0.5}


async def _hostile_server(ignore_pings: bool) -> asyncio.Server:
    """A server that completes the handshake, then never answers anything."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await accept_upgrade(reader, writer)
            while await reader.read(65536):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def run(ignorers: int, busy: int, busy_s: float) -> dict[str, Any]:
    async with ServerProcess("echo", TIMERS) as server:

        async def ignorer(_: int) -> tuple[int | None, float]:
            reader, writer, _head = await open_raw(server.port)
            start = time.monotonic()
            code = await read_close(reader, 5)
            elapsed = time.monotonic() - start
            writer.transport.abort()
            return code, elapsed

        ignored = await gather_limited(ignorers, ignorers, ignorer)

        closed_early: list[str] = []
        volume = 0

        async def busy_peer(_: int) -> None:
            nonlocal volume
            uri = f"ws://127.0.0.1:{server.port}/"
            ws = await wsjet.connect(uri, compression=None)
            deadline = time.monotonic() + busy_s
            chunk = b"b" * 65536

            async def reader() -> None:
                nonlocal volume
                with contextlib.suppress(wsjet.ConnectionClosedOK):
                    while True:
                        volume += len(await ws.recv())

            task = asyncio.create_task(reader())
            try:
                while time.monotonic() < deadline and not task.done():
                    await ws.send(chunk)
            except wsjet.ConnectionClosed as exc:
                closed_early.append(f"send: {type(exc).__name__}: {exc}")
            # Close while still reading, as a healthy peer does.
            await ws.close()
            try:
                await task
            except wsjet.ConnectionClosed as exc:
                closed_early.append(f"recv: {type(exc).__name__}: {exc}")
            if ws.close_code != 1000:
                closed_early.append(f"closed with {ws.close_code}")

        try:
            await gather_limited(busy, busy, busy_peer)
        except wsjet.ConnectionClosed as exc:
            closed_early.append(f"{type(exc).__name__}: {exc}")

    # Client side: a wsjet client against a server that never answers pings.
    hostile = await _hostile_server(ignore_pings=True)
    port = hostile.sockets[0].getsockname()[1]
    client_side: list[tuple[int | None, float]] = []
    for _ in range(3):
        ws = await wsjet.connect(f"ws://127.0.0.1:{port}/", **TIMERS, close_timeout=0.5)
        start = time.monotonic()
        try:
            await asyncio.wait_for(ws.recv(), 5)
        except wsjet.ConnectionClosed as exc:
            sent = exc.sent.code if exc.sent is not None else None
            client_side.append((sent, time.monotonic() - start))
        # The close frame goes out at the ping timeout; the TCP close follows.
        await ws.close()
    hostile.close()
    await hostile.wait_closed()

    codes = {code for code, _ in ignored}
    times = [t for _, t in ignored]
    return {
        "server_ignorer_codes": sorted(codes, key=str),
        "server_ignorer_closed_s": [round(min(times), 3), round(max(times), 3)],
        "client_side_sent_codes": sorted({c for c, _ in client_side}, key=str),
        "client_side_closed_s": [
            round(min(t for _, t in client_side), 3),
            round(max(t for _, t in client_side), 3),
        ],
        "busy_peers": busy,
        "busy_mib_echoed": round(volume / 2**20, 1),
        "busy_closed_early": closed_early,
    }


def check(r: dict[str, Any]) -> list[str]:
    failures = []
    for side in ("server_ignorer", "client_side"):
        codes = r[f"{side}_codes" if side == "server_ignorer" else "client_side_sent_codes"]
        low, high = r[f"{side}_closed_s"]
        if codes != [1011]:
            failures.append(f"{side}: closed with {codes}, want 1011")
        if not 0.8 <= low <= high <= 1.2:
            failures.append(f"{side}: closed after {low}-{high} s, want 1.0 ± 0.2 s")
    if r["busy_closed_early"]:
        failures.append(f"busy peers closed: {r['busy_closed_early'][:3]}")
    return failures


if __name__ == "__main__":
    cli("keepalive", run, check, FULL, SHORT)
