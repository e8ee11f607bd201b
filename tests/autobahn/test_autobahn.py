"""Autobahn TestSuite conformance, driven by kosoku, one test per (mode, face) target.

* server mode: kosoku's fuzzingclient drives our echo server (echo_server.py);
* client mode: our echo client (echo_client.py) drives kosoku's fuzzingserver.

A target passes when every selected case passes by kosoku's own rule: behavior
OK / NON-STRICT / INFORMATIONAL *and* behavior_close OK / INFORMATIONAL -- so
no FAILED, UNIMPLEMENTED or ERROR, and no WRONG CODE / UNCLEAN / FAILED BY CLIENT /
FAILED close -- plus the run completes and the echo peer sees no exception from
outside the library's exception tree. See harness.py for details.

Environment:

* ``WSJET_AUTOBAHN_IMPL``: ``wsjet`` (default) or ``websockets`` (validates the harness).
* ``WSJET_AUTOBAHN_EXCLUDE``: comma-separated case globs to leave out; default
  ``12.*,13.*`` (permessage-deflate); the empty string runs everything. A glob
  prefixed ``server:`` or ``client:`` applies to that mode only, e.g.
  ``client:13.2.*``, and one prefixed with a target to that target only, e.g.
  ``server-callback:12.*``.
* ``WSJET_AUTOBAHN_INCLUDE``: comma-separated case globs to run (default: all),
  same syntax.
* ``WSJET_AUTOBAHN_PARALLELISM``: cases run at once (default 1): by kosoku's fuzzingclient in
  server mode, by our echo client in client mode.
* ``WSJET_AUTOBAHN_TIMEOUT``: seconds allowed per target (default 900).
* ``WSJET_AUTOBAHN_HTML=1``: also write kosoku's Autobahn-style HTML/JSON report to
  reports/autobahn/html/<mode>-<impl>-<face>/index.html.

Summaries land in reports/autobahn/<mode>-<impl>-<face>.json;
``python tests/autobahn/write_conformance.py`` renders docs/conformance.md from them.
"""

from __future__ import annotations

import os
from typing import Any

import harness
import pytest

CONFIG_ERRORS: list[str] = []


def _env_number(name: str, default: str, kind: type) -> Any:
    raw = os.environ.get(name, default)
    try:
        return kind(raw)
    except ValueError:
        CONFIG_ERRORS.append(f"{name}={raw!r} is not a number")
        return kind(default)


IMPL = os.environ.get("WSJET_AUTOBAHN_IMPL", "wsjet").strip()
if IMPL not in harness.FACES:
    CONFIG_ERRORS.append(f"WSJET_AUTOBAHN_IMPL={IMPL!r}: expected one of {sorted(harness.FACES)}")
_EXCLUDE_ENV = os.environ.get("WSJET_AUTOBAHN_EXCLUDE")
EXCLUDE = (
    list(harness.DEFAULT_EXCLUDE) if _EXCLUDE_ENV is None else harness.parse_globs(_EXCLUDE_ENV)
)
INCLUDE = harness.parse_globs(os.environ.get("WSJET_AUTOBAHN_INCLUDE"))
PARALLELISM: int = _env_number("WSJET_AUTOBAHN_PARALLELISM", "1", int)
TIMEOUT: float = _env_number("WSJET_AUTOBAHN_TIMEOUT", "900", float)
HTML = os.environ.get("WSJET_AUTOBAHN_HTML", "").strip() not in ("", "0")

# A misconfiguration still yields (failing) tests rather than none: never skip.
TARGETS = harness.targets(IMPL) if IMPL in harness.FACES else [("server", "coroutine")]


@pytest.mark.autobahn
@pytest.mark.timeout(TIMEOUT + 120)  # backstop only: the harness enforces TIMEOUT itself
@pytest.mark.parametrize(("mode", "face"), TARGETS, ids=[f"{m}-{f}" for m, f in TARGETS])
def test_autobahn(mode: str, face: str) -> None:
    if CONFIG_ERRORS:
        pytest.fail("; ".join(CONFIG_ERRORS), pytrace=False)

    summary = harness.run(
        mode,
        IMPL,
        face,
        include=INCLUDE,
        exclude=EXCLUDE,
        parallelism=PARALLELISM,
        timeout=TIMEOUT,
        html=HTML,
    )

    if harness.violations(summary):
        pytest.fail(harness.format_report(summary), pytrace=False)
