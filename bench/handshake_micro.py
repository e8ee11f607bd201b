"""CPU cost of the server's opening handshake, without sockets.

``python bench/handshake_micro.py`` reports microseconds per connection for:

- the Sans-I/O work a wsjet server does for each new connection: parsing a
  browser-like upgrade request (``RequestReader``), checking it
  (``handshake.check_request``, the Origin lookup, ``parse_subprotocols``),
  and building and serializing the 101 response (best of ``--repeat``);
- opening a whole connection on each face (``--faces``): the protocol object
  the listening server makes, ``connection_made``, the request handed over,
  the handshake's task, the 101 written, the handler (coroutine face) or the
  connection callback (callback face) started and waiting for a message.
  ``--connections`` of them stay open, as on a busy server (the garbage
  collector's work grows with them), over a fake transport; the median of
  ``--repeat`` batches is reported, after a warm-up batch.

The event loop's I/O, the kernel and the client are not included:
``run.py --sections connections`` measures those too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from wsjet.core import handshake
from wsjet.core.http import RequestReader

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from engine_micro import close_all, connection_factory, loop_runner, open_many

REQUEST = (
    b"GET /chat HTTP/1.1\r\n"
    b"Host: 127.0.0.1:8765\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Origin: http://127.0.0.1:8765\r\n"
    b"\r\n"
)


def parse() -> None:
    if RequestReader().feed(REQUEST) is None:
        raise RuntimeError("the request did not parse")


def handle() -> None:
    request = RequestReader().feed(REQUEST)
    assert request is not None
    key = handshake.check_request(request)
    request.headers.get_all("Origin")
    handshake.parse_subprotocols(request.headers)
    handshake.build_response(key).serialize()


def measure(step: object, n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(n):
            step()  # type: ignore[operator]
        best = min(best, time.process_time() - start)
    return best / n * 1e6


async def open_connections(face: str, count: int, repeat: int) -> float:
    """Median microseconds of CPU per connection opened, over ``repeat`` batches."""
    factory, close = await connection_factory(face)
    results = []
    for batch in range(repeat + 1):  # the first one warms up
        start = time.process_time()
        opened = await open_many(factory, count)
        elapsed = time.process_time() - start
        if any(transport.writes != 1 for _, transport in opened):
            raise RuntimeError("an opening handshake did not complete")
        if batch:
            results.append(elapsed / count * 1e6)
        await close_all(opened)
    await close()
    return statistics.median(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=20_000, help="requests per repeat")
    parser.add_argument("--repeat", type=int, default=5, help="repeats (or batches) per figure")
    parser.add_argument("--faces", default="cb,co", help="cb (callback), co (coroutine), or none")
    parser.add_argument("--connections", type=int, default=1000, help="connections per batch")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    args = parser.parse_args()
    print(f"parse the request:      {measure(parse, args.n, args.repeat):6.2f} us")
    print(f"parse, check, respond:  {measure(handle, args.n, args.repeat):6.2f} us")
    run = loop_runner(args.loop)
    for face in args.faces.split(","):
        if face in ("cb", "co"):
            micros = run(open_connections(face, args.connections, args.repeat))
            print(f"open a connection, {face}: {micros:6.2f} us")


if __name__ == "__main__":
    main()
