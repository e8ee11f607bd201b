"""Shared machinery of the stress battery: the server process, raw WebSocket peers, the CLI."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Self

from wsjet.core.handshake import accept_key

ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20
KiB = 1 << 10

# --- the server process -----------------------------------------------------------------


def child_env() -> dict[str, str]:
    """Environment of measured subprocesses: as deployed, not under dev mode.

    ``PYTHONDEVMODE`` (set by scripts/test.sh) turns on asyncio debug mode, which
    is several times slower and keeps tracebacks of every handle: figures taken
    under it would measure the debugger. ``WSJET_NO_EXTENSIONS`` is kept, so the
    pure-Python CI pass attacks the pure-Python path.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDEVMODE", "COV_CORE_SOURCE")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


class ServerProcess:
    """``async with ServerProcess("echo", {...}) as server``: a wsjet server in a subprocess."""

    def __init__(
        self,
        handler: str = "echo",
        options: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        self.config = {
            "handler": handler,
            "options": dict(options or {}),
            "params": dict(params or {}),
        }
        self.port = 0
        self.pid = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self._lock = asyncio.Lock()
        self._stderr_text = ""

    def argv(self) -> list[str]:
        """The interpreter's arguments that start the server (wsjet's, here)."""
        return ["-m", "tests.stress._server", json.dumps(self.config)]

    async def __aenter__(self) -> Self:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *self.argv(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._stderr,
            cwd=ROOT,
            env=child_env(),
        )
        try:
            hello = await self._read_line(20)
        except BaseException:
            await self.stop()
            raise
        self.port, self.pid = hello["port"], hello["pid"]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _read_line(self, timeout: float) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"server process died:\n{self.stderr()[-3000:]}")
        result: dict[str, Any] = json.loads(line)
        return result

    async def command(self, name: str, timeout: float = 60) -> dict[str, Any]:
        """Send a command (see :mod:`tests.stress._server`) and return its answer."""
        assert self._proc is not None and self._proc.stdin is not None
        async with self._lock:
            self._proc.stdin.write(name.encode() + b"\n")
            await self._proc.stdin.drain()
            return await self._read_line(timeout)

    async def stats(self, trim: bool = False) -> dict[str, Any]:
        if trim:
            await self.command("trim")
        return await self.command("stats")

    async def settle(self, timeout: float = 10.0, connections: int = 0) -> dict[str, Any]:
        """Wait until at most ``connections`` are open on the server; return trimmed stats."""
        deadline = time.monotonic() + timeout
        while True:
            stats = await self.stats()
            if stats["connections"] <= connections or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.05)  # let the last callbacks of the closing run
        return await self.stats(trim=True)

    def status(self) -> dict[str, int]:
        """VmRSS / VmHWM in KiB, read from the parent (no command needed)."""
        values: dict[str, int] = {}
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    values[line[2:5].lower()] = int(line.split()[1])
        return values

    def stderr(self) -> str:
        """What the server wrote on stderr (kept after it stopped)."""
        if self._stderr.closed:
            return self._stderr_text
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def tracebacks(self) -> int:
        return self.stderr().count("Traceback (most recent call last)")

    async def stop(self) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(b"quit\n")
                proc.stdin.close()
                await asyncio.wait_for(proc.stdout.read(), 30)
                await asyncio.wait_for(proc.wait(), 30)
            except (TimeoutError, ConnectionError):
                proc.kill()
                await proc.wait()
        if proc is not None:
            # Close the pipe transports now, not in the garbage collector.
            transport = getattr(proc, "_transport", None)
            if transport is not None:
                transport.close()
        if not self._stderr.closed:
            self._stderr_text = self.stderr()
            self._stderr.close()


# --- raw WebSocket peers ----------------------------------------------------------------

ZERO_MASK = b"\0\0\0\0"  # a valid masking key that leaves payloads as they are


def request(
    path: str = "/",
    *,
    extensions: str | None = None,
    extra: bytes = b"",
    key: str | None = None,
) -> bytes:
    """A client's opening handshake, built by hand."""
    key = key or base64.b64encode(os.urandom(16)).decode()
    head = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    ).encode()
    if extensions is not None:
        head += f"Sec-WebSocket-Extensions: {extensions}\r\n".encode()
    return head + extra + b"\r\n"


def header(
    opcode: int,
    length: int,
    *,
    fin: bool = True,
    rsv1: bool = False,
    mask: bytes | None = ZERO_MASK,
    form: int | None = None,
) -> bytes:
    """A frame header; ``form`` forces the 7-bit (0), 16-bit (126) or 64-bit (127) length."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    masked = 0x80 if mask is not None else 0
    if form is None:
        form = 0 if length < 126 else 126 if length < 65536 else 127
    if form == 0:
        head = struct.pack("!BB", first, masked | length)
    elif form == 126:
        head = struct.pack("!BBH", first, masked | 126, length)
    else:
        head = struct.pack("!BBQ", first, masked | 127, length)
    return head + (mask or b"")


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv1: bool = False,
    mask: bytes | None = ZERO_MASK,
) -> bytes:
    """A whole frame; with the zero mask the payload goes as it is."""
    if mask is not None and mask != ZERO_MASK:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header(opcode, len(payload), fin=fin, rsv1=rsv1, mask=mask) + payload


async def accept_upgrade(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, extensions: bytes = b""
) -> None:
    """Play a server's part of the opening handshake: read the request, write a 101."""
    head = await reader.readuntil(b"\r\n\r\n")
    key = next(
        line.split(b":", 1)[1].strip()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    extra = b"Sec-WebSocket-Extensions: " + extensions + b"\r\n" if extensions else b""
    writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(key.decode()).encode() + b"\r\n" + extra + b"\r\n"
    )


async def read_head(reader: asyncio.StreamReader, timeout: float = 10) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)


async def open_raw(
    port: int,
    *,
    path: str = "/",
    extensions: str | None = None,
    rcvbuf: int | None = None,
    timeout: float = 10,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """Connect and complete a handshake by hand; return the streams and the 101's head."""
    reader, writer = await connect_tcp(port, rcvbuf=rcvbuf)
    try:
        writer.write(request(path, extensions=extensions))
        head = await read_head(reader, timeout)
    except BaseException:
        writer.transport.abort()
        raise
    if not head.startswith(b"HTTP/1.1 101 "):
        writer.transport.abort()
        raise RuntimeError(f"handshake refused: {head[:200]!r}")
    return reader, writer, head


async def connect_tcp(
    port: int, *, rcvbuf: int | None = None, limit: int = 2**16
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open TCP to 127.0.0.1:port, with a small receive buffer if asked (set before SYN)."""
    if rcvbuf is None:
        return await asyncio.open_connection("127.0.0.1", port, limit=limit)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock, limit=limit)


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0) instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    """Read one frame, unmasking a client's: ``(opcode, fin, payload)``."""
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    mask = await reader.readexactly(4) if second & 0x80 else None  # a client's frame
    payload = await reader.readexactly(length)
    if mask is not None:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return first & 0x0F, bool(first & 0x80), payload


async def read_close(reader: asyncio.StreamReader, timeout: float) -> int | None:
    """Skip frames until a close frame; return its code (1005 if none), None on EOF/timeout."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                opcode, _, payload = await read_frame(reader)
                if opcode == 0x8:
                    return struct.unpack("!H", payload[:2])[0] if payload else 1005
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
        return None


async def wait_eof(reader: asyncio.StreamReader, timeout: float) -> bool:
    """Read and drop everything until EOF or RST; False if neither came in time."""
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


async def gather_limited(
    count: int, concurrency: int, job: Callable[[int], Awaitable[Any]]
) -> list[Any]:
    """Run ``job(i)`` for i in range(count), at most ``concurrency`` at a time."""
    results: list[Any] = [None] * count
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            i = next_index
            next_index += 1
            results[i] = await job(i)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
    return results


# --- figures and the command line -------------------------------------------------------


def kib(before: dict[str, Any], after: dict[str, Any], key: str = "rss") -> int:
    """Growth in KiB between two stats."""
    return int(after[key]) - int(before["rss"])


def show(name: str, result: dict[str, Any], failures: list[str]) -> str:
    lines = [f"== {name}"]
    for key, value in result.items():
        if isinstance(value, float):
            value = round(value, 4)
        lines.append(f"  {key}: {value}")
    lines.append("  targets: " + ("all met" if not failures else "MISSED"))
    lines.extend(f"    - {failure}" for failure in failures)
    return "\n".join(lines)


def cli(
    name: str,
    run: Callable[..., Awaitable[dict[str, Any]]],
    check: Callable[[dict[str, Any]], list[str]],
    full: Mapping[str, Any],
    short: Mapping[str, Any],
) -> None:
    """``python -m tests.stress.NAME [--short] [--json] [--set key=value ...]``."""
    parser = argparse.ArgumentParser(prog=f"python -m tests.stress.{name}")
    parser.add_argument("--short", action="store_true", help="the CI variant")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    params = dict(short if args.short else full)
    for item in args.set:
        key, _, value = item.partition("=")
        params[key] = json.loads(value)
    start = time.monotonic()
    result = asyncio.run(run(**params))
    result["wall_s"] = time.monotonic() - start
    failures = check(result)
    if args.json:
        print(json.dumps({"params": params, "result": result, "failures": failures}))
    else:
        print(f"params: {params}")
        print(show(name, result, failures))
    sys.exit(1 if failures else 0)
