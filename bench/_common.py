"""Helpers shared by the benchmark's server, client and driver processes.

Nothing here imports a WebSocket library: each process imports only the one
it measures, so a library's import cost or memory never leaks into another's
numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import resource
import struct
import sys
from collections.abc import Coroutine
from time import perf_counter
from typing import Any

#: Largest message any endpoint must accept (every library gets the same limit).
MAX_SIZE = 2**24
#: Message size of the fan-out workload, in bytes.
FANOUT_SIZE = 100


def pin(cpu: int | None) -> None:
    """Pin this process to one CPU (``None``: leave the scheduler alone)."""
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def raise_fd_limit() -> None:
    """Let this process open as many sockets as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 65536 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def run(main: Coroutine[Any, Any, Any], loop: str) -> Any:
    """Run ``main`` on the standard asyncio loop or on uvloop."""
    if loop == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)


def payload(size: int) -> bytes:
    """A deterministic, moderately compressible message of ``size`` bytes.

    Random words from a small vocabulary: deflate shrinks it to roughly a
    third, like JSON or log lines, instead of the best case (zeros) or the
    worst (random bytes).
    """
    rng = random.Random(size)
    words = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
        for _ in range(512)
    ]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words).encode()
        out += b" " if rng.random() < 0.85 else b'", "'
    return bytes(out[:size])


def client_frame(data: bytes, mask: bytes = b"\x1f\x2e\x3d\x4c") -> bytes:
    """A masked binary frame, as a client sends it (for the raw TCP ceiling)."""
    n = len(data)
    if n < 126:
        header = struct.pack("!BB", 0x82, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x82, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x82, 0x80 | 127, n)
    key = int.from_bytes(mask, "little")
    repeated = key.to_bytes(4, "little") * (n // 4 + 1)
    masked = (int.from_bytes(data, "little") ^ int.from_bytes(repeated[:n], "little")).to_bytes(
        n, "little"
    )
    return header + mask + masked


def rss_kib(pid: int) -> int:
    """Resident set size of process ``pid``, in KiB (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def say(**fields: Any) -> None:
    """Send one JSON line to the driver on stdout."""
    import json

    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def wait_for_driver() -> str:
    """Block until the driver writes a line on stdin (it measures meanwhile)."""
    return sys.stdin.readline().strip()


class Clock:
    """Times a measurement and cuts it into slices, for a rate robust to noise.

    Call :meth:`tick` with the running count after each batch; it returns
    whether to go on. Each slice records ``(count, seconds)``; the driver
    reports the median slice rate, which a burst of activity from another
    process on the machine moves far less than the total.
    """

    __slots__ = ("_last_count", "_last_time", "end", "next", "slice", "slices", "start")

    def __init__(self, seconds: float, slice_seconds: float = 0.25) -> None:
        self.start = perf_counter()
        self.end = self.start + seconds
        self.slice = slice_seconds
        self.next = self.start + slice_seconds
        self.slices: list[tuple[int, float]] = []
        self._last_count = 0
        self._last_time = self.start

    def tick(self, count: int) -> bool:
        now = perf_counter()
        if now < self.next:
            return True
        self.slices.append((count - self._last_count, now - self._last_time))
        self._last_count, self._last_time = count, now
        self.next = now + self.slice
        return now < self.end

    def result(self, count: int) -> dict[str, Any]:
        """What the driver gets: total count and time, and the slices."""
        seconds = self._last_time - self.start
        return {"count": count, "seconds": seconds, "slices": self.slices}


def cpu_seconds(pid: int | str = "self") -> float:
    """CPU time process ``pid`` has run so far, all threads, in seconds (Linux).

    From ``/proc/PID/task/*/schedstat`` (nanoseconds): unlike wall-clock
    time it does not grow while another program has the CPU.
    """
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/schedstat") as stat:
            total += int(stat.read().split()[0])
    return total / 1e9


def stolen_seconds() -> float:
    """Seconds the hypervisor has taken from this process's CPU so far (Linux).

    The ``steal`` column of ``/proc/stat``: for the one CPU this process is
    pinned to, else summed over all. On a virtual machine a round trip that
    the hypervisor interrupts costs its processes far more CPU time (caches
    and TLBs refilled after the vCPU comes back): in one case here a server's
    CPU per message went from 21 to 440 µs while 5 s were stolen from its CPU.
    The driver repeats a measurement that lost more than a little.
    """
    cpus = os.sched_getaffinity(0)
    line_name = f"cpu{next(iter(cpus))}" if len(cpus) == 1 else "cpu"
    with open("/proc/stat") as stat:
        for line in stat:
            fields = line.split()
            if fields[0] == line_name:
                # user nice system idle iowait irq softirq steal ...
                steal = int(fields[8]) if len(fields) > 8 else 0
                return steal / os.sysconf("SC_CLK_TCK")
    return 0.0
