"""The hostile-input battery (issue 6) against wsjet, websockets and aiohttp, side by side.

Usage::

    .venv/bin/python bench/security_compare.py            # the issue's counts, 3 runs, ~7 min
    .venv/bin/python bench/security_compare.py --quick    # small counts, under 2 minutes
    .venv/bin/python bench/security_compare.py --only bomb,fragments --libraries wsjet,aiohttp

Each attack is a scenario of ``tests/stress/`` (imported, not copied) run
three times, once per server: wsjet's coroutine face (``tests/stress/_server.py``),
``websockets.asyncio.server.serve`` and ``aiohttp.web.WebSocketResponse``
(``bench/_security_server.py``). Every server is an echo server (or the
scenario's own handler) in a subprocess on 127.0.0.1 with the same settings:
max_size 1 MiB, open and close timeouts 10 s, keepalive off, write limit 64 KiB,
permessage-deflate on unless the scenario turns it off
(``bench/_security_harness.py`` has the mapping onto each library). The server
processes are measured from ``/proc/PID`` (VmRSS / VmHWM, fds) and through the
battery's command protocol (tasks, connections, log counts).

Output: a table, per attack and figure, wsjet | websockets | aiohttp and
whether wsjet matches or beats the better of the other two; then whether each
server meets the issue's targets (the battery's own ``check()``), and details.
The full mode writes ``bench/results/security_compare.txt`` and ``.json``.
Every scenario run is bounded in time (``--cap-scale`` scales the bounds), so
a server that hangs costs its bound, not the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _security_harness import (
    LIBRARIES,
    ROOT,
    LibraryServer,
    answer_head,
    flood,
    serving,
)
from tests.stress import (
    bomb,
    churn,
    idle_memory,
    malformed,
    ping_flood,
    shutdown,
    slow_reader,
    slowloris,
)

Raw = dict[str, Any]

# --- figures and verdicts --------------------------------------------------------------------


@dataclass
class Figure:
    """One measured quantity of an attack, for each library.

    ``better`` is ``"lower"``, ``"higher"`` or ``"info"`` (shown, not judged).
    wsjet "matches" when it is within ``max(abs_slack, rel_slack x best)`` of
    the better of the other two: the slack is the run-to-run noise seen on
    this machine, not a handicap.
    """

    label: str
    better: str
    values: dict[str, float | None]
    shown: dict[str, str]
    abs_slack: float = 0.0
    rel_slack: float = 0.0

    def verdict(self) -> str:
        if self.better == "info":
            return ""
        mine = self.values.get("wsjet")
        others = [v for lib, v in self.values.items() if lib != "wsjet" and v is not None]
        if mine is None:
            return "NO (no figure)"
        if not others:
            return "n/a (no rival figure)"
        best = min(others) if self.better == "lower" else max(others)
        slack = max(self.abs_slack, self.rel_slack * abs(best))
        gain = best - mine if self.better == "lower" else mine - best
        if gain > slack:
            return "beats"
        if gain >= 0:
            return "matches"
        if gain >= -slack:
            return "matches (within noise)"
        return "WORSE"

    def ok(self) -> bool:
        return not self.verdict().startswith(("WORSE", "NO"))


def figure(
    label: str,
    better: str,
    runs: dict[str, list[Raw]],
    value: Callable[[Raw], float | None],
    show: Callable[[Raw], str] | None = None,
    *,
    fmt: Callable[[float], str] | None = None,
    abs_slack: float = 0.0,
    rel_slack: float = 0.0,
) -> Figure:
    """Build a :class:`Figure` from each library's runs.

    With several runs, the figure is the median run's (its text shown first),
    followed by every run's value in brackets when they differ. Runs that
    failed are left out and counted.
    """
    values: dict[str, float | None] = {}
    shown: dict[str, str] = {}
    for lib, raws in runs.items():
        good = [raw for raw in raws if "error" not in raw]
        if not good:
            values[lib] = None
            shown[lib] = f"error: {raws[0]['error'][:80]}" if raws else "not run"
            continue
        try:
            scored = [(value(raw), raw) for raw in good]
            numbered = sorted(
                ((v, raw) for v, raw in scored if v is not None), key=lambda pair: pair[0]
            )
            chosen, raw = numbered[len(numbered) // 2] if numbered else (None, good[0])
            text = show(raw) if show is not None else _fmt(chosen)
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
            values[lib], shown[lib] = None, f"n/a ({type(exc).__name__})"
            continue
        if len({v for v, _ in numbered}) > 1 and better != "info":
            text += " [" + " / ".join((fmt or _fmt)(v) for v, _ in numbered) + "]"
        if len(good) < len(raws):
            text += f" ({len(raws) - len(good)} of {len(raws)} runs failed)"
        values[lib], shown[lib] = chosen, text
    return Figure(label, better, values, shown, abs_slack, rel_slack)


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"


def _mib(kib: float) -> str:
    return f"{kib / 1024:+.1f} MiB"


def _growth(key: str) -> Callable[[Raw], float]:
    return lambda raw: float(raw[key])


def _delta(before: str, after: str) -> Callable[[Raw], float]:
    return lambda raw: float(abs(raw[after] - raw[before]))


def _delta_shown(before: str, after: str) -> Callable[[Raw], str]:
    return lambda raw: f"{raw[before]} -> {raw[after]}"


def cpu_figure(runs: dict[str, list[Raw]], better: str = "lower") -> Figure:
    """Server CPU seconds from the baseline to the end: steadier than wall time here."""
    return figure(
        "server CPU time (s)",
        better,
        runs,
        lambda r: float(r["server_cpu_s"]),
        rel_slack=0.15,
        abs_slack=0.1,
    )


def fds_figure(runs: dict[str, list[Raw]]) -> Figure:
    """The server's open file descriptors before and after the attack."""
    return figure(
        "fds before -> after",
        "lower",
        runs,
        _delta("fds_before", "fds_after"),
        _delta_shown("fds_before", "fds_after"),
    )


def rss_figure(runs: dict[str, list[Raw]], label: str, key: str, slack_kib: int) -> Figure:
    """A server memory growth figure, in MiB, from the raw field ``key`` (KiB)."""
    return figure(
        label,
        "lower",
        runs,
        _growth(key),
        lambda r: _mib(r[key]),
        fmt=_mib,
        abs_slack=slack_kib,
    )


# --- the attacks -------------------------------------------------------------------------------


@dataclass
class Attack:
    key: str
    title: str
    target: str
    issue_figure: str
    run: Callable[[str, Raw], Awaitable[Raw]]
    figures: Callable[[dict[str, list[Raw]]], list[Figure]]
    check: Callable[[Raw], list[str]]
    params: dict[str, Raw]
    cap_s: dict[str, float]
    notes: list[str] = field(default_factory=list)
    #: Runs per library and mode; the figures are the median run's.
    repeats: dict[str, int] = field(default_factory=lambda: {"full": 3, "quick": 1})


def scenario_runner(scenario: ModuleType) -> Callable[[str, Raw], Awaitable[Raw]]:
    """An Attack's ``run``: the tests/stress ``scenario`` as it is, against ``library``'s server."""

    async def run(library: str, params: Raw) -> Raw:
        with serving(library, scenario):
            result: Raw = await scenario.run(**params)
            return result

    return run


# Malformed handshakes -------------------------------------------------------------------------


async def run_malformed(library: str, params: Raw) -> Raw:
    with serving(library, malformed), mock.patch.object(malformed, "_one", answer_head):
        return await malformed.run(**params)


def _malformed_tally(raw: Raw) -> dict[str, int]:
    """Split the battery's wrong answers: a right 4xx (or a close) vs a wrong or late one."""
    tally = {"exact": raw["requests"], "right": raw["requests"]}
    for key, count in raw["wrong_answers"].items():
        head, want = key.rsplit(", want ", 1)
        _, got = head.rsplit(": got ", 1)
        tally["exact"] -= count
        if want == "101":
            right = got == "101"
        else:
            right = got == "None" or (got.lstrip("-").isdigit() and 400 <= int(got) < 500)
        if not right:
            tally["right"] -= count
    return tally


def figures_malformed(raws: dict[str, list[Raw]]) -> list[Figure]:
    def right(raw: Raw) -> float:
        return float(_malformed_tally(raw)["right"])

    def exact(raw: Raw) -> float:
        return float(_malformed_tally(raw)["exact"])

    return [
        figure(
            "right answer within 1 s (4xx or close; 101 for the 2 valid kinds)",
            "higher",
            raws,
            right,
            lambda r: f"{int(right(r)):,} / {r['requests']:,}",
        ),
        figure(
            "same status as wsjet's table (405, 414, 426, 431...)",
            "info",
            raws,
            exact,
            lambda r: f"{int(exact(r)):,} / {r['requests']:,}",
        ),
        figure(
            "slowest answer (s; 2.0 = none in 2 s)",
            "lower",
            raws,
            lambda r: round(r["max_answer_s"], 3),
            lambda r: f"{r['max_answer_s']:.3f} ({r['slowest_kind']})",
            abs_slack=0.05,
            rel_slack=0.2,
        ),
        rss_figure(raws, "server RSS growth", "rss_growth_kib", 512),
        fds_figure(raws),
        figure(
            "concurrent echo client: failed round trips",
            "lower",
            raws,
            lambda r: float(r["echo_failed"]),
            lambda r: f"{r['echo_failed']} failed / {r['echo_ok']} ok",
        ),
        cpu_figure(raws),
    ]


# Slowloris ------------------------------------------------------------------------------------


def figures_slowloris(raws: dict[str, list[Raw]]) -> list[Figure]:
    def worst_offset(raw: Raw) -> float | None:
        if raw["closed_min_s"] is None:
            return None
        return round(
            max(
                abs(raw["closed_min_s"] - raw["open_timeout"]),
                abs(raw["closed_max_s"] - raw["open_timeout"]),
            ),
            2,
        )

    def window(raw: Raw) -> str:
        if raw["closed_min_s"] is None:
            return f"none closed in {raw['open_timeout'] + 10:.0f} s"
        return f"{raw['closed_min_s']:.2f}-{raw['closed_max_s']:.2f} s"

    return [
        figure(
            "connections closed by the server",
            "higher",
            raws,
            lambda r: float(r["connections"] - r["never_closed"]),
            lambda r: f"{r['connections'] - r['never_closed']} / {r['connections']}",
        ),
        figure(
            "closed at (s after connect; open_timeout = 10 s)",
            "lower",
            raws,
            worst_offset,
            window,
            abs_slack=0.25,
        ),
        figure(
            "server peak RSS growth while held",
            "lower",
            raws,
            _growth("rss_growth_kib"),
            lambda r: _mib(r["rss_growth_kib"]),
            fmt=_mib,
            abs_slack=512,
        ),
        fds_figure(raws),
    ]


# Churn ----------------------------------------------------------------------------------------


def figures_churn(raws: dict[str, list[Raw]]) -> list[Figure]:
    return [
        figure(
            "time for all handshakes + resets (s)",
            "lower",
            raws,
            lambda r: round(r["elapsed_s"], 2),
            rel_slack=0.15,
        ),
        cpu_figure(raws),
        rss_figure(raws, "server RSS growth", "rss_growth_kib", 1024),
        fds_figure(raws),
        figure(
            "tasks before -> after",
            "lower",
            raws,
            _delta("tasks_before", "tasks_after"),
            _delta_shown("tasks_before", "tasks_after"),
        ),
        figure(
            "connections still open after 10 s",
            "lower",
            raws,
            lambda r: float(r["open_after"]),
        ),
        figure(
            "error logs / tracebacks",
            "lower",
            raws,
            lambda r: float(r["errors"] + r["tracebacks"]),
            lambda r: f"{r['errors']} / {r['tracebacks']}",
        ),
    ]


# Decompression bomb ---------------------------------------------------------------------------


async def run_bomb(library: str, params: Raw) -> Raw:
    with serving(library, bomb):
        forms = await bomb.attack_server(params["size"], params["messages"])
    return {
        "inflated_bytes": params["size"],
        "compressed_bytes": len(bomb.bomb_stream(params["size"])),
        "forms": forms,
        "limit_ms": params["limit_ms"],
    }


def check_bomb(raw: Raw) -> list[str]:
    return bomb.check(
        {
            "server_side": raw["forms"],
            "client_side": {},
            "limit_ms": raw["limit_ms"],
            "max_size": bomb.MAX_SIZE,
        }
    )


def figures_bomb(raws: dict[str, list[Raw]]) -> list[Figure]:
    def codes(raw: Raw) -> str:
        return ", ".join(str(f["close_code"]) for f in raw["forms"].values())

    def slowest(raw: Raw) -> float | None:
        times = [f["ms"] for f in raw["forms"].values()]
        return None if None in times else max(times)

    return [
        figure(
            "forms answered 1009 (one frame, 64 KiB fragments, context takeover)",
            "higher",
            raws,
            lambda r: float(sum(f["close_code"] == 1009 for f in r["forms"].values())),
            lambda r: (
                f"{sum(f['close_code'] == 1009 for f in r['forms'].values())} / 3 ({codes(r)})"
            ),
        ),
        figure(
            "slowest close (ms from first byte sent)",
            "lower",
            raws,
            slowest,
            lambda r: " / ".join(f"{f['ms']}" for f in r["forms"].values()),
            abs_slack=5,
            rel_slack=0.25,
        ),
        figure(
            "largest peak RSS growth",
            "lower",
            raws,
            lambda r: float(max(f["peak_rss_growth_kib"] for f in r["forms"].values())),
            lambda r: " / ".join(_mib(f["peak_rss_growth_kib"]) for f in r["forms"].values()),
            fmt=_mib,
            abs_slack=1024,
        ),
    ]


# Tiny fragments -------------------------------------------------------------------------------

FRAGMENT_CASES = ("pass_one_byte", "pass_empty", "over_limit", "empty_flood", "one_byte_flood")


async def run_fragments(library: str, params: Raw) -> Raw:
    limit, wait_s = params["limit"], params["wait_s"]
    with serving(library):
        async with LibraryServer(library, "echo", {"compression": None}) as server:
            out: Raw = {"limit": limit, "empty": params["empty"], "one_byte": params["one_byte"]}
            out["pass_one_byte"] = await flood(server, limit, b"a", wait_s)
            out["pass_empty"] = await flood(server, limit, b"", wait_s)
            out["over_limit"] = await flood(server, limit + 1, b"", wait_s)
            out["empty_flood"] = await flood(server, params["empty"], b"", wait_s)
            out["one_byte_flood"] = await flood(server, params["one_byte"], b"b", wait_s)
            stats = await server.stats()
            out["errors"] = stats["errors"]
    return out


def _outcome(case: Raw) -> str:
    if case["outcome"] == "close":
        return f"close {case['close_code']} at {case['s']:.2f} s"
    if case["outcome"] == "echo":
        return f"echoed {case['echo_bytes']:,} B at {case['s']:.2f} s"
    return case["outcome"]


def check_fragments(raw: Raw) -> list[str]:
    failures = []
    for case in ("pass_one_byte", "pass_empty"):
        if not raw[case].get("echo_ok"):
            failures.append(f"{raw['limit']:,} parts ({case}) not echoed: {_outcome(raw[case])}")
    for case in FRAGMENT_CASES:
        if raw[case]["peak_rss_growth_kib"] >= 8 * 1024:
            failures.append(f"{case}: peak RSS +{raw[case]['peak_rss_growth_kib']} KiB >= 8 MiB")
    if raw["errors"]:
        failures.append(f"{raw['errors']} error logs")
    return failures


def figures_fragments(raws: dict[str, list[Raw]]) -> list[Figure]:
    def passed(raw: Raw) -> float:
        return float(sum(bool(raw[c].get("echo_ok")) for c in ("pass_one_byte", "pass_empty")))

    out = [
        figure(
            "131,072-part messages (1-byte, empty) echoed intact",
            "higher",
            raws,
            passed,
            lambda r: f"{int(passed(r))} / 2",
        ),
        figure(
            "131,072 one-byte parts: peak RSS growth",
            "lower",
            raws,
            lambda r: float(r["pass_one_byte"]["peak_rss_growth_kib"]),
            lambda r: _mib(r["pass_one_byte"]["peak_rss_growth_kib"]),
            fmt=_mib,
            abs_slack=1024,
        ),
        figure(
            "131,073 empty parts",
            "info",
            raws,
            lambda r: None,
            lambda r: _outcome(r["over_limit"]),
        ),
    ]
    for case, label in (("empty_flood", "empty"), ("one_byte_flood", "one-byte")):
        count = next((r[case]["frames"] for rs in raws.values() for r in rs if case in r), 0)
        out.append(
            figure(
                f"{count:,} {label} parts: first answer",
                "info",
                raws,
                lambda r: None,
                lambda r, case=case: _outcome(r[case]),
            )
        )
        out.append(
            figure(
                f"{count:,} {label} parts: peak RSS growth",
                "lower",
                raws,
                lambda r, case=case: float(r[case]["peak_rss_growth_kib"]),
                lambda r, case=case: _mib(r[case]["peak_rss_growth_kib"]),
                fmt=_mib,
                abs_slack=1024,
            )
        )
    return out


# Ping flood -----------------------------------------------------------------------------------


def figures_ping_flood(raws: dict[str, list[Raw]]) -> list[Figure]:
    return [
        rss_figure(raws, "server peak RSS growth", "peak_rss_growth_kib", 1024),
        figure(
            "pings the kernel took before the writer stalled (MiB)",
            "info",
            raws,
            lambda r: float(r["accepted_by_kernel_mib"]),
            lambda r: (
                f"{r['accepted_by_kernel_mib']} of {r['offered_mib']}"
                + (" (stalled)" if r["stalled"] else "")
            ),
        ),
        figure(
            "bystander echo: worst round trip (ms)",
            "lower",
            raws,
            lambda r: float(r["bystander_max_latency_ms"]),
            lambda r: f"{r['bystander_max_latency_ms']} ({r['bystander_round_trips']} trips)",
            abs_slack=50,
            rel_slack=0.5,
        ),
        cpu_figure(raws, "info"),
        fds_figure(raws),
    ]


# Slow reader ----------------------------------------------------------------------------------


def figures_slow_reader(raws: dict[str, list[Raw]]) -> list[Figure]:
    return [
        rss_figure(raws, "server peak RSS growth", "peak_rss_growth_kib", 512),
        figure(
            "send() blocked at the end (s)",
            "higher",
            raws,
            lambda r: float(r["send_blocked_for_s"]),
            lambda r: f"{r['send_blocked_for_s']} of {r['duration_s']} ({r['mib_sent']} MiB sent)",
            abs_slack=0.5,
        ),
        figure(
            "tasks left after the client left",
            "lower",
            raws,
            lambda r: float(abs(r["handler_tasks_after"])),
        ),
    ]


# Graceful shutdown ----------------------------------------------------------------------------


async def run_shutdown(library: str, params: Raw) -> Raw:
    with serving(library, shutdown) as servers:
        result = await shutdown.run(**params)
    answers = [a for s in servers for a in s.close_answers]
    result["close_hung"] = any(a.get("hung") for a in answers)
    return result


def figures_shutdown(raws: dict[str, list[Raw]]) -> list[Figure]:
    def seconds(raw: Raw) -> str:
        text = f"{raw['shutdown_s']:.2f}"
        return text + " (wait_closed() still waiting: gave up)" if raw["close_hung"] else text

    return [
        figure(
            "messages received",
            "higher",
            raws,
            lambda r: float(r["messages_received"]),
            lambda r: f"{r['messages_received']:,} / {r['messages_expected']:,}",
        ),
        figure(
            "clients closed with 1001",
            "higher",
            raws,
            lambda r: float(r["close_codes"].get("1001", 0)),
            lambda r: ", ".join(f"{n} x {code}" for code, n in sorted(r["close_codes"].items())),
        ),
        figure(
            "close() + wait_closed() (s; close_timeout = 10 s)",
            "lower",
            raws,
            lambda r: round(r["shutdown_s"], 2),
            seconds,
            abs_slack=0.25,
            rel_slack=0.1,
        ),
    ]


# Idle memory ----------------------------------------------------------------------------------


def figures_idle_memory(raws: dict[str, list[Raw]]) -> list[Figure]:
    return [
        figure(
            f"KiB per connection, {label}",
            "lower",
            raws,
            lambda r, key=key: float(r[key]),
            abs_slack=0.5,
            rel_slack=0.05,
        )
        for key, label in (
            ("kib_per_connection_no_compression", "no compression"),
            ("kib_per_connection_deflate_no_message", "deflate, before any message"),
            ("kib_per_connection_deflate_after_message", "deflate, after one message"),
        )
    ]


# The table of attacks -------------------------------------------------------------------------

ATTACKS = [
    Attack(
        "malformed",
        "Malformed handshakes",
        ">= 12 kinds x 200: right 4xx within 1 s; RSS growth < 2 MiB; fds at baseline",
        "WS +1 MiB, fds 7->7",
        run_malformed,
        figures_malformed,
        malformed.check,
        {"full": dict(malformed.FULL), "quick": dict(malformed.SHORT)},
        {"full": 240, "quick": 60},
        [
            f"{len(malformed.KINDS)} kinds (tests/stress/malformed.py), 50 at a time, while a"
            " wsjet client echoes on the side. An answer counts once its head is in: the"
            " battery's own reader waits for the close, which would count aiohttp's keep-alive"
            " 4xx as no answer.",
        ],
    ),
    Attack(
        "slowloris",
        "Slowloris",
        "200 conns at 1 byte/s + 200 silent: closed at open_timeout +-1 s, RSS < 5 MiB",
        "WS 10-11 s; aio none in 30 s",
        scenario_runner(slowloris),
        figures_slowloris,
        slowloris.check,
        {"full": dict(slowloris.FULL), "quick": dict(slowloris.SHORT)},
        {"full": 90, "quick": 45},
        [
            "aiohttp has no open timeout: its server closes a connection that has not sent a"
            " whole request after keepalive_timeout (counted from accept since 3.12; default"
            " 3,630 s), so it runs with keepalive_timeout = open_timeout. The extra line"
            " 'aiohttp, default keepalive_timeout' shows it as shipped.",
        ],
        {"full": 1, "quick": 1},
    ),
    Attack(
        "churn",
        "Churn",
        "10,000 handshakes (200 at a time) then RST, every third mid-frame: fds/tasks at"
        " baseline, RSS < 16 MiB",
        "WS 7.1 s, +9 MiB",
        scenario_runner(churn),
        figures_churn,
        churn.check,
        {"full": dict(churn.FULL), "quick": dict(churn.SHORT)},
        {"full": 240, "quick": 60},
    ),
    Attack(
        "bomb",
        "Decompression bomb",
        "1 GiB zeros in 1.04 MB: 1009 within 100 ms; peak RSS growth <= max_size + 8 MiB",
        "WS 7 ms +4 MiB; aio 19 ms +12 MiB",
        run_bomb,
        figures_bomb,
        check_bomb,
        {
            "full": {k: bomb.FULL[k] for k in ("size", "messages", "limit_ms")},
            "quick": {k: bomb.SHORT[k] for k in ("size", "messages", "limit_ms")},
        },
        {"full": 90, "quick": 60},
        ["Server side only (tests/stress/bomb.py attack_server): three forms, one each."],
    ),
    Attack(
        "fragments",
        "Tiny fragments",
        "2,000,000 empty continuation frames; 1,000,000 one-byte fragments: RSS < 8 MiB;"
        " reject only above 131,072 parts",
        "WS rejects at 4,096; aio +0-1 MiB",
        run_fragments,
        figures_fragments,
        check_fragments,
        {
            "full": {"empty": 2_000_000, "one_byte": 1_000_000, "limit": 131_072, "wait_s": 60},
            "quick": {"empty": 300_000, "one_byte": 200_000, "limit": 131_072, "wait_s": 20},
        },
        {"full": 360, "quick": 90},
        [
            "Frames built by tests/stress/fragments.py; each case waits for the server's first"
            " frame back (its close, or the echo) instead of the battery's 60 s wait for a close.",
        ],
    ),
    Attack(
        "ping_flood",
        "Ping flood",
        "300 MiB of pings, peer never reads: RSS growth <= write_limit + 4 MiB",
        "WS +289 MiB; aio +1 MiB",
        scenario_runner(ping_flood),
        figures_ping_flood,
        ping_flood.check,
        {"full": dict(ping_flood.FULL), "quick": dict(ping_flood.SHORT)},
        {"full": 180, "quick": 60},
    ),
    Attack(
        "slow_reader",
        "Slow reader",
        "handler loops send(64 KiB), client never reads, 5 s: RSS < write_limit + 1 MiB",
        "both flat",
        scenario_runner(slow_reader),
        figures_slow_reader,
        slow_reader.check,
        {"full": dict(slow_reader.FULL), "quick": dict(slow_reader.SHORT)},
        {"full": 60, "quick": 40},
    ),
    Attack(
        "shutdown",
        "Graceful shutdown",
        "1,000 clients x 10 messages, one handler ignoring close: 10,000/10,000, all 1001,"
        " done < close_timeout",
        "WS 10,000/10,000 but wait_closed() hung with a stuck handler",
        run_shutdown,
        figures_shutdown,
        shutdown.check,
        {"full": dict(shutdown.FULL), "quick": dict(shutdown.SHORT)},
        {"full": 240, "quick": 60},
        [
            "websockets' wait_closed() waits for every handler: the harness gives up after"
            " 2 x close_timeout + 2 s and reports that time. aiohttp closes its WebSockets with"
            " 1001 from an on_shutdown hook (its documented pattern) and runs with"
            " shutdown_timeout = close_timeout.",
        ],
        {"full": 1, "quick": 1},
    ),
    Attack(
        "idle_memory",
        "Memory per idle connection",
        "1,000 connections: <= 16 KiB without compression, <= 64 KiB with",
        "WS 14.3 / 48.1 KiB",
        scenario_runner(idle_memory),
        figures_idle_memory,
        idle_memory.check,
        {"full": dict(idle_memory.FULL), "quick": dict(idle_memory.SHORT)},
        {"full": 240, "quick": 90},
        [
            "Server defaults for permessage-deflate: wsjet and websockets ask 12-bit windows"
            " and memLevel 5; aiohttp uses 15-bit windows (it has no setting for either).",
        ],
    ),
]

# --- running -----------------------------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def run_one(attack: Attack, library: str, mode: str, cap: float) -> Raw:
    params = attack.params[mode]
    start = time.monotonic()
    first = len(LibraryServer.started)
    for attempt in (1, 2):
        try:
            raw = await asyncio.wait_for(attack.run(library, dict(params)), cap)
        except TimeoutError:
            raw = {"error": f"did not finish within its {cap:.0f} s bound"}
        except Exception as exc:
            text = f"{type(exc).__name__}: {exc}"
            raw = {"error": text if len(text) < 600 else f"{text[:200]} ... {text[-380:]}"}
            # A server that died while starting (the tree being rebuilt under us, on
            # a shared checkout): one more try, and the first error is kept.
            if attempt == 1 and "server process died" in text and time.monotonic() - start < 20:
                log(f"    server died while starting; trying once more: {text[-200:]!r}")
                await asyncio.sleep(5)
                first_error = raw["error"]
                continue
        break
    if attempt == 2:
        raw["retried_after"] = first_error
    raw["wall_s"] = round(time.monotonic() - start, 2)
    cpu = [server.cpu_seconds() for server in LibraryServer.started[first:]]
    if cpu and None not in cpu:
        raw["server_cpu_s"] = round(sum(c for c in cpu if c is not None), 2)
    return raw


async def run_slowloris_aiohttp_default(mode: str, cap: float) -> Raw:
    """Slowloris against aiohttp as shipped (keepalive_timeout 3,630 s), for the record."""

    async def attack(library: str, params: Raw) -> Raw:
        def factory(*args: Any, **kwargs: Any) -> LibraryServer:
            server = LibraryServer(library, *args, **kwargs)
            server.config["options"]["open_timeout"] = None  # no keepalive_timeout given
            return server

        with serving(library), mock.patch.object(slowloris, "ServerProcess", factory):
            return await slowloris.run(**params)

    default = Attack(**{**ATTACKS[1].__dict__, "run": attack})
    return await run_one(default, "aiohttp", mode, cap)


async def run_all(args: argparse.Namespace) -> Raw:
    mode = "quick" if args.quick else "full"
    started = time.monotonic()
    budget = (240 if args.quick else 1200) * args.cap_scale
    results: dict[str, dict[str, list[Raw]]] = {}
    extras: dict[str, Raw] = {}
    for attack in ATTACKS:
        if args.only and attack.key not in args.only:
            continue
        results[attack.key] = {library: [] for library in args.libraries}
        repeats = args.repeats or attack.repeats[mode]
        # Round-robin: a burst of load from elsewhere on the machine spreads over
        # the three servers instead of sinking one.
        for run in range(repeats):
            for library in args.libraries:
                if time.monotonic() - started > budget:
                    skipped = {"error": f"skipped: total budget {budget:.0f} s spent"}
                    results[attack.key][library].append(skipped)
                    continue
                log(
                    f"[{time.monotonic() - started:6.1f} s] {attack.key} / {library}"
                    f" (run {run + 1} of {repeats}) ..."
                )
                cap = attack.cap_s[mode] * args.cap_scale
                raw = await run_one(attack, library, mode, cap)
                results[attack.key][library].append(raw)
                error = f": {raw['error']}" if "error" in raw else ""
                log(f"    done in {raw['wall_s']} s{error}")
        if attack.key == "slowloris" and not args.quick and "aiohttp" in args.libraries:
            log("    slowloris / aiohttp with its default keepalive_timeout ...")
            extras["slowloris_aiohttp_default"] = await run_slowloris_aiohttp_default(
                mode, attack.cap_s[mode] * args.cap_scale
            )
    return {"mode": mode, "results": results, "extras": extras}


# --- reporting ---------------------------------------------------------------------------------


def machine() -> Raw:
    def first(path: str, prefix: str) -> str:
        with contextlib.suppress(OSError), open(path) as file:
            for line in file:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
        return "?"

    def git(*argv: str) -> str:
        try:
            return subprocess.run(
                ["git", *argv], cwd=ROOT, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"

    versions = {}
    for name in ("websockets", "aiohttp"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "cpu": first("/proc/cpuinfo", "model name"),
        "cpus": os.cpu_count(),
        "memory": first("/proc/meminfo", "MemTotal"),
        "loadavg": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "wsjet_commit": git("rev-parse", "--short", "HEAD"),
        "wsjet_src_changes": git("status", "--short", "--", "src"),
        **versions,
    }


def _cell(text: str) -> str:
    return text.replace("|", "/")


def report(run: Raw, info: Raw, libraries: list[str]) -> tuple[str, Raw]:
    lines: list[str] = []
    out = lines.append
    summary: Raw = {}
    header = "| attack | figure | " + " | ".join(libraries) + " | wsjet vs the better other |"
    out(header)
    out("|" + "---|" * (len(libraries) + 3))
    for attack in ATTACKS:
        runs = run["results"].get(attack.key)
        if runs is None:
            continue
        figures = attack.figures(runs)
        judged = [f for f in figures if f.better != "info"]
        row_ok = all(f.ok() for f in judged) and "wsjet" in runs
        summary[attack.key] = {
            "wsjet_matches_or_beats": row_ok,
            "figures": [
                {
                    "label": f.label,
                    "better": f.better,
                    "values": f.values,
                    "shown": f.shown,
                    "verdict": f.verdict(),
                }
                for f in figures
            ],
        }
        for i, fig in enumerate(figures):
            name = f"**{attack.title}**" if i == 0 else ""
            cells = [_cell(fig.shown.get(lib, "")) for lib in libraries]
            out(f"| {name} | {fig.label} | " + " | ".join(cells) + f" | {fig.verdict()} |")
        verdict = "**yes**" if row_ok else "**NO**"
        out(
            f"| | *row: wsjet matches or beats the better of the two* |{' |' * len(libraries)}"
            f" {verdict} |"
        )
    extra = run["extras"].get("slowloris_aiohttp_default")
    lines.append("")
    if extra is not None:
        if "error" in extra:
            out(f"Slowloris, aiohttp with its default keepalive_timeout: {extra['error']}")
        else:
            closed = extra["connections"] - extra["never_closed"]
            out(
                "Slowloris, aiohttp with its default keepalive_timeout (3,630 s):"
                f" {closed} of {extra['connections']} connections closed by the server within"
                f" {extra['open_timeout'] + 10:.0f} s; peak RSS {_mib(extra['rss_growth_kib'])}."
            )
        out("")

    out("Issue 6 targets (each scenario's own check() from tests/stress/):")
    out("")
    out("| attack | target | " + " | ".join(libraries) + " |")
    out("|" + "---|" * (len(libraries) + 2))
    targets: Raw = {}
    for attack in ATTACKS:
        runs = run["results"].get(attack.key)
        if runs is None:
            continue
        cells = []
        targets[attack.key] = {}
        for lib in libraries:
            per_run = [
                [raw["error"]] if "error" in raw else attack.check(raw) for raw in runs.get(lib, [])
            ]
            targets[attack.key][lib] = per_run
            missed = sum(1 for failures in per_run if failures)
            if not per_run:
                cells.append("not run")
            elif not missed:
                cells.append("met" if len(per_run) == 1 else f"met ({len(per_run)} runs)")
            elif missed == len(per_run):
                cells.append("missed" if len(per_run) == 1 else f"missed ({missed} runs)")
            else:
                cells.append(f"missed in {missed} of {len(per_run)} runs")
        out(f"| {attack.title} | {_cell(attack.target)} | " + " | ".join(cells) + " |")
    out("")
    out("Targets missed, in the check()'s words (run number in brackets):")
    for attack in ATTACKS:
        for lib, per_run in targets.get(attack.key, {}).items():
            for number, failures in enumerate(per_run, 1):
                for failure in failures:
                    out(f"- {attack.title} / {lib} [{number}]: {failure[:400]}")
    out("")
    out("Details (per-run figures are the first run's):")
    for attack in ATTACKS:
        runs = run["results"].get(attack.key)
        if runs is None:
            continue
        for note in attack.notes:
            out(f"- {attack.title}: {note}")
        out(f"- {attack.title}: the issue author's figures: {attack.issue_figure}.")
        firsts = {lib: raws[0] for lib, raws in runs.items() if raws}
        if attack.key == "malformed":
            for lib, raw in firsts.items():
                wrong = raw.get("wrong_answers") or {}
                if wrong:
                    text = "; ".join(f"{k} (x{n})" for k, n in sorted(wrong.items()))
                    out(f"  - {lib}, answers that differ from wsjet's table: {text}")
        if attack.key == "bomb":
            for lib, raw in firsts.items():
                for form, fig in raw.get("forms", {}).items():
                    out(
                        f"  - {lib}, {form}: close {fig['close_code']} after {fig['ms']} ms,"
                        f" peak RSS {_mib(fig['peak_rss_growth_kib'])}"
                    )
        if attack.key == "fragments":
            for lib, raw in firsts.items():
                if "error" in raw:
                    continue
                for case in FRAGMENT_CASES:
                    fig = raw[case]
                    out(
                        f"  - {lib}, {fig['frames']:,} parts ({case}): {_outcome(fig)},"
                        f" peak RSS {_mib(fig['peak_rss_growth_kib'])}"
                    )
        for lib, raws in runs.items():
            walls = " / ".join(str(raw.get("wall_s")) for raw in raws)
            out(f"  - {lib}: scenario wall time {walls} s")
    out("")
    out(
        f"Machine: {info['cpu']}, {info['cpus']} CPUs, {info['memory']}; load average"
        f" {info['loadavg']} at start, {info.get('loadavg_end', '?')} at the end; Python"
        f" {info['python']}; websockets {info['websockets']}; aiohttp {info['aiohttp']};"
        f" wsjet {info['wsjet_commit']}"
        + (" (with uncommitted changes in src/)" if info["wsjet_src_changes"] else "")
        + ". Attacker and servers share the CPUs."
    )
    return "\n".join(lines), {"summary": summary, "targets": targets}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, under 2 minutes")
    parser.add_argument("--only", type=lambda s: s.split(","), help="attacks, comma-separated")
    parser.add_argument(
        "--libraries",
        type=lambda s: s.split(","),
        default=list(LIBRARIES),
        help="comma-separated subset of " + ",".join(LIBRARIES),
    )
    parser.add_argument("--cap-scale", type=float, default=1.0, help="scale every time bound")
    parser.add_argument(
        "--repeats", type=int, help="runs per attack and library (default: 3 full, 1 quick)"
    )
    parser.add_argument(
        "--save",
        metavar="STEM",
        help="write STEM.txt and STEM.json (default in full mode: bench/results/security_compare)",
    )
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    unknown = set(args.libraries) - set(LIBRARIES)
    if unknown or (args.only and set(args.only) - {a.key for a in ATTACKS}):
        parser.error(f"unknown library or attack; attacks: {[a.key for a in ATTACKS]}")
    info = machine()
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    begin = time.monotonic()
    run = asyncio.run(run_all(args))
    info["loadavg_end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    text, judged = report(run, info, args.libraries)
    command = "bench/security_compare.py" + (" --quick" if args.quick else "")
    if args.only:
        command += " --only " + ",".join(args.only)
    runs = {
        a.title: len(next(iter(run["results"][a.key].values()), []))
        for a in ATTACKS
        if a.key in run["results"]
    }
    counts = ", ".join(f"{title} {n}" for title, n in runs.items())
    heading = (
        f"# {command} ({run['mode']} mode), {started}, {time.monotonic() - begin:.0f} s\n\n"
        f"Runs per library (figures: the median run's; [every run's] when they differ):"
        f" {counts}.\n\n"
    )
    print(heading + text)
    stem = args.save or (None if args.quick else str(ROOT / "bench/results/security_compare"))
    if stem and not args.no_save:
        Path(stem).parent.mkdir(parents=True, exist_ok=True)
        Path(stem + ".txt").write_text(heading + text + "\n")
        params = {a.key: a.params[run["mode"]] for a in ATTACKS}
        document = {
            "command": command,
            "started": started,
            "wall_s": round(time.monotonic() - begin, 1),
            "machine": info,
            "params": params,
            **run,
            **judged,
        }
        Path(stem + ".json").write_text(json.dumps(document, indent=1, default=str) + "\n")
        log(f"saved {stem}.txt and {stem}.json")


if __name__ == "__main__":
    main()
