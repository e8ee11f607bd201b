"""run_workers() and ``wsjet serve --workers N``: SO_REUSEPORT processes under a supervisor.

Each test runs the supervisor as a real subprocess (it handles signals) and
talks to the workers through the `websockets` package.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
import textwrap
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import WebSocketException

from wsjet import workers
from wsjet.workers import bind_reuse_port, ready, run_workers, worker_id

#: A deadlock guard for waits that should end long before it.
PATIENCE = 30.0

SCRIPT = textwrap.dedent(
    """
    import asyncio, logging, os, sys
    import wsjet
    from wsjet.workers import ready, run_workers, worker_id

    async def handler(ws):
        await ws.send(f"{os.getpid()} {worker_id()}")
        await ws.wait_closed()

    async def main(port):
        async with wsjet.serve(handler, "127.0.0.1", port, reuse_port=True, close_timeout=5):
            ready()
            await asyncio.get_running_loop().create_future()

    async def broken(port):
        raise RuntimeError("cannot start")

    def on_ready():
        print("all ready", flush=True)

    if __name__ == "__main__":
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
        port, what = int(sys.argv[1]), sys.argv[2]
        target = main if what == "main" else broken
        sys.exit(run_workers(2, target, port, on_ready=on_ready, max_start_failures=2))
    """
)


@contextlib.asynccontextmanager
async def supervisor(
    command: Sequence[str], log: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Start a supervisor process; SIGTERM it and wait for it at the end."""
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=stderr
        )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), PATIENCE)


async def first_line(process: asyncio.subprocess.Process, log: Path) -> str:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), PATIENCE)
    assert line, f"no output; log:\n{log.read_text()}"
    return line.decode().strip()


async def who(port: int) -> tuple[int, int]:
    """Connect once; return the worker's (pid, id)."""
    async with ws_connect(f"ws://127.0.0.1:{port}/") as client:
        message = await asyncio.wait_for(client.recv(), PATIENCE)
    pid, index = str(message).split()
    return int(pid), int(index)


async def until_seen(port: int, want: set[int], exclude: set[int] = frozenset()) -> dict[int, int]:
    """Connect until workers ``want`` answered (with a pid not in ``exclude``)."""
    seen: dict[int, int] = {}
    async with asyncio.timeout(PATIENCE):
        while not want <= set(seen):
            try:
                pid, index = await who(port)
            except (OSError, WebSocketException):
                await asyncio.sleep(0.05)  # a worker died with connections in its backlog
                continue
            if pid not in exclude:
                seen[index] = pid
    return seen


def test_outside_workers() -> None:
    assert worker_id() is None
    ready()  # nothing to tell
    with pytest.raises(ValueError):
        run_workers(0, asyncio.sleep)


def test_bind_reuse_port_refuses_a_port_in_plain_use() -> None:
    with socket.socket() as plain:
        plain.bind(("127.0.0.1", 0))
        plain.listen()
        with pytest.raises(OSError):
            bind_reuse_port("127.0.0.1", plain.getsockname()[1])
    with bind_reuse_port("127.0.0.1", 0) as first:
        port = first.getsockname()[1]
        with bind_reuse_port("127.0.0.1", port) as second:  # a group: both may bind
            assert second.getsockname()[1] == port


async def test_workers_share_the_port_restart_and_stop_with_1001(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    log = tmp_path / "supervisor.log"
    with bind_reuse_port("127.0.0.1", 0) as reserved:
        port = reserved.getsockname()[1]
        command = [sys.executable, str(script), str(port), "main"]
        async with supervisor(command, log) as process:
            assert await first_line(process, log) == "all ready"
            # SO_REUSEPORT spreads connections: both workers answer, from two processes.
            pids = await until_seen(port, {0, 1})
            assert len(set(pids.values())) == 2
            assert process.pid not in pids.values()

            # A worker that dies is restarted, with a new pid.
            os.kill(pids[0], signal.SIGKILL)
            restarted = await until_seen(port, {0}, exclude={pids[0]})
            assert restarted[0] != pids[0]

            # SIGTERM: every worker closes its connections with 1001.
            held: list[ClientConnection] = []
            indexes: set[str] = set()
            async with asyncio.timeout(PATIENCE):
                while indexes != {"0", "1"} or len(held) < 4:
                    client = await ws_connect(f"ws://127.0.0.1:{port}/")
                    held.append(client)
                    indexes.add(str(await client.recv()).split()[1])
            process.send_signal(signal.SIGTERM)
            for client in held:
                await asyncio.wait_for(client.wait_closed(), PATIENCE)
                assert client.close_code == 1001
            assert await asyncio.wait_for(process.wait(), PATIENCE) == 0
    text = log.read_text()
    assert "killed by SIGKILL" in text and "restarting" in text
    assert "SIGTERM: stopping 2 workers" in text


async def test_workers_that_cannot_start_make_the_supervisor_give_up(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    log = tmp_path / "supervisor.log"
    command = [sys.executable, str(script), "0", "broken"]
    async with supervisor(command, log) as process:
        assert await asyncio.wait_for(process.wait(), PATIENCE) == 1
    text = log.read_text()
    assert "RuntimeError: cannot start" in text
    assert "failed to start 2 times in a row: giving up" in text


async def test_cli_serve_workers(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "wsjet", "serve", "--echo", "--port", "0", "--workers", "2"]
    async with supervisor(command, log) as process:
        line = await first_line(process, log)
        match = re.fullmatch(r"listening on (ws://127\.0\.0\.1:(\d+)/) \(2 workers\)", line)
        assert match, line
        url = match.group(1)
        clients = [await ws_connect(url) for _ in range(6)]
        for i, client in enumerate(clients):
            await client.send(f"echo {i}")
            assert await asyncio.wait_for(client.recv(), PATIENCE) == f"echo {i}"
        process.send_signal(signal.SIGTERM)
        for client in clients:
            await asyncio.wait_for(client.wait_closed(), PATIENCE)
            assert client.close_code == 1001
        assert await asyncio.wait_for(process.wait(), PATIENCE) == 0
    text = log.read_text()
    assert "[worker 0]" in text and "[worker 1]" in text


async def test_cli_serve_workers_refuses_unix_sockets(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "wsjet", "serve", "--workers", "2", "--unix", "x.sock"]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), PATIENCE)
    assert process.returncode == 2
    assert b"--workers needs TCP" in stderr


async def test_cli_serve_workers_reports_a_taken_port(tmp_path: Path) -> None:
    with socket.socket() as plain:
        plain.bind(("127.0.0.1", 0))
        plain.listen()
        port = str(plain.getsockname()[1])
        command = [sys.executable, "-m", "wsjet", "serve", "--port", port, "--workers", "2"]
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        _, stderr = await asyncio.wait_for(process.communicate(), PATIENCE)
    assert process.returncode == 1
    assert b"cannot listen on 127.0.0.1:" in stderr


def test_worker_id_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(workers.WORKER_ID_ENV, "3")
    assert worker_id() == 3
