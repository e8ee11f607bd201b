"""The compiled stream classes and their pure-Python source must behave identically.

``wsjet.stream.buffer`` and ``wsjet.stream.reader`` are compiled by Cython from
their own ``.py`` files; this test loads those ``.py`` files a second time, as
plain Python (the pure reader built on the pure buffer), and applies the same
random operations to both: feeding bytes and text, the end, errors, discards,
every kind of read (some of them waiting for data), flow control figures.
Return values, failures, reprs and flow control state must be the same after
every step.

On the pure-Python path (``WSJET_NO_EXTENSIONS=1``) both sides are the same
source and the test only checks itself.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import random
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import wsjet
from wsjet.stream import buffer as normal_buffer
from wsjet.stream import reader as normal_reader


def load_from_source(name: str, source: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_pure_twins() -> tuple[ModuleType, ModuleType]:
    """Import buffer.py and reader.py from source, the reader on the pure buffer."""
    assert normal_buffer.__file__ is not None
    folder = Path(normal_buffer.__file__).parent
    buffer = load_from_source("wsjet.stream._pure_buffer", folder / "buffer.py")
    # reader.py imports ``.buffer``: let that import find the pure buffer.
    saved = sys.modules.get("wsjet.stream.buffer")
    sys.modules["wsjet.stream.buffer"] = buffer
    try:
        reader = load_from_source("wsjet.stream._pure_reader", folder / "reader.py")
    finally:
        if saved is None:
            del sys.modules["wsjet.stream.buffer"]
        else:
            sys.modules["wsjet.stream.buffer"] = saved
    return buffer, reader


pure_buffer, pure_reader = load_pure_twins()


def test_the_twins_are_what_they_claim() -> None:
    for normal, pure, name in (
        (normal_buffer, pure_buffer, "buffer.py"),
        (normal_reader, pure_reader, "reader.py"),
    ):
        assert pure.__file__ is not None and pure.__file__.endswith(name)
        assert normal.__file__ is not None
        compiled = normal.__file__.endswith(".so")
        assert compiled is wsjet.speedups_enabled()
        assert compiled is not bool(os.environ.get("WSJET_NO_EXTENSIONS"))
    assert pure_reader.WebSocketReader.__mro__[1] is pure_buffer.Buffer
    assert normal_reader.WebSocketReader.__mro__[1] is normal_buffer.Buffer
    assert pure_buffer.Buffer is not normal_buffer.Buffer
    assert sys.modules["wsjet.stream.buffer"] is normal_buffer


# --- the harness ----------------------------------------------------------------------


class Boom(Exception):
    """What set_exception() hands the readers."""


def recording_buffer(base: type[Any]) -> type[Any]:
    """A subclass of ``base`` that logs the calls of its hooks (cpdef in the compiled one)."""

    class RecordingBuffer(base):  # type: ignore[misc]
        def __init__(self, log: list[tuple[Any, ...]], limit: int) -> None:
            super().__init__(limit)
            self.log = log

        def _prepare(self) -> None:
            self.log.append(("prepare",))
            super()._prepare()

        def _consumed(self, n: int) -> None:
            self.log.append(("consumed", n))
            super()._consumed(n)

        def _waiting(self, wanted: int) -> None:
            self.log.append(("waiting", wanted))
            super()._waiting(wanted)

    return RecordingBuffer


class Side:
    """One implementation: a flow control with counted pause/resume, buffers or readers."""

    def __init__(self, buffers: ModuleType, readers: ModuleType) -> None:
        self.buffers = buffers
        self.readers = readers
        self.recording = recording_buffer(buffers.Buffer)
        self.flow: Any = None
        self.pauses = 0
        self.resumes = 0
        self.objects: list[Any] = []
        self.pending: list[asyncio.Task[Any]] = []
        self.log: list[tuple[Any, ...]] = []

    def pause(self) -> None:
        self.pauses += 1

    def resume(self) -> None:
        self.resumes += 1


Op = Callable[[Side], object]
Read = Callable[[Side], Awaitable[object]]


def failure(exc: BaseException) -> tuple[Any, ...]:
    extra: Any = None
    if isinstance(exc, asyncio.IncompleteReadError):
        extra = (exc.partial, exc.expected)
    elif isinstance(exc, asyncio.LimitOverrunError):
        extra = exc.consumed
    return ("raised", type(exc), str(exc), extra)


def value(result: object) -> tuple[Any, ...]:
    if isinstance(result, normal_buffer.Buffer | pure_buffer.Buffer):
        result = repr(result)
    return ("returned", type(result), result)


def task_outcome(task: asyncio.Task[Any]) -> tuple[Any, ...]:
    if not task.done():
        return ("pending",)
    if task.cancelled():
        return ("cancelled",)
    exc = task.exception()
    return value(task.result()) if exc is None else failure(exc)


def object_state(obj: Any) -> tuple[Any, ...]:
    exc = obj.exception()
    state: tuple[Any, ...] = (
        repr(obj),
        obj.at_eof(),
        None if exc is None else (type(exc), str(exc)),
    )
    if isinstance(obj, normal_reader.WebSocketReader | pure_reader.WebSocketReader):
        state += (obj.kind, obj.is_text)
    return state


def snapshot(side: Side) -> tuple[Any, ...]:
    flow = side.flow
    figures = None
    if flow is not None:
        figures = (
            flow.buffered,
            flow.paused,
            flow.allowance,
            flow.queued,
            flow.limit,
            flow.max_queue,
        )
    log = list(side.log)
    side.log.clear()
    return (
        [object_state(obj) for obj in side.objects],
        figures,
        side.pauses,
        side.resumes,
        [task_outcome(task) for task in side.pending],
        log,
    )


async def settle() -> None:
    """Let the woken read tasks run until they finish or wait again."""
    for _ in range(3):
        await asyncio.sleep(0)


class Pair:
    """The compiled (or normally imported) side and the pure side, kept in step."""

    def __init__(self) -> None:
        self.sides = [Side(normal_buffer, normal_reader), Side(pure_buffer, pure_reader)]
        self.history: list[str] = []
        self.waiting_on: int | None = None

    def compare(self, results: list[tuple[Any, ...]]) -> None:
        states = [
            (result, snapshot(side)) for result, side in zip(results, self.sides, strict=True)
        ]
        assert states[0] == states[1], "after: " + "; ".join(self.history)
        for side in self.sides:
            side.pending = [task for task in side.pending if not task.done()]

    async def call(self, label: str, op: Op) -> None:
        """Apply ``op`` to both sides; compare what it returned or raised, and the state."""
        self.history.append(label)
        results = []
        for side in self.sides:
            try:
                results.append(value(op(side)))
            except Exception as exc:
                results.append(failure(exc))
        await settle()
        self.compare(results)

    async def start(self, label: str, read: Read) -> None:
        """Start ``read`` as a task on both sides; it may finish at once or wait."""
        self.history.append(label)
        tasks = []
        for side in self.sides:

            async def run(side: Side = side) -> object:
                return await read(side)

            task = asyncio.ensure_future(run())
            tasks.append(task)
        await settle()
        results = [task_outcome(task) for task in tasks]
        self.compare(results)
        for side, task in zip(self.sides, tasks, strict=True):
            if not task.done():
                side.pending.append(task)

    async def finish(self) -> None:
        """Discard everything and make sure no read is left waiting."""
        for i in range(len(self.sides[0].objects)):
            if hasattr(self.sides[0].objects[i], "discard"):
                await self.call(f"discard({i})", discard(i))
            else:
                await self.call(f"feed_eof({i})", feed_eof(i))
        if self.sides[0].pending:
            await self.call("cancel", cancel_pending)
        for side in self.sides:
            assert not side.pending


# --- operations, the same closures applied to both sides -------------------------------


def make_flow(limit: int, max_queue: int | None) -> Op:
    def op(side: Side) -> object:
        side.flow = side.readers.FlowControl(side.pause, side.resume, limit, max_queue)
        return None

    return op


def make_reader(text: bool, limit: int | None) -> Op:
    def op(side: Side) -> object:
        reader = side.readers.WebSocketReader(text, limit=limit, flow=side.flow)
        side.objects.append(reader)
        return reader

    return op


def make_whole(data: str | bytes) -> Op:
    def op(side: Side) -> object:
        reader = side.readers.whole_message(data, side.flow)
        side.objects.append(reader)
        return reader

    return op


def make_buffer(limit: int, recording: bool) -> Op:
    def op(side: Side) -> object:
        buffer = side.recording(side.log, limit) if recording else side.buffers.Buffer(limit)
        side.objects.append(buffer)
        return buffer

    return op


def feed(i: int, data: str | bytes) -> Op:
    return lambda side: side.objects[i].feed_data(data)


def feed_eof(i: int) -> Op:
    return lambda side: side.objects[i].feed_eof()


def set_exception(i: int, message: str) -> Op:
    return lambda side: side.objects[i].set_exception(Boom(message))


def discard(i: int) -> Op:
    return lambda side: side.objects[i].discard()


def enqueue(side: Side) -> object:
    """What the callback face does when a message waits for its callback."""
    flow = side.flow
    flow.queued += 1
    if flow.max_queue is not None and flow.queued >= flow.max_queue:
        flow.update()
    return flow.queued


def dequeue(side: Side) -> object:
    flow = side.flow
    if flow.queued:
        flow.queued -= 1
        if flow.paused:
            flow.update()
    return flow.queued


def release(side: Side) -> object:
    side.flow.release()
    return None


def update(side: Side) -> object:
    side.flow.update()
    return None


def detach(side: Side) -> object:
    side.flow.detach()
    return None


def cancel_pending(side: Side) -> object:
    return [task.cancel() for task in side.pending]


def read(i: int, n: int) -> Read:
    return lambda side: side.objects[i].read(n)


def readexactly(i: int, n: int) -> Read:
    return lambda side: side.objects[i].readexactly(n)


def readuntil(i: int, separator: bytes) -> Read:
    return lambda side: side.objects[i].readuntil(separator)


def readline(i: int) -> Read:
    return lambda side: side.objects[i].readline()


def get(i: int) -> Read:
    return lambda side: side.objects[i].get()


def iterate(i: int) -> Read:
    async def chunks(side: Side) -> object:
        return [chunk async for chunk in side.objects[i]]

    return chunks


def first_chunk(i: int) -> Read:
    async def chunk(side: Side) -> object:
        iterator = aiter(side.objects[i])
        try:
            return await anext(iterator, None)
        finally:
            await iterator.aclose()

    return chunk


# --- random material --------------------------------------------------------------------

BYTES = b"ab\n\x00\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
CHARACTERS = ["a", "b", "\n", "\x00", "é", "€", "😀", "ÿ"]
SEPARATORS = [b"\n", b"a", b"ab", b"\n\n", b"\xc3\xa9", b"\xe2\x82\xac", b""]


def random_bytes(rng: random.Random, most: int) -> bytes:
    if rng.random() < 0.3:
        return random_text(rng, most).encode()
    return bytes(rng.choice(BYTES) for _ in range(rng.randint(0, most)))


def random_text(rng: random.Random, most: int) -> str:
    return "".join(rng.choice(CHARACTERS) for _ in range(rng.randint(0, most)))


def random_size(rng: random.Random) -> int:
    return rng.choice([0, 1, 2, 3, rng.randint(1, 12), rng.randint(1, 80)])


def open_objects(pair: Pair) -> list[int]:
    return [k for k, obj in enumerate(pair.sides[0].objects) if " open," in repr(obj)]


def time_for_another(pair: Pair, rng: random.Random) -> bool:
    """Whether to make a new buffer or reader: none yet, or (often) none open to feeding."""
    if not pair.sides[0].objects:
        return True
    return not open_objects(pair) and rng.random() < 0.5


def pick(pair: Pair, rng: random.Random, *, to_feed: bool) -> int:
    """An object to work on: mostly the one a read waits on, or one still open to feeding."""
    objects = pair.sides[0].objects
    if pair.sides[0].pending and pair.waiting_on is not None and rng.random() < 0.8:
        return pair.waiting_on
    open_ = open_objects(pair)
    if to_feed and open_ and rng.random() < 0.9:
        return rng.choice(open_)
    return rng.randrange(len(objects))


async def random_read(pair: Pair, rng: random.Random, i: int, *, messages: bool) -> None:
    """One random read of object ``i``, which may wait."""
    kind = rng.randrange(10 if messages else 8)
    if kind == 0:
        n = rng.choice([-1, -1, 0, *range(1, 6), rng.randint(1, 90)])
        await pair.start(f"read({i}, {n})", read(i, n))
    elif kind <= 2:
        n = rng.choice([-1, 0, *range(1, 6), rng.randint(1, 90)])
        await pair.start(f"readexactly({i}, {n})", readexactly(i, n))
    elif kind <= 4:
        separator = rng.choice(SEPARATORS)
        await pair.start(f"readuntil({i}, {separator!r})", readuntil(i, separator))
    elif kind == 5:
        await pair.start(f"readline({i})", readline(i))
    elif kind == 6:
        await pair.start(f"iterate({i})", iterate(i))
    elif kind == 7:
        await pair.start(f"first_chunk({i})", first_chunk(i))
    else:
        await pair.start(f"get({i})", get(i))
    if pair.sides[0].pending:
        pair.waiting_on = i


async def random_feed(pair: Pair, rng: random.Random, i: int, *, messages: bool) -> None:
    size = random_size(rng)
    data: str | bytes = random_bytes(rng, size)
    if messages and rng.random() < 0.5:
        data = random_text(rng, size)
    await pair.call(f"feed_data({i}, {data!r})", feed(i, data))


async def random_reader_scenario(rng: random.Random) -> None:
    pair = Pair()
    limit = rng.choice([1, 2, 3, rng.randint(1, 16), rng.randint(1, 64)])
    max_queue = rng.choice([None, None, 1, 2, 3])
    await pair.call(f"FlowControl({limit}, {max_queue})", make_flow(limit, max_queue))
    for _ in range(rng.randint(10, 60)):
        choice = rng.random()
        if choice < 0.07 or time_for_another(pair, rng):
            if rng.random() < 0.35:
                size = random_size(rng)
                data = random_text(rng, size) if rng.random() < 0.5 else random_bytes(rng, size)
                await pair.call(f"whole_message({data!r})", make_whole(data))
            else:
                text = rng.random() < 0.5
                line_limit = rng.choice([None, None, rng.randint(1, 16)])
                label = f"WebSocketReader({text}, limit={line_limit})"
                await pair.call(label, make_reader(text, line_limit))
        elif choice < 0.55:
            await random_producer_step(pair, rng, choice, messages=True)
        elif choice < 0.59:
            i = pick(pair, rng, to_feed=False)
            await pair.call(f"discard({i})", discard(i))
        elif choice < 0.63:
            await pair.call("enqueue", enqueue)
        elif choice < 0.67:
            await pair.call("dequeue", dequeue)
        elif choice < 0.68:
            await pair.call("release", release)
        elif choice < 0.69:
            await pair.call("detach", detach)
        elif choice < 0.70:
            await pair.call("update", update)
        elif choice < 0.72:
            await pair.call("cancel", cancel_pending)
        elif not pair.sides[0].pending or choice > 0.95:
            await random_read(pair, rng, pick(pair, rng, to_feed=False), messages=True)
    await pair.finish()


async def random_producer_step(
    pair: Pair, rng: random.Random, choice: float, *, messages: bool
) -> None:
    """What both scenarios do as the producer, for 0.05 <= choice < 0.55: feed, end, fail."""
    if choice < 0.45:
        await random_feed(pair, rng, pick(pair, rng, to_feed=True), messages=messages)
    elif choice < 0.52:
        i = pick(pair, rng, to_feed=True)
        await pair.call(f"feed_eof({i})", feed_eof(i))
    else:
        i = pick(pair, rng, to_feed=False)
        await pair.call(f"set_exception({i})", set_exception(i, f"boom {i}"))


async def random_buffer_scenario(rng: random.Random) -> None:
    pair = Pair()
    for _ in range(rng.randint(10, 60)):
        choice = rng.random()
        if choice < 0.05 or time_for_another(pair, rng):
            limit = rng.choice([1, 2, 3, rng.randint(1, 16), 2**16])
            recording = rng.random() < 0.5
            await pair.call(f"Buffer({limit}, {recording})", make_buffer(limit, recording))
        elif choice < 0.55:
            await random_producer_step(pair, rng, choice, messages=False)
        elif choice < 0.57:
            await pair.call("cancel", cancel_pending)
        elif not pair.sides[0].pending or choice > 0.95:
            await random_read(pair, rng, pick(pair, rng, to_feed=False), messages=False)
    await pair.finish()


# --- the tests ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(40))
async def test_random_readers(seed: int) -> None:
    rng = random.Random(f"reader {seed}")
    for _ in range(6):
        await random_reader_scenario(rng)


@pytest.mark.parametrize("seed", range(25))
async def test_random_buffers(seed: int) -> None:
    rng = random.Random(f"buffer {seed}")
    for _ in range(6):
        await random_buffer_scenario(rng)


@pytest.mark.parametrize(
    "data", [b"", b"x", b"abc\ndef", "", "x", "é€😀\nz", "a" * 100, b"\xc3\xa9" * 40]
)
@pytest.mark.parametrize("limit", [1, 3, 64])
async def test_whole_messages(data: str | bytes, limit: int) -> None:
    for way in range(8):
        pair = Pair()
        await pair.call("FlowControl", make_flow(limit, None))
        await pair.call("whole_message", make_whole(data))
        await pair.call("enqueue", enqueue)
        await pair.call("dequeue", dequeue)
        if way == 0:
            await pair.start("get", get(0))
        elif way == 1:
            await pair.start("read", read(0, -1))
        elif way == 2:
            await pair.start("read(2)", read(0, 2))
        elif way == 3:
            await pair.start("readline", readline(0))
        elif way == 4:
            await pair.start("iterate", iterate(0))
        elif way == 5:
            await pair.start("readexactly(3)", readexactly(0, 3))
        elif way == 6:
            await pair.call("feed_data", feed(0, b"more"))
        await pair.call("at_eof", lambda side: side.objects[0].at_eof())
        await pair.start("get", get(0))
        await pair.finish()


WAITING_READS: list[tuple[str, Callable[[int], Read]]] = [
    ("read(5)", lambda i: read(i, 5)),
    ("read(-1)", lambda i: read(i, -1)),
    ("readexactly(7)", lambda i: readexactly(i, 7)),
    ("readuntil(b'||')", lambda i: readuntil(i, b"||")),
    ("readline()", readline),
    ("get()", get),
    ("iterate", iterate),
    ("first_chunk", first_chunk),
]


@pytest.mark.parametrize(("label", "waiting_read"), WAITING_READS)
@pytest.mark.parametrize("text", [False, True])
@pytest.mark.parametrize("limit", [1, 4, 64])
@pytest.mark.parametrize("end", ["eof", "exception", "discard", "cancel"])
async def test_a_read_that_must_wait(
    label: str, waiting_read: Callable[[int], Read], text: bool, limit: int, end: str
) -> None:
    pair = Pair()
    await pair.call("FlowControl", make_flow(limit, None))
    await pair.call("WebSocketReader", make_reader(text, None))
    await pair.start(label, waiting_read(0))
    assert pair.sides[0].pending, "the read must wait"
    for piece in ["", "a|", "é", "|€", "\n", "😀" * 3, "|", "|tail"]:
        data: str | bytes = piece if text else piece.encode()
        await pair.call(f"feed_data({data!r})", feed(0, data))
    if end == "eof":
        await pair.call("feed_eof", feed_eof(0))
    elif end == "exception":
        await pair.call("set_exception", set_exception(0, "gone"))
    elif end == "discard":
        await pair.call("discard", discard(0))
    else:
        await pair.call("cancel", cancel_pending)
    await pair.start("get", get(0))
    await pair.finish()


@pytest.mark.parametrize("recording", [False, True])
async def test_buffer_partials_and_limits(recording: bool) -> None:
    pair = Pair()
    await pair.call("Buffer(4)", make_buffer(4, recording))
    await pair.call("feed_data", feed(0, b"abcdef"))
    await pair.start("readuntil(b'f')", readuntil(0, b"f"))  # found beyond the limit
    await pair.start("readuntil(b'x')", readuntil(0, b"x"))  # not found, over the limit
    await pair.start("readline", readline(0))
    await pair.start("readexactly(2)", readexactly(0, 2))
    await pair.start("readuntil(b'd')", readuntil(0, b"d"))
    await pair.start("readuntil(b'zz')", readuntil(0, b"zz"))  # waits, b"ef" buffered
    await pair.call("feed_data", feed(0, b"z"))  # still waits
    await pair.call("feed_data", feed(0, b"z"))  # b"efzz", within the limit
    await pair.start("readuntil(b'y')", readuntil(0, b"y"))  # waits
    await pair.call("feed_data", feed(0, b"ghij"))  # still waits: 4 bytes, the limit
    await pair.call("feed_data", feed(0, b"tail"))  # LimitOverrunError while waiting
    await pair.start("readexactly(9)", readexactly(0, 9))  # waits, 8 buffered
    await pair.call("feed_eof", feed_eof(0))  # IncompleteReadError, partial b"ghijtail"
    await pair.call("feed_data", feed(0, b"late"))  # RuntimeError after eof
    await pair.start("readuntil(b'')", readuntil(0, b""))
    await pair.start("readexactly(-1)", readexactly(0, -1))
    await pair.start("readuntil", readuntil(0, b"\n"))
    await pair.start("iterate", iterate(0))
    await pair.start("read", read(0, -1))
    await pair.finish()


@pytest.mark.parametrize("limit", [0, -1])
async def test_bad_limits(limit: int) -> None:
    pair = Pair()
    await pair.call("Buffer", make_buffer(limit, False))
    await pair.call("FlowControl", make_flow(limit, None))
    await pair.call("WebSocketReader", make_reader(False, limit))


@pytest.mark.parametrize("split", [0, 1, 2, 3])
async def test_text_read_as_bytes(split: int) -> None:
    pair = Pair()
    await pair.call("FlowControl", make_flow(4, None))
    await pair.call("WebSocketReader", make_reader(True, None))
    await pair.call("feed_data", feed(0, "é€x"))
    await pair.start(f"readexactly({split})", readexactly(0, split))
    await pair.call("feed_data", feed(0, b"\xc3"))
    await pair.call("feed_data", feed(0, "y"))
    await pair.call("feed_eof", feed_eof(0))
    await pair.start("get", get(0))  # a cut character: UnicodeDecodeError
    await pair.call("at_eof", lambda side: side.objects[0].at_eof())
    await pair.finish()
