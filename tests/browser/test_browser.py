"""The demo chat in a real browser: Debian's Chromium, headless, driven by Playwright.

``wsjet serve`` runs as a subprocess; the browser reaches it through a small
byte-counting TCP relay started by the test, so compression is checked on the
wire, not just claimed. Two pages join, one sends, both display it; a page sends
a 256 KiB binary message that the server sends back, and it arrives intact,
with permessage-deflate negotiated by the browser itself and far fewer than
256 KiB on the wire each way. Screenshots go to ``test-artifacts/browser/``.

Installs nothing: ``scripts/install-system-deps.sh`` installs Chromium, and the
``playwright`` Python package comes with the test extra (its own browser
download is never used: it fails on machines without network access).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
PROBE_SIZE = 256 * 1024
#: Deadlock guard for one step (Playwright's expect() and subprocess reads).
PATIENCE = 30.0

expect.set_options(timeout=PATIENCE * 1000)


# --- the server, and a relay that counts what crosses it ---------------------------------


@dataclass
class Served:
    process: asyncio.subprocess.Process
    port: int
    log: Path


@contextlib.asynccontextmanager
async def wsjet_serve(tmp_path: Path, port: int = 0) -> AsyncIterator[Served]:
    """``wsjet serve --port PORT``: the demo exactly as a user starts it."""
    log = tmp_path / f"serve-{os.urandom(4).hex()}.log"
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "wsjet", "serve", "--port", str(port),
            stdout=asyncio.subprocess.PIPE, stderr=stderr,
        )  # fmt: skip
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), PATIENCE)
        match = re.match(rb"listening on ws://127\.0\.0\.1:(\d+)/ws", line)
        assert match, f"unexpected first line {line!r}; log:\n{log.read_text()}"
        yield Served(process, int(match.group(1)), log)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.communicate(), PATIENCE)


@pytest.fixture
async def demo_server(tmp_path: Path) -> AsyncIterator[Served]:
    async with wsjet_serve(tmp_path) as served:
        yield served


@dataclass
class Relayed:
    """One TCP connection through the relay."""

    first_line: bytes = b""
    up: int = 0  # browser -> server bytes
    down: int = 0  # server -> browser bytes

    @property
    def websocket(self) -> bool:
        return self.first_line.startswith(b"GET /ws ")


@dataclass
class Relay:
    """A loopback TCP relay that counts the bytes of each connection, both ways."""

    target: int
    port: int = 0
    connections: list[Relayed] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def websocket_bytes(self) -> tuple[int, int]:
        """Bytes up and down, summed over the WebSocket connections so far."""
        sockets = [c for c in self.connections if c.websocket]
        return sum(c.up for c in sockets), sum(c.down for c in sockets)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        relayed = Relayed()
        self.connections.append(relayed)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            self.tasks.discard(task)
            return

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, up: bool) -> None:
            with contextlib.suppress(ConnectionError):
                while chunk := await source.read(65536):
                    if up:
                        if not relayed.first_line:
                            relayed.first_line = chunk.split(b"\r\n", 1)[0]
                        relayed.up += len(chunk)
                    else:
                        relayed.down += len(chunk)
                    sink.write(chunk)
                    await sink.drain()
            # One side is done: so is the relayed connection.
            sink.close()

        try:
            await asyncio.gather(pump(reader, up_writer, True), pump(up_reader, writer, False))
        finally:
            for stream in (writer, up_writer):
                stream.close()
                with contextlib.suppress(ConnectionError):
                    await stream.wait_closed()
            self.tasks.discard(task)


@pytest.fixture
async def relay(demo_server: Served) -> AsyncIterator[Relay]:
    relay = Relay(demo_server.port)
    server = await asyncio.start_server(relay.handle, "127.0.0.1", 0)
    relay.port = server.sockets[0].getsockname()[1]
    try:
        async with server:
            yield relay
            server.close()
            for task in list(relay.tasks):
                task.cancel()
            await asyncio.gather(*relay.tasks, return_exceptions=True)
    finally:
        await server.wait_closed()


# --- the browser ------------------------------------------------------------------------


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-system-deps.sh")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            await browser.close()


def watch_errors(page: Page, errors: list[str]) -> None:
    """Collect the page's uncaught exceptions and console errors."""
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on(
        "console",
        lambda message: (
            errors.append(f"console: {message.text}") if message.type == "error" else None
        ),
    )


async def join(page: Page, url: str, name: str) -> None:
    await page.goto(url)
    await expect(page.locator("#state")).to_have_attribute("data-state", "open")
    await expect(page.locator("#state")).to_have_text("connected")
    await page.fill("#name", name)
    await page.click("#name-button")
    await expect(page.locator("#me")).to_have_text(name)
    await expect(page.locator("#name-button")).to_have_text("Rename")


async def test_two_pages_chat_and_a_compressed_256_kib_round_trip(
    demo_server: Served, relay: Relay, browser: Browser
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{relay.port}/"
    context = await browser.new_context(viewport={"width": 1100, "height": 640})
    errors: list[str] = []
    try:
        alice = await context.new_page()
        bob = await context.new_page()
        watch_errors(alice, errors)
        watch_errors(bob, errors)

        await join(alice, url, "alice")
        await join(bob, url, "bob")
        for page in (alice, bob):
            await expect(page.locator("#users li")).to_have_text(["alice", "bob"])
            await expect(page.locator("#user-count")).to_have_text("2")

        # One sends (typing and pressing Enter), both display it.
        await alice.fill("#text", "Hello from alice 👋")
        await alice.press("#text", "Enter")
        for page in (alice, bob):
            await expect(page.locator("#log li .text")).to_have_text(["Hello from alice 👋"])
            await expect(page.locator("#log li .who")).to_have_text(["alice"])
        await expect(alice.locator("#log li.mine .text")).to_have_text(["Hello from alice 👋"])
        await bob.fill("#text", "Hi alice! <b>not bold</b>")
        await bob.click("#send")
        for page in (alice, bob):
            await expect(page.locator("#log li .text")).to_have_text(
                ["Hello from alice 👋", "Hi alice! <b>not bold</b>"]  # text, never markup
            )
        assert await alice.locator("#log b").count() == 0

        # The 256 KiB test message, from the button: it comes back intact...
        up_before, down_before = relay.websocket_bytes()
        await alice.click("#probe")
        await expect(alice.locator("#probe-result")).to_have_class("ok")
        await expect(alice.locator("#probe-result")).to_contain_text("came back intact")
        report: dict[str, Any] = await alice.evaluate("window.wsjetDemo.lastProbe")
        assert report["ok"] is True
        assert report["sent"] == report["received"] == PROBE_SIZE
        # ...with permessage-deflate negotiated by the browser (its own ws.extensions)...
        assert report["extensions"].startswith("permessage-deflate")
        await expect(alice.locator("#extensions")).to_contain_text("permessage-deflate")
        # ...and compressed on the wire both ways: far fewer bytes than 256 KiB crossed.
        up_after, down_after = relay.websocket_bytes()
        assert 0 < up_after - up_before < PROBE_SIZE // 2
        assert 0 < down_after - down_before < PROBE_SIZE // 2

        # The same check through the page's JavaScript API, from the other page.
        report = await bob.evaluate("window.wsjetDemo.sendProbe()")
        assert report["ok"] is True and report["received"] == PROBE_SIZE
        assert "permessage-deflate" in report["extensions"]

        # The server saw the browser negotiate it too.
        assert "extensions: permessage-deflate" in demo_server.log.read_text()

        await alice.screenshot(path=str(ARTIFACTS / "chat-alice.png"))
        await bob.screenshot(path=str(ARTIFACTS / "chat-bob.png"))

        # A tab closes: the other one's user list updates and it is told.
        await bob.close()
        await expect(alice.locator("#users li")).to_have_text(["alice"])
        await expect(alice.locator("#log li.notice").last).to_have_text("bob left")
        await alice.screenshot(path=str(ARTIFACTS / "chat-after-leave.png"))
    finally:
        await context.close()
    assert errors == []
    assert (ARTIFACTS / "chat-alice.png").stat().st_size > 10_000


async def test_page_shows_disconnection_and_reconnects(
    demo_server: Served, browser: Browser, tmp_path: Path
) -> None:
    """The page tells when the server goes away (here: shuts down with 1001), then
    reconnects and joins again under the same name when a server is back."""
    url = f"http://127.0.0.1:{demo_server.port}/"
    context = await browser.new_context()
    errors: list[str] = []
    try:
        page = await context.new_page()
        await join(page, url, "carol")
        demo_server.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(demo_server.process.wait(), PATIENCE) == 0
        await expect(page.locator("#state")).to_have_attribute("data-state", "closed")
        # The code is read from the page's log, which keeps it: the state pill shows it
        # only until the first reconnection attempt, 0.5 s later, fails (the server is
        # gone) and the pill says 1006 instead, which a slow machine can see first.
        disconnections = page.locator("#log li.notice", has_text="Disconnected (code")
        await expect(disconnections.first).to_contain_text("Disconnected (code 1001)")
        await expect(page.locator("#text")).to_be_disabled()
        await expect(page.locator("#users li")).to_have_count(0)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "chat-disconnected.png"))
        # The browser logs its failed reconnection attempts from here on: not page errors.
        watch_errors(page, errors)

        async with wsjet_serve(tmp_path, demo_server.port):
            await expect(page.locator("#state")).to_have_attribute("data-state", "open")
            await expect(page.locator("#me")).to_have_text("carol")
            await expect(page.locator("#users li")).to_have_text(["carol"])
            await page.fill("#text", "back again")
            await page.press("#text", "Enter")
            await expect(page.locator("#log li .text")).to_have_text(["back again"])
    finally:
        await context.close()
    assert not [e for e in errors if e.startswith("pageerror")], errors
