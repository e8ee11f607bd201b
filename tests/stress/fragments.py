"""Tiny fragments: millions of empty or one-byte frames, and a frame dripped 1 byte per write.

A message may take up to 131,072 frames, empty ones included (Autobahn 9.3.1
sends 65,536), so exactly 131,072 must pass and 131,073 must fail with 1009.
Each case may grow the server's peak RSS by less than 8 MiB.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ._util import MiB, ServerProcess, cli, frame, header, open_raw, read_close, read_frame

FULL = {"empty": 2_000_000, "one_byte": 1_000_000, "dripped_size": 1 << 20, "limit": 131_072}
SHORT = {"empty": 300_000, "one_byte": 200_000, "dripped_size": 1 << 16, "limit": 131_072}

LIMIT = 131_072  # DEFAULT_MAX_FRAGMENTS


def fragments(count: int, payload: bytes) -> list[bytes]:
    """A binary message of ``count`` frames carrying ``payload`` each (masked with zeros)."""
    out = [frame(0x2, payload, fin=count == 1)]
    cont = frame(0x0, payload, fin=False)
    out.extend([cont] * (count - 2))
    if count > 1:
        out.append(frame(0x0, payload, fin=True))
    return out


async def _attack(
    server: ServerProcess, frames: list[bytes], expect_echo: int | None
) -> dict[str, Any]:
    reader, writer, _ = await open_raw(server.port)
    before = await server.stats(trim=True)
    await server.command("reset_hwm")
    start = time.monotonic()
    result: dict[str, Any] = {"frames": len(frames)}

    async def send() -> None:
        batch = 8192
        try:
            for i in range(0, len(frames), batch):
                writer.write(b"".join(frames[i : i + batch]))
                await writer.drain()
        except (ConnectionError, OSError):
            pass

    sender = asyncio.create_task(send())
    if expect_echo is None:
        result["close_code"] = await read_close(reader, 60)
    else:
        try:
            _, fin, payload = await asyncio.wait_for(read_frame(reader), 60)
            result["echo_ok"] = fin and len(payload) == expect_echo
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
            result["echo_ok"] = False
            result["echo_error"] = type(exc).__name__
    result["s"] = round(time.monotonic() - start, 3)
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)
    writer.transport.abort()
    after = await server.stats()
    result["peak_rss_growth_kib"] = after["hwm"] - before["rss"]
    await server.settle()
    return result


async def _dripped(server: ServerProcess, size: int) -> dict[str, Any]:
    reader, writer, _ = await open_raw(server.port)
    before = await server.stats(trim=True)
    await server.command("reset_hwm")
    data = frame(0x2, b"d" * size)
    start = time.monotonic()
    reads0 = before["reads"]
    for i in range(len(data)):
        writer.write(data[i : i + 1])  # asyncio sends at once while its buffer is empty
        if i % 64 == 63:
            await writer.drain()
            await asyncio.sleep(0)
    try:
        _, fin, payload = await asyncio.wait_for(read_frame(reader), 60)
        echo_ok = fin and payload == b"d" * size
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
        echo_ok = False
    elapsed = time.monotonic() - start
    writer.transport.abort()
    after = await server.stats()
    await server.settle()
    return {
        "bytes": len(data),
        "server_reads": after["reads"] - reads0,
        "echo_ok": echo_ok,
        "s": round(elapsed, 2),
        "peak_rss_growth_kib": after["hwm"] - before["rss"],
    }


async def run(empty: int, one_byte: int, dripped_size: int, limit: int) -> dict[str, Any]:
    results: dict[str, Any] = {"limit": limit}
    async with ServerProcess("echo", {"compression": None}) as server:
        results[f"{limit} one-byte frames (must pass)"] = await _attack(
            server, fragments(limit, b"a"), expect_echo=limit
        )
        results[f"{limit} empty frames (must pass)"] = await _attack(
            server, fragments(limit, b""), expect_echo=0
        )
        results[f"{limit + 1} empty frames (must fail)"] = await _attack(
            server, fragments(limit + 1, b""), expect_echo=None
        )
        results[f"{empty} empty continuation frames"] = await _attack(
            server, fragments(empty, b""), expect_echo=None
        )
        results[f"{one_byte} one-byte frames"] = await _attack(
            server, fragments(one_byte, b"b"), expect_echo=None
        )
        results[f"{dripped_size} B frame, 1 byte per write"] = await _dripped(server, dripped_size)
        stats = await server.stats()
        results["errors"] = stats["errors"]
    return results


def check(r: dict[str, Any]) -> list[str]:
    failures = []
    budget = 8 * MiB // 1024
    for name, figures in r.items():
        if not isinstance(figures, dict):
            continue
        if "must pass" in name or "per write" in name:
            if not figures.get("echo_ok"):
                failures.append(f"{name}: not echoed intact ({figures})")
        elif figures.get("close_code") != 1009:
            failures.append(f"{name}: close code {figures.get('close_code')}, want 1009")
        if figures["peak_rss_growth_kib"] >= budget:
            failures.append(f"{name}: peak RSS +{figures['peak_rss_growth_kib']} KiB (>= 8 MiB)")
    if r["errors"]:
        failures.append(f"{r['errors']} error logs")
    return failures


# Keep the raw header helper importable from here for the length-edge scenario.
__all__ = ["LIMIT", "check", "fragments", "header", "run"]

if __name__ == "__main__":
    cli("fragments", run, check, FULL, SHORT)
