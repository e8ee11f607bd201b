"""Graceful shutdown: N clients, 10 messages sent to each, one handler ignoring the close.

Every handler sends its 10 messages, then the server is closed at once. Every
message whose ``send()`` returned reaches its client, in order; every client
sees 1001; and ``server.close()`` + ``wait_closed()`` finish within
``close_timeout`` although the handler of ``/stubborn`` sleeps through it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import wsjet

from ._util import ServerProcess, cli

FULL = {"clients": 1000, "messages": 10, "close_timeout": 10.0}
SHORT = {"clients": 100, "messages": 10, "close_timeout": 3.0}


async def run(clients: int, messages: int, close_timeout: float) -> dict[str, Any]:
    options = {"close_timeout": close_timeout, "compression": None}
    params = {"count": messages, "size": 1024}
    async with ServerProcess("ten", options, params) as server:
        uri = f"ws://127.0.0.1:{server.port}"
        received: list[list[str]] = [[] for _ in range(clients)]
        codes: list[int | None] = [None] * clients
        all_open = asyncio.Event()
        opened = 0

        async def client(i: int) -> None:
            nonlocal opened
            path = "/stubborn" if i == 0 else f"/{i}"
            async with wsjet.connect(uri + path, compression=None, open_timeout=30) as ws:
                opened += 1
                if opened == clients:
                    all_open.set()
                try:
                    while True:
                        message = await ws.recv()
                        assert isinstance(message, str)
                        received[i].append(message[:6])
                except wsjet.ConnectionClosed as exc:
                    codes[i] = exc.rcvd.code if exc.rcvd is not None else 1006

        tasks = asyncio.gather(*(client(i) for i in range(clients)), return_exceptions=True)
        await asyncio.wait_for(all_open.wait(), 120)
        while (await server.stats())["sent_all"] < clients:
            await asyncio.sleep(0.01)
        answer = await server.command("close")
        outcomes = await asyncio.wait_for(tasks, 60)
    expected = [f"{k:06d}" for k in range(messages)]
    incomplete = sum(1 for got in received if got != expected)
    errors = [repr(o) for o in outcomes if isinstance(o, BaseException)]
    return {
        "clients": clients,
        "messages_received": sum(len(got) for got in received),
        "messages_expected": clients * messages,
        "clients_missing_or_reordered": incomplete,
        "close_codes": {str(code): codes.count(code) for code in set(codes)},
        "shutdown_s": answer["elapsed"],
        "close_timeout": close_timeout,
        "client_errors": errors[:3],
    }


def check(r: dict[str, Any]) -> list[str]:
    failures = []
    if r["messages_received"] != r["messages_expected"] or r["clients_missing_or_reordered"]:
        failures.append(
            f"{r['messages_received']} of {r['messages_expected']} messages received, "
            f"{r['clients_missing_or_reordered']} clients short or out of order"
        )
    if r["close_codes"] != {"1001": r["clients"]}:
        failures.append(f"close codes {r['close_codes']}, want 1001 for all")
    if r["shutdown_s"] >= r["close_timeout"]:
        failures.append(
            f"shutdown took {r['shutdown_s']:.2f} s, "
            f"not under close_timeout ({r['close_timeout']} s)"
        )
    if r["client_errors"]:
        failures.append(f"client errors: {r['client_errors']}")
    return failures


if __name__ == "__main__":
    cli("shutdown", run, check, FULL, SHORT)
