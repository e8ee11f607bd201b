"""Keepalive with 0.5 s timers (ping_interval = ping_timeout = 0.5 s).

- peers that ignore pings are closed with 1011 at 1.0 ± 0.2 s after opening
  (the median; each one within 0.8-1.5 s), by a wsjet server and by a wsjet
  client alike;
- busy, healthy peers (streaming 64 KiB messages both ways as fast as they go)
  are never closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import sys
import time
from typing import Any

import wsjet

from ._util import (
    ROOT,
    ServerProcess,
    accept_upgrade,
    child_env,
    cli,
    gather_limited,
    open_raw,
    read_close,
)

FULL = {"ignorers": 50, "busy": 20, "busy_s": 10.0}
SHORT = {"ignorers": 10, "busy": 4, "busy_s": 3.0}

TIMERS = {"ping_interval": 0.5, "ping_timeout": 0.5}

#: wsjet clients against the server that ignores pings, at once.
CLIENTS = 5


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


#: A keepalive closing: the close code, then the seconds from before connecting and
#: from the connection's opening (as this side saw it) to the close.
Closing = tuple[int | None, float, float]


async def closing_times(port: int, ignorers: int) -> dict[str, list[Closing]]:
    """Time both sides' keepalive: ``ignorers`` raw peers of the server at ``port``
    (the close code they get, and when), then a wsjet client against a hostile
    server that never answers pings (the code it sends, and when it is closed).

    Each closing is timed from two starts, as the keepalive timer starts in
    between, when the connection opens: from before connecting, which can only
    be longer than the timer's count, and from the return of the connect, which
    can only be shorter (a loaded machine can resume a connect late). The lower
    bounds are checked on the first, the upper bounds on the second.

    :func:`run` calls this in a clean child process: in the test process, a
    collection of the test runner's large heap or asyncio's debug mode (dev mode)
    can stall the loop for a large part of the 0.2 s tolerance.
    """

    async def ignorer(_: int) -> Closing:
        asked = time.monotonic()
        reader, writer, _head = await open_raw(port)
        opened = time.monotonic()
        code = await read_close(reader, 5)
        now = time.monotonic()
        writer.transport.abort()
        return code, now - asked, now - opened

    ignored = await gather_limited(ignorers, ignorers, ignorer)

    hostile = await _hostile_server(ignore_pings=True)
    hostile_port = hostile.sockets[0].getsockname()[1]

    async def client(_: int) -> Closing:
        asked = time.monotonic()
        ws = await wsjet.connect(f"ws://127.0.0.1:{hostile_port}/", **TIMERS, close_timeout=0.5)
        opened = time.monotonic()
        try:
            await asyncio.wait_for(ws.recv(), 5)
        except wsjet.ConnectionClosed as exc:
            sent = exc.sent.code if exc.sent is not None else None
            now = time.monotonic()
            return sent, now - asked, now - opened
        finally:
            # The close frame goes out at the ping timeout; the TCP close follows.
            await ws.close()
        return None, float("inf"), float("inf")  # recv() returned: nothing closed it

    client_side = await gather_limited(CLIENTS, CLIENTS, client)
    hostile.close()
    await hostile.wait_closed()
    return {"ignored": ignored, "client_side": client_side}


async def run(ignorers: int, busy: int, busy_s: float) -> dict[str, Any]:
    async with ServerProcess("echo", TIMERS) as server:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import asyncio, json, sys, tests.stress.keepalive as m;"
            "print(json.dumps(asyncio.run(m.closing_times(int(sys.argv[1]), int(sys.argv[2])))))",
            str(server.port),
            str(ignorers),
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env=child_env(),
        )
        out, _ = await asyncio.wait_for(child.communicate(), 60)
        times = json.loads(out)  # [code, seconds] pairs
        ignored, client_side = times["ignored"], times["client_side"]

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

    return {
        "server_ignorer_codes": sorted({code for code, _, _ in ignored}, key=str),
        "server_ignorer_closed_s": _spread([asked for _, asked, _ in ignored]),
        "server_ignorer_closed_after_open_s": _spread([opened for _, _, opened in ignored]),
        "client_side_sent_codes": sorted({code for code, _, _ in client_side}, key=str),
        "client_side_closed_s": _spread([asked for _, asked, _ in client_side]),
        "client_side_closed_after_open_s": _spread([opened for _, _, opened in client_side]),
        "slowest_connect_s": round(max(a - o for _, a, o in ignored + client_side), 3),
        "busy_peers": busy,
        "busy_mib_echoed": round(volume / 2**20, 1),
        "busy_closed_early": closed_early,
    }


def _spread(times: list[float]) -> list[float]:
    """[lowest, median, highest], in seconds to the millisecond."""
    return [round(t, 3) for t in (min(times), statistics.median(times), max(times))]


def check(r: dict[str, Any]) -> list[str]:
    failures = []
    for side in ("server_ignorer", "client_side"):
        codes = r[f"{side}_codes" if side == "server_ignorer" else "client_side_sent_codes"]
        # Lower bounds from before connecting, upper bounds from the connect's
        # return (see closing_times).
        low, median_low, _ = r[f"{side}_closed_s"]
        _, median_high, high = r[f"{side}_closed_after_open_s"]
        if codes != [1011]:
            failures.append(f"{side}: closed with {codes}, want 1011")
        # The median at 1.0 ± 0.2 s, and each one between 0.8 s and 1.5 s: on a
        # shared virtual machine, a scheduling hiccup has delayed one connection's
        # timer by 0.3 s (1.297 s among 1.003 s), while a missed or repeated
        # timeout is off by a whole ping_timeout (0.5 s) for every connection.
        if not (low >= 0.8 and median_low >= 0.8 and median_high <= 1.2 and high < 1.5):
            failures.append(
                f"{side}: closed after {low}-{high} s (median {median_low}-{median_high} s),"
                " want 1.0 ± 0.2 s (each one within 0.8-1.5 s)"
            )
    if r["busy_closed_early"]:
        failures.append(f"busy peers closed: {r['busy_closed_early'][:3]}")
    return failures


if __name__ == "__main__":
    cli("keepalive", run, check, FULL, SHORT)
