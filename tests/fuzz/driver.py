"""A seeded random mutation fuzzer, for machines without atheris.

Not coverage-guided: it mutates the seeds (bit flips, byte changes, inserts,
deletions, duplicated ranges, splices of two seeds, interesting integers) and
keeps nothing. Deterministic for a given seed.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable

INTERESTING = [0, 1, 0x7D, 0x7E, 0x7F, 0x80, 0xFF, 0x0D, 0x0A, 0x20, 0x3A, 0x2C, 0x3B, 0x22, 0x5C]


def mutate(data: bytes, rng: random.Random, corpus: list[bytes]) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(7)
        pos = rng.randrange(len(out) + 1)
        if choice == 0 and out:
            out[pos % len(out)] ^= 1 << rng.randrange(8)
        elif choice == 1 and out:
            out[pos % len(out)] = rng.choice(INTERESTING)
        elif choice == 2:
            out[pos:pos] = rng.randbytes(rng.randint(1, 8))
        elif choice == 3 and out:
            del out[pos : pos + rng.randint(1, 16)]
        elif choice == 4 and out:
            start = rng.randrange(len(out))
            piece = out[start : start + rng.randint(1, 64)]
            out[pos:pos] = piece * rng.randint(1, 8)
        elif choice == 5:
            other = rng.choice(corpus)
            cut = rng.randrange(len(other) + 1)
            out = out[:pos] + other[cut:]
        elif choice == 6 and len(out) > 2:
            out[: rng.randint(1, 3)] = rng.randbytes(rng.randint(1, 3))
    return bytes(out)


def fuzz(
    target: Callable[[bytes], None],
    seeds: list[bytes],
    runs: int,
    *,
    seed: int = 6455,
    time_limit: float | None = None,
    max_len: int | None = None,
) -> int:
    """Run ``target`` on the seeds then on ``runs`` mutants; return how many ran.

    Inputs are cut to ``max_len`` bytes, like libFuzzer's ``-max_len``. An
    exception escaping ``target`` propagates, with the input attached as a note.
    """
    rng = random.Random(seed)
    corpus = list(seeds) or [b""]
    deadline = None if time_limit is None else time.monotonic() + time_limit
    done = 0
    mutants = (mutate(rng.choice(corpus), rng, corpus) for _ in range(runs))
    for data in itertools.chain(corpus, mutants):
        data = data[:max_len]
        try:
            target(data)
        except Exception as exc:
            exc.add_note(f"fuzz input ({len(data)} bytes): {data[:400]!r}")
            raise
        done += 1
        if deadline is not None and time.monotonic() > deadline:
            break
    return done
