"""Run fuzz targets: ``python -m tests.fuzz.run TARGET [-runs=N ...]`` or ``--all``.

With atheris (``pip install -e '.[test]'`` installs it) a target runs
coverage-guided under libFuzzer, seeded from :mod:`tests.fuzz.seeds`, with a
limit of 1 s of CPU per input (``--timeout``, see :class:`CpuLimited`), a
256 MiB memory limit and the target's ``-max_len``
(:func:`tests.fuzz.targets.max_len`); any other libFuzzer flag is passed
through. ``--all --runs N`` runs every target for N executions, one
process each, ``--jobs`` at a time, and prints a table: executions, executions
per second, wall and CPU seconds, crashes. It fails when a target crashes or
runs fewer than N inputs.

``TARGET --replay FILE...`` runs a target on saved inputs (libFuzzer's crash
artifacts, under ``$TMPDIR/wsjet-fuzz-artifacts/``) without atheris.
``--driver builtin`` uses the seeded random mutator of :mod:`tests.fuzz.driver`
instead (not coverage-guided); the default, ``auto``, falls back to it when
atheris is missing, except under CI (``CI=true``), where a missing atheris is
an error: CI must run the real fuzzer.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]
PARITY_TARGETS = ("frames_", "core_chunks")
#: Targets driven by operations, not by bytes the core compares with constants:
#: their twins trace coverage but not comparisons (which cost an eighth more).
NO_COMPARISON_TRACING = frozenset({"core_chunks"})
#: The order ``--all`` starts targets in: the longest first (CPU seconds for a
#: million executions, measured), so that two workers finish close together.
LONGEST_FIRST = (
    "core_chunks",
    "extensions_header",
    "frames_server",
    "frames_server_deflate",
    "frames_client",
    "frames_client_deflate",
    "http_request",
    "http_response",
    "subprotocols_header",
    "deflate_decoder",
    "mask_parity",
)


#: libFuzzer's own limit per input, in seconds of wall-clock time: a backstop for
#: an input that never returns. The limit of ``--timeout`` is on CPU time instead
#: (:class:`CpuLimited`): this machine's hypervisor can stall every process for
#: seconds, and CI rehearsal 23 saw two targets "time out" at the same instant on
#: inputs that replay in microseconds.
HANG_SECONDS = 60


class SlowInput(Exception):
    """An input took more CPU time than the limit: a crash, for the fuzzer."""


class CpuLimited:
    """A fuzz target with a limit on the CPU time each input may take.

    The time is the calling thread's (``time.thread_time()``), which a stalled
    or loaded machine does not inflate the way it does the wall clock. Each new
    slowest input is reported on stderr, as ``INFO: slowest input so far: S s
    of CPU``, for :func:`run_all`'s table.

    An input over the limit is run again, up to ``retries`` times, and fails
    only if every run is over: a slow input is slow each time it runs, whereas
    a garbage collection or a hypervisor's stolen time that a guest kernel
    books to the running thread lands on one run (on this machine's VM the
    thread's CPU clock was seen to jump by tens of milliseconds at once). What
    is reported is the fastest of the runs.
    """

    def __init__(
        self,
        target: Callable[[bytes], None],
        limit: float,
        retries: int = 2,
        clock: Callable[[], float] = time.thread_time,
    ) -> None:
        self.target = target
        self.limit = limit
        self.retries = retries
        self.clock = clock
        self.slowest = 0.0

    def _timed(self, data: bytes) -> float:
        start = self.clock()
        self.target(data)
        return self.clock() - start

    def __call__(self, data: bytes) -> None:
        spent = self._timed(data)
        for _ in range(self.retries):
            if spent <= self.limit:
                break
            spent = min(spent, self._timed(data))
        if spent > self.slowest:
            self.slowest = spent
            print(f"INFO: slowest input so far: {spent:.6f} s of CPU", file=sys.stderr, flush=True)
            if spent > self.limit:
                raise SlowInput(
                    f"a {len(data)}-byte input took {spent:.3f} s of CPU in each of "
                    f"{self.retries + 1} runs, over the limit of {self.limit} s"
                )


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def have_atheris() -> bool:
    return importlib.util.find_spec("atheris") is not None


def choose_driver(requested: str) -> str:
    """``atheris`` or ``builtin``; exits with a message when CI lacks atheris."""
    missing = not have_atheris()
    if requested == "auto":
        requested = "builtin" if missing else "atheris"
    why = "atheris is not installed" if missing else "--driver builtin"
    if requested == "builtin" and in_ci():
        sys.exit(
            f"error: {why}, and under CI=true the fuzzers run coverage-guided, under "
            "atheris (.venv/bin/pip install -e '.[test]' installs it)"
        )
    if requested == "builtin":
        print(
            f"warning: {why}: running the built-in random mutator, which is not "
            "coverage-guided (a fallback for local use only)",
            file=sys.stderr,
        )
    return requested


def run_atheris(
    target: str, libfuzzer_args: list[str], timeout: int = 1, corpus: Path | None = None
) -> None:
    import atheris  # type: ignore[import-untyped]

    from tests.fuzz import _twins

    # The twins are executed from source, out of sight of the import hook.
    dataflow = target not in NO_COMPARISON_TRACING
    _twins.instrument = lambda code: atheris.patch_code(code, dataflow)
    with atheris.instrument_imports(include=["wsjet"]):
        from tests.fuzz.targets import PARITY_CASE, TARGETS, max_len
    from tests.fuzz.seeds import seeds

    if target.startswith(PARITY_TARGETS):
        print(f"INFO: {PARITY_CASE}", file=sys.stderr, flush=True)
    if corpus is None:
        corpus = Path(tempfile.mkdtemp(prefix=f"wsjet-fuzz-{target}-"))
    corpus.mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(seeds(target)):
        (corpus / f"seed-{i}").write_bytes(data)
    artifacts = Path(tempfile.gettempdir()) / "wsjet-fuzz-artifacts"
    artifacts.mkdir(exist_ok=True)
    args = [
        sys.argv[0],
        f"-timeout={max(HANG_SECONDS, timeout)}",
        "-rss_limit_mb=256",
        f"-max_len={max_len(target)}",
        "-print_final_stats=1",
        f"-artifact_prefix={artifacts}/{target}-",
        *libfuzzer_args,
        str(corpus),
    ]
    atheris.Setup(args, CpuLimited(TARGETS[target], timeout))
    atheris.Fuzz()  # libFuzzer exits the process


def run_builtin(target: str, runs: int, timeout: int = 1) -> int:
    from tests.fuzz.driver import fuzz
    from tests.fuzz.seeds import seeds
    from tests.fuzz.targets import PARITY_CASE, TARGETS, max_len

    if target.startswith(PARITY_TARGETS):
        print(f"INFO: {PARITY_CASE}", file=sys.stderr, flush=True)
    limited = CpuLimited(TARGETS[target], timeout)
    return fuzz(limited, seeds(target), runs, max_len=max_len(target))


def replay(target: str, files: list[Path]) -> int:
    """Run ``target`` on saved inputs (crash artifacts) in this process; return failures."""
    import traceback

    from tests.fuzz.targets import PARITY_CASE, TARGETS

    print(f"INFO: {PARITY_CASE}", file=sys.stderr)
    failures = 0
    for path in files:
        data = path.read_bytes()
        try:
            TARGETS[target](data)
        except Exception:
            failures += 1
            print(f"{path}: CRASH on {len(data)} bytes {data[:200]!r}")
            traceback.print_exc()
        else:
            print(f"{path}: ok")
    return failures


def _execs(output: str) -> int:
    found = re.findall(
        r"stat::number_of_executed_units: (\d+)|Done (\d+) runs|ran (\d+) inputs", output
    )
    return max((int(x) for group in found for x in group if x), default=0)


def _slowest(output: str) -> str:
    """The slowest input's CPU seconds, as :class:`CpuLimited` last reported it."""
    found = re.findall(r"slowest input so far: ([0-9.]+) s of CPU", output)
    return f"{float(found[-1]):.3f}" if found else "-"


def _stat(output: str, name: str) -> str:
    match = re.search(rf"stat::{name}:\s+(\S+)", output)
    return match.group(1) if match else "-"


def run_all(runs: int, driver: str, jobs: int, timeout: int = 1) -> int:
    """Run every target, ``jobs`` at a time; return how many failed."""
    from tests.fuzz.targets import PARITY_CASE, TARGETS

    print(f"driver: {driver}; {runs:,} runs per target, {jobs} at a time", flush=True)
    print(PARITY_CASE.replace("; ", "\n  "), flush=True)
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=path)
    env.pop("PYTHONDEVMODE", None)  # dev mode's checks cost a third of the speed
    # The fuzzers are not measured by coverage.py (libFuzzer exits without saving it).
    env.pop("COVERAGE_PROCESS_START", None)
    env.pop("COVERAGE_PROCESS_CONFIG", None)
    pending = sorted(TARGETS, key=lambda t: LONGEST_FIRST.index(t) if t in LONGEST_FIRST else -1)
    corpora = tempfile.TemporaryDirectory(prefix="wsjet-fuzz-")
    running: dict[int, tuple[str, float, subprocess.Popen[bytes], IO[bytes]]] = {}
    failed = 0
    total_start = time.monotonic()
    header = (
        f"{'target':24} {'execs':>10} {'execs/s':>8} {'wall s':>7} {'cpu s':>7} "
        f"{'slowest cpu s':>13} {'rss MB':>6} {'crashes':>7}"
    )
    print(header, flush=True)
    while pending or running:
        while pending and len(running) < jobs:
            name = pending.pop(0)
            cmd = [sys.executable, "-m", "tests.fuzz.run", name, "--driver", driver]
            cmd += ["--runs", str(runs), "--timeout", str(timeout)]
            cmd += ["--corpus", str(Path(corpora.name) / name)]
            log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed at its end
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            running[proc.pid] = (name, time.monotonic(), proc, log)
        pid, status, usage = os.wait4(-1, 0)
        if pid not in running:  # pragma: no cover - not a child of ours
            continue
        name, start, proc, log = running.pop(pid)
        proc.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.monotonic() - start
        log.seek(0)
        output = log.read().decode(errors="replace")
        log.close()
        execs = _execs(output)
        crashed = proc.returncode != 0
        short = execs < runs
        failed += crashed or short
        cpu = usage.ru_utime + usage.ru_stime
        print(
            f"{name:24} {execs:>10,} {execs / elapsed:>8.0f} {elapsed:>7.1f} {cpu:>7.1f} "
            f"{_slowest(output):>13} {_stat(output, 'peak_rss_mb'):>6} "
            f"{int(crashed):>7}",
            flush=True,
        )
        if crashed or short:
            why = f"exit {proc.returncode}" if crashed else f"only {execs:,} of {runs:,} runs"
            print(f"--- {name} FAILED ({why}); the end of its output:\n{output[-6000:]}\n---")
    corpora.cleanup()
    print(f"total wall time: {time.monotonic() - total_start:.1f} s", flush=True)
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("target", nargs="?")
    parser.add_argument("--all", action="store_true")
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--driver", choices=["auto", "atheris", "builtin"], default="auto")
    parser.add_argument(
        "--timeout",
        type=int,
        default=1,
        help="CPU seconds an input may take before it counts as a crash (libFuzzer's "
        f"wall-clock limit, for an input that never returns, is {HANG_SECONDS} s)",
    )
    parser.add_argument(
        "--corpus", type=Path, help="corpus directory (default: a new temporary one)"
    )
    parser.add_argument(
        "--replay", type=Path, nargs="+", metavar="FILE", help="run TARGET on these inputs only"
    )
    args, rest = parser.parse_known_args()
    if args.replay:
        if args.target is None:
            parser.error("--replay needs a target")
        sys.exit(1 if replay(args.target, args.replay) else 0)
    driver = choose_driver(args.driver)
    if args.all:
        sys.exit(1 if run_all(args.runs, driver, args.jobs, args.timeout) else 0)
    if args.target is None:
        parser.error("name a target or use --all")
    if driver == "builtin":
        print(f"ran {run_builtin(args.target, args.runs, args.timeout)} inputs")
        return
    if not any(arg.startswith("-runs=") for arg in rest) and "--runs" in sys.argv:
        rest.append(f"-runs={args.runs}")
    run_atheris(args.target, rest, args.timeout, args.corpus)


if __name__ == "__main__":
    main()
