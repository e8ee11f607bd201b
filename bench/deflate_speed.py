"""zlib's cost per message at the settings permessage-deflate can use.

``python bench/deflate_speed.py`` compresses a stream of messages as a
permessage-deflate sender with context takeover does (``compress`` then a sync
flush, RFC 7692 §7.2.1), for each compression level and window size given,
and reports CPU microseconds per message (best of ``--repeat``) and the
compressed size as a fraction of the original. Payloads: ``words``, the
benchmark's (``_common.payload``: words from a 512-word vocabulary), and
``json``, a list of small order-like records.

It explains the permessage-deflate rows of ``run.py``: wsjet's server asks for
12-bit windows both ways by default (``DeflateOptions.server_default()``, for
memory), aiohttp uses 15-bit windows at level 1.

``--backends zlib,zlib_ng`` compares the standard library's compressor with
zlib-ng's (wsjet keeps the standard library's, for memory: see
``wsjet.core.deflate``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import zlib
from types import ModuleType

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import payload


def json_payload(size: int) -> bytes:
    """Order-like JSON records, cut to ``size`` bytes."""
    rng = random.Random(size)
    records: list[dict[str, object]] = []
    text = b""
    while len(text) < size:
        records.extend(
            {
                "id": rng.randrange(10**6),
                "user": rng.choice(["alice", "bob", "carol", "dave"]),
                "price": round(rng.random() * 1000, 2),
                "side": rng.choice(["buy", "sell"]),
                "ts": 1_700_000_000 + rng.randrange(10**5),
            }
            for _ in range(64)
        )
        text = json.dumps(records).encode()
    return text[:size]


def backend(name: str) -> ModuleType:
    """The zlib implementation called ``name``: ``zlib`` or ``zlib_ng``."""
    if name == "zlib_ng":
        from zlib_ng import zlib_ng

        return zlib_ng
    if name != "zlib":
        raise SystemExit(f"unknown backend {name!r}: expected zlib or zlib_ng")
    return zlib


def per_message(
    messages: list[bytes], level: int, bits: int, repeat: int, module: ModuleType = zlib
) -> tuple[float, float]:
    """(best CPU microseconds per message, compressed size / original size)."""
    count = max(4, (4 << 20) // len(messages[0]))
    best = float("inf")
    for _ in range(repeat):
        deflater = module.compressobj(level, module.DEFLATED, -bits, 5)
        out = 0
        start = time.process_time()
        for i in range(count):
            out += len(deflater.compress(messages[i % len(messages)]))
            out += len(deflater.flush(module.Z_SYNC_FLUSH))
        best = min(best, time.process_time() - start)
    return best / count * 1e6, out / (count * len(messages[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="65536,1048576")
    parser.add_argument("--levels", default="1,3")
    parser.add_argument("--bits", default="12,15")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--backends", default="zlib")
    args = parser.parse_args()
    backends = {name: backend(name) for name in args.backends.split(",")}
    makers = {"words": payload, "json": json_payload}
    for kind, make in makers.items():
        for size in (int(s) for s in args.sizes.split(",")):
            # Four different messages, so that the window does not simply hold the last one.
            messages = [make(size + i) for i in range(4)]
            for name, module in backends.items():
                cells = []
                for level in (int(x) for x in args.levels.split(",")):
                    for bits in (int(x) for x in args.bits.split(",")):
                        micros, ratio = per_message(messages, level, bits, args.repeat, module)
                        cells.append(f"level {level}, {bits} bits: {micros:8.0f} us {ratio:5.2f}")
                row = f"{kind:5} {size:>8} B {name:7} | " + " | ".join(cells)
                print(row, flush=True)


if __name__ == "__main__":
    main()
