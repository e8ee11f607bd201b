"""CPU cost of broadcasting to open connections, in-process, without sockets.

Usage::

    .venv/bin/python bench/broadcast_micro.py                  # both faces, 1,000 receivers
    .venv/bin/python bench/broadcast_micro.py --receivers 10000 --faces co

Opens ``--receivers`` server connections of each face over fake transports
(whose ``write`` only counts), then times ``wsjet.broadcast()`` of a 100-byte
message to all of them plus the loop iteration that writes the frames: the
library's own cost per receiver, which the fan-out section of ``run.py``
measures together with the kernel's (a ``send`` per receiver) and the
client's. Reports microseconds of CPU per receiver, the best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from engine_micro import close_all, connection_factory, loop_runner, open_many

import wsjet

MESSAGE = b"x" * 100


async def per_receiver(face: str, receivers: int, broadcasts: int, repeat: int) -> float:
    """Best microseconds of CPU per receiver and broadcast, over ``repeat`` runs."""
    factory, close = await connection_factory(face)
    opened = await open_many(factory, receivers)
    targets: list[Any] = [p.client if face == "cb" else p for p, _ in opened]
    best = float("inf")
    for _ in range(repeat + 1):  # the first one warms up
        before = sum(t.writes for _, t in opened)
        start = time.process_time()
        for _ in range(broadcasts):
            wsjet.broadcast(targets, MESSAGE)
            await asyncio.sleep(0)  # the iteration that writes the queued frames
        elapsed = time.process_time() - start
        if sum(t.writes for _, t in opened) - before != broadcasts * receivers:
            raise RuntimeError("a receiver did not get every broadcast")
        best = min(best, elapsed / broadcasts / receivers * 1e6)
    await close_all(opened)
    await close()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", default="cb,co", help="cb (callback), co (coroutine)")
    parser.add_argument("--receivers", type=int, default=1000)
    parser.add_argument("--broadcasts", type=int, default=200, help="per repeat")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    args = parser.parse_args()
    run = loop_runner(args.loop)
    print(f"wsjet {wsjet.__version__}, speedups: {wsjet.speedups_enabled()}, loop: {args.loop}")
    for face in args.faces.split(","):
        micros = run(per_receiver(face, args.receivers, args.broadcasts, args.repeat))
        print(f"broadcast, {face}: {micros:6.3f} us per receiver")


if __name__ == "__main__":
    main()
