"""The callback face's message delivery: :class:`MessageDelivery`, base of ``Client``.

Every incoming message piece lands in :meth:`MessageDelivery._receive` (the
sink of the connection's engine), which streams it into a
:class:`~wsjet.stream.reader.WebSocketReader` and runs the ``@client.message``
callback, one message at a time, in order; messages that arrive while a
callback runs wait in a queue that flow control bounds.

A callback is started *eagerly*: its coroutine is driven from the sink, and
only if it suspends does a Task take it over (``Client._resume_in_task``).

This is the callback face's per-message work, a module of its own so that
Cython compiles it, typed by ``delivery.pxd`` (like :mod:`wsjet.engine`: this
file is the specification and the pure-Python path).
"""

from __future__ import annotations

import collections
import contextvars
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from .awaitable import FINISHED, send_in_context
from .core.events import DataReceived
from .stream.reader import FlowControl, WebSocketReader, whole_message

if TYPE_CHECKING:
    import asyncio

__all__ = ["MessageDelivery"]

# Bound once: compiled, a module global is a C field, not two dictionary lookups.
_copy_context = contextvars.copy_context
_send_in_context = send_in_context
_FINISHED = FINISHED

MessageCallback = Callable[[WebSocketReader], Coroutine[Any, Any, None]]


class MessageDelivery:
    """Runs the message callback on each incoming message (base of ``Client``).

    Not meant to be used alone: ``Client.__init__`` sets every attribute below
    and provides ``_resume_in_task`` and ``_callback_failed``.
    """

    if TYPE_CHECKING:
        _loop: asyncio.AbstractEventLoop
        _on_message: MessageCallback | None
        _flow: FlowControl
        _receiving: WebSocketReader | None
        _queue: collections.deque[WebSocketReader] | None
        _busy: bool
        _current: WebSocketReader | None
        _task: asyncio.Task[Any] | None
        _failed: bool
        _dropping: bool

        def _resume_in_task(
            self, coro: Coroutine[Any, Any, Any], yielded: Any, context: contextvars.Context
        ) -> asyncio.Task[Any]: ...
        def _callback_failed(self, exc: Exception, what: str) -> None: ...

    def _receive(self, event: DataReceived) -> None:
        """The sink of the connection's engine: a piece of an incoming message."""
        data = event.data
        if not event.first:
            reader = self._receiving
            if reader is not None:
                reader.feed_data(data)
                if event.fin:
                    reader.feed_eof()
                    self._receiving = None
            return
        callback = self._on_message
        if self._dropping or (not self._busy and callback is None):
            return  # nobody will read it: drop it without buffering
        if event.fin:
            reader = whole_message(data, self._flow)
        else:
            reader = WebSocketReader(type(data) is str, flow=self._flow)
            reader.feed_data(data)
            self._receiving = reader
        if self._busy:
            if self._queue is None:
                self._queue = collections.deque()
            self._queue.append(reader)
            flow = self._flow
            flow.queued += 1
            if flow.max_queue is not None and flow.queued >= flow.max_queue:
                flow.update()
            return
        # Nothing queued, no callback running: run this one right away.
        self._busy = True
        assert callback is not None
        if self._run_message(callback, reader):
            # Messages may have been queued while it ran: its reads resumed a
            # paused socket (flow control), whose buffered messages were parsed
            # at once. Deliver them now, in order.
            self._start()

    def _start(self) -> None:
        """Deliver the queued messages, if any, else wait for the next one.

        Called once the connection callback returned, and after a message
        callback finished without suspending.
        """
        if self._queue:
            self._deliver(self._dequeue())
        else:
            self._busy = False

    def _dequeue(self) -> WebSocketReader:
        assert self._queue  # callers check that a message waits
        reader = self._queue.popleft()
        flow = self._flow
        flow.queued -= 1
        if flow.paused:
            flow.update()
        return reader

    def _deliver(self, reader: WebSocketReader) -> None:
        """Run the message callback on ``reader``, then on the queued messages."""
        self._busy = True
        while True:
            callback = self._on_message
            if callback is None or self._failed:
                reader.discard()
            elif not self._run_message(callback, reader):
                return  # suspended: _message_done carries on
            if not self._queue:
                self._busy = False
                return
            reader = self._dequeue()

    def _run_message(self, callback: MessageCallback, reader: WebSocketReader) -> bool:
        """Start the callback eagerly; tell whether it already finished."""
        context = _copy_context()
        try:
            coro = callback(reader)
            yielded = _send_in_context(context, coro)
        except Exception as exc:
            reader.discard()
            self._callback_failed(exc, "message")
            return True
        if yielded is _FINISHED:  # it returned without waiting: the common case
            reader.discard()
            return True
        self._current = reader
        task = self._resume_in_task(coro, yielded, context)
        self._task = task
        task.add_done_callback(self._message_done)
        return False

    def _message_done(self, task: asyncio.Task[Any]) -> None:
        self._task = None
        reader, self._current = self._current, None
        if reader is not None:
            reader.discard()
        if not task.cancelled():
            exc = task.exception()
            if isinstance(exc, Exception):
                self._callback_failed(exc, "message")
        if self._queue:
            self._deliver(self._dequeue())
        else:
            self._busy = False
