"""CPU cost of the server's opening-handshake logic, without sockets.

``python bench/handshake_micro.py`` times, per request, the Sans-I/O work a
wsjet server does for each new connection: parsing a browser-like upgrade
request (``RequestReader``), checking it (``handshake.check_request``, the
Origin lookup, ``parse_subprotocols``), and building and serializing the 101
response. It reports microseconds per request, best of ``--repeat``. The
event loop, the transport and the protocol objects are not included:
``run.py --sections connections`` measures those too.
"""

from __future__ import annotations

import argparse
import time

from wsjet.core import handshake
from wsjet.core.http import RequestReader

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=20_000, help="requests per repeat")
    parser.add_argument("--repeat", type=int, default=5, help="report the best of this many")
    args = parser.parse_args()
    print(f"parse the request:      {measure(parse, args.n, args.repeat):6.2f} us")
    print(f"parse, check, respond:  {measure(handle, args.n, args.repeat):6.2f} us")


if __name__ == "__main__":
    main()
