"""The ``wsjet`` command line.

``wsjet serve`` runs a WebSocket server on 127.0.0.1:8765 that echoes every
message back (``/healthz`` answers 200 over plain HTTP).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import Sequence

from .core.http import Headers, Request, Response
from .server import WebSocketServerProtocol, serve

__all__ = ["main"]


async def echo(websocket: WebSocketServerProtocol) -> None:
    """Send every message back."""
    async for message in websocket:
        await websocket.send(message)


def health_check(connection: WebSocketServerProtocol, request: Request) -> Response | None:
    """Answer ``GET /healthz`` with a plain 200."""
    if request.path == "/healthz":
        body = b"OK\n"
        headers = Headers([("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return Response(200, "OK", headers, body)
    return None


async def run_server(host: str, port: int) -> None:
    """Serve until cancelled."""
    async with serve(echo, host, port, process_request=health_check) as server:
        address = server.sockets[0].getsockname()
        print(f"wsjet echo server listening on ws://{address[0]}:{address[1]}/", flush=True)
        await asyncio.get_running_loop().create_future()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``wsjet`` console script."""
    parser = argparse.ArgumentParser(prog="wsjet", description="wsjet WebSocket tools")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run the demo server")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=8765)
    serve_parser.add_argument("--echo", action="store_true", help="plain echo server")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s %(message)s", level=logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_server(args.host, args.port))
