"""Profile a benchmark server under load: ``python bench/profile_server.py [LIB] [options]``.

Starts ``servers.py LIB --profile`` (cProfile over the whole server process),
drives it with the picows echo client for ``--duration`` seconds per
workload, stops it, and prints the functions with the most own time
(``tottime``) and the most time below them (``cumtime``). cProfile inflates
the cost of small Python functions; read it for where time goes and how many
calls a message costs, and ``run.py`` for how fast it really is.

Example::

    .venv/bin/python bench/profile_server.py wsjet-cb --workloads 32x1 --top 25
"""

from __future__ import annotations

import argparse
import io
import os
import pstats
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from run import Options, _readline, _stop

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("lib", nargs="?", default="wsjet-cb")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    parser.add_argument("--workloads", default="32x1", help="SIZExPIPELINE, comma-separated")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--cpu", type=int, default=0)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--compression", choices=("off", "deflate"), default="off")
    parser.add_argument("--save", type=Path, help="keep the raw cProfile stats here")
    args = parser.parse_args()

    opts = Options(args.loop, args.cpu, args.duration, 0.5, 0.25, 1)
    stats_path = args.save or Path(tempfile.mkstemp(suffix=".prof")[1])
    command = [sys.executable, str(HERE / "servers.py"), args.lib, "--loop", args.loop]
    command += ["--compression", args.compression, "--profile", str(stats_path)]
    command += opts.pinning()
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, text=True
        )
        try:
            ready = _readline(proc, 30, errors)
            client = "deflate-capable aiohttp" if args.compression == "deflate" else "picows"
            peer = "aiohttp" if args.compression == "deflate" else "picows"
            url = f"ws://127.0.0.1:{ready['port']}/"
            subprocess.run(
                [
                    sys.executable,
                    str(HERE / "clients.py"),
                    peer,
                    "echo",
                    url,
                    "--loop",
                    args.loop,
                    "--workloads",
                    args.workloads,
                    "--duration",
                    str(args.duration),
                    "--compression",
                    args.compression,
                    *opts.pinning(),
                ],
                check=True,
            )
        finally:
            _stop(proc)
    print(f"\n{args.lib} server, {args.workloads}, {client} client, {args.loop}")
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        stats = pstats.Stats(str(stats_path), stream=out)
        stats.strip_dirs().sort_stats(order).print_stats(args.top)
        text = out.getvalue()
        print(text[text.index("   ncalls") :] if "   ncalls" in text else text)
    if args.save is None:
        stats_path.unlink()


if __name__ == "__main__":
    main()
