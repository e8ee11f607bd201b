"""Test-wide configuration: the event loop under test.

``WSJET_TEST_LOOP=uvloop`` runs every asyncio test on uvloop; the test command
runs the suite on both loops.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

import wsjet.core


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to test a compiled module older than its source.

    An editable install compiles each of ``COMPILED_MODULES`` (and its
    ``.pxd``) into an extension beside its ``.py``, which Python imports first:
    after an edit, the tests would run the old code until
    ``bash scripts/bootstrap.sh`` rebuilds it.
    """
    if wsjet.core.NO_EXTENSIONS:
        return
    package_root = Path(wsjet.core.__file__).parent.parent.parent
    for name in sorted(wsjet.core.COMPILED_MODULES):
        stem = package_root.joinpath(*name.split("."))
        for built in stem.parent.glob(stem.name + ".*.so"):
            for source in (stem.with_suffix(".py"), stem.with_suffix(".pxd")):
                if built.stat().st_mtime < source.stat().st_mtime:
                    pytest.exit(
                        f"{built.name} is older than {source.name}: run scripts/bootstrap.sh"
                    )


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Pick the event loop implementation from ``WSJET_TEST_LOOP``."""
    if os.environ.get("WSJET_TEST_LOOP") == "uvloop":
        import uvloop

        return {"uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate (cert, key) for localhost / 127.0.0.1, made by openssl."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key
