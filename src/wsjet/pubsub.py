"""Topics and backplanes: ``server.publish(topic, message)`` and ``ws.subscribe(topic)``.

Every :class:`~wsjet.server.Server` keeps a :class:`Topics` registry: which of
its connections subscribed to which topic. ``server.publish(topic, message)``
goes through the server's *backplane*, which delivers the message to the
subscribers of every registry attached to it, with :func:`~wsjet.broadcast.broadcast`
(framed once, the server's slow-consumer policy applied):

* :class:`InProcessBackplane`, the default, reaches the servers of this process
  that share it (each server gets its own unless one is passed to several);
* :class:`RedisBackplane` also forwards the message through Redis pub/sub, so
  that it reaches the subscribers of every server, in every process and on
  every machine, attached to the same Redis.

Publishing is synchronous: local subscribers have the message queued when
``publish`` returns, whatever the state of Redis; forwarding to the other
servers happens in the background, in order, at most once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import random
import time
import urllib.parse
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

from .broadcast import BroadcastResult, SlowConsumerPolicy, broadcast_frame
from .core.frames import Opcode

if TYPE_CHECKING:
    from .protocol import WebSocketCommonProtocol

__all__ = ["Backplane", "InProcessBackplane", "RedisBackplane", "Topics"]

logger = logging.getLogger("wsjet.pubsub")

Message = str | bytes | bytearray | memoryview


def _encode(message: Message) -> tuple[int, bytes]:
    if isinstance(message, str):
        return Opcode.TEXT, message.encode()
    if isinstance(message, bytes | bytearray | memoryview):
        return Opcode.BINARY, bytes(message)
    raise TypeError(f"message must be str or bytes-like, not {type(message).__name__}")


class Topics:
    """One server's subscriptions: topic -> the connections subscribed to it.

    Connections subscribe through
    :meth:`~wsjet.protocol.WebSocketCommonProtocol.subscribe`; the registry
    tells its backplane when a topic gets its first subscriber or loses its
    last, so that a :class:`RedisBackplane` listens only to topics somebody
    here wants.

    Args:
        backplane: where the server publishes and whence messages come.
        slow_consumer: the policy applied when delivering; ``None`` lets
            :func:`~wsjet.broadcast.broadcast` look up each receiver's server's.
    """

    def __init__(
        self, backplane: Backplane, *, slow_consumer: SlowConsumerPolicy | None = None
    ) -> None:
        self.backplane = backplane
        self.slow_consumer = slow_consumer
        # Dicts, not sets: subscribers are served in subscription order.
        self._subscribers: dict[str, dict[WebSocketCommonProtocol, None]] = {}

    def __repr__(self) -> str:
        return f"<Topics: {len(self._subscribers)} topics>"

    @property
    def topics(self) -> list[str]:
        """The topics with at least one subscriber."""
        return list(self._subscribers)

    def subscribers(self, topic: str) -> list[WebSocketCommonProtocol]:
        """The connections subscribed to ``topic``."""
        return list(self._subscribers.get(topic, ()))

    def subscribe(self, protocol: WebSocketCommonProtocol, topic: str) -> None:
        """Add ``protocol`` to the subscribers of ``topic``."""
        if not isinstance(topic, str):
            raise TypeError(f"topic must be a str, not {type(topic).__name__}")
        subscribers = self._subscribers.get(topic)
        if subscribers is None:
            subscribers = self._subscribers[topic] = {}
            self.backplane._topic_added(topic)
        subscribers[protocol] = None

    def unsubscribe(self, protocol: WebSocketCommonProtocol, topic: str) -> None:
        """Remove ``protocol`` from the subscribers of ``topic``."""
        subscribers = self._subscribers.get(topic)
        if subscribers is None or subscribers.pop(protocol, 0) is not None:
            return
        if not subscribers:
            del self._subscribers[topic]
            self.backplane._topic_removed(topic)

    def drop(self, protocol: WebSocketCommonProtocol, topics: Iterable[str]) -> None:
        """Remove ``protocol`` from every topic of ``topics`` (it disconnected)."""
        for topic in topics:
            self.unsubscribe(protocol, topic)

    def deliver(self, topic: str, opcode: int, payload: bytes) -> BroadcastResult:
        """Broadcast an encoded message to the subscribers of ``topic``."""
        subscribers = self._subscribers.get(topic)
        if not subscribers:
            return BroadcastResult()
        # A snapshot: the dict must not change size while it is iterated.
        return broadcast_frame(tuple(subscribers), opcode, payload, self.slow_consumer)


class Backplane:
    """Carries published messages to the subscribers of every attached server.

    The base class is in-process: :meth:`publish` delivers to the
    :class:`Topics` registries attached to it. Subclasses forward messages to
    other processes too (:class:`RedisBackplane`).

    A server attaches its registry when it starts listening and detaches it
    when it closes; the backplane starts with its first registry and stops
    after its last.
    """

    def __init__(self) -> None:
        self._hubs: list[Topics] = []
        # How many registries have subscribers for each topic.
        self._topic_counts: dict[str, int] = {}

    @property
    def topics(self) -> list[str]:
        """The topics that have subscribers in a registry using this backplane."""
        return list(self._topic_counts)

    async def attach(self, hub: Topics) -> None:
        """Deliver the messages published from now on to ``hub``'s subscribers."""
        if hub in self._hubs:
            return
        self._hubs.append(hub)
        if len(self._hubs) == 1:
            await self.start()

    async def detach(self, hub: Topics) -> None:
        """Stop delivering to ``hub``; stop the backplane after the last one."""
        if hub not in self._hubs:
            return
        self._hubs.remove(hub)
        if not self._hubs:
            await self.stop()

    async def start(self) -> None:
        """Hook: the first registry attached."""

    async def stop(self) -> None:
        """Hook: the last registry detached."""

    def publish(self, topic: str, message: Message) -> BroadcastResult:
        """Deliver ``message`` to the subscribers of ``topic``.

        Local subscribers (in the registries attached here) have it queued
        when this returns; a subclass forwards it to the other servers too.

        Args:
            topic: the topic.
            message: ``str`` for a text message, bytes-like for a binary one.

        Returns:
            The deliveries to the local subscribers, added up.

        Raises:
            TypeError: ``message`` is neither ``str`` nor bytes-like.
        """
        opcode, payload = _encode(message)
        result = self._deliver(topic, opcode, payload)
        self._forward(topic, opcode, payload)
        return result

    def _deliver(self, topic: str, opcode: int, payload: bytes) -> BroadcastResult:
        hubs = self._hubs
        if len(hubs) == 1:
            return hubs[0].deliver(topic, opcode, payload)
        result = BroadcastResult()
        for hub in list(hubs):
            result += hub.deliver(topic, opcode, payload)
        return result

    def _forward(self, topic: str, opcode: int, payload: bytes) -> None:
        """Hook: send a message published here to the other servers."""

    def _topic_added(self, topic: str) -> None:
        count = self._topic_counts.get(topic, 0)
        self._topic_counts[topic] = count + 1
        if count == 0:
            self._listen(topic)

    def _topic_removed(self, topic: str) -> None:
        count = self._topic_counts.get(topic, 0) - 1
        if count > 0:
            self._topic_counts[topic] = count
        else:
            self._topic_counts.pop(topic, None)
            self._unlisten(topic)

    def _listen(self, topic: str) -> None:
        """Hook: ``topic`` got its first subscriber among the registries."""

    def _unlisten(self, topic: str) -> None:
        """Hook: ``topic`` lost its last subscriber among the registries."""


class InProcessBackplane(Backplane):
    """The default backplane: publishes reach the servers of this process that share it.

    Every server gets its own unless one instance is passed to several
    (``serve(..., backplane=shared)``); then a publish on any of them reaches
    the subscribers of all.
    """


def _safe_url(url: str) -> str:
    """``url`` without its password, for logs."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urllib.parse.urlunsplit(parts._replace(netloc=user + host))


_TEXT_TAG: Final = b"t"
_BINARY_TAG: Final = b"b"
_NODE_SIZE: Final = 8


class RedisBackplane(Backplane):
    """A backplane over Redis pub/sub: a publish on any server reaches them all.

    Each topic with local subscribers is a Redis channel, ``channel_prefix +
    topic``, that this backplane subscribes to; a message published here is
    delivered to the local subscribers at once and ``PUBLISH``\\ ed to the
    channel from a background task (pipelined, in order), for the other
    servers. Messages carry the id of the backplane that sent them, which
    skips its own on their way back.

    When Redis can't be reached, or goes away, servers keep serving their
    local clients: publishing still reaches the local subscribers, but the
    message is dropped for the other servers (and counted in
    :attr:`dropped`), as are the messages the others publish meanwhile. The
    backplane logs the outage at WARNING, reconnects with exponential backoff
    (``backoff_min`` doubling up to ``backoff_max``, with jitter),
    subscribes again, logs the recovery with the number of messages dropped,
    and goes on. Nothing is replayed: Redis pub/sub itself keeps no history.

    Needs the ``redis`` package (``pip install 'wsjet[redis]'``).

    Args:
        url: the Redis URL, e.g. ``redis://127.0.0.1:6379/0`` or
            ``rediss://user:password@host:6380/0``.
        channel_prefix: prepended to topics to make channel names.
        max_pending: most messages waiting to be forwarded; beyond, new ones
            are dropped (for the other servers only).
        backoff_min: first delay before reconnecting, in seconds.
        backoff_max: longest delay between attempts, in seconds.
        health_check_interval: seconds of silence after which the connection
            is checked with a ``PING``.
        connect_timeout: seconds allowed to connect and to answer a command.
        **redis_options: more options for ``redis.asyncio.Redis.from_url``.

    Raises:
        ImportError: the ``redis`` package is not installed.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        channel_prefix: str = "wsjet:",
        max_pending: int = 10_000,
        backoff_min: float = 0.1,
        backoff_max: float = 5.0,
        health_check_interval: float = 5.0,
        connect_timeout: float = 5.0,
        **redis_options: Any,
    ) -> None:
        super().__init__()
        try:
            import redis.asyncio  # noqa: F401
        except ImportError as exc:  # pragma: no cover - the test extra installs it
            raise ImportError(
                "RedisBackplane needs the redis package: pip install 'wsjet[redis]'"
            ) from exc
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        if not 0 < backoff_min <= backoff_max:
            raise ValueError("backoff delays must satisfy 0 < backoff_min <= backoff_max")
        self.url = url
        self.channel_prefix = channel_prefix
        self.max_pending = max_pending
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.health_check_interval = health_check_interval
        self.connect_timeout = connect_timeout
        self.redis_options = redis_options
        #: This backplane's id in the messages it sends.
        self.node_id = os.urandom(_NODE_SIZE)
        #: Messages forwarded to Redis.
        self.forwarded = 0
        #: Messages received from other servers through Redis.
        self.received = 0
        #: Messages published here that didn't reach Redis (outage, or queue full).
        self.dropped = 0
        #: Times the connection to Redis was lost (or could not be made).
        self.outages = 0
        self._prefix = channel_prefix.encode()
        self._control = self._prefix + b"\x00node:" + self.node_id.hex().encode()
        self._pending: collections.deque[tuple[bytes, bytes]] = collections.deque()
        self._connected = False
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Event | None = None
        self._down_since: float | None = None
        self._dropped_in_outage = 0

    def __repr__(self) -> str:
        state = "connected" if self._connected else "disconnected"
        return f"<RedisBackplane {_safe_url(self.url)} {state}>"

    @property
    def connected(self) -> bool:
        """Whether Redis is connected and this backplane subscribed to its topics."""
        return self._connected

    async def wait_connected(self) -> None:
        """Wait until :attr:`connected` (the first connection, or after an outage)."""
        while not self._connected:
            if self._ready is None or self._task is None:
                raise RuntimeError("the backplane is not running: attach a server first")
            await self._ready.wait()

    # --- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to Redis in the background (the server listens meanwhile)."""
        if self._task is None:
            self._ready = asyncio.Event()
            self._wakeup = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Disconnect from Redis; pending messages are dropped."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._connected = False
        self.dropped += len(self._pending)
        self._pending.clear()

    # --- hooks of the base class ------------------------------------------------------

    def _forward(self, topic: str, opcode: int, payload: bytes) -> None:
        if not self._connected or len(self._pending) >= self.max_pending:
            self.dropped += 1
            self._dropped_in_outage += 1
            return
        tag = _TEXT_TAG if opcode == Opcode.TEXT else _BINARY_TAG
        self._pending.append((self._prefix + topic.encode(), tag + self.node_id + payload))
        self._wakeup.set()

    def _listen(self, topic: str) -> None:
        self._wakeup.set()

    def _unlisten(self, topic: str) -> None:
        self._wakeup.set()

    # --- the connection ---------------------------------------------------------------

    def _channels(self) -> set[bytes]:
        return {self._prefix + topic.encode() for topic in self._topic_counts} | {self._control}

    async def _run(self) -> None:
        from redis.exceptions import RedisError

        delay = self.backoff_min
        url = _safe_url(self.url)
        while True:
            try:
                await self._session(url)
            except (RedisError, OSError, EOFError) as exc:
                self._lost(url, exc)
            except Exception as exc:
                logger.error("redis backplane failed; reconnecting", exc_info=True)
                self._lost(url, exc)
            if self._connected_once:
                delay = self.backoff_min
                self._connected_once = False
            wait = delay * random.uniform(0.5, 1.0)
            logger.debug("redis backplane: next attempt in %.2f s", wait)
            await asyncio.sleep(wait)
            delay = min(delay * 2, self.backoff_max)

    _connected_once = False

    def _lost(self, url: str, error: BaseException) -> None:
        was_connected = self._connected
        self._connected = False
        if self._ready is not None:
            self._ready.clear()
        lost = len(self._pending)
        self._pending.clear()
        self.dropped += lost
        self._dropped_in_outage += lost
        if was_connected or self._down_since is None:
            self.outages += 1
            self._down_since = time.monotonic()
            action = "lost the connection to" if was_connected else "cannot connect to"
            logger.warning(
                "redis backplane %s %s (%s); serving local clients only, reconnecting",
                action,
                url,
                str(error) or type(error).__name__,
            )
        else:
            logger.debug("redis backplane: %s still unreachable: %s", url, error)

    async def _session(self, url: str) -> None:
        """Connect, subscribe, then relay both ways until an error."""
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        client = aioredis.Redis.from_url(
            self.url,
            retry=Retry(NoBackoff(), 0),  # the reconnection policy is ours
            socket_connect_timeout=self.connect_timeout,
            socket_keepalive=True,
            **self.redis_options,
        )
        pubsub: Any = client.pubsub(ignore_subscribe_messages=True)
        try:
            await asyncio.wait_for(client.ping(), self.connect_timeout)
            subscribed = self._channels()
            await asyncio.wait_for(pubsub.subscribe(*subscribed), self.connect_timeout)
            self._connected = self._connected_once = True
            if self._ready is not None:
                self._ready.set()
            if self._down_since is not None:
                logger.warning(
                    "redis backplane reconnected to %s after %.1f s; %d messages published "
                    "here meanwhile reached local subscribers only",
                    url,
                    time.monotonic() - self._down_since,
                    self._dropped_in_outage,
                )
            else:
                logger.info("redis backplane connected to %s", url)
            self._down_since = None
            self._dropped_in_outage = 0
            reader = asyncio.ensure_future(self._read(pubsub))
            writer = asyncio.ensure_future(self._write(client, pubsub, subscribed))
            try:
                done, _ = await asyncio.wait((reader, writer), return_when="FIRST_COMPLETED")
            finally:
                for task in (reader, writer):
                    task.cancel()
                await asyncio.gather(reader, writer, return_exceptions=True)
            for task in done:
                task.result()  # raises the error that ended the session
            raise OSError("relay ended")  # pragma: no cover - both loops run forever
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _read(self, pubsub: Any) -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            if message is not None and message.get("type") == "message":
                self._receive(message["channel"], message["data"])

    async def _write(self, client: Any, pubsub: Any, subscribed: set[bytes]) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wakeup.wait(), self.health_check_interval)
            except TimeoutError:
                await asyncio.wait_for(client.ping(), self.connect_timeout)
                await asyncio.wait_for(pubsub.ping(), self.connect_timeout)
                continue
            self._wakeup.clear()
            wanted = self._channels()
            if wanted != subscribed:
                added, removed = wanted - subscribed, subscribed - wanted
                if added:
                    await asyncio.wait_for(pubsub.subscribe(*added), self.connect_timeout)
                if removed:
                    await asyncio.wait_for(pubsub.unsubscribe(*removed), self.connect_timeout)
                subscribed = wanted
            while self._pending:
                batch = list(self._pending)
                self._pending.clear()
                pipe = client.pipeline(transaction=False)
                for channel, data in batch:
                    pipe.publish(channel, data)
                try:
                    await asyncio.wait_for(pipe.execute(), self.connect_timeout)
                except BaseException:
                    self.dropped += len(batch)
                    self._dropped_in_outage += len(batch)
                    raise
                self.forwarded += len(batch)

    def _receive(self, channel: bytes, data: bytes) -> None:
        if not channel.startswith(self._prefix) or len(data) < 1 + _NODE_SIZE:
            return
        if data[1 : 1 + _NODE_SIZE] == self.node_id:
            return  # ours, delivered locally when published
        tag = data[:1]
        payload = data[1 + _NODE_SIZE :]
        if tag == _TEXT_TAG:
            opcode = Opcode.TEXT
            try:
                payload.decode()
            except UnicodeDecodeError:
                logger.warning("redis backplane: dropped a text message that isn't UTF-8")
                return
        elif tag == _BINARY_TAG:
            opcode = Opcode.BINARY
        else:
            logger.warning("redis backplane: dropped a message not sent by wsjet on %r", channel)
            return
        try:
            topic = channel[len(self._prefix) :].decode()
        except UnicodeDecodeError:
            return
        self.received += 1
        self._deliver(topic, opcode, payload)
