"""Length edge cases, over TCP against a server: only the frame header is sent.

- the 64-bit length with its most significant bit set -> 1002;
- 2**53, 2**63 - 1 and max_size + 1 -> 1009 from the header alone (no payload
  is sent at all, so the server must decide before buffering anything), on a
  plain connection and on a permessage-deflate one with RSV1 set;
- non-minimal 16-bit and 64-bit forms of small lengths -> 1002;
- a control frame with a 16-bit length -> 1002.
"""

from __future__ import annotations

import time
from typing import Any

from ._util import ServerProcess, cli, header, open_raw, read_close

FULL = {"repeat": 20}
SHORT = {"repeat": 2}

MAX_SIZE = 1 << 20

#: case -> (header bytes, whether the connection negotiates deflate, expected close code)
CASES: dict[str, tuple[bytes, bool, int]] = {
    "MSB set": (header(0x2, (1 << 63) | 5, form=127), False, 1002),
    "MSB set, all ones": (header(0x2, (1 << 64) - 1, form=127), False, 1002),
    "2**53": (header(0x2, 1 << 53), False, 1009),
    "2**63-1": (header(0x2, (1 << 63) - 1), False, 1009),
    "max_size+1": (header(0x2, MAX_SIZE + 1), False, 1009),
    "max_size+1 in a continuation": (
        header(0x2, 0, fin=False) + header(0x0, MAX_SIZE + 1),
        False,
        1009,
    ),
    "2**63-1 compressed (RSV1)": (header(0x2, (1 << 63) - 1, rsv1=True), True, 1009),
    "2**53 compressed (RSV1)": (header(0x2, 1 << 53, rsv1=True), True, 1009),
    "non-minimal 16-bit (5)": (header(0x2, 5, form=126), False, 1002),
    "non-minimal 64-bit (5)": (header(0x2, 5, form=127), False, 1002),
    "non-minimal 64-bit (65535)": (header(0x2, 65535, form=127), False, 1002),
    "ping with a 16-bit length": (header(0x9, 126), False, 1002),
}


async def run(repeat: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with ServerProcess("echo", {"max_size": MAX_SIZE}) as server:
        for name, (data, deflate, expect) in CASES.items():
            codes, worst = set(), 0.0
            for _ in range(repeat):
                extensions = "permessage-deflate" if deflate else None
                reader, writer, head = await open_raw(server.port, extensions=extensions)
                assert deflate is (b"permessage-deflate" in head)
                start = time.monotonic()
                writer.write(data)
                codes.add(await read_close(reader, 1))
                worst = max(worst, time.monotonic() - start)
                writer.transport.abort()
            results[name] = {"codes": sorted(codes, key=str), "want": expect, "max_s": worst}
        stats = await server.settle()
        results["connections_left"] = stats["connections"]
    return results


def check(r: dict[str, Any]) -> list[str]:
    failures = []
    for name, figures in r.items():
        if isinstance(figures, dict) and figures["codes"] != [figures["want"]]:
            failures.append(f"{name}: closed with {figures['codes']}, want {figures['want']}")
    return failures


if __name__ == "__main__":
    cli("lengths", run, check, FULL, SHORT)
