"""Decompression bombs: ``size`` bytes of zeros deflated ~1000:1, server side and client side.

Three forms: one frame; 64 KiB fragments of one message; ``messages`` messages
sharing one compression context (context takeover). Each must be answered
with a 1009 close within 100 ms of the first byte sent, and the victim's peak
RSS may grow by at most ``max_size`` + 8 MiB.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
import time
import zlib
from typing import Any

from ._util import (
    ROOT,
    MiB,
    ServerProcess,
    accept_upgrade,
    child_env,
    cli,
    frame,
    open_raw,
    read_close,
)

FULL = {"size": 1 << 30, "messages": 100, "limit_ms": 100.0}
SHORT = {"size": 128 << 20, "messages": 100, "limit_ms": 100.0}

MAX_SIZE = 1 << 20  # wsjet's default max_size
STEP = 1 << 20


@functools.cache
def _segment() -> bytes:
    """1 MiB of zeros as raw DEFLATE (512-byte window), ending with a sync flush.

    A sync flush leaves the stream byte-aligned after an empty stored block, and
    the segment only refers back within itself: so N copies of it, one after
    the other, are a valid stream of N MiB of zeros.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -9)
    data = compressor.compress(bytes(STEP)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\x00\x00\xff\xff")
    return data


def bomb_stream(size: int) -> bytes:
    """``size`` zeros (a multiple of 1 MiB) as one message's payload (RFC 7692 §7.2.1)."""
    return (_segment() * (size // STEP))[:-4]


def bomb_messages(size: int, messages: int) -> list[bytes]:
    """``messages`` payloads of ``size / messages`` zeros each (rounded up to 1 MiB)."""
    each = -(-size // messages // STEP) * STEP
    return [bomb_stream(each)] * messages


def wire(form: str, size: int, messages: int, *, masked: bool) -> bytes:
    mask = b"\0\0\0\0" if masked else None
    if form == "one frame":
        return frame(0x2, bomb_stream(size), rsv1=True, mask=mask)
    if form == "64 KiB fragments":
        data = bomb_stream(size)
        pieces = [data[i : i + 65536] for i in range(0, len(data), 65536)]
        out = [
            frame(
                0x2 if i == 0 else 0x0,
                piece,
                fin=i == len(pieces) - 1,
                rsv1=i == 0,
                mask=mask,
            )
            for i, piece in enumerate(pieces)
        ]
        return b"".join(out)
    return b"".join(
        frame(0x2, payload, rsv1=True, mask=mask) for payload in bomb_messages(size, messages)
    )


FORMS = ("one frame", "64 KiB fragments", "context takeover")


async def attack_server(size: int, messages: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with ServerProcess("echo") as server:
        for form in FORMS:
            data = wire(form, size, messages, masked=True)
            reader, writer, head = await open_raw(
                server.port, extensions="permessage-deflate; client_max_window_bits"
            )
            assert b"permessage-deflate" in head, head
            before = await server.stats(trim=True)
            await server.command("reset_hwm")
            start = time.monotonic()
            writer.write(data)
            code = await read_close(reader, 10)
            elapsed = time.monotonic() - start
            writer.transport.abort()
            after = await server.stats()
            results[form] = {
                "wire_bytes": len(data),
                "close_code": code,
                "ms": round(elapsed * 1000, 1),
                "peak_rss_growth_kib": after["hwm"] - before["rss"],
            }
        await server.settle()
    return results


async def attack_client(size: int, messages: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for form in FORMS:
        data = wire(form, size, messages, masked=False)
        victim_ready = asyncio.Event()
        outcome: dict[str, Any] = {}

        async def hostile(
            reader: asyncio.StreamReader,
            writer: asyncio.StreamWriter,
            data: bytes = data,
            victim_ready: asyncio.Event = victim_ready,
            outcome: dict[str, Any] = outcome,
        ) -> None:
            try:
                await accept_upgrade(reader, writer, b"permessage-deflate")
                await victim_ready.wait()
                start = time.monotonic()
                writer.write(data)
                outcome["close_code"] = await read_close(reader, 10)
                outcome["ms"] = round((time.monotonic() - start) * 1000, 1)
            finally:
                writer.transport.abort()

        server = await asyncio.start_server(hostile, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        config = {"uri": f"ws://127.0.0.1:{port}/", "options": {"ping_interval": None}}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.stress._victim",
            json.dumps(config),
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env=child_env(),
        )
        assert proc.stdout is not None
        try:
            opened = json.loads(await asyncio.wait_for(proc.stdout.readline(), 20))
            victim_ready.set()
            ended = json.loads(await asyncio.wait_for(proc.stdout.readline(), 20))
            await asyncio.wait_for(proc.wait(), 20)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            server.close()
            await server.wait_closed()
        results[form] = {
            "wire_bytes": len(data),
            "close_code": outcome.get("close_code"),
            "ms": outcome.get("ms"),
            "peak_rss_growth_kib": ended.get("hwm", 0) - opened.get("rss", 0),
            "client_exception": ended.get("exception"),
            "client_sent": ended.get("sent"),
        }
    return results


async def run(size: int, messages: int, limit_ms: float) -> dict[str, Any]:
    assert zlib.decompressobj(-9).decompress(bomb_stream(4 * STEP)) == bytes(4 * STEP)
    return {
        "inflated_bytes": size,
        "compressed_bytes": len(bomb_stream(size)),
        "server_side": await attack_server(size, messages),
        "client_side": await attack_client(size, messages),
        "limit_ms": limit_ms,
        "max_size": MAX_SIZE,
    }


def check(r: dict[str, Any]) -> list[str]:
    failures = []
    budget = (r["max_size"] + 8 * MiB) // 1024
    for side in ("server_side", "client_side"):
        for form, figures in r[side].items():
            if figures["close_code"] != 1009:
                failures.append(f"{side} {form}: close code {figures['close_code']}")
            if figures["ms"] is None or figures["ms"] > r["limit_ms"]:
                failures.append(f"{side} {form}: 1009 after {figures['ms']} ms")
            if figures["peak_rss_growth_kib"] > budget:
                failures.append(f"{side} {form}: peak RSS +{figures['peak_rss_growth_kib']} KiB")
    return failures


if __name__ == "__main__":
    cli("bomb", run, check, FULL, SHORT)
