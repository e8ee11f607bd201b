"""The application never calls ``recv()`` while the peer sends up to ``total`` bytes.

Once ``max_queue`` messages wait, the server must stop reading the socket: its
RSS stays at most ``max_queue`` x ``max_size`` + 4 MiB, and the peer's writes
stall. Two variants: plain messages of ``max_size`` bytes, and compressed
messages that each inflate to ``max_size`` (about 1 KiB on the wire), where
one socket read may hold hundreds of messages.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from typing import Any

from ._util import MiB, ServerProcess, cli, frame, open_raw

FULL = {"total": 1 << 30, "max_size": MiB, "max_queue": 32, "stall_s": 3.0}
SHORT = {"total": 256 * MiB, "max_size": MiB, "max_queue": 32, "stall_s": 1.5}


def _compressed_message(size: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -9)
    data = compressor.compress(bytes(size)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return frame(0x2, data[:-4], rsv1=True)


async def _variant(
    server: ServerProcess, message: bytes, inflated: int, total: int, stall_s: float
) -> dict[str, Any]:
    extensions = "permessage-deflate; client_max_window_bits" if inflated != len(message) else None
    before = await server.stats(trim=True)
    await server.command("reset_hwm")
    _, writer, _ = await open_raw(server.port, extensions=extensions)
    per_batch = max(1, (4 * MiB) // len(message))
    batch = message * per_batch
    sent_messages = 0
    stalled = False
    start = time.monotonic()
    try:
        while sent_messages * inflated < total:
            writer.write(batch)
            try:
                await asyncio.wait_for(writer.drain(), stall_s)
            except TimeoutError:
                stalled = True
                break
            sent_messages += per_batch
    except ConnectionError:
        pass
    elapsed = time.monotonic() - start
    during = await server.stats()
    writer.transport.abort()
    # No settle: a server that stopped reading sees the reset only when it
    # writes next (its keepalive ping), which is the point of pausing.
    return {
        "wire_bytes_per_message": len(message),
        "messages_written": sent_messages,
        "inflated_mib_written": round(sent_messages * inflated / MiB, 1),
        "stalled": stalled,
        "elapsed_s": round(elapsed, 2),
        "peak_rss_growth_kib": during["hwm"] - before["rss"],
        "rss_growth_kib": during["rss"] - before["rss"],
    }


async def run(total: int, max_size: int, max_queue: int, stall_s: float) -> dict[str, Any]:
    options = {"max_size": max_size, "max_queue": max_queue, "close_timeout": 1}
    async with ServerProcess("sink", options) as server:
        plain = await _variant(server, frame(0x2, bytes(max_size)), max_size, total, stall_s)
    async with ServerProcess("sink", options) as server:
        compressed = await _variant(server, _compressed_message(max_size), max_size, total, stall_s)
    return {
        "max_queue": max_queue,
        "max_size": max_size,
        "plain": plain,
        "compressed": compressed,
    }


def check(r: dict[str, Any]) -> list[str]:
    failures = []
    budget = (r["max_queue"] * r["max_size"] + 4 * MiB) // 1024
    for name in ("plain", "compressed"):
        figures = r[name]
        # Compressed messages are ~1 KiB on the wire: what the server leaves unread can
        # fit in the kernel's socket buffers (several MiB on loopback), so the writer
        # may never stall. Then the proof that reading stopped is the memory: far more
        # was offered inflated than the budget, and the peak stayed within it.
        offered_beyond_budget = figures["inflated_mib_written"] * 1024 > budget
        within_budget = figures["peak_rss_growth_kib"] <= budget
        buffered_by_kernel = name == "compressed" and offered_beyond_budget and within_budget
        if not figures["stalled"] and not buffered_by_kernel:
            failures.append(
                f"{name}: the server kept reading ({figures['inflated_mib_written']} MiB)"
            )
        if figures["peak_rss_growth_kib"] > budget:
            failures.append(
                f"{name}: peak RSS +{figures['peak_rss_growth_kib']} KiB"
                f" > max_queue x max_size + 4 MiB ({budget} KiB)"
            )
    return failures


if __name__ == "__main__":
    cli("no_recv", run, check, FULL, SHORT)
