"""The ``wsjet`` command line (also ``python -m wsjet``).

``wsjet serve``
    The demo: a chat room on 127.0.0.1:8765 that serves its own page over plain
    HTTP on the same port (``GET /`` the page, ``/ws`` the WebSocket, ``/healthz``
    a 200). ``--echo`` runs a plain echo server instead; ``--certfile`` /
    ``--keyfile`` serve TLS; ``--unix PATH`` listens on a Unix socket. Once
    listening, it prints ``listening on URL`` on stdout (with ``--port 0`` that
    tells the port the system picked). It logs to stderr. ``--workers N`` runs N
    server processes sharing the port (``SO_REUSEPORT``) under a supervisor that
    restarts a worker that dies and stops them all (1001) on SIGTERM / SIGINT;
    the chat demo then has one room per worker. Browsers are held to the same
    origin by default (a page of another site gets 403); ``--origin`` sets an
    allow-list instead.

``wsjet connect URL``
    An interactive client: every line read from stdin is sent as a text message,
    every message received is printed as it arrives, prefixed with ``< ``.
    Ctrl-D (end of input) or Ctrl-C closes the connection with 1000.

Both run on uvloop when it is installed (``--loop asyncio`` to opt out).
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import contextlib
import logging
import os
import signal
import socket
import ssl
import stat
import sys
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TextIO

import wsjet
from wsjet import ConnectionClosed, Request, Response, WebSocketServerProtocol

from . import workers
from .core.origin import parse_origins
from .demo.chat import ChatRoom, plain_response

__all__ = ["main"]

logger = logging.getLogger("wsjet.cli")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


# --- event loop -------------------------------------------------------------------------


def _loop_factory(choice: str) -> tuple[Callable[[], asyncio.AbstractEventLoop] | None, str]:
    """Return the event loop factory for ``--loop`` and its name."""
    if choice == "asyncio":
        return None, "asyncio"
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise SystemExit("wsjet: --loop uvloop: uvloop is not installed") from None
        return None, "asyncio"
    return uvloop.new_event_loop, "uvloop"


def _run(main: Coroutine[Any, Any, int], loop: str) -> int:
    factory, name = _loop_factory(loop)
    logger.info("event loop: %s", name)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


async def _until_signalled() -> int:
    """Wait for SIGINT or SIGTERM; return the signal number."""
    loop = asyncio.get_running_loop()
    received: asyncio.Future[int] = loop.create_future()

    def handle(signum: int) -> None:
        if not received.done():
            received.set_result(signum)

    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, handle, signum)
    try:
        return await received
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


# --- wsjet serve ------------------------------------------------------------------------


async def echo(websocket: WebSocketServerProtocol) -> None:
    """Send every message back."""
    peer = websocket.remote_address or "a Unix socket"
    logger.info("connection from %s", peer)
    try:
        async for message in websocket:
            await websocket.send(message)
    finally:
        logger.info("%s disconnected (close code %s)", peer, websocket.close_code)


def health_check(connection: WebSocketServerProtocol, request: Request) -> Response | None:
    """Echo mode's ``process_request``: ``GET /healthz`` gets a plain 200, the rest upgrades."""
    if request.path.split("?", 1)[0] == "/healthz":
        return plain_response(200, "OK", b"OK\n", head=request.method == "HEAD")
    return None


def _server_tls(certfile: str | None, keyfile: str | None) -> ssl.SSLContext | None:
    if certfile is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    return context


def _prepare_unix_path(path: str) -> None:
    """Remove a stale socket file left by a server that is gone; refuse anything else."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise SystemExit(f"wsjet: {path} exists and is not a socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            os.unlink(path)  # nobody listens there any more
            return
    raise SystemExit(f"wsjet: a server already listens on {path}")


def _format_url(scheme: str, sockname: Any, path: str) -> str:
    host, port = sockname[0], sockname[1]
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}{path}"


async def serve_command(args: argparse.Namespace) -> int:
    """Run ``wsjet serve`` until SIGINT or SIGTERM."""
    try:
        context = _server_tls(args.certfile, args.keyfile)
    except (OSError, ssl.SSLError) as exc:
        print(f"wsjet: cannot load the TLS certificate or key: {exc}", file=sys.stderr)
        return 1
    if args.echo:
        handler: Callable[[WebSocketServerProtocol], Coroutine[Any, Any, None]] = echo
        process_request: Any = health_check
        ws_path, what = "/", "echo server"
    else:
        room = ChatRoom()
        handler, process_request = room.handler, room.process_request
        ws_path, what = "/ws", "chat demo"
    if args.basic_auth is not None:
        user, _, password = args.basic_auth.partition(":")
        # Credentials are checked before anything else, /healthz included.
        process_request = wsjet.chain_process_request(
            wsjet.basic_auth(realm="wsjet", credentials=(user, password)), process_request
        )
    options: dict[str, Any] = {"process_request": process_request}
    if args.origin:
        options["origins"] = _origins_option(args.origin)
    if context is not None:
        options["ssl"] = context
    in_worker = workers.worker_id() is not None
    if in_worker:
        options["reuse_port"] = True
    if args.unix is not None:
        _prepare_unix_path(args.unix)
        server_cm = wsjet.unix_serve(handler, args.unix, **options)
    else:
        server_cm = wsjet.serve(handler, args.host, args.port, **options)

    ws_scheme, http_scheme = ("wss", "https") if context is not None else ("ws", "http")
    try:
        server = await server_cm
    except OSError as exc:
        where = args.unix if args.unix is not None else f"{args.host}:{args.port}"
        print(f"wsjet: cannot listen on {where}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        async with server:
            if in_worker:
                workers.ready()  # the supervisor prints where it listens
            elif args.unix is not None:
                print(f"listening on unix:{args.unix} ({what})", flush=True)
                logger.info("%s listening on Unix socket %s", what, args.unix)
            else:
                for sock in server.sockets:
                    url = _format_url(ws_scheme, sock.getsockname(), ws_path)
                    print(f"listening on {url}", flush=True)
                    logger.info("%s listening on %s", what, url)
                if not args.echo:
                    page = _format_url(http_scheme, server.sockets[0].getsockname(), "/")
                    print(f"open {page} in a browser to chat", flush=True)
            signum = await _until_signalled()
            logger.info("%s: shutting down", signal.Signals(signum).name)
    finally:
        if args.unix is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(args.unix)
    return 0


async def _serve_worker(args: argparse.Namespace) -> int:
    """One worker of ``wsjet serve --workers N`` (a fresh process: logging is set up again)."""
    worker_format = LOG_FORMAT.replace("%(name)s", f"%(name)s [worker {workers.worker_id()}]")
    logging.basicConfig(format=worker_format, level=logging.INFO, stream=sys.stderr)
    return await serve_command(args)


def serve_workers(args: argparse.Namespace) -> int:
    """Run ``wsjet serve --workers N``: the supervisor of N ``serve`` processes."""
    if args.unix is not None:
        print("wsjet: --workers needs TCP: SO_REUSEPORT does not apply to --unix", file=sys.stderr)
        return 2
    try:
        context = _server_tls(args.certfile, args.keyfile)  # fail here, not in every worker
    except (OSError, ssl.SSLError) as exc:
        print(f"wsjet: cannot load the TLS certificate or key: {exc}", file=sys.stderr)
        return 1
    try:
        # Held until the end: it proves the port is free for SO_REUSEPORT sockets, and
        # with --port 0 it picks the port every worker binds.
        reserved = workers.bind_reuse_port(args.host, args.port)
    except OSError as exc:
        print(f"wsjet: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    with reserved:
        sockname = reserved.getsockname()
        args.port = sockname[1]
        ws_scheme, http_scheme = ("wss", "https") if context is not None else ("ws", "http")
        ws_path, what = ("/", "echo server") if args.echo else ("/ws", "chat demo")

        def on_ready() -> None:
            url = _format_url(ws_scheme, sockname, ws_path)
            print(f"listening on {url} ({args.workers} workers)", flush=True)
            logger.info("%s listening on %s with %d workers", what, url, args.workers)
            if not args.echo:
                page = _format_url(http_scheme, sockname, "/")
                print(f"open {page} in a browser to chat (one room per worker)", flush=True)

        factory, name = _loop_factory(args.loop)
        logger.info("event loop: %s", name)
        return workers.run_workers(
            args.workers, _serve_worker, args, loop_factory=factory, on_ready=on_ready
        )


def _origins_option(items: Sequence[str]) -> Any:
    """``--origin`` items -> ``origins`` (see :func:`wsjet.core.origin.parse_origins`)."""
    try:
        return parse_origins(items)
    except ValueError as exc:
        raise SystemExit(f"wsjet: --origin: {exc}") from None


def _workers_count(value: str) -> int:
    count = int(value)
    if count < 1:
        raise argparse.ArgumentTypeError("--workers must be at least 1")
    return count


# --- wsjet connect ----------------------------------------------------------------------


def _header(value: str) -> tuple[str, str]:
    name, sep, content = value.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {value!r}")
    return name.strip(), content.strip()


def _client_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.url.lower().startswith("wss:"):
        if args.insecure or args.cafile:
            raise SystemExit("wsjet: --insecure and --cafile need a wss:// URL")
        return None
    context = ssl.create_default_context(cafile=args.cafile)
    if args.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _LineReader:
    """Lines of stdin, delivered to the event loop without blocking it.

    A terminal or a pipe is watched with ``add_reader``; anything else (a regular
    file, say) is read by a daemon thread. Both read the file descriptor with
    ``os.read``, so no lock of ``sys.stdin`` is ever held by a thread at exit.
    ``None`` marks the end of input.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending = ""
        self._watching = False
        try:
            self.loop.add_reader(fd, self._readable)
            self._watching = True
        except (OSError, ValueError, NotImplementedError):
            threading.Thread(target=self._thread, name="wsjet-stdin", daemon=True).start()

    def _feed(self, chunk: bytes) -> None:
        if chunk:
            self._pending += self._decoder.decode(chunk)
        else:
            self._pending += self._decoder.decode(b"", final=True)
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self.queue.put_nowait(line.removesuffix("\r"))
        if not chunk:
            if self._pending:
                self.queue.put_nowait(self._pending)
                self._pending = ""
            self.queue.put_nowait(None)

    def _readable(self) -> None:
        try:
            chunk = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        except OSError:  # e.g. EIO: the terminal went away
            chunk = b""
        if not chunk:
            self.close()
        self._feed(chunk)

    def _thread(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                chunk = b""
            try:
                self.loop.call_soon_threadsafe(self._feed, chunk)
            except RuntimeError:  # the loop is closed: nobody is listening
                return
            if not chunk:
                return

    def close(self) -> None:
        if self._watching:
            self._watching = False
            self.loop.remove_reader(self.fd)


def _show(message: str | bytes) -> str:
    if isinstance(message, str):
        return message
    preview = message[:32].hex(" ")
    more = " …" if len(message) > 32 else ""
    return f"(binary, {len(message)} bytes) {preview}{more}"


def _describe_close(code: int | None, reason: str | None) -> str:
    if code is None:
        return "connection closed"
    try:
        name = wsjet.CloseCode(code).name
    except ValueError:
        name = "application" if 3000 <= code <= 4999 else "unknown"
    text = f"connection closed: {code} ({name})"
    return f"{text} {reason}" if reason else text


async def connect_command(args: argparse.Namespace, out: TextIO) -> int:
    """Run ``wsjet connect``: stdin lines out, messages in, until EOF, Ctrl-C or a close."""
    options: dict[str, Any] = {"max_size": args.max_size}
    context = _client_tls(args)
    if context is not None:
        options["ssl"] = context
    if args.header:
        options["extra_headers"] = args.header
    if args.subprotocol:
        options["subprotocols"] = args.subprotocol
    if args.origin:
        options["origin"] = args.origin
    try:
        if args.unix is not None:
            websocket = await wsjet.unix_connect(args.unix, args.url, **options)
        else:
            websocket = await wsjet.connect(args.url, **options)
    except (OSError, wsjet.WebSocketError) as exc:  # TimeoutError is an OSError
        print(
            f"wsjet: failed to connect to {args.url}: {exc or type(exc).__name__}", file=sys.stderr
        )
        return 1

    def say(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    extra = f", subprotocol {websocket.subprotocol}" if websocket.subprotocol else ""
    say(f"connected to {args.url}{extra}; Ctrl-D or Ctrl-C to quit")
    lines = _LineReader(sys.stdin.fileno())

    async def receive() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in websocket:
                say(f"< {_show(message)}")

    async def transmit() -> None:
        while True:
            line = await lines.queue.get()
            if line is None:
                return  # end of input: Ctrl-D
            try:
                await websocket.send(line)
            except ConnectionClosed:
                return

    loop = asyncio.get_running_loop()
    interrupted: asyncio.Future[int] = loop.create_future()

    def interrupt(signum: int) -> None:
        if not interrupted.done():
            interrupted.set_result(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, interrupt, signum)
    receiving = asyncio.create_task(receive())
    transmitting = asyncio.create_task(transmit())
    waiting: list[asyncio.Future[Any]] = [receiving, transmitting, interrupted]
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        lines.close()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        transmitting.cancel()
        if not receiving.done():
            # Ctrl-D or Ctrl-C: the closing handshake with 1000, then drain what arrives.
            await websocket.close(1000)
        await asyncio.gather(receiving, transmitting, return_exceptions=True)
    code = websocket.close_code
    say(_describe_close(code, websocket.close_reason))
    return 0 if code in (1000, 1001) else 1


# --- main -------------------------------------------------------------------------------


def _add_loop_option(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--loop",
        choices=("auto", "uvloop", "asyncio"),
        default=default,
        help="event loop: uvloop when installed (auto, the default), or asyncio's",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``wsjet`` command."""
    parser = argparse.ArgumentParser(prog="wsjet", description="wsjet WebSocket tools")
    _add_loop_option(parser, "auto")
    parser.add_argument("--version", action="version", version=f"wsjet {wsjet.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the demo chat server (or an echo server)",
        description="Run the demo chat room: its page on GET /, the WebSocket on /ws, "
        "a health check on /healthz. Prints 'listening on URL' on stdout once ready.",
    )
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"default {DEFAULT_HOST}")
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}; 0 picks a free one"
    )
    serve.add_argument("--echo", action="store_true", help="run a plain echo server instead")
    serve.add_argument(
        "--certfile", help="serve TLS (wss://, https://) with this certificate (PEM)"
    )
    serve.add_argument("--keyfile", help="private key of --certfile, if not in the same file")
    serve.add_argument("--unix", metavar="PATH", help="listen on a Unix socket instead of TCP")
    serve.add_argument(
        "--basic-auth", metavar="USER:PASSWORD", help="require HTTP Basic credentials (401 without)"
    )
    serve.add_argument(
        "--origin",
        action="append",
        metavar="ORIGIN",
        help="allowed Origin (repeatable): an exact origin such as https://chat.example, "
        "'re:PATTERN' (matched in full), 'none' (clients that send no Origin) or '*' alone "
        "(any origin); others get 403. Default: clients without Origin, and pages whose "
        "Origin names the host:port they connect to (same origin); WSJET_ORIGINS sets "
        "another default",
    )
    serve.add_argument(
        "--workers",
        type=_workers_count,
        metavar="N",
        help="run N server processes sharing the port (SO_REUSEPORT), restarted if they die",
    )
    _add_loop_option(serve, argparse.SUPPRESS)

    connect = commands.add_parser(
        "connect",
        help="interactive client: send stdin lines, print messages",
        description="Connect to URL; send each line typed as a text message and print each "
        "message received after '< '. Ctrl-D or Ctrl-C closes the connection (1000).",
    )
    connect.add_argument("url", metavar="URL", help="ws:// or wss:// URL")
    connect.add_argument(
        "--header",
        action="append",
        type=_header,
        default=[],
        metavar="'NAME: VALUE'",
        help="extra request header (repeatable)",
    )
    connect.add_argument(
        "--subprotocol", action="append", default=[], help="subprotocol to offer (repeatable)"
    )
    connect.add_argument("--origin", help="Origin header to send")
    connect.add_argument("--unix", metavar="PATH", help="connect over this Unix socket")
    connect.add_argument("--cafile", help="trust the CA certificates in this PEM file")
    connect.add_argument(
        "--insecure", action="store_true", help="wss://: do not verify the server's certificate"
    )
    connect.add_argument(
        "--max-size",
        type=int,
        default=2**24,
        help="largest message accepted, in bytes (default 16 MiB)",
    )
    connect.add_argument("-v", "--verbose", action="store_true", help="log connection events")
    _add_loop_option(connect, argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``wsjet`` console script."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            if args.keyfile and not args.certfile:
                raise SystemExit("wsjet: --keyfile needs --certfile")
            if args.origin:
                _origins_option(args.origin)  # a mistake stops here, before any worker starts
            logging.basicConfig(format=LOG_FORMAT, level=logging.INFO, stream=sys.stderr)
            if args.workers is not None:
                status = serve_workers(args)
            else:
                status = _run(serve_command(args), args.loop)
        else:
            level = logging.INFO if args.verbose else logging.WARNING
            logging.basicConfig(format=LOG_FORMAT, level=level, stream=sys.stderr)
            status = _run(connect_command(args, sys.stdout), args.loop)
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were in place
        status = 130
    raise SystemExit(status)
