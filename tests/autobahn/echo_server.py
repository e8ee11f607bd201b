"""Echo server under test for the Autobahn fuzzingclient (kosoku "server mode").

Usage::

    python tests/autobahn/echo_server.py --impl wsjet|websockets --port P \
        [--face coroutine|callback] [--no-compression] [--max-size BYTES]

Binds 127.0.0.1:P, echoes every message back, and prints ``READY <port>`` on
stdout (flushed) once it is listening. Runs until killed.

The implementation-specific code is deliberately tiny so it is easy to adjust
while the wsjet API settles.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import traceback

UNEXPECTED_MARKER = "UNEXPECTED-EXCEPTION"


def _ready(port: int) -> None:
    print(f"READY {port}", flush=True)


def _unexpected(exc: BaseException) -> None:
    """Report an exception outside the library's own tree (the harness counts these)."""
    print(f"{UNEXPECTED_MARKER} {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    traceback.print_exc(file=sys.stderr)


# --- websockets (stand-in used to validate the harness) ----------------------------


async def serve_websockets(port: int, max_size: int | None, compression: str | None) -> None:
    from websockets.asyncio.server import serve
    from websockets.exceptions import WebSocketException

    async def echo(ws) -> None:  # type: ignore[no-untyped-def]
        try:
            async for message in ws:
                await ws.send(message)
        except WebSocketException:  # ConnectionClosed & co: expected while fuzzing
            pass
        except Exception as exc:
            _unexpected(exc)
            raise

    async with serve(
        echo,
        "127.0.0.1",
        port,
        max_size=max_size,
        compression=compression,
        ping_interval=None,
    ) as server:
        _ready(port)
        await server.serve_forever()


# --- wsjet, coroutine face ------------------------------------------------------------


async def serve_wsjet_coroutine(port: int, max_size: int | None, compression: str | None) -> None:
    import wsjet
    from wsjet.exceptions import WebSocketError

    async def echo(ws) -> None:  # type: ignore[no-untyped-def]
        try:
            async for message in ws:
                await ws.send(message)
        except WebSocketError:  # wsjet.ConnectionClosed & co: expected while fuzzing
            pass
        except Exception as exc:
            _unexpected(exc)
            raise

    async with wsjet.serve(
        echo,
        "127.0.0.1",
        port,
        max_size=max_size,
        compression=compression,
        ping_interval=None,
    ):
        _ready(port)
        await asyncio.Future()  # run until killed


# --- wsjet, callback face -------------------------------------------------------------


async def serve_wsjet_callback(port: int, max_size: int | None, compression: str | None) -> None:
    from wsjet.exceptions import WebSocketError
    from wsjet.server import WebSocketServer

    server = WebSocketServer(
        "127.0.0.1", port, max_size=max_size, compression=compression, ping_interval=None
    )

    @server.connection
    async def on_connection(client) -> None:  # type: ignore[no-untyped-def]
        @client.message
        async def on_message(reader) -> None:  # type: ignore[no-untyped-def]
            try:
                msg = await reader.get()
                await client.writer.send(msg)
            except WebSocketError:
                pass
            except Exception as exc:
                _unexpected(exc)
                raise

    async with server:
        _ready(port)
        await asyncio.Future()  # run until killed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=["wsjet", "websockets"], default="wsjet")
    parser.add_argument("--face", choices=["coroutine", "callback"], default="coroutine")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--no-compression", action="store_true")
    parser.add_argument(
        "--max-size", type=int, default=None, help="max message size in bytes (default: unlimited)"
    )
    args = parser.parse_args(argv)
    compression = None if args.no_compression else "deflate"

    if args.impl == "websockets":
        if args.face != "coroutine":
            parser.error("--impl websockets only has the coroutine face")
        coro = serve_websockets(args.port, args.max_size, compression)
    elif args.face == "coroutine":
        coro = serve_wsjet_coroutine(args.port, args.max_size, compression)
    else:
        coro = serve_wsjet_callback(args.port, args.max_size, compression)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(coro)
    return 0


if __name__ == "__main__":
    sys.exit(main())
