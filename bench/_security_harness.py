"""Plumbing of ``bench/security_compare.py``: one stress battery, three servers.

The scenarios of ``tests/stress/`` start their server with
``ServerProcess(handler, options, params)``. :func:`serving` swaps that name,
inside the scenario modules only and only while a ``with`` block runs, for
:class:`LibraryServer`: the same command protocol, but the server process is
wsjet (``tests/stress/_server.py``, unchanged), websockets or aiohttp
(``bench/_security_server.py``), and every one gets the same base settings
(:data:`BASE_OPTIONS`) under the scenario's own. The attack code itself runs
as the battery wrote it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.stress import fragments as fragments_scenario  # noqa: E402
from tests.stress._util import (  # noqa: E402
    MiB,
    ServerProcess,
    connect_tcp,
    open_raw,
    read_frame,
)

LIBRARIES = ("wsjet", "websockets", "aiohttp")

#: What every server gets unless the scenario says otherwise (wsjet's keyword names;
#: ``bench/_security_server.py`` maps them onto websockets and aiohttp).
BASE_OPTIONS: dict[str, Any] = {
    "max_size": MiB,
    "open_timeout": 10.0,
    "close_timeout": 10.0,
    "ping_interval": None,  # keepalive off everywhere
    "write_limit": 65536,  # wsjet's default; websockets' is 32 KiB, aiohttp's 256 KiB
}


class LibraryServer(ServerProcess):
    """A :class:`tests.stress._util.ServerProcess` running ``library``'s echo server."""

    #: Every server started, so that a scenario cut short never leaves one behind.
    started: list[LibraryServer] = []

    def __init__(
        self,
        library: str,
        handler: str = "echo",
        options: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(handler, {**BASE_OPTIONS, **(options or {})}, params)
        self.library = library
        self.close_answers: list[dict[str, Any]] = []
        #: The first and the latest answer to ``stats`` (the server's CPU time, ...).
        self.first_stats: dict[str, Any] | None = None
        self.last_stats: dict[str, Any] | None = None
        LibraryServer.started.append(self)

    def argv(self) -> list[str]:
        if self.library == "wsjet":
            return super().argv()
        config = {**self.config, "library": self.library}
        return [str(HERE / "_security_server.py"), json.dumps(config)]

    async def command(self, name: str, timeout: float = 60) -> dict[str, Any]:
        answer = await super().command(name, timeout)
        if name == "close":
            self.close_answers.append(answer)
        elif name == "stats":
            self.first_stats = self.first_stats or answer
            self.last_stats = answer
        return answer

    def cpu_seconds(self) -> float | None:
        """CPU time the server used between its first and its latest ``stats``."""
        if self.first_stats is None or self.last_stats is None:
            return None
        return round(self.last_stats["cpu"] - self.first_stats["cpu"], 3)

    def kill(self) -> None:
        """Kill the process if it still runs (a scenario was cut short by its time bound)."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()


@contextlib.contextmanager
def serving(library: str, *modules: ModuleType) -> Iterator[list[LibraryServer]]:
    """While the block runs, ``ServerProcess(...)`` in ``modules`` starts ``library``.

    Yields the list of servers started meanwhile; on the way out any of them
    still running is killed.
    """

    def factory(*args: Any, **kwargs: Any) -> LibraryServer:
        return LibraryServer(library, *args, **kwargs)

    first = len(LibraryServer.started)
    mine: list[LibraryServer] = []
    with contextlib.ExitStack() as stack:
        for module in modules:
            stack.enter_context(mock.patch.object(module, "ServerProcess", factory))
        try:
            yield mine
        finally:
            mine.extend(LibraryServer.started[first:])
            for server in mine:
                server.kill()


# --- malformed handshakes: the answer's head, kept-alive or not ------------------------------


async def answer_head(port: int, data: bytes, limit: float) -> tuple[int | None, float]:
    """Stand-in for ``tests.stress.malformed._one``: read only up to the answer's head.

    The battery's version reads until the server closes, so a 4xx that an
    HTTP/1.1 server sends with keep-alive (aiohttp does) would count as no
    answer. Here the status counts as soon as its head is in, closed or not.
    Returns ``(status, seconds)``: the status, ``None`` when the server closed
    without answering, or ``-1`` when nothing came within ``limit`` seconds.
    """
    start = time.monotonic()
    reader, writer = await connect_tcp(port)
    try:
        writer.write(data)
        answer = b""
        try:
            async with asyncio.timeout(limit + 1):
                while b"\r\n\r\n" not in answer:
                    chunk = await reader.read(65536)
                    if not chunk:
                        break
                    answer += chunk
        except ConnectionError:
            pass
        except TimeoutError:
            return -1, time.monotonic() - start
        elapsed = time.monotonic() - start
        if elapsed > limit:
            return -1, elapsed
        # aiohttp answers a request it cannot parse with an HTTP/1.0 status line.
        if answer.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")) and b"\r\n\r\n" in answer:
            return int(answer[9:12]), elapsed
        return None, elapsed
    finally:
        writer.transport.abort()


# --- tiny fragments: a message of many frames, outcome and peak memory -----------------------


async def flood(server: ServerProcess, count: int, payload: bytes, wait_s: float) -> dict[str, Any]:
    """Send one message of ``count`` frames (``tests.stress.fragments.fragments``).

    Returns what the server sent first (its close code, or the size of the
    echo), how long that took, and the server's peak RSS growth meanwhile.
    """
    frames = fragments_scenario.fragments(count, payload)
    reader, writer, _ = await open_raw(server.port)
    before = await server.stats(trim=True)
    await server.command("reset_hwm")
    sent = 0
    start = time.monotonic()

    async def send() -> None:
        nonlocal sent
        batch = 8192
        try:
            for i in range(0, len(frames), batch):
                writer.write(b"".join(frames[i : i + batch]))
                await writer.drain()
                sent = min(i + batch, len(frames))
        except (ConnectionError, OSError):
            pass

    sender = asyncio.create_task(send())
    result: dict[str, Any] = {"frames": count}
    try:
        opcode, fin, data = await asyncio.wait_for(read_frame(reader), wait_s)
        if opcode == 0x8:
            result["outcome"] = "close"
            result["close_code"] = int.from_bytes(data[:2], "big") if data else 1005
        else:
            result["outcome"] = "echo"
            result["echo_bytes"] = len(data)
            result["echo_ok"] = fin and len(data) == count * len(payload)
    except TimeoutError:
        result["outcome"] = f"nothing in {wait_s:.0f} s"
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        result["outcome"] = f"connection dropped ({type(exc).__name__})"
    result["s"] = round(time.monotonic() - start, 3)
    result["frames_written_by_then"] = sent
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)
    writer.transport.abort()
    after = await server.stats()
    result["peak_rss_growth_kib"] = after["hwm"] - before["rss"]
    # Short: websockets stops reading once it has failed a connection, so it sees
    # the reset only at close_timeout; what lingers is in the next case's baseline.
    await server.settle(timeout=2)
    return result
