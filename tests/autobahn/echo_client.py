"""Echo client under test for the Autobahn fuzzingserver (kosoku "client mode").

Usage::

    python tests/autobahn/echo_client.py --impl wsjet|websockets \
        --url http://127.0.0.1:P --agent NAME [--no-compression] [--max-size BYTES] \
        [--concurrency N] [--case-timeout SECONDS]

Follows the Autobahn fuzzingserver protocol. Every step is a *WebSocket*
connection (not a plain HTTP GET):

1. ``ws://HOST:P/getCaseCount`` -- the server sends one text message, the
   number N of selected cases, then closes.
2. for case 1..N: ``ws://HOST:P/runCase?case=I&agent=NAME`` -- echo every
   message back until the connection closes; ``--concurrency`` cases at once.
3. ``ws://HOST:P/updateReports?agent=NAME`` -- ends the run (kosoku then drops
   the TCP connection without a closing handshake; that is expected).

A case whose connection fails is logged and the run goes on. Failures of the
library's own exception tree (ConnectionClosed, handshake errors, ...), OSError
and timeouts are expected while fuzzing. Anything else is printed with its
traceback behind an ``UNEXPECTED-EXCEPTION`` line: the harness counts those.

Exit status: 0 when all three steps ran (whatever the case verdicts), 2 when
getCaseCount or updateReports failed.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

UNEXPECTED_MARKER = "UNEXPECTED-EXCEPTION"


# --- the implementation-specific part ---------------------------------------------------
# Each returns (connect, expected_exception_types). connect(uri) must be an
# async context manager yielding a connection with recv/send/async-iteration.


def websockets_impl(max_size: int | None, compression: str | None) -> tuple[Any, tuple]:
    from websockets.asyncio.client import connect
    from websockets.exceptions import WebSocketException

    def open_(uri: str) -> Any:
        return connect(uri, max_size=max_size, compression=compression, ping_interval=None)

    return open_, (WebSocketException,)


def wsjet_impl(max_size: int | None, compression: str | None) -> tuple[Any, tuple]:
    import wsjet
    from wsjet.exceptions import WebSocketError

    def open_(uri: str) -> Any:
        return wsjet.connect(uri, max_size=max_size, compression=compression, ping_interval=None)

    return open_, (WebSocketError,)


IMPLS: dict[str, Callable[[int | None, str | None], tuple[Any, tuple]]] = {
    "websockets": websockets_impl,
    "wsjet": wsjet_impl,
}

# -----------------------------------------------------------------------------------------


class Client:
    def __init__(self, open_: Any, lib_errors: tuple, case_timeout: float) -> None:
        self.open = open_
        self.expected = (*lib_errors, OSError, EOFError)
        self.case_timeout = case_timeout
        self.outcomes: Counter[str] = Counter()
        self.unexpected = 0

    async def guarded(self, what: str, step: Callable[[], Awaitable[Any]]) -> Any:
        """Run one step; classify how it ended. Returns the step's result or None."""
        backstop = asyncio.timeout(self.case_timeout)
        try:
            async with backstop:
                result = await step()
        except TimeoutError as exc:
            if not backstop.expired():  # a library timeout (open/close): expected
                self.outcomes[type(exc).__name__] += 1
                print(f"{what}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                return None
            # Our own backstop fired: the library hung although kosoku gives up
            # on every case long before. Treat as a bug.
            self.unexpected += 1
            print(
                f"{UNEXPECTED_MARKER} {what}: no progress for {self.case_timeout}s",
                file=sys.stderr,
                flush=True,
            )
            return None
        except self.expected as exc:
            self.outcomes[type(exc).__name__] += 1
            print(f"{what}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            return None
        except Exception as exc:
            self.unexpected += 1
            print(
                f"{UNEXPECTED_MARKER} {what}: {type(exc).__name__}: {exc}",
                file=sys.stderr,
                flush=True,
            )
            traceback.print_exc(file=sys.stderr)
            return None
        self.outcomes["clean"] += 1
        return result

    async def get_case_count(self, base: str) -> str:
        async with self.open(f"{base}/getCaseCount") as ws:
            return await ws.recv()

    async def run_case(self, base: str, case: int, agent: str) -> None:
        async with self.open(f"{base}/runCase?case={case}&agent={quote(agent)}") as ws:
            async for message in ws:
                await ws.send(message)

    async def update_reports(self, base: str, agent: str) -> bool:
        async with self.open(f"{base}/updateReports?agent={quote(agent)}") as ws:
            try:
                async for _ in ws:
                    pass
            except self.expected:
                pass  # kosoku drops the TCP connection without a closing handshake
        return True


def ws_base(url: str) -> str:
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise SystemExit(f"unsupported URL scheme in {url!r}")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


async def amain(args: argparse.Namespace) -> int:
    compression = None if args.no_compression else "deflate"
    open_, lib_errors = IMPLS[args.impl](args.max_size, compression)
    client = Client(open_, lib_errors, args.case_timeout)
    base = ws_base(args.url)

    count = await client.guarded("getCaseCount", lambda: client.get_case_count(base))
    try:
        n = int(count)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        print(f"getCaseCount failed (got {count!r})", file=sys.stderr, flush=True)
        return 2
    print(f"CASES {n}", flush=True)

    loop = asyncio.get_running_loop()
    cases = iter(range(1, n + 1))

    async def worker() -> None:
        # Workers share one iterator: each case runs once, in order of start.
        for case in cases:
            t0 = loop.time()
            await client.guarded(
                f"case {case}", lambda c=case: client.run_case(base, c, args.agent)
            )
            if (took := loop.time() - t0) > 2.0:
                print(f"case {case}: took {took:.1f}s", file=sys.stderr, flush=True)

    await asyncio.gather(*(worker() for _ in range(max(1, args.concurrency))))

    updated = await client.guarded("updateReports", lambda: client.update_reports(base, args.agent))
    outcomes = ",".join(f"{k}={v}" for k, v in sorted(client.outcomes.items()))
    print(f"OUTCOMES {outcomes}", flush=True)
    print(f"UNEXPECTED {client.unexpected}", flush=True)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"CPU {usage.ru_utime + usage.ru_stime:.2f}", flush=True)
    if not updated:
        print("updateReports failed", file=sys.stderr, flush=True)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=sorted(IMPLS), default="wsjet")
    parser.add_argument("--url", required=True, help="fuzzingserver URL, http:// or ws://")
    parser.add_argument("--agent", required=True)
    parser.add_argument("--no-compression", action="store_true")
    parser.add_argument(
        "--max-size", type=int, default=None, help="max message size in bytes (default: unlimited)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="cases run at once (kosoku keeps each case's state apart)",
    )
    parser.add_argument(
        "--case-timeout", type=float, default=180.0, help="backstop per case, in seconds"
    )
    args = parser.parse_args(argv)
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
