"""The closing handshake against peers that misbehave, on both sides.

Server side (the handler closes at once): a peer that never answers the close
frame is dropped at ``close_timeout`` ± 0.5 s; one that answers but keeps TCP
open is dropped at once; one that half-closes (FIN, no close frame) within
``close_timeout``. Client side: ``close()`` against a server that never answers
returns at ``close_timeout`` ± 0.5 s, and against one that answers but keeps
TCP open, within ``close_timeout``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import wsjet

from ._util import ServerProcess, accept_upgrade, cli, frame, open_raw, read_close, wait_eof

FULL = {"close_timeout": 10.0, "repeat": 3}
SHORT = {"close_timeout": 2.0, "repeat": 1}


async def _server_side(close_timeout: float, behaviour: str) -> tuple[float, float]:
    """Seconds from the server's close frame to its TCP close, seen from two starts.

    The server's timer starts when it sends its close frame, right after the
    handshake. The first figure counts from before connecting, so it can only be
    longer than the timer's; the second from the close frame's arrival here,
    so it can only be shorter (a loaded machine can resume this coroutine late).
    Lower bounds are checked on the first, upper bounds on the second.
    """
    async with ServerProcess("closer", {"close_timeout": close_timeout}) as server:
        asked = time.monotonic()
        reader, writer, _ = await open_raw(server.port)
        assert await read_close(reader, 10) == 1000
        start = time.monotonic()
        if behaviour == "answers, keeps TCP":
            writer.write(frame(0x8, b"\x03\xe8"))
        elif behaviour == "half-closes":
            writer.write_eof()
        closed = await wait_eof(reader, close_timeout + 5)
        now = time.monotonic()
        writer.transport.abort()
        return (now - asked, now - start) if closed else (float("inf"), float("inf"))


async def _client_side(close_timeout: float, behaviour: str) -> float:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await accept_upgrade(reader, writer)
            await read_close(reader, close_timeout + 5)
            if behaviour == "answers, keeps TCP":
                writer.write(frame(0x8, b"\x03\xe8", mask=None))
            elif behaviour == "half-closes":
                writer.write_eof()
            await wait_eof(reader, close_timeout + 5)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        ws = await wsjet.connect(f"ws://127.0.0.1:{port}/", close_timeout=close_timeout)
        start = time.monotonic()
        await asyncio.wait_for(ws.close(), close_timeout + 5)
        # The timer runs in this process, from within close(): one start serves both bounds.
        elapsed = time.monotonic() - start
        return elapsed, elapsed
    finally:
        server.close()
        await server.wait_closed()


BEHAVIOURS = ("never answers", "answers, keeps TCP", "half-closes")


async def run(close_timeout: float, repeat: int) -> dict[str, Any]:
    result: dict[str, Any] = {"close_timeout": close_timeout}
    for side, fn in (("server", _server_side), ("client", _client_side)):
        for behaviour in BEHAVIOURS:
            times = await asyncio.gather(*(fn(close_timeout, behaviour) for _ in range(repeat)))
            # [lowest from the early start, highest from the late one] (see _server_side)
            low, high = min(early for early, _ in times), max(late for _, late in times)
            result[f"{side}: peer {behaviour}"] = [round(low, 3), round(high, 3)]
    return result


def check(r: dict[str, Any]) -> list[str]:
    failures = []
    timeout = r["close_timeout"]
    for side in ("server", "client"):
        low, high = r[f"{side}: peer never answers"]
        if not (timeout - 0.5 <= low and high <= timeout + 0.5):
            failures.append(f"{side}, peer never answers: TCP closed after {low}-{high} s")
        low, high = r[f"{side}: peer half-closes"]
        if high > timeout + 0.5:
            failures.append(f"{side}, peer half-closes: TCP closed after {high} s")
    low, high = r["server: peer answers, keeps TCP"]
    if high > 0.5:
        failures.append(f"server, peer answers but keeps TCP: closed after {high} s, not at once")
    low, high = r["client: peer answers, keeps TCP"]
    if high > timeout + 0.5:
        failures.append(f"client, peer answers but keeps TCP: closed after {high} s")
    return failures


if __name__ == "__main__":
    cli("close_handshake", run, check, FULL, SHORT)
