"""Run kosoku (the Autobahn TestSuite runner) in its own process, dump results as JSON.

Usage::

    # server mode: kosoku's fuzzingclient drives the server at URL
    python tests/autobahn/kosoku_runner.py fuzzingclient --url ws://127.0.0.1:P --out R.json \
        [--include GLOB]... [--exclude GLOB]... [--parallelism N] [--report-dir DIR]

    # client mode: kosoku's fuzzingserver waits for the client under test;
    # prints "LISTENING <port>" on stdout (flushed) once bound
    python tests/autobahn/kosoku_runner.py fuzzingserver --out R.json \
        [--include GLOB]... [--exclude GLOB]... [--report-dir DIR]

Why a separate process: kosoku 0.1.0's native extension aborts the interpreter
(SIGABRT, exit status 134) about half of the time when Python exits right after
a run -- its background runtime threads are still tearing down while the
interpreter finalizes. Here the results are written and the process leaves with
``os._exit`` so this never happens, and the pytest process never loads kosoku.
It also lets the harness enforce a hard timeout by killing the process.

The JSON written to --out::

    {"mode": ..., "elapsed": seconds, "cpu_seconds": ..., "failure_message": str | null,
     "error": str | null, "results": [ {case fields...}, ... ]}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
import traceback
from typing import Any

#: Cap on the size of the repr of expected/received events kept per case.
_EVENTS_REPR_LIMIT = 600


def _short_repr(value: Any, limit: int = _EVENTS_REPR_LIMIT) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + " ..."


def result_to_dict(r: Any) -> dict[str, Any]:
    """The fields of a ``kosoku.CaseResult`` the harness needs (public API only)."""
    behavior = r.behavior.value
    behavior_close = r.behavior_close.value
    d: dict[str, Any] = {
        "case_id": r.case_id,
        "case_index": r.case_index,
        "behavior": behavior,
        "behavior_close": behavior_close,
        "passed": bool(r.passed),
        "agent": r.agent,
        "duration_ms": r.duration,
        "description": r.description,
        "expectation": r.expectation,
        "result": r.result,
        "result_close": r.result_close,
        "expected_close": r.expected_close,
        "local_close_code": r.local_close_code,
        "local_close_reason": r.local_close_reason,
        "remote_close_code": r.remote_close_code,
        "remote_close_reason": r.remote_close_reason,
        "was_clean": r.was_clean,
        "was_not_clean_reason": r.was_not_clean_reason,
        "closed_by_me": r.closed_by_me,
        "failed_by_me": r.failed_by_me,
        "dropped_by_me": r.dropped_by_me,
        "was_open_handshake_timeout": r.was_open_handshake_timeout,
        "was_close_handshake_timeout": r.was_close_handshake_timeout,
        "was_server_connection_drop_timeout": r.was_server_connection_drop_timeout,
    }
    if behavior != "OK" or behavior_close != "OK":
        # Event logs can hold megabytes (9.x); keep a bounded excerpt for diagnosis.
        d["expected"] = _short_repr(r.expected)
        d["received"] = _short_repr(r.received)
    return d


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    import kosoku

    started = time.monotonic()
    failure_message: str | None = None
    if args.mode == "fuzzingclient":
        try:
            results = await kosoku.run_fuzzingclient(
                args.url, args.include, args.exclude, concurrency=args.parallelism
            )
        except kosoku.FailureError as failure:
            failure_message = str(failure)
            results = failure.results
    else:
        async with kosoku.run_fuzzingserver(
            args.include, args.exclude, host="127.0.0.1", port=args.port
        ) as server:
            print(f"LISTENING {server.port}", flush=True)
            try:
                results = await server.get_result()
            except kosoku.FailureError as failure:
                failure_message = str(failure)
                results = failure.results
    elapsed = time.monotonic() - started

    if args.report_dir and results:
        # Autobahn-style HTML/JSON report (kosoku's own writer, as used by its CLI).
        from kosoku._report import write_reports

        write_reports(results, args.report_dir)

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "mode": args.mode,
        "elapsed": elapsed,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "failure_message": failure_message,
        "error": None,
        "results": [result_to_dict(r) for r in results],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="run kosoku and dump its results as JSON")
    parser.add_argument("mode", choices=["fuzzingclient", "fuzzingserver"])
    parser.add_argument("--url", help="fuzzingclient: ws:// URL of the server under test")
    parser.add_argument("--port", type=int, default=0, help="fuzzingserver: port (0 = any)")
    parser.add_argument("--include", action="append", default=None, metavar="GLOB")
    parser.add_argument("--exclude", action="append", default=None, metavar="GLOB")
    parser.add_argument("--parallelism", type=int, default=1)
    parser.add_argument("--out", required=True, help="where to write the results JSON")
    parser.add_argument("--report-dir", default=None, help="also write kosoku's HTML report")
    args = parser.parse_args()
    if args.mode == "fuzzingclient" and not args.url:
        parser.error("fuzzingclient needs --url")

    try:
        payload = asyncio.run(_run(args))
        status = 0
    except BaseException:
        payload = {"mode": args.mode, "error": traceback.format_exc(), "results": []}
        status = 2
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=1)
    os.replace(tmp, args.out)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # see module docstring: never run interpreter finalization


if __name__ == "__main__":
    main()
