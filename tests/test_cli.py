"""The ``wsjet`` command line, run as real subprocesses.

``wsjet connect`` is driven through a pseudo-terminal (it is an interactive
program: Ctrl-D and Ctrl-C are typed, not simulated) and through pipes;
``wsjet serve`` is checked with plain HTTP and with an independent peer, the
`websockets` package.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pty
import re
import signal
import ssl
import subprocess
import sys
import termios
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve

#: How long to wait for a subprocess to say something before giving up (a deadlock guard).
PATIENCE = 30.0

WSJET_MODULE = [sys.executable, "-m", "wsjet"]
WSJET_SCRIPT = [str(Path(sys.executable).with_name("wsjet"))]


# --- helpers ------------------------------------------------------------------------------


@dataclass
class Served:
    """A running ``wsjet serve`` subprocess."""

    process: asyncio.subprocess.Process
    url: str
    log: Path

    @property
    def port(self) -> int:
        match = re.search(r":(\d+)/", self.url)
        assert match, self.url
        return int(match.group(1))


@contextlib.asynccontextmanager
async def wsjet_serve(
    tmp_path: Path, *args: str, command: Sequence[str] = WSJET_MODULE
) -> AsyncIterator[Served]:
    """Start ``wsjet serve ARGS`` and read the URL from its ``listening on`` line."""
    log = tmp_path / f"serve-{os.urandom(4).hex()}.log"
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            *command, "serve", *args, stdout=asyncio.subprocess.PIPE, stderr=stderr
        )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), PATIENCE)
        match = re.match(rb"listening on (\S+)", line)
        assert match, f"unexpected first line {line!r}; log:\n{log.read_text()}"
        yield Served(process, match.group(1).decode(), log)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), PATIENCE)


async def http_get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """One plain HTTP/1.1 request; the server closes the connection after its answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        raw = await asyncio.wait_for(reader.read(), PATIENCE)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def _take_controlling_terminal() -> None:
    """In the child, after setsid(): make stdin (the pty) the controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtyProcess:
    """A subprocess on a pseudo-terminal: what a person at a terminal would see and type.

    Started with :class:`subprocess.Popen` rather than the event loop's subprocess
    support, so that the terminal set-up in the child is the same on every loop.
    """

    def __init__(self, process: subprocess.Popen[bytes], master: int) -> None:
        self.process = process
        self.master = master
        self.output = bytearray()
        self._changed = asyncio.Event()
        self._eof = False
        asyncio.get_running_loop().add_reader(master, self._read)

    @classmethod
    async def start(cls, *argv: str) -> PtyProcess:
        master, slave = pty.openpty()
        try:
            process = subprocess.Popen(
                argv,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                start_new_session=True,
                preexec_fn=_take_controlling_terminal,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        return cls(process, master)

    def _read(self) -> None:
        try:
            chunk = os.read(self.master, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: every process on the terminal is gone
            chunk = b""
        if chunk:
            self.output += chunk
        else:
            self._eof = True
            asyncio.get_running_loop().remove_reader(self.master)
        self._changed.set()

    async def expect(self, pattern: str) -> re.Match[bytes]:
        """Wait until the terminal shows ``pattern`` (a regex)."""
        regex = re.compile(pattern.encode())

        async def wait() -> re.Match[bytes]:
            while True:
                match = regex.search(self.output)
                if match:
                    return match
                if self._eof:
                    raise AssertionError(f"{pattern!r} never shown; terminal: {self.text!r}")
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(wait(), PATIENCE)
        except TimeoutError:
            raise AssertionError(f"{pattern!r} not shown; terminal: {self.text!r}") from None

    def type(self, keys: str | bytes) -> None:
        os.write(self.master, keys.encode() if isinstance(keys, str) else keys)

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    async def wait(self) -> int:
        """Wait for the process to exit and read what it left on the terminal."""

        async def until_eof() -> None:
            # The terminal reports EIO once its last process is gone.
            while not self._eof:
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(until_eof(), PATIENCE)
        except TimeoutError:
            raise AssertionError(f"the process did not exit; terminal: {self.text!r}") from None
        return await asyncio.to_thread(self.process.wait, PATIENCE)

    async def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        await asyncio.to_thread(self.process.wait, PATIENCE)
        if not self._eof:
            asyncio.get_running_loop().remove_reader(self.master)
        os.close(self.master)


@contextlib.asynccontextmanager
async def on_pty(*argv: str) -> AsyncIterator[PtyProcess]:
    terminal = await PtyProcess.start(*argv)
    try:
        yield terminal
    finally:
        await terminal.close()


async def run_piped(
    *argv: str, stdin: bytes = b"", wait_for: Sequence[str] = (), then: bytes = b""
) -> tuple[int, str, str]:
    """Run a command on pipes; return its exit code, stdout and stderr.

    Writes ``stdin``, waits until stdout shows each of ``wait_for``, writes
    ``then`` and closes stdin (the end of input), then waits for the exit.
    """
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    seen = b""

    async def read_until(text: bytes) -> None:
        nonlocal seen
        assert process.stdout is not None
        while text not in seen:
            line = await process.stdout.readline()
            if not line:
                return  # ended early: the assertions on the output tell why
            seen += line

    try:
        process.stdin.write(stdin)
        await process.stdin.drain()
        for text in wait_for:
            await asyncio.wait_for(read_until(text.encode()), PATIENCE)
        process.stdin.write(then)
        process.stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the command exited before reading everything
    out, err = await asyncio.wait_for(process.communicate(), PATIENCE)
    assert process.returncode is not None
    return process.returncode, (seen + out).decode(), err.decode()


@dataclass
class PeerLog:
    """What a `websockets` test server saw of one client."""

    headers: Any = None
    subprotocol: str | None = None
    messages: list[str | bytes] | None = None
    close_code: int | None = None


@contextlib.asynccontextmanager
async def websockets_echo(**options: Any) -> AsyncIterator[tuple[int, asyncio.Future[PeerLog]]]:
    """A `websockets` echo server reporting what it saw of its first client."""
    seen: asyncio.Future[PeerLog] = asyncio.get_running_loop().create_future()

    async def handler(ws: ServerConnection) -> None:
        log = PeerLog(ws.request.headers if ws.request else None, ws.subprotocol, [])
        assert log.messages is not None
        try:
            while True:
                message = await ws.recv()
                log.messages.append(message)
                await ws.send(message)
        except websockets.ConnectionClosed as exc:
            log.close_code = exc.rcvd.code if exc.rcvd else None
        if not seen.done():
            seen.set_result(log)

    async with ws_serve(handler, "127.0.0.1", 0, **options) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield port, seen


# --- wsjet connect on a terminal ------------------------------------------------------------


@pytest.mark.parametrize("loop", ["auto", "asyncio"])
async def test_connect_on_a_terminal_against_serve_echo(tmp_path: Path, loop: str) -> None:
    async with wsjet_serve(tmp_path, "--echo", "--port", "0") as served:
        assert served.url.startswith("ws://127.0.0.1:")
        async with on_pty(*WSJET_SCRIPT, "--loop", loop, "connect", served.url) as terminal:
            await terminal.expect(r"connected to ws://127\.0\.0\.1:\d+/")
            terminal.type("hello\n")
            await terminal.expect(r"< hello\r?\n")
            terminal.type("café ☕ ünïcode\n")
            await terminal.expect(r"< café ☕ ünïcode")
            terminal.type(b"\x04")  # Ctrl-D at the start of a line: end of input
            assert await terminal.wait() == 0
            assert "connection closed: 1000" in terminal.text
        served.process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(served.process.wait(), PATIENCE) == 0
    log = served.log.read_text()
    assert "disconnected (close code 1000)" in log
    assert "event loop: uvloop" in log  # the server runs on uvloop when it is installed


@pytest.mark.parametrize("key", [b"\x04", b"\x03"], ids=["ctrl-d", "ctrl-c"])
async def test_connect_exits_with_a_1000_close(key: bytes) -> None:
    """Checked by an independent peer: the `websockets` server sees close code 1000."""
    async with websockets_echo() as (port, seen):
        url = f"ws://127.0.0.1:{port}/"
        async with on_pty(*WSJET_MODULE, "connect", url) as terminal:
            await terminal.expect("connected to")
            terminal.type("ping me\n")
            await terminal.expect("< ping me")
            terminal.type(key)
            assert await terminal.wait() == 0
            assert "connection closed: 1000 (NORMAL_CLOSURE)" in terminal.text
            assert "Traceback" not in terminal.text
        log = await asyncio.wait_for(seen, PATIENCE)
    assert log.messages == ["ping me"]
    assert log.close_code == 1000


async def test_connect_prints_messages_as_they_arrive() -> None:
    """Messages the server pushes show up without the user typing anything."""

    async def handler(ws: ServerConnection) -> None:
        await ws.send("first push")
        await ws.send(b"\x00\x01\x02binary")
        await ws.send("second push")
        await ws.close(4000, "server says bye")

    async with ws_serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with on_pty(*WSJET_MODULE, "connect", f"ws://127.0.0.1:{port}/") as terminal:
            await terminal.expect("< first push")
            await terminal.expect(r"< \(binary, 9 bytes\) 00 01 02 62")
            await terminal.expect("< second push")
            # The server closed with an application code: reported, and a non-zero exit.
            assert await terminal.wait() == 1
            assert "connection closed: 4000 (application) server says bye" in terminal.text


# --- wsjet connect on pipes: headers, subprotocols, TLS, Unix sockets ---------------------


async def test_connect_sends_headers_and_subprotocols() -> None:
    async with websockets_echo(subprotocols=["chat.v2"]) as (port, seen):
        code, out, err = await run_piped(
            *WSJET_MODULE,
            "connect",
            f"ws://127.0.0.1:{port}/path?q=1",
            "--header",
            "X-Token: s3cret",
            "--header",
            "X-Trace:  abc ",
            "--subprotocol",
            "chat.v1",
            "--subprotocol",
            "chat.v2",
            stdin=b"one\ntwo\n",
            wait_for=["< one", "< two"],
            then=b"no final newline",
        )
        log = await asyncio.wait_for(seen, PATIENCE)
    assert code == 0, err
    assert "subprotocol chat.v2" in out
    assert "< one\n< two\n" in out  # the last echo may lose the race with the close
    assert log.headers["X-Token"] == "s3cret"
    assert log.headers["X-Trace"] == "abc"
    assert log.headers["Sec-WebSocket-Protocol"] == "chat.v1, chat.v2"
    assert log.subprotocol == "chat.v2"
    assert log.messages == ["one", "two", "no final newline"]
    assert log.close_code == 1000


async def test_connect_rejects_a_malformed_header() -> None:
    code, _, err = await run_piped(
        *WSJET_MODULE, "connect", "ws://127.0.0.1:9/", "--header", "no colon", stdin=b""
    )
    assert code == 2
    assert "expected 'Name: value'" in err


async def test_connect_reports_a_refused_connection() -> None:
    with contextlib.closing(__import__("socket").socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        code, _, err = await run_piped(
            *WSJET_MODULE, "connect", f"ws://127.0.0.1:{port}/", stdin=b""
        )
    assert code == 1
    assert "failed to connect" in err
    assert "Traceback" not in err


async def test_tls_serve_and_connect(tmp_path: Path, tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    async with wsjet_serve(
        tmp_path, "--echo", "--port", "0", "--certfile", str(cert), "--keyfile", str(key)
    ) as served:
        assert served.url.startswith("wss://127.0.0.1:")
        url = f"wss://localhost:{served.port}/"
        code, out, err = await run_piped(
            *WSJET_MODULE,
            "connect",
            url,
            "--cafile",
            str(cert),
            stdin=b"over tls\n",
            wait_for=["< over tls"],
        )
        assert code == 0, err
        assert "< over tls" in out
        code, out, err = await run_piped(
            *WSJET_MODULE,
            "connect",
            url,
            "--insecure",
            stdin=b"unverified\n",
            wait_for=["< unverified"],
        )
        assert code == 0, err
        assert "< unverified" in out
        # Without trusting the certificate, the client refuses the server.
        code, out, err = await run_piped(*WSJET_MODULE, "connect", url, stdin=b"x\n")
        assert code == 1
        assert "CERTIFICATE_VERIFY_FAILED" in err
        # An independent TLS client sees the same server.
        context = ssl.create_default_context(cafile=str(cert))
        async with ws_connect(url, ssl=context) as client:
            await client.send("from websockets")
            assert await client.recv() == "from websockets"


async def test_unix_socket_serve_and_connect(tmp_path: Path) -> None:
    path = tmp_path / "wsjet.sock"
    async with wsjet_serve(tmp_path, "--echo", "--unix", str(path)) as served:
        assert served.url == f"unix:{path}"
        code, out, err = await run_piped(
            *WSJET_MODULE,
            "connect",
            "--unix",
            str(path),
            "ws://localhost/",
            stdin=b"through a unix socket\n",
            wait_for=["< through a unix socket"],
        )
        assert code == 0, err
        assert "< through a unix socket" in out
        served.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(served.process.wait(), PATIENCE) == 0
    assert not path.exists()  # the server removes its socket file


async def test_unix_socket_stale_file_is_replaced(tmp_path: Path) -> None:
    import socket

    path = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as leftover:
        leftover.bind(str(path))  # a socket file nobody listens on
    async with wsjet_serve(tmp_path, "--echo", "--unix", str(path)) as served:
        assert served.url == f"unix:{path}"
        async with websockets.unix_connect(str(path), "ws://localhost/") as client:
            await client.send("fresh")
            assert await client.recv() == "fresh"


# --- wsjet serve: plain HTTP ----------------------------------------------------------------


async def test_serve_answers_plain_http_on_the_same_port(tmp_path: Path) -> None:
    async with wsjet_serve(tmp_path, "--port", "0", command=WSJET_SCRIPT) as served:
        assert re.fullmatch(r"ws://127\.0\.0\.1:\d+/ws", served.url)
        status, headers, body = await http_get(served.port, "/healthz")
        assert (status, body) == (200, b"OK\n")
        assert headers["content-type"].startswith("text/plain")
        status, headers, body = await http_get(served.port, "/")
        assert status == 200
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert int(headers["content-length"]) == len(body)
        assert b"<title>wsjet chat</title>" in body
        assert b'src="http' not in body and b'href="http' not in body  # no external assets
        status, headers, body = await http_get(served.port, "/", method="HEAD")
        assert status == 200 and body == b"" and int(headers["content-length"]) > 1000
        status, _, _ = await http_get(served.port, "/no/such/page")
        assert status == 404
        status, _, _ = await http_get(served.port, "/", method="POST")
        assert status == 405
        # /ws without the upgrade headers is refused by the library's handshake rules.
        status, _, _ = await http_get(served.port, "/ws")
        assert 400 <= status < 500


async def test_serve_echo_answers_healthz(tmp_path: Path) -> None:
    async with wsjet_serve(tmp_path, "--echo", "--port", "0", "--loop", "asyncio") as served:
        status, _, body = await http_get(served.port, "/healthz")
        assert (status, body) == (200, b"OK\n")
        async with ws_connect(served.url) as client:
            await client.send(b"\x00binary")
            assert await client.recv() == b"\x00binary"


async def test_serve_basic_auth_401_then_101(tmp_path: Path) -> None:
    async with wsjet_serve(
        tmp_path, "--echo", "--port", "0", "--basic-auth", "alice:s3cret"
    ) as served:
        with pytest.raises(websockets.InvalidStatus) as info:
            await ws_connect(served.url)
        assert info.value.response.status_code == 401
        assert "Basic" in info.value.response.headers["WWW-Authenticate"]
        with pytest.raises(websockets.InvalidStatus) as info:
            await ws_connect(served.url.replace("ws://", "ws://alice:wrong@"))
        assert info.value.response.status_code == 401
        async with ws_connect(served.url.replace("ws://", "ws://alice:s3cret@")) as client:
            await client.send("authenticated")
            assert await client.recv() == "authenticated"


async def test_serve_origin_403_for_a_wrong_origin(tmp_path: Path) -> None:
    async with wsjet_serve(
        tmp_path, "--echo", "--port", "0", "--origin", "https://chat.example"
    ) as served:
        for origin in ("https://evil.example", "https://chat.example.evil.com", None):
            with pytest.raises(websockets.InvalidStatus) as info:
                await ws_connect(served.url, origin=origin)  # type: ignore[arg-type]
            assert info.value.response.status_code == 403
        async with ws_connect(served.url, origin="https://chat.example") as client:  # type: ignore[arg-type]
            await client.send("same origin")
            assert await client.recv() == "same origin"


async def test_serve_default_origin_policy_is_same_origin(tmp_path: Path) -> None:
    """Without --origin: clients without Origin and the server's own pages only (CSWSH)."""
    async with wsjet_serve(tmp_path, "--echo", "--port", "0") as served:
        for origin in ("https://evil.example", f"http://localhost:{served.port}", "null"):
            with pytest.raises(websockets.InvalidStatus) as info:
                await ws_connect(served.url, origin=origin)  # type: ignore[arg-type]
            assert info.value.response.status_code == 403
        for allowed in (None, f"http://127.0.0.1:{served.port}"):
            async with ws_connect(served.url, origin=allowed) as client:  # type: ignore[arg-type]
                await client.send("same origin")
                assert await client.recv() == "same origin"


async def test_serve_origin_any_and_patterns(tmp_path: Path) -> None:
    async with wsjet_serve(tmp_path, "--echo", "--port", "0", "--origin", "*") as served:
        for origin in ("https://evil.example", None):
            async with ws_connect(served.url, origin=origin) as client:  # type: ignore[arg-type]
                await client.send("any")
                assert await client.recv() == "any"
    pattern = r"re:https://([a-z]+\.)?chat\.example"
    args = ("--echo", "--port", "0", "--origin", pattern, "--origin", "none")
    async with wsjet_serve(tmp_path, *args) as served:
        for origin in ("https://chat.example.evil", "https://evilchat.example"):
            with pytest.raises(websockets.InvalidStatus) as info:
                await ws_connect(served.url, origin=origin)  # type: ignore[arg-type]
            assert info.value.response.status_code == 403
        for allowed in ("https://a.chat.example", None):
            async with ws_connect(served.url, origin=allowed) as client:  # type: ignore[arg-type]
                await client.send("allowed")
                assert await client.recv() == "allowed"


@pytest.mark.parametrize(
    ("origins", "message"),
    [(["*", "https://a.test"], "only item"), (["re:("], "invalid pattern")],
)
async def test_serve_origin_mistakes_stop_at_start(origins: list[str], message: str) -> None:
    args = [arg for origin in origins for arg in ("--origin", origin)]
    code, out, err = await run_piped(*WSJET_MODULE, "serve", "--echo", "--port", "0", *args)
    assert code != 0
    assert "listening on" not in out
    assert "--origin" in err and message in err
    assert "Traceback" not in err


async def test_serve_shutdown_sends_1001(tmp_path: Path) -> None:
    async with wsjet_serve(tmp_path, "--echo", "--port", "0") as served:
        async with ws_connect(served.url) as client:
            await client.send("still here")
            assert await client.recv() == "still here"
            served.process.send_signal(signal.SIGINT)
            with pytest.raises(websockets.ConnectionClosedOK):
                await asyncio.wait_for(client.recv(), PATIENCE)
            assert client.close_code == 1001
        assert await asyncio.wait_for(served.process.wait(), PATIENCE) == 0
    assert "SIGINT: shutting down" in served.log.read_text()


async def test_serve_rejects_a_port_in_use(tmp_path: Path) -> None:
    async with wsjet_serve(tmp_path, "--echo", "--port", "0") as served:
        code, out, err = await run_piped(
            *WSJET_MODULE, "serve", "--echo", "--port", str(served.port), stdin=b""
        )
    assert code != 0
    assert "listening on" not in out
    assert "cannot listen on 127.0.0.1:" in err
    assert "address already in use" in err.lower()
    assert "Traceback" not in err


async def test_serve_reports_a_missing_certificate(tmp_path: Path) -> None:
    code, out, err = await run_piped(
        *WSJET_MODULE, "serve", "--port", "0", "--certfile", str(tmp_path / "missing.pem")
    )
    assert code == 1
    assert "listening on" not in out
    assert "cannot load the TLS certificate" in err and "Traceback" not in err


# --- wsjet serve: the chat room -------------------------------------------------------------


async def recv_json(client: ClientConnection, kind: str) -> dict[str, Any]:
    """The next JSON message of type ``kind``, skipping the others."""
    while True:
        raw = await asyncio.wait_for(client.recv(), PATIENCE)
        assert isinstance(raw, str)
        message = json.loads(raw)
        assert isinstance(message, dict)
        if message["type"] == kind:
            return message


async def users_become(client: ClientConnection, users: list[str]) -> None:
    """Read ``users`` updates until the list is ``users``."""
    while (await recv_json(client, "users"))["users"] != users:
        pass


async def test_chat_fans_out_between_websockets_clients(tmp_path: Path) -> None:
    async with wsjet_serve(tmp_path, "--port", "0") as served:
        async with ws_connect(served.url) as alice:
            await alice.send(json.dumps({"type": "hello", "name": "alice"}))
            welcome = await recv_json(alice, "welcome")
            assert welcome["name"] == "alice" and welcome["users"] == ["alice"]
            assert "permessage-deflate" in welcome["extensions"]

            async with ws_connect(served.url) as bob:
                await bob.send(json.dumps({"type": "hello", "name": "  bob\n"}))
                assert (await recv_json(bob, "welcome"))["users"] == ["alice", "bob"]
                await users_become(alice, ["alice", "bob"])

                await alice.send(json.dumps({"type": "say", "text": "hi bob ☕"}))
                for client in (alice, bob):
                    message = await recv_json(client, "message")
                    assert (message["name"], message["text"]) == ("alice", "hi bob ☕")
                    assert isinstance(message["time"], int)

                await bob.send(json.dumps({"type": "say", "text": "hi alice"}))
                for client in (alice, bob):
                    message = await recv_json(client, "message")
                    assert (message["name"], message["text"]) == ("bob", "hi alice")

                # A second "alice" gets a distinct name; a rename updates everyone's list.
                async with ws_connect(served.url) as carol:
                    await carol.send(json.dumps({"type": "hello", "name": "alice"}))
                    assert (await recv_json(carol, "welcome"))["name"] == "alice (2)"
                    await users_become(bob, ["alice", "bob", "alice (2)"])
                    await carol.send(json.dumps({"type": "hello", "name": "carol"}))
                    notice = await recv_json(bob, "notice")  # the notice comes first
                    while "is now" not in notice["text"]:
                        notice = await recv_json(bob, "notice")
                    assert notice["text"] == "alice (2) is now carol"
                    await users_become(bob, ["alice", "bob", "carol"])
                await users_become(bob, ["alice", "bob"])

                # A binary message is a round-trip test: it comes back to its sender only.
                await bob.send(b"\x01" * 1000)
                assert await asyncio.wait_for(bob.recv(), PATIENCE) == b"\x01" * 1000

            # bob left: alice's user list shrinks and she is told.
            await users_become(alice, ["alice"])

            # Errors are answered, not fatal.
            await alice.send("not json")
            assert "JSON" in (await recv_json(alice, "error"))["text"]
            await alice.send(json.dumps({"type": "say", "text": "x" * 5000}))
            assert "at most" in (await recv_json(alice, "error"))["text"]
            await alice.send(json.dumps({"type": "dance"}))
            assert "unknown" in (await recv_json(alice, "error"))["text"]

        # Before joining, nobody can post.
        async with ws_connect(served.url) as lurker:
            await lurker.send(json.dumps({"type": "say", "text": "boo"}))
            assert "join first" in (await recv_json(lurker, "error"))["text"]
    log = served.log.read_text()
    assert "joined as 'alice'" in log


async def test_chat_websocket_upgrade_only_on_ws_paths(tmp_path: Path) -> None:
    async with wsjet_serve(tmp_path, "--port", "0") as served:
        base = f"ws://127.0.0.1:{served.port}"
        async with ws_connect(f"{base}/") as client:  # "/" upgrades too
            await client.send(json.dumps({"type": "hello", "name": "root"}))
            assert (await recv_json(client, "welcome"))["name"] == "root"
        with pytest.raises(websockets.InvalidStatus) as info:
            await ws_connect(f"{base}/elsewhere")
        assert info.value.response.status_code == 404


def test_version_and_help() -> None:
    result = subprocess.run([*WSJET_MODULE, "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("wsjet ")
    result = subprocess.run([*WSJET_SCRIPT, "serve", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for option in (
        "--host",
        "--port",
        "--echo",
        "--certfile",
        "--keyfile",
        "--unix",
        "--basic-auth",
        "--origin",
    ):
        assert option in result.stdout
    result = subprocess.run([*WSJET_SCRIPT, "connect", "--help"], capture_output=True, text=True)
    for option in ("--header", "--subprotocol", "--insecure", "--unix"):
        assert option in result.stdout


# --- the chat room's pieces, in process -------------------------------------------------


def test_chat_names_are_cleaned() -> None:
    from wsjet.demo.chat import MAX_NAME, clean_name

    assert clean_name("  alice  ") == "alice"
    assert clean_name("a\x00l\u200bi\nce") == "ali ce"  # controls and format characters go
    assert clean_name("x" * 100) == "x" * MAX_NAME
    assert clean_name("   ") is None
    assert clean_name(42) is None


async def test_chat_drops_a_member_who_cannot_keep_up() -> None:
    """A full outbound queue is emptied and replaced by the order to close (1008)."""
    from wsjet.demo.chat import QUEUE_SIZE, ChatRoom, Member

    room = ChatRoom()
    member = Member(websocket=None, number=1, name="slow")  # type: ignore[arg-type]
    for n in range(QUEUE_SIZE):
        room._post(member, f"message {n}")
    assert member.outbox.qsize() == QUEUE_SIZE
    room._post(member, "one too many")
    assert member.outbox.qsize() == 1
    assert member.outbox.get_nowait() is None
