"""The server under attack, run in its own process: ``python -m tests.stress._server CONFIG``.

``CONFIG`` is JSON: ``{"handler": NAME, "options": {serve() keywords}, "params": {...}}``.
The process prints ``{"port": N}`` once listening, then answers one JSON line
per command read on stdin:

- ``stats``: memory (``rss`` / ``hwm`` in KiB, from ``/proc/self/status``), ``fds``,
  asyncio ``tasks``, open ``connections``, log ``errors`` / ``warnings`` /
  ``tracebacks`` counted since start, ``reads`` (``data_received`` calls),
  CPU seconds (``cpu``), and handler counters;
- ``trim``: ``gc.collect()`` then glibc ``malloc_trim(0)``, so RSS shows live memory;
- ``reset_hwm``: resets ``VmHWM`` to the current RSS (``/proc/self/clear_refs``);
- ``close``: ``server.close()`` then ``wait_closed()``; answers the seconds it took;
- ``quit`` (or end of stdin): closes the server and exits.

Commands run on the event loop, so they see it as the connections do.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import wsjet
from wsjet.server import WebSocketServerProtocol

COUNTERS: dict[str, float] = {
    "errors": 0,
    "warnings": 0,
    "tracebacks": 0,
    "reads": 0,
    "sends": 0,
    "sent_all": 0,
    "last_send": 0.0,
}
LOG_SAMPLES: list[str] = []


class LogCounter(logging.Handler):
    """Counts what is logged at WARNING and above into COUNTERS (nothing is printed)."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            COUNTERS["errors"] += 1
        elif record.levelno >= logging.WARNING:
            COUNTERS["warnings"] += 1
        if record.exc_info:
            COUNTERS["tracebacks"] += 1
        if record.levelno >= logging.WARNING and len(LOG_SAMPLES) < 20:
            LOG_SAMPLES.append(record.getMessage()[:300])


def memory_status() -> dict[str, int]:
    """VmRSS and VmHWM of this process (``rss``, ``hwm``), in KiB."""
    values: dict[str, int] = {}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                values[line[2:5].lower()] = int(line.split()[1])
    return values


class _Protocol(WebSocketServerProtocol):
    def data_received(self, data: bytes) -> None:
        COUNTERS["reads"] += 1
        super().data_received(data)


def _handler(name: str, params: dict[str, Any]) -> Any:
    async def echo(ws: WebSocketServerProtocol) -> None:
        async for message in ws:
            await ws.send(message)

    async def sink(ws: WebSocketServerProtocol) -> None:
        # Never calls recv(): the peer's messages can only queue up.
        await ws.wait_closed()

    async def producer(ws: WebSocketServerProtocol) -> None:
        chunk = b"x" * int(params.get("size", 65536))
        while True:
            await ws.send(chunk)
            COUNTERS["sends"] += 1
            COUNTERS["last_send"] = time.monotonic()

    async def closer(ws: WebSocketServerProtocol) -> None:
        await ws.close()

    async def ten(ws: WebSocketServerProtocol) -> None:
        # Sends `count` numbered messages, then waits for the close; the
        # connection to /stubborn ignores the close altogether.
        count, size = int(params.get("count", 10)), int(params.get("size", 1024))
        for i in range(count):
            await ws.send(f"{i:06d}".ljust(size, "."))
        COUNTERS["sent_all"] += 1
        if ws.path == "/stubborn":
            await asyncio.sleep(3600)
        async for _ in ws:
            pass

    handlers = {"echo": echo, "sink": sink, "producer": producer, "closer": closer, "ten": ten}
    return handlers[name]


def count_loop_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Count the event loop's unhandled errors with the logged ones."""

    def on_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        COUNTERS["errors"] += 1
        COUNTERS["tracebacks"] += 1 if context.get("exception") else 0
        loop.default_exception_handler(context)

    loop.set_exception_handler(on_loop_error)


async def serve_commands(
    connections: Callable[[], int], close: Callable[[], Awaitable[dict[str, Any]]]
) -> None:
    """Answer the commands of the module docstring read on stdin, until ``quit``.

    ``connections()`` counts the open connections; ``close()`` closes the
    server and answers the ``close`` command. Shared with the peer servers of
    ``bench/_security_server.py``, which speak the same protocol.
    """
    loop = asyncio.get_running_loop()
    libc = ctypes.CDLL("libc.so.6")
    done = loop.create_future()

    async def answer(line: str) -> dict[str, Any] | None:
        if line == "stats":
            return {
                **memory_status(),
                "fds": len(os.listdir("/proc/self/fd")),
                "tasks": len(asyncio.all_tasks()),
                "connections": connections(),
                "cpu": time.process_time(),
                "time": time.monotonic(),
                "log_samples": LOG_SAMPLES,
                **COUNTERS,
            }
        if line == "trim":
            gc.collect()
            libc.malloc_trim(0)
            return memory_status()
        if line == "reset_hwm":
            with open("/proc/self/clear_refs", "w") as refs:
                refs.write("5")
            return memory_status()
        if line == "close":
            return await close()
        if line in ("quit", ""):
            if not done.done():
                done.set_result(None)
            return None
        return {"error": f"unknown command {line!r}"}

    async def command(line: str) -> None:
        try:
            reply = await answer(line.strip())
        except Exception as exc:  # answer anyway: the driver waits for a line
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        if reply is not None:
            print(json.dumps(reply), flush=True)

    def read_stdin() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lambda line=line: loop.create_task(command(line)))
        loop.call_soon_threadsafe(lambda: loop.create_task(command("")))

    threading.Thread(target=read_stdin, daemon=True).start()
    await done


async def main(config: dict[str, Any]) -> None:
    counter = LogCounter()
    for name in ("wsjet", "asyncio", ""):
        logging.getLogger(name).addHandler(counter)
    logging.getLogger("wsjet").setLevel(logging.INFO)
    count_loop_errors(asyncio.get_running_loop())

    def on_unraisable(hook: Any) -> None:
        COUNTERS["errors"] += 1
        COUNTERS["tracebacks"] += 1
        sys.__unraisablehook__(hook)

    sys.unraisablehook = on_unraisable
    handler = _handler(config["handler"], config.get("params", {}))
    options = dict(config.get("options", {}))
    server = await wsjet.serve(
        handler, "127.0.0.1", 0, create_protocol=_Protocol, backlog=1024, **options
    )
    port = server.sockets[0].getsockname()[1]
    print(json.dumps({"port": port, "pid": os.getpid()}), flush=True)

    async def close() -> dict[str, Any]:
        start = time.monotonic()
        server.close()
        await server.wait_closed()
        return {"elapsed": time.monotonic() - start}

    await serve_commands(lambda: len(server.connections), close)
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
