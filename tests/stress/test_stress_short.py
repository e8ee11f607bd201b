"""The short variant of every stress scenario, as CI runs it (issue 6).

Each test runs one scenario of :mod:`tests.stress` with its ``SHORT``
parameters and asserts that its ``check()`` finds no missed target. A failure
message lists the figures: rerun the full variant with
``python -m tests.stress.<name>`` to see them at scale.

The timing bounds asserted here are the ones issue 6 states (open_timeout ± 1 s,
1009 within 100 ms, keepalive 1.0 ± 0.2 s, close_timeout ± 0.5 s, shutdown
within close_timeout); measured servers run in subprocesses, outside
coverage and dev mode.
"""

from __future__ import annotations

import functools
import json
import time
from types import ModuleType
from typing import Any

import pytest

from wsjet.core import handshake

from . import (
    bomb,
    churn,
    close_handshake,
    fragments,
    header_cpu,
    idle_memory,
    keepalive,
    lengths,
    malformed,
    no_recv,
    ping_flood,
    shutdown,
    slow_reader,
    slowloris,
    soak,
)

SCENARIOS: list[ModuleType] = [
    malformed,
    header_cpu,
    slowloris,
    churn,
    bomb,
    fragments,
    lengths,
    ping_flood,
    slow_reader,
    no_recv,
    keepalive,
    close_handshake,
    shutdown,
    idle_memory,
    soak,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
async def test_short_variant(scenario: Any) -> None:
    result = await scenario.run(**scenario.SHORT)
    failures = scenario.check(result)
    assert not failures, "\n".join(
        [*failures, "figures:", json.dumps(result, indent=1, default=str)]
    )


def test_every_scenario_has_a_full_and_a_short_variant() -> None:
    for scenario in SCENARIOS:
        assert set(scenario.FULL) == set(scenario.SHORT), scenario.__name__
        assert callable(scenario.run) and callable(scenario.check)


def test_header_cpu_whole_block_is_a_target(monkeypatch: pytest.MonkeyPatch) -> None:
    """header_cpu judges whole 64 KiB header blocks (<= 5 ms), not only single lines,
    and the cap on Sec-WebSocket-Protocol / -Extensions is what keeps them cheap.

    Before the cap, 7 lines of valid extension offers cost ~13 ms (issue 6).
    """
    figures = {
        "parser_worst_ms": 1.0,
        "parser_worst_kind": "x",
        "parser_block_worst_ms": 0.2,
        "parser_block_worst_kind": "Extensions params",
        "server_worst_extra_ms": 0.3,
        "parser_linearity": {},
        "parser_dripped_ms": {"2048": 1.0, "8192": 4.0},
    }
    assert header_cpu.check(figures) == []
    failures = header_cpu.check({**figures, "parser_block_worst_ms": 13.0})
    assert failures == ["parser: 13.00 ms for a 64 KiB block of Extensions params"]

    def block_ms(kind: str) -> float:
        block = header_cpu.build(kind, 8192, lines=7)
        best = float("inf")
        for _ in range(3):
            start = time.process_time()
            header_cpu.server_path(block)
            best = min(best, time.process_time() - start)
        return best * 1000

    capped = {kind: block_ms(kind) for kind in ("Extensions params", "Protocol a,a,a")}
    uncapped = functools.partial(handshake.check_request, max_negotiation_bytes=1 << 20)
    monkeypatch.setattr(handshake, "check_request", uncapped)
    for kind, cost in capped.items():
        assert block_ms(kind) > 4 * cost, kind
