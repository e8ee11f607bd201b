"""The package's public surface and layering rules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import wsjet


def test_all_is_explicit_and_importable() -> None:
    assert len(wsjet.__all__) == len(set(wsjet.__all__))
    for name in wsjet.__all__:
        assert getattr(wsjet, name) is not None, name
    assert sorted(dir(wsjet)) == sorted(wsjet.__all__)


def test_lazy_table_matches_all() -> None:
    assert set(wsjet.__all__) == {"__version__", *wsjet._EXPORTS}


def test_unknown_attribute() -> None:
    try:
        wsjet.does_not_exist  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "does_not_exist" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_seed_module_paths() -> None:
    import wsjet.client
    import wsjet.exceptions
    import wsjet.protocol
    import wsjet.server

    assert wsjet.server.serve is wsjet.serve
    assert wsjet.client.connect is wsjet.connect
    assert issubclass(wsjet.server.WebSocketServerProtocol, wsjet.protocol.WebSocketCommonProtocol)
    assert issubclass(wsjet.client.WebSocketClientProtocol, wsjet.protocol.WebSocketCommonProtocol)
    assert issubclass(wsjet.exceptions.ConnectionClosed, wsjet.exceptions.WebSocketError)


FORBIDDEN = {"asyncio", "socket", "ssl", "time"}


def test_core_never_imports_io_modules() -> None:
    # The Sans-I/O core must not use asyncio, socket, ssl or time (DESIGN §2).
    # Statically: no import statement in wsjet/core names them ...
    core = Path(wsjet.__file__).parent / "core"
    for path in core.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"
    # ... and at run time, importing the core loads none of them (time is
    # preloaded by the interpreter itself, so only the delta is checked).
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import wsjet.core.connection, wsjet.core.handshake, wsjet.core.http\n"
        "import wsjet.core.deflate, wsjet.core.uri, wsjet.core.frames, wsjet.core.events\n"
        "new = set(sys.modules) - before\n"
        f"print(','.join(sorted(m for m in new if m.split('.')[0] in {FORBIDDEN!r})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
