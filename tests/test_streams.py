"""Buffer, WebSocketReader (flow control) and WebSocketWriter (fragments)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.sync.client import connect as sync_connect

import wsjet
from wsjet.client import Client
from wsjet.server import WebSocketServer
from wsjet.stream.buffer import Buffer
from wsjet.stream.reader import FlowControl, WebSocketReader
from wsjet.stream.writer import WebSocketWriter

from .utils import UNIT

# --- Buffer ---------------------------------------------------------------------------


async def test_buffer_read_returns_what_is_there() -> None:
    buffer = Buffer()
    buffer.feed_data(b"abc")
    buffer.feed_data(b"def")
    assert await buffer.read(2) == b"ab"
    assert await buffer.read(10) == b"cdef"
    buffer.feed_eof()
    assert await buffer.read(10) == b""
    assert buffer.at_eof()


async def test_buffer_read_waits_for_data() -> None:
    buffer = Buffer()
    reading = asyncio.ensure_future(buffer.read(100))
    await asyncio.sleep(0)
    assert not reading.done()
    buffer.feed_data(b"late")
    assert await reading == b"late"


async def test_buffer_read_all_and_zero() -> None:
    buffer = Buffer()
    assert await buffer.read(0) == b""
    reading = asyncio.ensure_future(buffer.read())
    buffer.feed_data(b"one ")
    await asyncio.sleep(0)
    buffer.feed_data(b"two")
    buffer.feed_eof()
    assert await reading == b"one two"
    assert await buffer.read() == b""


async def test_buffer_readexactly() -> None:
    buffer = Buffer()
    for piece in (b"01", b"234", b"56789"):
        buffer.feed_data(piece)
    assert await buffer.readexactly(0) == b""
    assert await buffer.readexactly(4) == b"0123"
    assert await buffer.readexactly(1) == b"4"
    buffer.feed_eof()
    with pytest.raises(asyncio.IncompleteReadError) as info:
        await buffer.readexactly(10)
    assert info.value.partial == b"56789"
    assert info.value.expected == 10
    with pytest.raises(ValueError):
        await buffer.readexactly(-1)


async def test_buffer_readuntil_and_readline() -> None:
    buffer = Buffer()
    buffer.feed_data(b"first li")
    buffer.feed_data(b"ne\nsecond||third")
    assert await buffer.readline() == b"first line\n"
    assert await buffer.readuntil(b"||") == b"second||"
    reading = asyncio.ensure_future(buffer.readuntil(b"||"))
    await asyncio.sleep(0)
    buffer.feed_data(b"|")  # the separator straddles two chunks
    await asyncio.sleep(0)
    assert not reading.done()
    buffer.feed_data(b"|rest")
    assert await reading == b"third||"
    buffer.feed_eof()
    assert await buffer.readline() == b"rest"
    assert await buffer.readline() == b""
    with pytest.raises(ValueError):
        await buffer.readuntil(b"")


async def test_buffer_readuntil_incomplete_and_limit() -> None:
    buffer = Buffer(limit=8)
    buffer.feed_data(b"0123456789")
    with pytest.raises(asyncio.LimitOverrunError):
        await buffer.readuntil(b"\n")
    assert await buffer.read(5) == b"01234"  # the data stayed
    buffer.feed_data(b"\n")
    assert await buffer.readuntil(b"\n") == b"56789\n"
    buffer.feed_data(b"0123456789\n")
    with pytest.raises(asyncio.LimitOverrunError):
        await buffer.readuntil(b"\n")  # found, but beyond the limit
    await buffer.readexactly(11)
    buffer.feed_data(b"no end")
    buffer.feed_eof()
    with pytest.raises(asyncio.IncompleteReadError) as info:
        await buffer.readuntil(b"\n")
    assert info.value.partial == b"no end"
    with pytest.raises(ValueError):
        Buffer(limit=0)


async def test_buffer_async_iteration_yields_chunks() -> None:
    buffer = Buffer()
    buffer.feed_data(b"abc")

    async def produce() -> None:
        await asyncio.sleep(0)
        buffer.feed_data(b"def")
        await asyncio.sleep(0)
        buffer.feed_eof()

    producer = asyncio.ensure_future(produce())
    assert await buffer.read(1) == b"a"
    assert [chunk async for chunk in buffer] == [b"bc", b"def"]
    await producer


async def test_buffer_exception_after_data() -> None:
    buffer = Buffer()
    buffer.feed_data(b"kept")
    buffer.set_exception(ConnectionResetError("gone"))
    assert buffer.exception() is not None
    assert await buffer.read(10) == b"kept"
    with pytest.raises(ConnectionResetError):
        await buffer.read(10)
    ended = Buffer()
    ended.feed_eof()
    with pytest.raises(RuntimeError):
        ended.feed_data(b"x")


async def test_buffer_single_reader() -> None:
    buffer = Buffer()
    first = asyncio.ensure_future(buffer.read(1))
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError):
        await buffer.read(1)
    buffer.feed_data(b"x")
    assert await first == b"x"
    assert "Buffer" in repr(buffer)


# --- WebSocketReader -------------------------------------------------------------------


async def test_reader_text_message() -> None:
    reader = WebSocketReader(True)
    reader.feed_data("café ")
    reader.feed_data("☕")
    reader.feed_eof()
    assert reader.is_text and reader.kind == "text"
    assert not reader.at_eof()
    assert await reader.get() == "café ☕"
    assert reader.at_eof()
    assert "text" in repr(reader)


async def test_reader_byte_reads_on_text_are_utf8() -> None:
    reader = WebSocketReader(True)
    reader.feed_data("é\nrest ")
    assert await reader.readline() == "é\n".encode()
    reader.feed_data("☕")  # arriving after the switch to bytes
    reader.feed_eof()
    assert await reader.get() == "rest ☕"


async def test_reader_binary_get_and_empty_messages() -> None:
    reader = WebSocketReader(False)
    reader.feed_data(b"ab")
    reader.feed_data(b"cd")
    reader.feed_eof()
    assert reader.kind == "binary" and not reader.is_text
    assert await reader.read(1) == b"a"
    assert await reader.get() == b"bcd"
    empty = WebSocketReader(True)
    empty.feed_data("")
    empty.feed_eof()
    assert await empty.get() == ""
    empty_binary = WebSocketReader(False)
    empty_binary.feed_eof()
    assert await empty_binary.get() == b""


async def test_reader_get_waits_and_fails_when_cut_short() -> None:
    reader = WebSocketReader(False)
    reader.feed_data(b"part")
    getting = asyncio.ensure_future(reader.get())
    await asyncio.sleep(0)
    assert not getting.done()
    reader.set_exception(wsjet.ConnectionClosedError(None, None))
    with pytest.raises(wsjet.ConnectionClosedError):
        await getting


async def test_reader_discard_ends_the_message() -> None:
    reader = WebSocketReader(False)
    reader.feed_data(b"unread")
    reader.discard()
    reader.feed_data(b"more")  # the rest of the message is dropped
    reader.feed_eof()
    reader.discard()
    assert reader.at_eof()
    assert await reader.read() == b""
    with pytest.raises(RuntimeError):
        done = WebSocketReader(False)
        done.feed_eof()
        done.feed_data(b"x")


async def read_in_steps(reader: WebSocketReader, flow: FlowControl, way: str) -> list[object]:
    """Read ``reader`` one way; record every result, failure and what stays buffered."""

    def buffered() -> object:
        return (reader.at_eof(), flow.buffered, repr(reader))

    async def attempt(read: Awaitable[object]) -> object:
        try:
            return await read
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            return (type(exc).__name__, getattr(exc, "partial", None), str(exc))
        except UnicodeDecodeError as exc:
            return (type(exc).__name__, str(exc))

    seen: list[object] = [buffered()]
    if way == "get":
        seen.append(await attempt(reader.get()))
    elif way == "read":
        seen += [await attempt(reader.read(2)), buffered(), await attempt(reader.read())]
    elif way == "readexactly":
        seen += [await attempt(reader.readexactly(1)), buffered()]
        seen.append(await attempt(reader.readexactly(10**6)))
    elif way == "readline":
        seen += [await attempt(reader.readline()), buffered(), await attempt(reader.readline())]
    elif way == "iterate":
        seen += [chunk async for chunk in reader]
    elif way == "read-then-get":
        seen += [await attempt(reader.read(1)), buffered(), await attempt(reader.get())]
    elif way == "discard":
        reader.discard()
        seen.append(await attempt(reader.read()))
    seen += [buffered(), await attempt(reader.get())]
    return seen


@pytest.mark.parametrize(
    "way", ["get", "read", "readexactly", "readline", "iterate", "read-then-get", "discard"]
)
@pytest.mark.parametrize("data", [b"", b"a\nbc", b"\x00" * 300, "", "h\u00e9\nllo", "\U0001f600"])
async def test_whole_message_reader_reads_like_a_fed_reader(way: str, data: str | bytes) -> None:
    # whole_message() skips the streaming structures (no chunk deque of its own
    # until a byte-level read): every read must still see what a reader fed the
    # same message piece by piece sees, flow control figures included.
    from wsjet.stream.reader import whole_message

    whole_flow = FlowControl(lambda: None, lambda: None, limit=4)
    fed_flow = FlowControl(lambda: None, lambda: None, limit=4)
    whole = whole_message(data, whole_flow)
    fed = WebSocketReader(isinstance(data, str), flow=fed_flow)
    fed.feed_data(data)
    fed.feed_eof()
    seen = await read_in_steps(whole, whole_flow, way)
    assert seen == await read_in_steps(fed, fed_flow, way)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause(self) -> None:
        self.calls.append("pause")

    def resume(self) -> None:
        self.calls.append("resume")


async def test_flow_control_pauses_above_limit_and_resumes_at_half() -> None:
    recorder = Recorder()
    flow = FlowControl(recorder.pause, recorder.resume, limit=100)
    reader = WebSocketReader(False, flow=flow)
    reader.feed_data(b"x" * 60)
    reader.feed_data(b"x" * 60)
    assert recorder.calls == ["pause"] and flow.paused and flow.buffered == 120
    await reader.read(30)
    assert recorder.calls == ["pause"]  # 90 left: above half the limit
    await reader.read(40)
    assert recorder.calls == ["pause", "resume"]
    reader.discard()
    assert flow.buffered == 0
    with pytest.raises(ValueError):
        FlowControl(recorder.pause, recorder.resume, limit=0)


async def test_flow_control_lets_a_large_read_through() -> None:
    recorder = Recorder()
    flow = FlowControl(recorder.pause, recorder.resume, limit=100)
    reader = WebSocketReader(False, flow=flow)
    reading = asyncio.ensure_future(reader.readexactly(250))
    await asyncio.sleep(0)
    for _ in range(5):
        reader.feed_data(b"y" * 50)  # waits for 250: no pause on the way
    assert recorder.calls == []
    assert len(await reading) == 250
    # get() reads until the end: it must not deadlock on a paused socket.
    reader.feed_data(b"z" * 150)
    assert recorder.calls == ["pause"]
    getting = asyncio.ensure_future(reader.get())
    await asyncio.sleep(0)
    assert recorder.calls == ["pause", "resume"]
    reader.feed_data(b"z" * 150)
    reader.feed_eof()
    assert await getting == b"z" * 300


async def test_flow_control_counts_queued_messages() -> None:
    recorder = Recorder()
    flow = FlowControl(recorder.pause, recorder.resume, limit=100, max_queue=2)
    flow.queued = 2
    flow.update()
    assert recorder.calls == ["pause"]
    flow.queued = 1
    flow.update()
    assert recorder.calls == ["pause", "resume"]


async def test_flow_control_text_switches_to_bytes() -> None:
    recorder = Recorder()
    flow = FlowControl(recorder.pause, recorder.resume, limit=10)
    reader = WebSocketReader(True, flow=flow)
    reader.feed_data("éééé")  # 4 characters, 8 bytes
    assert flow.buffered == 4
    assert await reader.read(2) == "é".encode()
    assert flow.buffered == 6


# --- the writer, against the `websockets` package ----------------------------------------


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    """A callback-face server answering "stream:<n>" with an n-fragment streamed message."""
    socket = WebSocketServer("127.0.0.1", 0, compression=None, max_size=None)

    @socket.connection
    async def on_connection(client: Client) -> None:
        @client.message
        async def on_message(reader: WebSocketReader) -> None:
            command = await reader.get()
            assert isinstance(command, str)
            name, _, arg = command.partition(":")
            if name == "stream":
                async with client.writer.stream() as message:
                    for i in range(int(arg)):
                        await message.write(bytes([i]) * 1000)
            elif name == "text":
                async with client.writer.stream(text=True) as message:
                    for word in arg.split():
                        await message.write(word + " ")
            elif name == "interleave":
                # A whole-message send waits for the streamed message to end.
                async with client.writer.stream(text=True) as message:
                    await message.write("one ")
                    other = asyncio.ensure_future(client.writer.send("after"))
                    await asyncio.sleep(UNIT / 5)
                    assert not other.done()
                    await message.write("two")
                await other
            elif name == "empty":
                async with client.writer.stream():
                    pass
            elif name == "iterables":
                await client.writer.send(["a", "b"])

                async def chunks() -> AsyncIterator[bytes]:
                    yield b"c"
                    yield b"d"

                await client.writer.send(chunks())
            elif name == "fail":
                async with client.writer.stream() as message:
                    await message.write(b"half")
                    raise RuntimeError("stop")

    async with socket as server:
        yield server.sockets[0].getsockname()[1]


async def test_streamed_message_received_intact_by_websockets(echo_port: int) -> None:
    async with ws_connect(f"ws://127.0.0.1:{echo_port}/", max_size=None) as ws:
        await ws.send("stream:50")
        expected = b"".join(bytes([i]) * 1000 for i in range(50))
        assert await ws.recv() == expected
        # websockets can also see the fragments one by one.
        await ws.send("stream:3")
        fragments = [fragment async for fragment in ws.recv_streaming()]
        assert fragments == [b"\x00" * 1000, b"\x01" * 1000, b"\x02" * 1000, b""]
        await ws.send("text:hello streamed world")
        assert await ws.recv() == "hello streamed world "
        await ws.send("interleave")
        assert await ws.recv() == "one two"
        assert await ws.recv() == "after"
        await ws.send("empty")
        assert await ws.recv() == b""
        await ws.send("iterables")
        assert await ws.recv() == "ab"
        assert await ws.recv() == b"cd"


async def test_failed_stream_fails_the_connection(
    echo_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    async with ws_connect(f"ws://127.0.0.1:{echo_port}/") as ws:
        await ws.send("fail")
        await ws.wait_closed()
        assert ws.close_code == 1011


async def test_writer_type_checks_and_control_frames() -> None:
    socket = WebSocketServer("127.0.0.1", 0, compression=None)
    results: list[object] = []

    @socket.connection
    async def on_connection(client: Client) -> None:
        writer = client.writer
        assert isinstance(writer, WebSocketWriter) and writer.open
        assert "OPEN" in repr(writer)
        stream = writer.stream(text=True)
        with pytest.raises(RuntimeError):
            await stream.write("outside")
        async with stream as message:
            with pytest.raises(TypeError):
                await message.write(b"bytes in a text message")
            await message.write("ok")
        async with writer.stream() as message:
            with pytest.raises(TypeError):
                await message.write("text in a binary message")
            await message.write(bytearray(b"ok"))
        await writer.pong(b"unsolicited")
        results.append(await writer.ping(b"rtt"))
        await writer.close(4000, "done")
        results.append(client.close_code)

    async with socket as server:
        port = server.sockets[0].getsockname()[1]
        async with ws_connect(f"ws://127.0.0.1:{port}/") as ws:
            assert await ws.recv() == "ok"
            assert await ws.recv() == b"ok"
            await ws.wait_closed()
            assert ws.close_code == 4000 and ws.close_reason == "done"
    assert isinstance(results[0], float)
    assert results[1] == 4000


async def test_reader_streams_a_message_before_it_is_complete() -> None:
    socket = WebSocketServer("127.0.0.1", 0, compression=None)

    @socket.connection
    async def on_connection(client: Client) -> None:
        @client.message
        async def on_message(reader: WebSocketReader) -> None:
            first = await reader.readexactly(5)
            await client.writer.send(b"got " + first)  # the client waits for this
            rest = await reader.read()
            await client.writer.send(b"rest " + rest)

    async with socket as server:
        port = server.sockets[0].getsockname()[1]
        async with ws_connect(f"ws://127.0.0.1:{port}/") as ws:
            acknowledged = asyncio.get_running_loop().create_future()

            async def fragments() -> AsyncIterator[bytes]:
                yield b"first"
                await acknowledged  # sent only once the callback read the first one
                yield b"second"

            sending = asyncio.ensure_future(ws.send(fragments()))
            assert await ws.recv() == b"got first"
            acknowledged.set_result(None)
            await sending
            assert await ws.recv() == b"rest second"


# --- memory: a 64 MiB message read in 64 KiB chunks while it arrives ------------------

MEMORY_SERVER = textwrap.dedent(
    """\
    import asyncio, hashlib, json

    from wsjet.server import WebSocketServer

    def status(field):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024

    async def main():
        socket = WebSocketServer(
            "127.0.0.1", 0, max_size=None, compression=None, ping_interval=None
        )
        baseline = {}

        @socket.connection
        async def on_connection(client):
            @client.message
            async def on_message(reader):
                if reader.is_text:  # "baseline": warm-up done, start measuring
                    await reader.get()
                    try:
                        with open("/proc/self/clear_refs", "w") as f:
                            f.write("5")  # resets VmHWM to the current RSS
                        baseline["rss"] = status("VmRSS")
                    except OSError:
                        baseline["rss"] = status("VmHWM")
                    await client.writer.send("ok")
                    return
                digest = hashlib.sha256()
                total = 0
                while chunk := await reader.read(65536):
                    total += len(chunk)
                    digest.update(chunk)
                    # A consumer slower than the network: without flow
                    # control the whole message would pile up in memory.
                    await asyncio.sleep(0)
                growth = status("VmHWM") - baseline.get("rss", 0)
                report = {"total": total, "sha256": digest.hexdigest(), "growth": growth}
                await client.writer.send(json.dumps(report))

        async with socket as server:
            print(server.sockets[0].getsockname()[1], flush=True)
            await asyncio.Future()

    asyncio.run(main())
    """
)


def test_64_mib_message_streams_in_bounded_memory() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", MEMORY_SERVER], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        size = 64 * 2**20
        data = os.urandom(2**20) * 64
        with sync_connect(
            f"ws://127.0.0.1:{port}/", compression=None, max_size=None, open_timeout=10
        ) as ws:
            ws.send(os.urandom(3 * 2**20))  # warm-up: the same code path, smaller
            ws.recv(timeout=60)
            ws.send("baseline")
            assert ws.recv(timeout=60) == "ok"
            ws.send(data)
            report = json.loads(ws.recv(timeout=120))
        assert report["total"] == size
        assert report["sha256"] == hashlib.sha256(data).hexdigest()
        growth = report["growth"]
        print(f"peak RSS growth while streaming 64 MiB: {growth / 2**20:.2f} MiB")
        assert growth < 8 * 2**20
    finally:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
