"""Run fuzz targets: ``python -m tests.fuzz.run TARGET [-runs=N ...]`` or ``--all``.

With atheris (``pip install atheris``) a target runs coverage-guided under
libFuzzer, seeded from :mod:`tests.fuzz.seeds`, with a 1 s limit per input and
a 256 MiB memory limit; any other libFuzzer flag is passed through. ``--all
--runs N`` runs every target for N executions, one process each, and prints a
table. ``--driver builtin`` uses :mod:`tests.fuzz.driver` instead.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_atheris(target: str, libfuzzer_args: list[str], timeout: int = 1) -> None:
    import atheris

    with atheris.instrument_imports(include=["wsjet"]):
        from tests.fuzz.targets import TARGETS
    from tests.fuzz.seeds import seeds

    corpus = Path(tempfile.mkdtemp(prefix=f"wsjet-fuzz-{target}-"))
    for i, data in enumerate(seeds(target)):
        (corpus / f"seed-{i}").write_bytes(data)
    artifacts = Path(tempfile.gettempdir()) / "wsjet-fuzz-artifacts"
    artifacts.mkdir(exist_ok=True)
    args = [
        sys.argv[0],
        f"-timeout={timeout}",
        "-rss_limit_mb=256",
        "-max_len=65536",
        f"-artifact_prefix={artifacts}/{target}-",
        *libfuzzer_args,
        str(corpus),
    ]
    atheris.Setup(args, TARGETS[target])
    atheris.Fuzz()


def run_builtin(target: str, runs: int) -> int:
    from tests.fuzz.driver import fuzz
    from tests.fuzz.seeds import seeds
    from tests.fuzz.targets import TARGETS

    return fuzz(TARGETS[target], seeds(target), runs)


def run_all(runs: int, driver: str, jobs: int, timeout: int = 1) -> int:
    from tests.fuzz.targets import TARGETS

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("PYTHONDEVMODE", None)
    pending = list(TARGETS)
    running: list[tuple[str, float, subprocess.Popen[str]]] = []
    failed = 0
    print(f"{'target':24} {'execs':>10} {'seconds':>8} {'execs/s':>8}  result")
    while pending or running:
        while pending and len(running) < jobs:
            name = pending.pop(0)
            cmd = [sys.executable, "-m", "tests.fuzz.run", name, "--driver", driver]
            cmd += ["--runs", str(runs), "--timeout", str(timeout)]
            proc = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            running.append((name, time.monotonic(), proc))
        name, start, proc = running.pop(0)
        output, _ = proc.communicate()
        elapsed = time.monotonic() - start
        match = re.findall(r"#(\d+)\s+DONE|Done (\d+) runs|ran (\d+) inputs", output)
        execs = max((int(x) for group in match for x in group if x), default=0)
        result = "ok" if proc.returncode == 0 else f"CRASH (exit {proc.returncode})"
        failed += proc.returncode != 0
        print(
            f"{name:24} {execs:>10} {elapsed:>8.1f} {execs / elapsed:>8.0f}  {result}", flush=True
        )
        if proc.returncode != 0:
            print(output[-4000:])
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("target", nargs="?")
    parser.add_argument("--all", action="store_true")
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--driver", choices=["atheris", "builtin"], default="atheris")
    parser.add_argument(
        "--timeout", type=int, default=1, help="seconds per input before libFuzzer calls it a hang"
    )
    args, rest = parser.parse_known_args()
    if args.all:
        sys.exit(1 if run_all(args.runs, args.driver, args.jobs, args.timeout) else 0)
    if args.target is None:
        parser.error("name a target or use --all")
    if args.driver == "builtin":
        print(f"ran {run_builtin(args.target, args.runs)} inputs")
        return
    if not any(arg.startswith("-runs=") for arg in rest) and "--runs" in sys.argv:
        rest.append(f"-runs={args.runs}")
    run_atheris(args.target, rest, args.timeout)


if __name__ == "__main__":
    main()
