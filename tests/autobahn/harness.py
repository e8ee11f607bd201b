"""Autobahn conformance harness: run kosoku against an echo peer, summarise, gate.

Two modes:

* ``server``: kosoku's *fuzzingclient* drives our echo server (echo_server.py).
* ``client``: kosoku's *fuzzingserver* is driven by our echo client (echo_client.py).

Every participant runs in its own process (kosoku too, see kosoku_runner.py), so
this module only needs the standard library and never imports kosoku, wsjet or
websockets. Each run writes a summary to ``reports/autobahn/<mode>-<impl>-<face>.json``.

Verdicts (how kosoku 0.1.0 forms them, checked against its behaviour):

* ``behavior`` -- the message exchange: OK, NON-STRICT, INFORMATIONAL, FAILED,
  UNIMPLEMENTED, ERROR (ERROR = the case could not be run to a verdict).
* ``behavior_close`` -- the closing handshake: OK, INFORMATIONAL, WRONG CODE,
  UNCLEAN, FAILED BY CLIENT, FAILED.
* A case *passes* (``CaseResult.passed``; kosoku raises ``FailureError`` otherwise)
  iff behavior is OK/NON-STRICT/INFORMATIONAL **and** behavior_close is
  OK/INFORMATIONAL. A bad close code fails the case even when behavior is
  NON-STRICT (e.g. 6.4.1 NON-STRICT + WRONG CODE is not passed). Some cases also
  fold the close into behavior themselves (7.x: WRONG CODE turns behavior FAILED).

The gate (:func:`violations`) is exactly "every selected case passed" in that
sense, cross-checked against kosoku's own ``passed`` flag and FailureError, plus:
the run completed, at least one case ran, and the echo peer never hit an
exception outside the library's exception tree.

Command line (for manual runs; the pytest entry point is test_autobahn.py)::

    python tests/autobahn/harness.py --mode server --impl websockets [--face coroutine]
        [--include GLOB,...] [--exclude GLOB,...] [--parallelism N] [--no-compression]
        [--timeout S] [--html]

A glob prefixed ``server:`` or ``client:`` only applies in that mode, and one
prefixed with a target (``server-callback:``) only to that target, e.g.
``--exclude '12.*,13.*,client:9.7.*'``. Kosoku rejects an include glob that
matches no case (the run then reports kosoku's ValueError).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
REPORTS_DIR = REPO / "reports" / "autobahn"
PYTHON = sys.executable

BEHAVIORS = ("OK", "NON-STRICT", "INFORMATIONAL", "FAILED", "UNIMPLEMENTED", "ERROR")
BEHAVIOR_CLOSES = ("OK", "INFORMATIONAL", "WRONG CODE", "UNCLEAN", "FAILED BY CLIENT", "FAILED")
ACCEPTABLE_BEHAVIOR = frozenset({"OK", "NON-STRICT", "INFORMATIONAL"})
ACCEPTABLE_BEHAVIOR_CLOSE = frozenset({"OK", "INFORMATIONAL"})

UNEXPECTED_MARKER = "UNEXPECTED-EXCEPTION"  # printed by echo_server.py / echo_client.py

#: Default selection: everything but the permessage-deflate cases (12.*, 13.*).
DEFAULT_EXCLUDE = ("12.*", "13.*")
#: Faces each implementation offers, per mode (the callback face is server-only).
FACES = {
    "wsjet": {"server": ("coroutine", "callback"), "client": ("coroutine",)},
    "websockets": {"server": ("coroutine",), "client": ("coroutine",)},
}


class HarnessError(RuntimeError):
    """The run could not be completed (peer did not start, timeout, crash...)."""


# --- configuration --------------------------------------------------------------------


def parse_globs(value: str | None) -> list[str]:
    """``"12.*, 13.*"`` -> ``["12.*", "13.*"]``; empty/blank -> ``[]``."""
    if not value:
        return []
    return [g.strip() for g in value.split(",") if g.strip()]


def globs_for_target(globs: Sequence[str], mode: str, face: str) -> list[str]:
    """Keep the globs that apply to the target (``mode``, ``face``): plain ones, ones
    prefixed with its mode (``client:13.2.*`` only excludes 13.2.* in client mode) and
    ones prefixed with the target itself (``server-callback:12.*``)."""
    kept = []
    for glob in globs:
        prefix, sep, rest = glob.partition(":")
        if not sep:
            kept.append(glob)
        elif prefix.strip() in (mode, f"{mode}-{face}"):
            kept.append(rest.strip())
    return kept


def targets(impl: str) -> list[tuple[str, str]]:
    """The (mode, face) pairs to test for an implementation."""
    return [(mode, face) for mode, faces in FACES[impl].items() for face in faces]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- subprocess plumbing -----------------------------------------------------------------


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _count_unexpected(path: Path) -> int:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return 0
    return sum(1 for line in text.splitlines() if line.startswith(UNEXPECTED_MARKER))


class _LineReader:
    """Collects a child's stdout lines on a thread so we can wait for one with a timeout."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()
        stream.close()

    def wait_for(self, prefix: str, timeout: float) -> str | None:
        """First line starting with prefix, or None on EOF/timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if line.startswith(prefix):
                        return line
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def join(self, timeout: float = 5.0) -> None:
        self._thread.join(timeout)


class _Child:
    """A child process with stdout piped (for protocol lines) and stderr to a log file.

    ``dev_mode=False`` drops an inherited PYTHONDEVMODE: kosoku is not under test, and
    asyncio's debug mode only slows it down. The echo peers, which run wsjet, keep it.
    """

    def __init__(
        self, name: str, argv: Sequence[str], log_path: Path, *, dev_mode: bool = True
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if not dev_mode:
            env.pop("PYTHONDEVMODE", None)
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            cwd=REPO,
            env=env,
        )
        self.out = _LineReader(self.proc.stdout)  # type: ignore[arg-type]

    def describe_exit(self) -> str:
        rc = self.proc.returncode
        if rc is not None and rc < 0:
            with contextlib.suppress(ValueError):
                return f"killed by {signal.Signals(-rc).name}"
        return f"exit status {rc}"

    def failure(self, what: str) -> HarnessError:
        return HarnessError(
            f"{self.name}: {what}\n  command: {' '.join(self.argv)}\n"
            f"  stderr tail ({self.log_path}):\n{_indent(_tail(self.log_path))}"
        )

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise self.failure(f"still running after {timeout:.0f}s (killed)") from None

    def cpu_seconds(self) -> float | None:
        """CPU time used so far by the (still running) child; Linux only."""
        try:
            with open(f"/proc/{self.proc.pid}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None

    def stop(self, grace: float = 5.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.join()
        self._log.close()


@contextlib.contextmanager
def _children() -> Iterator[list[_Child]]:
    started: list[_Child] = []
    try:
        yield started
    finally:
        for child in reversed(started):
            child.stop()


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


# --- the two modes --------------------------------------------------------------------


def _selection_args(include: Sequence[str], exclude: Sequence[str]) -> list[str]:
    args: list[str] = []
    for glob in include:
        args += ["--include", glob]
    for glob in exclude:
        args += ["--exclude", glob]
    return args


def _read_results(path: Path, runner: _Child) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise runner.failure(f"{runner.describe_exit()}, no results ({exc})") from None
    if data.get("error"):
        raise runner.failure(f"kosoku raised:\n{_indent(data['error'])}")
    return data


def _run_server_mode(
    impl: str,
    face: str,
    include: Sequence[str],
    exclude: Sequence[str],
    parallelism: int,
    compression: bool,
    timeout: float,
    logs: Path,
    results_json: Path,
    html_dir: Path | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    deadline = time.monotonic() + timeout
    with _children() as children:
        for attempt in range(3):
            port = free_port()
            argv = [
                PYTHON,
                str(HERE / "echo_server.py"),
                "--impl",
                impl,
                "--face",
                face,
                "--port",
                str(port),
            ]
            if not compression:
                argv.append("--no-compression")
            server = _Child("echo server", argv, logs / "peer.log")
            children.append(server)
            if server.out.wait_for("READY", 30.0):
                break
            server.stop()
            if attempt < 2 and "Address already in use" in _tail(server.log_path):
                continue  # lost the free-port race; try another port
            raise server.failure(f"did not print READY within 30s ({server.describe_exit()})")

        argv = [
            PYTHON,
            str(HERE / "kosoku_runner.py"),
            "fuzzingclient",
            "--url",
            f"ws://127.0.0.1:{port}",
            "--parallelism",
            str(parallelism),
            "--out",
            str(results_json),
            *_selection_args(include, exclude),
        ]
        if html_dir:
            argv += ["--report-dir", str(html_dir)]
        runner = _Child("kosoku fuzzingclient", argv, logs / "kosoku.log", dev_mode=False)
        children.append(runner)
        runner.wait(max(deadline - time.monotonic(), 1.0))
        data = _read_results(results_json, runner)
        if server.proc.poll() is not None:
            raise server.failure(f"died during the run ({server.describe_exit()})")
        server_cpu = server.cpu_seconds()
    peer = {
        "cpu_seconds": server_cpu,
        "unexpected_exceptions": _count_unexpected(server.log_path),
        "log": _rel(server.log_path),
    }
    return data, peer


def _run_client_mode(
    impl: str,
    face: str,
    include: Sequence[str],
    exclude: Sequence[str],
    parallelism: int,
    compression: bool,
    timeout: float,
    logs: Path,
    results_json: Path,
    html_dir: Path | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    if face != "coroutine":
        raise HarnessError(f"client mode has no {face!r} face")
    deadline = time.monotonic() + timeout
    with _children() as children:
        argv = [
            PYTHON,
            str(HERE / "kosoku_runner.py"),
            "fuzzingserver",
            "--out",
            str(results_json),
            *_selection_args(include, exclude),
        ]
        if html_dir:
            argv += ["--report-dir", str(html_dir)]
        runner = _Child("kosoku fuzzingserver", argv, logs / "kosoku.log", dev_mode=False)
        children.append(runner)
        line = runner.out.wait_for("LISTENING", 30.0)
        if line is None:
            runner.stop()
            if results_json.exists():
                _read_results(results_json, runner)  # raises with kosoku's traceback
            raise runner.failure(f"did not print LISTENING within 30s ({runner.describe_exit()})")
        port = int(line.split()[1])

        agent = f"{impl}-{face}"
        argv = [
            PYTHON,
            str(HERE / "echo_client.py"),
            "--impl",
            impl,
            "--url",
            f"http://127.0.0.1:{port}",
            "--agent",
            agent,
            "--concurrency",
            str(parallelism),
        ]
        if not compression:
            argv.append("--no-compression")
        client = _Child("echo client", argv, logs / "peer.log")
        children.append(client)
        rc = client.wait(max(deadline - time.monotonic(), 1.0))
        if rc != 0:
            raise client.failure(f"failed ({client.describe_exit()})")
        # updateReports was sent: kosoku finishes right away.
        runner.wait(min(max(deadline - time.monotonic(), 1.0), 60.0))
        data = _read_results(results_json, runner)
        client.out.join()
        summary_lines = {
            ln.split(" ", 1)[0]: ln.split(" ", 1)[1] for ln in client.out.lines if " " in ln
        }
    cpu = summary_lines.get("CPU")
    peer = {
        "cpu_seconds": float(cpu) if cpu else None,
        "unexpected_exceptions": _count_unexpected(client.log_path),
        "outcomes": summary_lines.get("OUTCOMES", ""),
        "log": _rel(client.log_path),
    }
    return data, peer


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


# --- summary & gate ---------------------------------------------------------------------


def _failure_message_ids(message: str | None) -> set[str]:
    """Case ids listed in kosoku's FailureError message ("  7.1.5: behavior=...")."""
    if not message:
        return set()
    return set(re.findall(r"^\s+(\d+(?:\.\d+)+): behavior=", message, flags=re.M))


def case_passes(case: dict[str, Any]) -> bool:
    """kosoku's verdict, re-derived: behavior and behavior_close both acceptable."""
    return (
        case["behavior"] in ACCEPTABLE_BEHAVIOR
        and case["behavior_close"] in ACCEPTABLE_BEHAVIOR_CLOSE
    )


def summarise(data: dict[str, Any] | None, **meta: Any) -> dict[str, Any]:
    """Build the JSON summary of one run from kosoku_runner's output."""
    results = (data or {}).get("results", [])
    behavior = Counter(r["behavior"] for r in results)
    behavior_close = Counter(r["behavior_close"] for r in results)
    summary: dict[str, Any] = dict(meta)
    summary.update(
        {
            "cases_run": len(results),
            "behavior": {k: behavior.get(k, 0) for k in BEHAVIORS}
            | {k: v for k, v in behavior.items() if k not in BEHAVIORS},
            "behavior_close": {k: behavior_close.get(k, 0) for k in BEHAVIOR_CLOSES}
            | {k: v for k, v in behavior_close.items() if k not in BEHAVIOR_CLOSES},
            "passed": sum(1 for r in results if case_passes(r)),
            "kosoku_elapsed_seconds": round((data or {}).get("elapsed", 0.0), 2),
            "kosoku_cpu_seconds": round((data or {}).get("cpu_seconds", 0.0), 1),
            "kosoku_failure_message": (data or {}).get("failure_message"),
            "slowest_cases_ms": {
                r["case_id"]: r["duration_ms"]
                for r in sorted(results, key=lambda r: -r["duration_ms"])[:10]
            },
        }
    )
    # Harness self-checks: our verdict must agree with kosoku's flag and its FailureError.
    mismatches = [r["case_id"] for r in results if case_passes(r) != r["passed"]]
    listed = _failure_message_ids(summary["kosoku_failure_message"])
    not_passed = {r["case_id"] for r in results if not r["passed"]}
    if listed != not_passed:
        mismatches += sorted(listed ^ not_passed)
    summary["verdict_mismatches"] = sorted(set(mismatches))
    summary["not_passed"] = [r for r in results if not case_passes(r) or not r["passed"]]
    summary["non_ok"] = [
        {
            k: r[k]
            for k in (
                "case_id",
                "behavior",
                "behavior_close",
                "remote_close_code",
                "remote_close_reason",
                "result",
                "result_close",
            )
        }
        for r in results
        if r["behavior"] != "OK" or r["behavior_close"] != "OK"
    ]
    return summary


def violations(summary: dict[str, Any]) -> list[str]:
    """Human-readable reasons this run does not meet the bar (empty = conformant)."""
    problems: list[str] = []
    if summary.get("harness_error"):
        return [f"the run did not complete: {summary['harness_error']}"]
    if summary["cases_run"] == 0:
        problems.append(f"no case ran (include={summary['include']}, exclude={summary['exclude']})")
    for case in summary["not_passed"]:
        problems.append(describe_case(case))
    if summary["verdict_mismatches"]:
        problems.append(
            "harness/kosoku verdict disagreement on " + ", ".join(summary["verdict_mismatches"])
        )
    unexpected = summary.get("peer", {}).get("unexpected_exceptions", 0)
    if unexpected:
        problems.append(
            f"the echo peer hit {unexpected} exception(s) outside the library's "
            f"exception tree ({UNEXPECTED_MARKER} in {summary['peer']['log']})"
        )
    return problems


def describe_case(case: dict[str, Any]) -> str:
    remote = ""
    if case.get("remote_close_code") is not None:
        remote = f", peer closed with {case['remote_close_code']}"
        if case.get("remote_close_reason"):
            remote += f" {case['remote_close_reason']!r}"
    text = (
        f"{case['case_id']}: behavior={case['behavior']}, "
        f"behavior_close={case['behavior_close']}{remote}\n"
        f"      {case['description']}\n"
        f"      expected: {case['expectation']}\n"
        f"      got: {case['result']}"
        + ("" if case["result_close"] == case["result"] else f" / {case['result_close']}")
    )
    if case.get("received") is not None:
        text += f"\n      received: {case['received'][:200]}"
    return text


def format_report(summary: dict[str, Any]) -> str:
    head = (
        f"Autobahn {summary['mode']} mode, impl={summary['impl']}, face={summary['face']}: "
        f"{summary['cases_run']} cases in {summary['wall_seconds']}s, "
        + ", ".join(f"{k}={v}" for k, v in summary["behavior"].items())
        + "; close: "
        + ", ".join(f"{k}={v}" for k, v in summary["behavior_close"].items() if v)
    )
    problems = violations(summary)
    if not problems:
        return head + "\nall selected cases passed"
    return (
        head
        + f"\n{len(problems)} problem(s):\n"
        + "\n".join("  - " + p for p in problems)
        + f"\n(summary: {summary.get('summary_path', '?')})"
    )


# --- entry point ------------------------------------------------------------------------


def run(
    mode: str,
    impl: str,
    face: str = "coroutine",
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = DEFAULT_EXCLUDE,
    parallelism: int = 1,
    compression: bool = True,
    timeout: float = 900.0,
    html: bool = False,
    reports_dir: Path = REPORTS_DIR,
) -> dict[str, Any]:
    """Run one target end to end; write and return its summary. Never raises HarnessError:
    a run that could not complete is recorded in ``summary["harness_error"]``."""
    if mode not in ("server", "client"):
        raise ValueError(f"mode must be 'server' or 'client', not {mode!r}")
    name = f"{mode}-{impl}-{face}"
    include = globs_for_target(include, mode, face)
    exclude = globs_for_target(exclude, mode, face)
    reports_dir.mkdir(parents=True, exist_ok=True)
    logs = reports_dir / "logs" / name
    html_dir = reports_dir / "html" / name if html else None
    meta = {
        "mode": mode,
        "impl": impl,
        "face": face,
        "compression": compression,
        "include": list(include),
        "exclude": list(exclude),
        "parallelism": parallelism,
        "started": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": sys.version.split()[0],
    }
    started = time.monotonic()
    cpu_before = _children_cpu()
    data: dict[str, Any] | None = None
    peer: dict[str, Any] = {}
    error: str | None = None
    fd, tmp = tempfile.mkstemp(prefix=f"kosoku-{name}-", suffix=".json")
    os.close(fd)
    os.unlink(tmp)  # kosoku_runner creates it; absence means "no results"
    results_json = Path(tmp)
    try:
        runner = _run_server_mode if mode == "server" else _run_client_mode
        data, peer = runner(
            impl,
            face,
            list(include),
            list(exclude),
            parallelism,
            compression,
            timeout,
            logs,
            results_json,
            html_dir,
        )
    except HarnessError as exc:
        error = str(exc)
    finally:
        with contextlib.suppress(FileNotFoundError):
            results_json.unlink()
    summary = summarise(data, **meta)
    summary["wall_seconds"] = round(time.monotonic() - started, 1)
    # CPU burnt by kosoku + the echo peer: a load-independent cost measure.
    summary["cpu_seconds"] = round(_children_cpu() - cpu_before, 1)
    if peer.get("cpu_seconds") is not None:
        peer["cpu_seconds"] = round(peer["cpu_seconds"], 1)
    summary["harness_error"] = error
    summary["peer"] = peer
    summary["html_report"] = _rel(html_dir / "index.html") if html_dir else None
    path = reports_dir / f"{name}.json"
    summary["summary_path"] = _rel(path)
    path.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="run one Autobahn conformance target")
    parser.add_argument("--mode", choices=["server", "client"], required=True)
    parser.add_argument("--impl", choices=sorted(FACES), default="wsjet")
    parser.add_argument("--face", choices=["coroutine", "callback"], default="coroutine")
    parser.add_argument(
        "--include",
        default="",
        help="comma-separated globs (default: all); "
        "a 'server:' or 'client:' prefix limits a glob to that mode, "
        "a 'server-callback:' one to that target",
    )
    parser.add_argument(
        "--exclude",
        default=",".join(DEFAULT_EXCLUDE),
        help="comma-separated globs, prefixes as for --include; "
        "'' runs everything (default: %(default)s)",
    )
    parser.add_argument("--parallelism", type=int, default=1)
    parser.add_argument("--no-compression", action="store_true")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--html", action="store_true", help="also write kosoku's HTML report")
    args = parser.parse_args(argv)
    summary = run(
        args.mode,
        args.impl,
        args.face,
        include=parse_globs(args.include),
        exclude=parse_globs(args.exclude),
        parallelism=args.parallelism,
        compression=not args.no_compression,
        timeout=args.timeout,
        html=args.html,
    )
    print(format_report(summary))
    return 1 if violations(summary) else 0


if __name__ == "__main__":
    sys.exit(main())
