"""A wsjet client under attack, in its own process: ``python -m tests.stress._victim CONFIG``.

``CONFIG`` is JSON: ``{"uri": ..., "options": {connect() keywords}}``. Once open
it resets ``VmHWM``, prints ``{"rss": KiB}``, then receives until the
connection closes and prints what happened: the exception, the close code it
sent and received, and ``hwm`` (peak RSS in KiB since the reset).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import wsjet


def _status() -> dict[str, int]:
    values: dict[str, int] = {}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                values[line[2:5].lower()] = int(line.split()[1])
    return values


async def main(config: dict[str, Any]) -> None:
    result: dict[str, Any] = {}
    start = time.monotonic()
    try:
        ws = await wsjet.connect(config["uri"], **config.get("options", {}))
    except Exception as exc:
        result = {"open_error": type(exc).__name__, "detail": str(exc)[:200]}
        result["elapsed"] = time.monotonic() - start
        print(json.dumps(result), flush=True)
        return
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    print(json.dumps(_status()), flush=True)
    received = 0
    try:
        while True:
            message = await ws.recv()
            received += len(message)
    except wsjet.ConnectionClosed as exc:
        result = {
            "exception": type(exc).__name__,
            "sent": None if exc.sent is None else exc.sent.code,
            "rcvd": None if exc.rcvd is None else exc.rcvd.code,
            "cause": type(exc.__cause__).__name__ if exc.__cause__ else None,
        }
    result.update(_status(), received=received, elapsed=time.monotonic() - start)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
