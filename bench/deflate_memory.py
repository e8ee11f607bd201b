"""Measure the memory permessage-deflate holds per connection.

Negotiates, then builds N codecs of one role, each having compressed one
message and inflated one from its peer, and reports the memory they hold:
allocated, as traced by tracemalloc (zlib allocates through PyMem_RawMalloc,
which tracemalloc sees), and the growth of the resident set, measured in a
fresh process without tracemalloc. RSS is lower than what is allocated when
messages are small: zlib's buffers are only partly touched.

Usage: python bench/deflate_memory.py [N]
"""

from __future__ import annotations

import gc
import json
import pathlib
import subprocess
import sys
import tracemalloc

from wsjet.core.deflate import (
    DeflateOptions,
    PerMessageDeflate,
    client_negotiate,
    client_offer,
    server_negotiate,
)


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def _parse(header: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    # Enough for the values built by this module: no quoting, one extension.
    name, *params = (item.strip() for item in header.split(";"))
    pairs = [(p.split("=")[0], p.split("=")[1] if "=" in p else None) for p in params]
    return [(name, pairs)]


def _pair(server: DeflateOptions, client: DeflateOptions) -> tuple[PerMessageDeflate, ...]:
    negotiated = server_negotiate(_parse(client_offer(client)), server)
    assert negotiated is not None
    header, server_codec = negotiated
    client_codec = client_negotiate(_parse(header), client)
    assert client_codec is not None
    return server_codec, client_codec


CASES = {
    "server_default / client_default": (
        DeflateOptions.server_default(),
        DeflateOptions.client_default(),
    ),
    "no limits on either side": (DeflateOptions(), DeflateOptions()),
    "no context takeover": (
        DeflateOptions(server_no_context_takeover=True, client_no_context_takeover=True),
        DeflateOptions(),
    ),
}


def build(case: str, role: str, count: int) -> list[PerMessageDeflate]:
    """Make ``count`` codecs of ``role`` that each sent and received one message."""
    server, client = CASES[case]
    message = [{"id": i, "name": f"user {i}", "ok": i % 2 == 0} for i in range(60)]
    payload = json.dumps(message).encode()
    codecs = []
    for _ in range(count):
        server_codec, client_codec = _pair(server, client)
        mine, peer = (server_codec, client_codec)
        if role == "client":
            mine, peer = peer, mine
        mine.decode(peer.encode(payload), end_of_message=True, max_length=None)
        mine.encode(payload)
        codecs.append(mine)
    return codecs


def traced(case: str, role: str, count: int) -> float:
    """Bytes allocated per codec, according to tracemalloc."""
    gc.collect()
    tracemalloc.start()
    codecs = build(case, role, count)
    gc.collect()
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del codecs
    return size / count


def resident(case: str, role: str, count: int) -> float:
    """Growth of the resident set per codec, measured in a fresh process."""
    code = (
        "import gc; from deflate_memory import build, _rss\n"
        f"gc.collect(); before = _rss(); codecs = build({case!r}, {role!r}, {count})\n"
        "gc.collect(); print(_rss() - before)"
    )
    here = pathlib.Path(__file__).parent
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=here
    )
    return int(out.stdout) / count


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    print(f"per connection, over {count} connections")
    for case in CASES:
        for role in ("server", "client"):
            print(
                f"{case:<34} {role}: {traced(case, role, count) / 1024:6.1f} KiB allocated, "
                f"{resident(case, role, count) / 1024:6.1f} KiB resident"
            )


if __name__ == "__main__":
    main()
