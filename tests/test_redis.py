"""RedisBackplane with a real redis-server (Debian's), started and stopped by the tests.

``scripts/install-redis.sh`` installs redis-server; the first test that needs
it runs the script when it is missing. Each test starts its own server on
127.0.0.1, on a free port, in a temporary directory, without persistence.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

import wsjet
from wsjet.pubsub import RedisBackplane

from .test_broadcast import port_of, wait_for
from .utils import UNIT

#: A deadlock guard for waits that should end long before it.
PATIENCE = 30.0
ROOT = Path(__file__).resolve().parent.parent


def redis_server_path() -> str:
    """Find redis-server, installing it with scripts/install-redis.sh if needed."""
    found = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin")
    if found is None:
        subprocess.run(["bash", str(ROOT / "scripts" / "install-redis.sh")], check=False)
        found = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin")
    assert found is not None, "redis-server is missing: run scripts/install-redis.sh"
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server process that can be stopped and started again on the same port."""

    def __init__(self, directory: Path) -> None:
        self.binary = redis_server_path()
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            str(self.directory / "redis.log"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        async with asyncio.timeout(PATIENCE):
            while True:
                try:
                    async with aioredis.Redis.from_url(self.url) as client:
                        await client.ping()
                    return
                except (OSError, aioredis.ConnectionError):
                    assert self.process.returncode is None, (
                        self.directory / "redis.log"
                    ).read_text()
                    await asyncio.sleep(UNIT / 5)

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), PATIENCE)

    async def subscribers(self, topic: str) -> int:
        """How many connections subscribe to the channel of ``topic`` (PUBSUB NUMSUB)."""
        async with aioredis.Redis.from_url(self.url) as client:
            ((_, count),) = await client.pubsub_numsub(f"wsjet:{topic}")
        return int(count)


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


# --- one process, two servers --------------------------------------------------------------


async def test_publish_crosses_backplanes_in_one_process(redis_server: RedisServer) -> None:
    async def subscriber(ws: wsjet.WebSocketServerProtocol) -> None:
        ws.subscribe("room")
        await ws.send("subscribed")
        await ws.wait_closed()

    one = RedisBackplane(redis_server.url)
    two = RedisBackplane(redis_server.url)
    async with (
        wsjet.serve(subscriber, "127.0.0.1", 0, backplane=one) as first,
        wsjet.serve(subscriber, "127.0.0.1", 0, backplane=two) as second,
        ws_connect(f"ws://127.0.0.1:{port_of(first)}/") as a,
        ws_connect(f"ws://127.0.0.1:{port_of(second)}/") as b,
    ):
        assert await a.recv() == "subscribed"
        assert await b.recv() == "subscribed"
        await one.wait_connected()
        await two.wait_connected()
        assert "connected" in repr(one)
        await wait_for(lambda: one.topics == ["room"])
        async with asyncio.timeout(PATIENCE):
            while await redis_server.subscribers("room") != 2:
                await asyncio.sleep(UNIT / 5)
        # Local delivery at once; the other server through Redis; never twice.
        assert first.publish("room", b"\x00binary").delivered == 1
        assert second.publish("room", "tëxt").delivered == 1
        for client in (a, b):
            received = {await client.recv(), await client.recv()}
            assert received == {b"\x00binary", "tëxt"}
        await wait_for(lambda: one.received == 1 and two.received == 1)
        await wait_for(lambda: one.forwarded == 1 and two.forwarded == 1)
        assert one.dropped == two.dropped == 0
    # Closing the servers detached and stopped the backplanes: no subscriber left in Redis.
    assert not one.connected and not two.connected
    assert await redis_server.subscribers("room") == 0


async def test_unsubscribed_topics_leave_redis(redis_server: RedisServer) -> None:
    async def handler(ws: wsjet.WebSocketServerProtocol) -> None:
        async for message in ws:
            verb, _, topic = str(message).partition(" ")
            (ws.subscribe if verb == "sub" else ws.unsubscribe)(topic)
            await ws.send("ok")

    backplane = RedisBackplane(redis_server.url)
    async with (
        wsjet.serve(handler, "127.0.0.1", 0, backplane=backplane) as server,
        ws_connect(f"ws://127.0.0.1:{port_of(server)}/") as client,
    ):
        await backplane.wait_connected()
        await client.send("sub news")
        assert await client.recv() == "ok"
        async with asyncio.timeout(PATIENCE):
            while await redis_server.subscribers("news") != 1:
                await asyncio.sleep(UNIT / 5)
        await client.send("unsub news")
        assert await client.recv() == "ok"
        async with asyncio.timeout(PATIENCE):
            while await redis_server.subscribers("news") != 0:
                await asyncio.sleep(UNIT / 5)


# --- two server processes ---------------------------------------------------------------------

SERVER_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, logging, signal, sys
    import wsjet
    from wsjet.pubsub import RedisBackplane

    async def main(url):
        backplane = RedisBackplane(url, backoff_min=0.05, backoff_max=0.3)

        async def handler(ws):
            async for message in ws:
                verb, _, rest = message.partition(" ")
                if verb == "sub":
                    ws.subscribe(rest)
                    await ws.send("subscribed")
                elif verb == "pub":
                    topic, _, text = rest.partition(" ")
                    result = ws.server.publish(topic, text)
                    await ws.send(f"published to {result.delivered}")
                elif verb == "connected":
                    await ws.send(str(backplane.connected))

        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        async with wsjet.serve(handler, "127.0.0.1", 0, backplane=backplane) as server:
            print(server.sockets[0].getsockname()[1], flush=True)
            await stop.wait()
        stats = {k: getattr(backplane, k) for k in ("forwarded", "received", "dropped", "outages")}
        print(json.dumps(stats), flush=True)

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(main(sys.argv[1]))
    """
)


class ServerProcess:
    """A wsjet server process with a RedisBackplane, driven through WebSocket commands."""

    def __init__(self, process: asyncio.subprocess.Process, port: int, log: Path) -> None:
        self.process = process
        self.url = f"ws://127.0.0.1:{port}/"
        self.log = log

    async def command(self, text: str) -> str:
        async with ws_connect(self.url) as client:
            await client.send(text)
            return str(await asyncio.wait_for(client.recv(), PATIENCE))

    async def subscriber(self, topic: str) -> ClientConnection:
        client = await ws_connect(self.url)
        await client.send(f"sub {topic}")
        assert await asyncio.wait_for(client.recv(), PATIENCE) == "subscribed"
        return client


@contextlib.asynccontextmanager
async def server_process(tmp_path: Path, name: str, redis_url: str) -> AsyncIterator[ServerProcess]:
    script = tmp_path / "server.py"
    script.write_text(SERVER_SCRIPT)
    log = tmp_path / f"{name}.log"
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(script), redis_url, stdout=asyncio.subprocess.PIPE, stderr=stderr
        )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), PATIENCE)
        assert line.strip().isdigit(), f"{line!r}; log:\n{log.read_text()}"
        yield ServerProcess(process, int(line), log)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), PATIENCE)


async def all_connected(redis: RedisServer, servers: list[ServerProcess], topic: str) -> None:
    """Wait until every server is connected to Redis and subscribed to ``topic``."""
    async with asyncio.timeout(PATIENCE):
        while True:
            states = [await server.command("connected") for server in servers]
            if states == ["True"] * len(servers):
                with contextlib.suppress(OSError, aioredis.ConnectionError):
                    if await redis.subscribers(topic) == len(servers):
                        return
            await asyncio.sleep(UNIT / 5)


async def test_two_server_processes_and_a_redis_restart(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async with (
        server_process(tmp_path, "one", redis_server.url) as one,
        server_process(tmp_path, "two", redis_server.url) as two,
    ):
        on_one = [await one.subscriber("room") for _ in range(3)]
        on_two = [await two.subscriber("room") for _ in range(3)]
        everybody = on_one + on_two
        try:
            await all_connected(redis_server, [one, two], "room")
            # A publish on either process reaches the subscribers of both.
            assert await one.command("pub room from one") == "published to 3"
            assert await two.command("pub room from two") == "published to 3"
            for client in everybody:
                received = [await asyncio.wait_for(client.recv(), PATIENCE) for _ in range(2)]
                assert sorted(received) == ["from one", "from two"]

            # Redis goes away: both servers keep serving their own clients.
            await redis_server.stop()
            assert await one.command("pub room during the outage") == "published to 3"
            for client in on_one:
                assert await asyncio.wait_for(client.recv(), PATIENCE) == "during the outage"

            # Redis comes back: the servers reconnect, resubscribe, and publishing resumes.
            await redis_server.start()
            await all_connected(redis_server, [one, two], "room")
            assert await one.command("pub room after the outage") == "published to 3"
            assert await two.command("pub room and from two") == "published to 3"
            for client in everybody:
                # The outage's message never reached the other process: no replay.
                received = [await asyncio.wait_for(client.recv(), PATIENCE) for _ in range(2)]
                assert sorted(received) == ["after the outage", "and from two"]
            assert one.process.returncode is None and two.process.returncode is None
        finally:
            for client in everybody:
                await client.close()
        for server in (one, two):
            server.process.send_signal(signal.SIGTERM)
            out, _ = await asyncio.wait_for(server.process.communicate(), PATIENCE)
            assert server.process.returncode == 0
            stats = json.loads(out.decode().strip().splitlines()[-1])
            assert stats["outages"] == 1
        log = one.log.read_text()
        assert "redis backplane lost the connection to" in log
        assert "serving local clients only, reconnecting" in log
        assert "reconnected to" in log and "1 messages published here meanwhile" in log
        assert "Traceback" not in log and "Traceback" not in two.log.read_text()
        assert json.loads(out.decode().strip().splitlines()[-1])["received"] == 2


async def test_redis_unavailable_at_start_then_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    redis = RedisServer(tmp_path)  # not started yet
    backplane = RedisBackplane(redis.url, backoff_min=0.05, backoff_max=0.2)
    with caplog.at_level(logging.INFO, logger="wsjet.pubsub"):
        async with wsjet.serve(None, "127.0.0.1", 0, backplane=backplane):
            await wait_for(lambda: backplane.outages == 1)
            assert not backplane.connected
            await redis.start()
            try:
                await asyncio.wait_for(backplane.wait_connected(), PATIENCE)
            finally:
                await redis.stop()
            await wait_for(lambda: not backplane.connected)
    messages = [r.getMessage() for r in caplog.records]
    assert any("cannot connect to" in m for m in messages)
    assert any("reconnected to" in m for m in messages)
    assert any("lost the connection to" in m for m in messages)
    assert backplane.outages == 2
