"""Several server processes on one port: :func:`run_workers`, a small supervisor.

Each worker is a process running its own event loop and its own server, bound
to the same address with ``SO_REUSEPORT`` (``serve(..., reuse_port=True)``):
the kernel spreads new connections across the workers. The supervisor (the
process that calls :func:`run_workers`) starts them, restarts one that dies,
and on SIGTERM or SIGINT stops them all gracefully: each worker's main
coroutine is cancelled, so ``async with serve(...)`` closes its connections
with 1001 (going away)::

    import asyncio
    import wsjet
    from wsjet.workers import ready, run_workers

    async def main(port):
        async with wsjet.serve(handler, "0.0.0.0", port, reuse_port=True):
            ready()
            await asyncio.get_running_loop().create_future()  # until cancelled

    if __name__ == "__main__":
        raise SystemExit(run_workers(4, main, 8765))

Workers are started with ``multiprocessing``'s ``spawn`` method by default:
``main`` and its arguments must be importable and picklable, and the script
needs the ``if __name__ == "__main__"`` guard. Connections, subscriptions and
in-process state are per worker; use a :class:`~wsjet.pubsub.RedisBackplane`
for ``publish`` to reach the subscribers of every worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Coroutine
from multiprocessing.connection import Connection as Pipe
from typing import Any, Final

__all__ = ["bind_reuse_port", "ready", "run_workers", "worker_id"]

logger = logging.getLogger("wsjet.workers")

#: Environment variable holding a worker's index (0 to N - 1) in its process.
WORKER_ID_ENV: Final = "WSJET_WORKER_ID"
#: A worker that lived this long (or said it was ready) did start: its next
#: failure is a crash, not a failure to start.
STARTED_AFTER: Final = 10.0
#: Restart delays: the first, then doubling up to the last.
RESTART_DELAY: Final = 0.1
MAX_RESTART_DELAY: Final = 5.0

_ready_pipe: Pipe | None = None


def worker_id() -> int | None:
    """This worker's index, from 0 to N - 1; ``None`` outside :func:`run_workers`."""
    value = os.environ.get(WORKER_ID_ENV)
    return None if value is None else int(value)


def ready() -> None:
    """Tell the supervisor that this worker serves; nothing outside :func:`run_workers`.

    Call it once the server listens. The supervisor calls ``on_ready`` when
    all workers have, and a worker that dies before it does counts as a
    failure to start (see ``max_start_failures``).
    """
    global _ready_pipe
    pipe, _ready_pipe = _ready_pipe, None
    if pipe is not None:
        with contextlib.suppress(OSError):
            pipe.send(os.getpid())
            pipe.close()


def bind_reuse_port(host: str | None, port: int) -> socket.socket:
    """Bind (without listening) a ``SO_REUSEPORT`` socket on ``host``:``port``.

    The supervisor of ``wsjet serve --workers`` holds one: it checks that the
    port is free for a group of ``SO_REUSEPORT`` sockets before any worker
    starts, and with ``port=0`` it picks the port all workers then bind.
    Only listening sockets receive connections, so it takes none.

    Raises:
        OSError: the address is taken by a socket without ``SO_REUSEPORT``,
            or can't be bound.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


@dataclasses.dataclass(eq=False)
class _Slot:
    index: int
    process: Any = None  # multiprocessing.process.BaseProcess
    pipe: Pipe | None = None
    started: float = 0.0
    ready: bool = False
    failures: int = 0
    restart_at: float | None = None


def run_workers(
    workers: int,
    main: Callable[..., Coroutine[Any, Any, Any]],
    *args: Any,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    shutdown_timeout: float = 30.0,
    max_start_failures: int = 5,
    on_ready: Callable[[], None] | None = None,
    start_method: str = "spawn",
) -> int:
    """Run ``main(*args)`` in ``workers`` processes until SIGTERM or SIGINT.

    Each worker runs ``main(*args)`` on its own event loop; it should serve
    with ``reuse_port=True`` and call :func:`ready` once listening. The
    supervisor restarts a worker that exits or dies (after 0.1 s, doubling to
    5 s while it keeps failing). On SIGTERM or SIGINT it sends SIGTERM to
    every worker, whose ``main`` is then cancelled (so ``async with serve()``
    closes connections with 1001), waits ``shutdown_timeout`` seconds, and
    kills what is left.

    Args:
        workers: how many worker processes, at least 1.
        main: an ``async`` function (picklable with ``spawn``: a module's).
        *args: its arguments (picklable with ``spawn``).
        loop_factory: makes each worker's event loop (e.g. ``uvloop.new_event_loop``).
        shutdown_timeout: seconds a worker has to stop before it is killed.
        max_start_failures: the supervisor gives up (returns 1) when a worker
            fails to start this many times in a row: it died before calling
            :func:`ready` and within 10 s of starting.
        on_ready: called in the supervisor once every worker called
            :func:`ready` for the first time.
        start_method: ``multiprocessing`` start method.

    Returns:
        The exit status: 0 after a signal, 1 after giving up.

    Raises:
        ValueError: ``workers`` is less than 1.
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    context = multiprocessing.get_context(start_method)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    received: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        received.append(signum)
        with contextlib.suppress(OSError):
            os.write(wake_write, b"\0")

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    slots = [_Slot(index) for index in range(workers)]
    status = 0
    all_ready = False
    try:
        for slot in slots:
            _start(context, slot, main, args, loop_factory)
        while not received:
            now = time.monotonic()
            due = [s.restart_at for s in slots if s.restart_at is not None]
            timeout = max(0.0, min(due) - now) if due else None
            waitables: list[Any] = [wake_read]
            for slot in slots:
                if slot.process is not None:
                    waitables.append(slot.process.sentinel)
                if slot.pipe is not None:
                    waitables.append(slot.pipe)
            ready_now = multiprocessing.connection.wait(waitables, timeout)
            if wake_read in ready_now:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_read, 512)
            for slot in slots:
                if slot.pipe is not None and slot.pipe in ready_now:
                    _read_ready(slot)
                    if not all_ready and all(s.ready for s in slots):
                        all_ready = True
                        logger.info("%d workers ready", workers)
                        if on_ready is not None:
                            on_ready()
                ended = slot.process is not None and slot.process.sentinel in ready_now
                if ended and not _reap(slot, max_start_failures):
                    logger.error(
                        "worker %d failed to start %d times in a row: giving up",
                        slot.index,
                        slot.failures,
                    )
                    status = 1
                    received.append(0)
            now = time.monotonic()
            for slot in slots:
                if slot.restart_at is not None and slot.restart_at <= now and not received:
                    _start(context, slot, main, args, loop_factory)
        if received and received[0]:
            logger.info("%s: stopping %d workers", signal.Signals(received[0]).name, workers)
    finally:
        _stop_all(slots, shutdown_timeout)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.close(wake_read)
        os.close(wake_write)
    return status


def _start(
    context: Any,
    slot: _Slot,
    main: Callable[..., Coroutine[Any, Any, Any]],
    args: tuple[Any, ...],
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None,
) -> None:
    reader, writer = context.Pipe(duplex=False)
    process = context.Process(
        target=_worker,
        args=(slot.index, os.getpid(), writer, main, args, loop_factory),
        name=f"wsjet-worker-{slot.index}",
        daemon=False,
    )
    process.start()
    writer.close()
    slot.process, slot.pipe = process, reader
    slot.started = time.monotonic()
    slot.ready = False
    slot.restart_at = None
    logger.info("worker %d started (pid %d)", slot.index, process.pid)


def _read_ready(slot: _Slot) -> None:
    pipe = slot.pipe
    assert pipe is not None
    try:
        pipe.recv()
    except (EOFError, OSError):
        pass  # it closed the pipe without a word: it died, its sentinel will tell
    else:
        slot.ready = True
        slot.failures = 0
        logger.debug("worker %d ready", slot.index)
    pipe.close()
    slot.pipe = None


def _reap(slot: _Slot, max_start_failures: int) -> bool:
    """A worker ended: plan its restart; tell whether to go on."""
    process = slot.process
    process.join()
    code = process.exitcode
    if slot.pipe is not None:
        if slot.pipe.poll():
            _read_ready(slot)
        else:
            slot.pipe.close()
            slot.pipe = None
    lived = time.monotonic() - slot.started
    started = slot.ready or lived >= STARTED_AFTER
    slot.failures = 0 if started else slot.failures + 1
    slot.process = None
    how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
    if slot.failures >= max_start_failures:
        logger.error("worker %d (pid %d) %s before it was ready", slot.index, process.pid, how)
        return False
    delay = min(RESTART_DELAY * 2 ** max(slot.failures - 1, 0), MAX_RESTART_DELAY)
    logger.warning(
        "worker %d (pid %d) %s after %.1f s; restarting in %.1f s",
        slot.index,
        process.pid,
        how,
        lived,
        delay,
    )
    slot.restart_at = time.monotonic() + delay
    return True


def _stop_all(slots: list[_Slot], timeout: float) -> None:
    alive = [slot.process for slot in slots if slot.process is not None]
    for process in alive:
        with contextlib.suppress(OSError):
            process.terminate()  # SIGTERM: a graceful stop
    deadline = time.monotonic() + timeout
    for process in alive:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in alive:
        if process.exitcode is None:
            logger.warning("worker pid %d did not stop within %.1f s: killed", process.pid, timeout)
            process.kill()
            process.join()
    for slot in slots:
        if slot.pipe is not None:
            slot.pipe.close()
            slot.pipe = None
        slot.process = None
    for process in alive:
        process.close()


# --- in the worker ----------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    """Get SIGTERM if the supervisor dies (Linux), so no worker is left behind."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


def _worker(
    index: int,
    parent: int,
    pipe: Pipe,
    main: Callable[..., Coroutine[Any, Any, Any]],
    args: tuple[Any, ...],
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None,
) -> None:
    global _ready_pipe
    os.environ[WORKER_ID_ENV] = str(index)
    _ready_pipe = pipe
    # Until the loop handles them: a signal now ends the worker at once.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent(parent)
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_serve(main, args))


async def _serve(main: Callable[..., Coroutine[Any, Any, Any]], args: tuple[Any, ...]) -> None:
    """Run ``main`` until it returns or a signal cancels it."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    stopping: list[int] = []

    def stop(signum: int) -> None:
        if not stopping:
            stopping.append(signum)
            task.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig)
    try:
        await main(*args)
    except asyncio.CancelledError:
        if not stopping:
            raise
        task.uncancel()
