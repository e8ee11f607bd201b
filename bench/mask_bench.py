"""Masking throughput: pure Python vs the compiled extension (vs websockets).

Run with ``python bench/mask_bench.py``. Prints MB/s (10**6 bytes per second,
payload bytes masked) per payload size, best of several repeats, and the
compiled speed as a ratio to the pure-Python one and to
``websockets.speedups.apply_mask`` when that is installed.
"""

from __future__ import annotations

import argparse
import os
import platform
import timeit
from collections.abc import Callable

from wsjet.core._mask import apply_mask as pure_apply_mask

MaskFn = Callable[[bytes, bytes], bytes]

SIZES = [
    ("32 B", 32),
    ("1 KiB", 1024),
    ("64 KiB", 64 * 1024),
    ("1 MiB", 1024 * 1024),
    ("16 MiB", 16 * 1024 * 1024),
]
MASK = b"\x37\xfa\x21\x3d"


def load_compiled() -> MaskFn | None:
    try:
        from wsjet.core._speedups import apply_mask
    except ImportError:
        return None
    return apply_mask


def load_websockets() -> MaskFn | None:
    try:
        from websockets.speedups import apply_mask
    except ImportError:
        return None
    fn: MaskFn = apply_mask
    return fn


def throughput(fn: MaskFn, data: bytes, min_time: float, repeat: int) -> float:
    """Best MB/s over ``repeat`` runs of about ``min_time`` seconds each."""
    timer = timeit.Timer(lambda: fn(data, MASK))
    number, _ = timer.autorange()  # calls that take at least 0.2 s
    number = max(1, int(number * min_time / 0.2))
    best = min(timer.repeat(repeat=repeat, number=number))
    return len(data) * number / best / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds per repeat")
    parser.add_argument("--repeat", type=int, default=5, help="repeats; the best is kept")
    args = parser.parse_args()

    compiled = load_compiled()
    websockets_fn = load_websockets()
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    if compiled is None:
        print("wsjet.core._speedups is NOT built: only the pure-Python column is real")
    if websockets_fn is None:
        print("websockets.speedups is not installed: no comparison column")

    header = f"{'size':>8} {'pure MB/s':>12} {'compiled MB/s':>14} {'x pure':>8}"
    if websockets_fn is not None:
        header += f" {'websockets MB/s':>16} {'x websockets':>13}"
    print(header)
    for label, size in SIZES:
        data = os.urandom(size)
        pure = throughput(pure_apply_mask, data, args.min_time, args.repeat)
        line = f"{label:>8} {pure:>12,.0f}"
        fast = None
        if compiled is not None:
            fast = throughput(compiled, data, args.min_time, args.repeat)
            line += f" {fast:>14,.0f} {fast / pure:>8.1f}"
        else:
            line += f" {'-':>14} {'-':>8}"
        if websockets_fn is not None:
            theirs = throughput(websockets_fn, data, args.min_time, args.repeat)
            ratio = f"{fast / theirs:.2f}" if fast is not None else "-"
            line += f" {theirs:>16,.0f} {ratio:>13}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
