"""Topics: subscribe / unsubscribe / publish on both faces, and the in-process backplane."""

from __future__ import annotations

import asyncio
import logging

import pytest
from websockets.asyncio.client import connect as ws_connect

import wsjet
from wsjet.broadcast import BroadcastResult
from wsjet.pubsub import Backplane, InProcessBackplane, RedisBackplane, Topics, _safe_url

from .test_broadcast import port_of, wait_for


async def commands(ws: wsjet.WebSocketServerProtocol) -> None:
    """``sub T`` / ``unsub T`` / ``pub T message`` from the peer."""
    async for message in ws:
        assert isinstance(message, str)
        verb, _, rest = message.partition(" ")
        if verb == "sub":
            ws.subscribe(rest)
        elif verb == "unsub":
            ws.unsubscribe(rest)
        elif verb == "pub":
            topic, _, text = rest.partition(" ")
            ws.server.publish(topic, text)
        await ws.send(f"ok {message}")


async def test_publish_reaches_subscribers_only() -> None:
    async with wsjet.serve(commands, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{port_of(server)}/"
        async with ws_connect(url) as news, ws_connect(url) as both, ws_connect(url) as none:
            for client, topics in ((news, ["news"]), (both, ["news", "sport"])):
                for topic in topics:
                    await client.send(f"sub {topic}")
                    assert await client.recv() == f"ok sub {topic}"
            assert sorted(server.topics.topics) == ["news", "sport"]
            assert server.publish("news", "headline") == BroadcastResult(2, 0, 0)
            assert server.publish("sport", b"score") == BroadcastResult(1, 0, 0)
            assert server.publish("weather", "rain") == BroadcastResult(0, 0, 0)
            assert await news.recv() == "headline"
            assert await both.recv() == "headline"
            assert await both.recv() == b"score"
            # A peer publishes through the server too; the publisher may be a subscriber.
            await none.send("pub news from a peer")
            assert await none.recv() == "ok pub news from a peer"
            assert await news.recv() == "from a peer"
            assert await both.recv() == "from a peer"
            await both.send("unsub news")
            assert await both.recv() == "ok unsub news"
            assert server.publish("news", "second").delivered == 1
            assert await news.recv() == "second"
            await both.send("pub sport last")
            assert await both.recv() == "last"  # only sport left for it
            assert await both.recv() == "ok pub sport last"


async def test_subscriptions_are_dropped_on_disconnect() -> None:
    async with wsjet.serve(commands, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{port_of(server)}/"
        async with ws_connect(url) as client:
            await client.send("sub a")
            await client.recv()
            await client.send("sub b")
            await client.recv()
            (protocol,) = server.connections
            assert protocol.subscriptions == frozenset({"a", "b"})
            assert server.backplane.topics == ["a", "b"]
        await wait_for(lambda: not server.connections)
        assert protocol.subscriptions == frozenset()
        assert server.topics.topics == []
        assert server.backplane.topics == []
        assert server.publish("a", "nobody") == BroadcastResult()
        # Subscribing a closed connection is an error, as sending is.
        with pytest.raises(wsjet.ConnectionClosed):
            protocol.subscribe("a")
        protocol.unsubscribe("a")  # nothing to do


async def test_subscribe_twice_and_unsubscribe_unknown() -> None:
    async def handler(ws: wsjet.WebSocketServerProtocol) -> None:
        ws.subscribe("t")
        ws.subscribe("t")
        ws.unsubscribe("never")
        assert ws.subscriptions == frozenset({"t"})
        with pytest.raises(TypeError):
            ws.subscribe(b"bytes")  # type: ignore[arg-type]
        assert ws.subscriptions == frozenset({"t"})
        await ws.send("ready")
        await ws.wait_closed()

    async with (
        wsjet.serve(handler, "127.0.0.1", 0) as server,
        ws_connect(f"ws://127.0.0.1:{port_of(server)}/") as client,
    ):
        assert await client.recv() == "ready"
        assert server.publish("t", "once").delivered == 1
        assert await client.recv() == "once"


async def test_client_connections_cannot_subscribe() -> None:
    async with (
        wsjet.serve(commands, "127.0.0.1", 0) as server,
        wsjet.connect(f"ws://127.0.0.1:{port_of(server)}/") as client,
    ):
        with pytest.raises(RuntimeError, match="accepted by a wsjet server"):
            client.subscribe("t")
        client.unsubscribe("t")


async def test_publish_rejects_other_types() -> None:
    async with wsjet.serve(commands, "127.0.0.1", 0) as server:
        with pytest.raises(TypeError):
            server.publish("t", 1)  # type: ignore[arg-type]


async def test_callback_face_subscribe_and_publish() -> None:
    socket_server = wsjet.WebSocketServer("127.0.0.1", 0)
    with pytest.raises(RuntimeError, match="not listening"):
        socket_server.publish("t", "too early")

    @socket_server.connection
    async def on_connection(client: wsjet.Client) -> None:
        @client.message
        async def on_message(reader: wsjet.WebSocketReader) -> None:
            text = await reader.get()
            assert isinstance(text, str)
            verb, _, topic = text.partition(" ")
            if verb == "sub":
                client.subscribe(topic)
            else:
                client.unsubscribe(topic)
            await client.writer.send(f"ok {text} {sorted(client.subscriptions)}")

    async with socket_server as listening:
        url = f"ws://127.0.0.1:{listening.sockets[0].getsockname()[1]}/"
        async with ws_connect(url) as one, ws_connect(url) as two:
            await one.send("sub room")
            assert await one.recv() == "ok sub room ['room']"
            await two.send("sub room")
            assert await two.recv() == "ok sub room ['room']"
            assert socket_server.publish("room", "hello room") == BroadcastResult(2, 0, 0)
            assert await one.recv() == "hello room"
            assert await two.recv() == "hello room"
            await two.send("unsub room")
            assert await two.recv() == "ok unsub room []"
            assert socket_server.publish("room", b"bytes").delivered == 1
            assert await one.recv() == b"bytes"
        assert socket_server.ws_server is not None
        topics = socket_server.ws_server.topics
        await wait_for(lambda: not topics.topics)


async def test_a_shared_in_process_backplane_spans_servers() -> None:
    shared = InProcessBackplane()

    async def subscriber(ws: wsjet.WebSocketServerProtocol) -> None:
        ws.subscribe("all")
        await ws.send("subscribed")
        await ws.wait_closed()

    async with (
        wsjet.serve(subscriber, "127.0.0.1", 0, backplane=shared) as first,
        wsjet.serve(subscriber, "127.0.0.1", 0, backplane=shared) as second,
        wsjet.serve(subscriber, "127.0.0.1", 0) as alone,
    ):
        async with (
            ws_connect(f"ws://127.0.0.1:{port_of(first)}/") as a,
            ws_connect(f"ws://127.0.0.1:{port_of(second)}/") as b,
            ws_connect(f"ws://127.0.0.1:{port_of(alone)}/") as c,
        ):
            for client in (a, b, c):
                assert await client.recv() == "subscribed"
            assert first.backplane is second.backplane is shared
            assert alone.backplane is not shared
            assert shared.topics == ["all"]
            assert first.publish("all", "both") == BroadcastResult(2, 0, 0)
            assert await a.recv() == "both"
            assert await b.recv() == "both"
            assert alone.publish("all", "alone") == BroadcastResult(1, 0, 0)
            assert await c.recv() == "alone"
        await first.__aexit__(None, None, None)
        # Detached: publishing on the second server reaches its own subscribers only.
        assert second.publish("all", "after") == BroadcastResult()


async def test_slow_consumer_policy_applies_to_publish() -> None:
    async def subscriber(ws: wsjet.WebSocketServerProtocol) -> None:
        ws.subscribe("t")
        await ws.send("subscribed")
        await ws.wait_closed()

    policy = wsjet.SlowConsumerPolicy(max_buffer=0, action="close", close_code=1008)
    async with wsjet.serve(subscriber, "127.0.0.1", 0, slow_consumer=policy) as server:
        assert server.slow_consumer is policy
        async with ws_connect(f"ws://127.0.0.1:{port_of(server)}/") as client:
            assert await client.recv() == "subscribed"
            assert server.publish("t", "too much") == BroadcastResult(0, 0, 1)
            await client.wait_closed()
            assert client.close_code == 1008
            assert client.close_reason == "slow consumer"


class Recording(Backplane):
    """A backplane that records its hooks."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []

    async def start(self) -> None:
        self.events.append("start")

    async def stop(self) -> None:
        self.events.append("stop")

    def _forward(self, topic: str, opcode: int, payload: bytes) -> None:
        self.events.append(f"forward {topic} {opcode} {payload!r}")

    def _listen(self, topic: str) -> None:
        self.events.append(f"listen {topic}")

    def _unlisten(self, topic: str) -> None:
        self.events.append(f"unlisten {topic}")


async def test_backplane_hooks_count_topics_across_registries() -> None:
    backplane = Recording()
    first, second = Topics(backplane), Topics(backplane)
    assert repr(first) == "<Topics: 0 topics>"
    await backplane.attach(first)
    await backplane.attach(first)
    await backplane.attach(second)
    a, b = object(), object()
    first.subscribe(a, "x")  # type: ignore[arg-type]
    second.subscribe(b, "x")  # type: ignore[arg-type]
    first.subscribe(b, "x")  # type: ignore[arg-type]
    assert first.subscribers("x") == [a, b]
    first.drop(a, ["x", "y"])  # type: ignore[arg-type]
    first.unsubscribe(b, "x")  # type: ignore[arg-type]
    second.unsubscribe(b, "x")  # type: ignore[arg-type]
    backplane.publish("x", "text")
    backplane.publish("x", b"bin")
    await backplane.detach(first)
    await backplane.detach(first)
    await backplane.detach(second)
    assert backplane.events == [
        "start",
        "listen x",
        "unlisten x",
        "forward x 1 b'text'",
        "forward x 2 b'bin'",
        "stop",
    ]


def test_safe_url_hides_passwords() -> None:
    assert _safe_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert _safe_url("redis://user:secret@host:6380/1") == "redis://user:***@host:6380/1"
    assert _safe_url("rediss://:secret@host/0") == "rediss://***@host/0"


async def test_redis_backplane_messages_without_redis(caplog: pytest.LogCaptureFixture) -> None:
    """The envelope: own messages skipped, foreign or broken ones dropped with a warning."""
    backplane = RedisBackplane("redis://127.0.0.1:1/0", channel_prefix="p:")
    assert "disconnected" in repr(backplane)
    with pytest.raises(RuntimeError, match="not running"):
        await backplane.wait_connected()
    hub = Topics(backplane)
    delivered: list[tuple[str, int, bytes]] = []
    hub.deliver = lambda topic, opcode, payload: (  # type: ignore[method-assign]
        delivered.append((topic, opcode, payload)) or BroadcastResult()
    )
    backplane._hubs.append(hub)
    other = b"\x01" * 8
    with caplog.at_level(logging.WARNING, logger="wsjet.pubsub"):
        backplane._receive(b"p:room", b"t" + other + "héllo".encode())
        backplane._receive(b"p:room", b"b" + other + b"\xff")
        backplane._receive(b"p:room", b"t" + backplane.node_id + b"mine")
        backplane._receive(b"p:room", b"t" + other + b"\xff")
        backplane._receive(b"p:room", b"x" + other + b"?")
        backplane._receive(b"q:room", b"t" + other + b"elsewhere")
        backplane._receive(b"p:room", b"short")
    assert delivered == [("room", 1, "héllo".encode()), ("room", 2, b"\xff")]
    assert backplane.received == 2
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2
    # Not connected: a publish reaches local subscribers only and counts as dropped.
    backplane.publish("room", "local only")
    assert backplane.dropped == 1
    with pytest.raises(ValueError):
        RedisBackplane(max_pending=0)
    with pytest.raises(ValueError):
        RedisBackplane(backoff_min=2, backoff_max=1)


async def test_redis_backplane_logs_an_unreachable_redis(caplog: pytest.LogCaptureFixture) -> None:
    """No Redis at all: the server serves, publishes locally, and keeps trying."""

    async def subscriber(ws: wsjet.WebSocketServerProtocol) -> None:
        ws.subscribe("t")
        await ws.send("subscribed")
        await ws.wait_closed()

    # Port 1 on loopback: connection refused at once.
    backplane = RedisBackplane("redis://127.0.0.1:1/0", backoff_min=0.01, backoff_max=0.02)
    with caplog.at_level(logging.DEBUG, logger="wsjet.pubsub"):
        async with (
            wsjet.serve(subscriber, "127.0.0.1", 0, backplane=backplane) as server,
            ws_connect(f"ws://127.0.0.1:{port_of(server)}/") as client,
        ):
            assert await client.recv() == "subscribed"
            assert server.publish("t", "local").delivered == 1
            assert await client.recv() == "local"
            await wait_for(
                lambda: sum("still unreachable" in r.getMessage() for r in caplog.records) >= 2
            )
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "cannot connect to redis://127.0.0.1:1/0" in warnings[0]
    assert backplane.outages == 1
    assert backplane.dropped == 1
    assert not backplane.connected
    await asyncio.sleep(0)
