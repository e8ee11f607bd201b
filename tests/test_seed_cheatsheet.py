"""The "Cheat sheet" seed's examples, run as written with `websockets` renamed `wsjet`."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import connect as sync_connect

# Verbatim from the seed's "Passing additional arguments to the connection handler",
# with only the package renamed; the handler body `...` returns at once.
PARTIAL_EXAMPLE = textwrap.dedent(
    """\
    import asyncio
    import functools
    import wsjet

    async def handler(websocket, path, extra_argument):
        ...

    bound_handler = functools.partial(handler, extra_argument='spam')
    start_server = wsjet.serve(bound_handler, '127.0.0.1', 8765)

    asyncio.get_event_loop().run_until_complete(start_server)
    asyncio.get_event_loop().run_forever()
    """
)

# Verbatim from the seed's "Debugging" section.
LOGGING_EXAMPLE = textwrap.dedent(
    """\
    import logging
    logger = logging.getLogger('wsjet')
    logger.setLevel(logging.INFO)
    logger.addHandler(logging.StreamHandler())
    """
)


def connect_with_retry(uri: str) -> object:
    deadline = time.monotonic() + 10
    while True:
        try:
            return sync_connect(uri, open_timeout=2)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_partial_handler_with_run_until_complete() -> None:
    # The logging snippet runs first so that the server's INFO logs are visible.
    process = subprocess.Popen(
        [sys.executable, "-c", LOGGING_EXAMPLE + PARTIAL_EXAMPLE],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with connect_with_retry("ws://127.0.0.1:8765/some/path") as client:  # type: ignore[attr-defined]
            # The handler returns at once: the server closes with 1000.
            try:
                client.recv(timeout=5)
            except ConnectionClosedOK as exc:
                assert exc.rcvd is not None and exc.rcvd.code == 1000
            else:
                raise AssertionError("expected the server to close the connection")
        # A malformed handshake is logged at INFO through the seed's logging setup.
        with subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import socket; s=socket.create_connection(('127.0.0.1',8765));"
                "s.sendall(b'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n');"
                "print(s.recv(1000).decode())",
            ],
            stdout=subprocess.PIPE,
            text=True,
        ) as bad:
            answer, _ = bad.communicate(timeout=10)
        assert answer.startswith("HTTP/1.1 400 ")
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert "opening handshake failed" in stderr
    assert "Traceback" not in stderr
