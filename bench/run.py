"""wsjet against picows, websockets, aiohttp and a raw TCP ceiling, in one run.

Usage::

    .venv/bin/python bench/run.py            # full run, about 10 minutes
    .venv/bin/python bench/run.py --quick    # smoke run, about a minute

Every measurement is a server process and a client process (``servers.py``,
``clients.py``), both pinned to one CPU (``--cpu``, default 0): on a small
noisy machine, cross-core wake-ups make numbers vary far more than the code
under test does. The sections:

- ``server-echo``: every server, the same picows client (the fastest one, so
  the server's cost dominates); the raw ``BufferedProtocol`` echo gets a raw
  TCP client writing pre-built masked frames of the same sizes: the ceiling.
- ``client-echo``: every client against the same picows server.
- ``server-deflate`` / ``client-deflate``: the echo workloads with
  permessage-deflate, against a fixed deflate-capable peer (picows has no
  deflate: n/a).
- ``connections``: 1,000 connections through the picows client: handshakes/s,
  and the server's RSS growth per connection, idle and after one message,
  with compression off and on (the client offers permessage-deflate in a
  header; the server decides).
- ``fanout``: a 100-byte message to 1,000 clients; broadcasts/s; then the
  same with permessage-deflate (the picows clients offer it and decode every
  compressed frame themselves; picows's server: n/a).

Echo workloads run round trips (one message out, its echo back) for
``--duration`` seconds (1) after ``--warmup`` seconds (0.3); the pipelined one
sends 100 messages then reads 100. Echo sections run ``--rounds`` times (3),
each round going through every library in turn, so a burst of load from
elsewhere on the machine spreads over all libraries instead of sinking one.
A measurement reports the median rate over all ``--slice``-second slices
(0.1) of all rounds, which such bursts move far less than the mean.
``connections`` runs ``--rounds`` times the same way; each figure is the
median of the rounds, and the targets compare handshake rates within a round
(the median of the per-round ratios).
``server-echo`` and ``client-echo`` run on a second event loop too
(``--extra-loop``; asyncio when the main one is uvloop).

Results: tables on stdout (absolute numbers, then wsjet's ratios) and the
targets of issue 5 as PASS/MISS, also saved as ``bench/results/latest.txt``;
``bench/results/latest.json`` holds every measurement with the machine and
library versions, for ``bench/plot.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import cpu_seconds, rss_kib

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

#: (label, size in bytes, messages in flight)
ECHO = [
    ("32 B", 32, 1),
    ("1 KiB", 1024, 1),
    ("64 KiB", 65536, 1),
    ("1 MiB", 2**20, 1),
    ("1 KiB x100", 1024, 100),
]
DEFLATE_ECHO = ECHO[:4]

SERVERS = ["wsjet-cb", "wsjet-co", "picows", "websockets", "aiohttp", "raw"]
WS_SERVERS = SERVERS[:-1]
CLIENTS = ["wsjet", "websockets", "aiohttp", "picows"]
NO_DEFLATE = {"picows", "raw"}
WSJET_SERVERS = ("wsjet-cb", "wsjet-co")
SECTIONS = [
    "server-echo",
    "client-echo",
    "server-deflate",
    "client-deflate",
    "connections",
    "fanout",
]
#: The sections that run on the extra loop too.
ECHO_SECTIONS = ("server-echo", "client-echo")


class BenchError(Exception):
    """A server or client process failed."""


# --- processes ------------------------------------------------------------------------------


def _tail(stream: IO[bytes], lines: int = 3) -> str:
    stream.seek(0)
    text = stream.read().decode(errors="replace").strip().splitlines()
    return " | ".join(text[-lines:]) or "no output"


def _readline(proc: subprocess.Popen[str], timeout: float, errors: IO[bytes]) -> dict[str, Any]:
    """Read the next JSON line a child writes, or fail after ``timeout`` seconds."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BenchError(f"no answer within {timeout:.0f}s: {_tail(errors)}")
        ready, _, _ = select.select([proc.stdout], [], [], remaining)
        if not ready:
            continue
        line = proc.stdout.readline()
        if not line:
            proc.wait(5)
            raise BenchError(f"exited with {proc.returncode}: {_tail(errors)}")
        line = line.strip()
        if line.startswith("{"):
            return dict(json.loads(line))


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Options:
    loop: str
    cpu: int | None
    duration: float
    warmup: float
    slice: float
    count: int

    def pinning(self) -> list[str]:
        return [] if self.cpu is None else ["--cpu", str(self.cpu)]


@contextlib.contextmanager
def server(
    lib: str, opts: Options, mode: str = "echo", compression: str = "off"
) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """Start a server process; yield its URL, pid and ready line; stop it."""
    command = [sys.executable, str(HERE / "servers.py"), lib, "--loop", opts.loop]
    command += ["--mode", mode, "--compression", compression, *opts.pinning()]
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, text=True
        )
        try:
            ready = _readline(proc, 30, errors)
            yield f"ws://127.0.0.1:{ready['port']}/", int(ready["pid"]), ready
        finally:
            _stop(proc)


def client_command(lib: str, workload: str, url: str, opts: Options, **extra: Any) -> list[str]:
    command = [sys.executable, str(HERE / "clients.py"), lib, workload, url]
    command += ["--loop", opts.loop, *opts.pinning()]
    command += ["--duration", str(opts.duration), "--warmup", str(opts.warmup)]
    command += ["--slice", str(opts.slice), "--count", str(opts.count)]
    for key, value in extra.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    return command


def run_client(
    lib: str,
    url: str,
    opts: Options,
    workloads: list[tuple[str, int, int]],
    compression: str,
    server_pid: int,
) -> list[dict[str, Any]]:
    """Run an echo client process over ``workloads``; return its result lines."""
    spec = ",".join(f"{size}x{pipeline}" for _, size, pipeline in workloads)
    command = client_command(
        lib, "echo", url, opts, workloads=spec, compression=compression, server_pid=server_pid
    )
    timeout = len(workloads) * (opts.warmup + opts.duration + 10) + 60
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, text=True
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(proc)
            raise BenchError(f"no result within {timeout:.0f}s: {_tail(errors)}") from None
        results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        if proc.returncode or len(results) != len(workloads):
            raise BenchError(f"exited with {proc.returncode}: {_tail(errors)}")
        return results


def run_fanout(url: str, opts: Options, server_pid: int, compression: str) -> dict[str, Any]:
    """Run the picows fan-out client; return its result line."""
    command = client_command(
        "picows",
        "fanout",
        url,
        opts,
        concurrency=100,
        server_pid=server_pid,
        compression=compression,
    )
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, text=True
        )
        try:
            result = _readline(proc, opts.warmup + opts.duration + 120, errors)
            proc.wait(30)
        finally:
            _stop(proc)
        return result


def rate(results: list[dict[str, Any]], slice_seconds: float) -> dict[str, Any]:
    """Pool the slices of several rounds: median slice rate (reported) and mean rate."""
    slices = [c / s for r in results for c, s in r["slices"] if s >= slice_seconds / 2]
    count = sum(r["count"] for r in results)
    seconds = sum(r["seconds"] for r in results)
    mean = count / seconds if seconds else 0.0
    return {
        "value": statistics.median(slices) if slices else mean,
        "mean": mean,
        "best": max(slices, default=mean),
        "rounds": [r["count"] / r["seconds"] if r["seconds"] else 0.0 for r in results],
        "count": count,
        "seconds": seconds,
        "slices": len(slices),
        # Messages per CPU-second of server + client: what a quiet machine
        # would reach, nearly independent of other programs' load.
        "per_cpu": count / cpu if (cpu := sum(r.get("cpu") or 0.0 for r in results)) else None,
        # Each side alone. The echo client is the same program for every server (and
        # the server the same for every client), so its CPU per message is a constant
        # that pulls every server + client ratio towards 1.0x: a server twice as fast
        # as another shows as 1.33x when the client costs as much as the slower one.
        # The side's own CPU includes the kernel's work done in its system calls
        # (loopback delivers a send() to the peer's socket inside the sender's call).
        "per_server_cpu": _per(count, [r.get("server_cpu") for r in results]),
        "per_client_cpu": _per(count, [_client_cpu(r) for r in results]),
        # Each round alone, for ratios taken within a round (see round_ratio()).
        "round_results": [
            {
                "value": r["count"] / r["seconds"] if r["seconds"] else None,
                "per_cpu": _per(r["count"], [r.get("cpu")]),
                "per_server_cpu": _per(r["count"], [r.get("server_cpu")]),
                "per_client_cpu": _per(r["count"], [_client_cpu(r)]),
                "steal_share": _steal_share(r),
            }
            for r in results
        ],
    }


#: A measurement that lost more than this share of its time to the hypervisor
#: (``steal`` in /proc/stat, on the pinned CPU) is done again (see least_stolen()).
STEAL_LIMIT = 0.01


def _steal_share(result: dict[str, Any]) -> float:
    return (result.get("steal") or 0.0) / result["seconds"] if result.get("seconds") else 0.0


def _client_cpu(result: dict[str, Any]) -> float | None:
    """The client's CPU seconds: server + client minus the server's."""
    both, server = result.get("cpu"), result.get("server_cpu")
    return None if both is None or server is None else both - server


def _per(count: int, seconds: list[float | None]) -> float | None:
    """``count`` per second of the summed ``seconds``; None if any is unknown."""
    if not seconds or any(s is None for s in seconds):
        return None
    total = sum(s for s in seconds if s is not None)
    return count / total if total > 0 else None


# --- sections -------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.records: list[dict[str, Any]] = []
        self.repeated = 0  # client runs done again for the hypervisor's steal
        self.steal_shares: list[float] = []  # of every echo measurement kept

    def options(self, loop: str) -> Options:
        a = self.args
        return Options(loop, a.cpu, a.duration, a.warmup, a.slice, a.count)

    def record(self, **fields: Any) -> dict[str, Any]:
        self.records.append(fields)
        value = fields.get("value")
        shown = fields.get("note") if value is None else f"{value:,.1f} {fields.get('unit', '')}"
        where = " ".join(
            str(fields[k])
            for k in ("section", "loop", "server", "client", "workload", "compression")
            if fields.get(k) is not None
        )
        print(f"  {where}: {shown}", file=sys.stderr, flush=True)
        return fields

    def echo_runs(
        self,
        section: str,
        loop: str,
        pairs: list[tuple[str, list[str]]],
        workloads: list[tuple[str, int, int]],
        compression: str,
    ) -> None:
        """Each round: for each (server, clients) pair, one server process, each client in turn.

        Rounds interleave the libraries, so a burst of load from elsewhere on
        the machine spreads over all of them instead of sinking one.
        """
        opts = self.options(loop)
        samples: dict[tuple[str, str], list[list[dict[str, Any]]]] = {}
        errors: dict[tuple[str, str], str] = {}
        for _ in range(self.args.rounds):
            for server_lib, client_libs in pairs:
                try:
                    with server(server_lib, opts, compression=compression) as (url, pid, _):
                        for client_lib in client_libs:
                            key = (server_lib, client_lib)
                            try:
                                results = self.least_stolen(
                                    lambda lib=client_lib: run_client(
                                        lib, url, opts, workloads, compression, pid
                                    )
                                )
                            except BenchError as exc:
                                errors[key] = f"failed: {exc}"
                            else:
                                samples.setdefault(key, []).append(results)
                except BenchError as exc:
                    for client_lib in client_libs:
                        errors[(server_lib, client_lib)] = f"unavailable: {exc}"
        for server_lib, client_libs in pairs:
            for client_lib in client_libs:
                key = (server_lib, client_lib)
                for i, (label, size, pipeline) in enumerate(workloads):
                    fields = {"section": section, "loop": loop, "server": server_lib}
                    fields |= {"client": client_lib, "workload": label, "size": size}
                    fields |= {"pipeline": pipeline, "compression": compression}
                    if key in samples:
                        results = [run[i] for run in samples[key]]
                        self.record(**fields, unit="msg/s", **rate(results, opts.slice))
                    else:
                        self.record(**fields, value=None, note=errors.get(key, "not run"))

    def least_stolen(self, measure: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
        """Run ``measure``; again (``--steal-retries`` times at most) while the
        hypervisor took more than ``STEAL_LIMIT`` of a workload's time from the
        pinned CPU. Keeps, for each workload, the attempt that lost the least.
        """
        best = measure()
        for _ in range(self.args.steal_retries):
            if max(_steal_share(r) for r in best) <= STEAL_LIMIT:
                break
            self.repeated += 1
            again = measure()
            best = [min(a, b, key=_steal_share) for a, b in zip(best, again, strict=True)]
        self.steal_shares.extend(_steal_share(r) for r in best)
        return best

    def server_echo(self, loop: str) -> None:
        pairs = [(lib, ["raw" if lib == "raw" else "picows"]) for lib in self.servers(SERVERS)]
        self.echo_runs("server-echo", loop, pairs, ECHO, "off")

    def client_echo(self, loop: str) -> None:
        self.echo_runs("client-echo", loop, [("picows", self.clients(CLIENTS))], ECHO, "off")

    def server_deflate(self, loop: str) -> None:
        peer = self.args.deflate_client
        pairs = []
        for lib in self.servers(WS_SERVERS):
            if lib in NO_DEFLATE:
                self.na("server-deflate", loop, lib, peer)
            else:
                pairs.append((lib, [peer]))
        self.echo_runs("server-deflate", loop, pairs, DEFLATE_ECHO, "deflate")

    def client_deflate(self, loop: str) -> None:
        peer = self.args.deflate_server
        clients = self.clients(CLIENTS)
        for lib in clients:
            if lib in NO_DEFLATE:
                self.na("client-deflate", loop, peer, lib)
        able = [c for c in clients if c not in NO_DEFLATE]
        self.echo_runs("client-deflate", loop, [(peer, able)], DEFLATE_ECHO, "deflate")

    def na(self, section: str, loop: str, server_lib: str, client_lib: str) -> None:
        for label, size, pipeline in DEFLATE_ECHO:
            self.record(
                section=section,
                loop=loop,
                server=server_lib,
                client=client_lib,
                workload=label,
                size=size,
                pipeline=pipeline,
                compression="deflate",
                value=None,
                note="n/a: picows has no permessage-deflate",
            )

    def connections(self, loop: str) -> None:
        """Each round opens the connections on every server in turn, as echo_runs does.

        One measurement of 1,000 handshakes lasts half a second: a burst of load
        from elsewhere moves it by a third. Each library's record holds the
        median of its rounds for every figure, and the rounds themselves, so
        that the report can take ratios within a round.
        """
        opts = self.options(loop)
        libs = self.servers(WS_SERVERS)
        kinds = [
            (lib, compression)
            for lib in libs
            for compression in ("off", "deflate")
            if not (compression == "deflate" and lib in NO_DEFLATE)
        ]
        samples: dict[tuple[str, str], list[dict[str, Any]]] = {}
        errors: dict[tuple[str, str], str] = {}
        for _ in range(self.args.rounds):
            for lib, compression in kinds:
                try:
                    result = self.connections_one(lib, opts, compression)
                except BenchError as exc:
                    errors[lib, compression] = f"failed: {exc}"
                else:
                    samples.setdefault((lib, compression), []).append(result)
        for lib in libs:
            for compression in ("off", "deflate"):
                base = {"section": "connections", "loop": loop, "server": lib, "client": "picows"}
                base |= {"compression": compression, "connections": opts.count}
                rounds = samples.get((lib, compression))
                if compression == "deflate" and lib in NO_DEFLATE:
                    self.record(**base, value=None, note="n/a: picows has no permessage-deflate")
                elif rounds is None:
                    self.record(**base, value=None, note=errors.get((lib, compression), "not run"))
                else:
                    medians = {
                        key: statistics.median(r[key] for r in rounds)
                        for key, value in rounds[0].items()
                        if isinstance(value, int | float)
                    }
                    self.record(**(base | rounds[0] | medians | {"round_results": rounds}))

    def connections_one(self, lib: str, opts: Options, compression: str) -> dict[str, Any]:
        with (
            server(lib, opts, compression=compression) as (url, pid, _),
            tempfile.TemporaryFile() as errors,
        ):
            proc = subprocess.Popen(
                client_command("picows", "connections", url, opts, compression=compression),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
            )
            assert proc.stdin is not None
            try:
                rss, cpu, server_cpu = {}, {}, {}
                for step in ("warm", "opened", "used"):
                    line = _readline(proc, 120, errors)
                    if line.get("event") != step:
                        raise BenchError(f"expected {step}, got {line}")
                    rss[step] = rss_kib(pid)
                    # The client waits for us between steps: CPU deltas are the step's.
                    server_cpu[step] = cpu_seconds(pid)
                    cpu[step] = server_cpu[step] + cpu_seconds(proc.pid)
                    if step == "opened":
                        seconds = line["seconds"]
                    proc.stdin.write("\n")
                    proc.stdin.flush()
                proc.wait(60)
            finally:
                _stop(proc)
        n = opts.count
        return {
            "value": n / seconds,
            "unit": "handshakes/s",
            "seconds": seconds,
            "per_cpu": n / (cpu["opened"] - cpu["warm"]),
            # The server alone: the picows client's share of the CPU is the same
            # for every server and would hide the servers' differences.
            "per_server_cpu": n / (server_cpu["opened"] - server_cpu["warm"]),
            "rss_base_kib": rss["warm"],
            "idle_kib": (rss["opened"] - rss["warm"]) / n,
            "used_kib": (rss["used"] - rss["warm"]) / n,
        }

    def fanout(self, loop: str) -> None:
        opts = self.options(loop)
        for compression in ("off", "deflate"):
            for lib in self.servers(WS_SERVERS):
                base = {"section": "fanout", "loop": loop, "server": lib, "client": "picows"}
                base |= {"compression": compression, "connections": opts.count}
                if compression == "deflate" and lib in NO_DEFLATE:
                    self.record(**base, value=None, note="n/a: picows has no permessage-deflate")
                    continue
                try:
                    with server(lib, opts, mode="fanout", compression=compression) as (
                        url,
                        pid,
                        ready,
                    ):
                        base["note"] = ready.get("fanout", "")
                        result = run_fanout(url, opts, pid, compression)
                except BenchError as exc:
                    self.record(**{**base, "note": f"failed: {exc}"}, value=None)
                else:
                    wire = {k: result[k] for k in ("compressed", "wire_bytes")}
                    self.record(**base, unit="broadcasts/s", **wire, **rate([result], opts.slice))

    def servers(self, libs: list[str]) -> list[str]:
        chosen = self.args.servers
        return [lib for lib in libs if chosen is None or lib in chosen]

    def clients(self, libs: list[str]) -> list[str]:
        chosen = self.args.clients
        return [lib for lib in libs if chosen is None or lib in chosen]


# --- reporting ------------------------------------------------------------------------------


def find(records: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    for record in records:
        if all(record.get(k) == v for k, v in match.items()):
            return record
    return None


def value(records: list[dict[str, Any]], key: str = "value", **match: Any) -> float | None:
    record = find(records, **match)
    return None if record is None else record.get(key)


def fmt(number: float | None, digits: int = 0) -> str:
    if number is None:
        return "n/a"
    return f"{number:,.{digits}f}"


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def fmt_ratio(r: float | None) -> str:
    return "n/a" if r is None else f"{r:.2f}x"


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(header[i]), *(len(row[i]) for row in rows)) for i in range(len(header))]
    lines = [title]
    lines.append(
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    )
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return "\n".join(lines)


def report(records: list[dict[str, Any]], loops: list[str], deflate_peers: tuple[str, str]) -> str:
    out: list[str] = []
    for loop in loops:
        sec = [r for r in records if r.get("loop") == loop]
        servers = [s for s in SERVERS if find(sec, section="server-echo", server=s)]
        if servers:
            rows = [
                [label]
                + [
                    fmt(value(sec, section="server-echo", server=s, workload=label))
                    for s in servers
                ]
                for label, _, _ in ECHO
            ]
            out.append(
                table(
                    f"Server echo, {loop}: messages/s (picows client; raw: raw TCP client)",
                    ["workload", *servers],
                    rows,
                )
            )
            others = [s for s in servers if s not in WSJET_SERVERS]
            mine = [s for s in WSJET_SERVERS if s in servers]
            header = ["workload"] + [f"{m[6:]}/{o}" for m in mine for o in others]
            rows = []
            for label, _, _ in ECHO:
                row = [label]
                for m in mine:
                    a = value(sec, section="server-echo", server=m, workload=label)
                    for o in others:
                        row.append(
                            fmt_ratio(
                                ratio(
                                    a, value(sec, section="server-echo", server=o, workload=label)
                                )
                            )
                        )
                rows.append(row)
            out.append(
                table(
                    f"Server echo, {loop}: wsjet (cb = callback face, co = coroutine face) / other",
                    header,
                    rows,
                )
            )
        clients = [c for c in CLIENTS if find(sec, section="client-echo", client=c)]
        if clients:
            raw = {
                label: value(sec, section="server-echo", server="raw", workload=label)
                for label, _, _ in ECHO
            }
            rows = [
                [label]
                + [
                    fmt(value(sec, section="client-echo", client=c, workload=label))
                    for c in clients
                ]
                + [fmt(raw[label])]
                for label, _, _ in ECHO
            ]
            out.append(
                table(
                    f"Client echo, {loop}: messages/s (picows server; raw = raw TCP pair)",
                    ["workload", *clients, "raw"],
                    rows,
                )
            )
            if "wsjet" in clients:
                others = [c for c in clients if c != "wsjet"]
                rows = []
                for label, _, _ in ECHO:
                    a = value(sec, section="client-echo", client="wsjet", workload=label)
                    rows.append(
                        [label]
                        + [
                            fmt_ratio(
                                ratio(
                                    a, value(sec, section="client-echo", client=o, workload=label)
                                )
                            )
                            for o in others
                        ]
                        + [fmt_ratio(ratio(a, raw[label]))]
                    )
                out.append(
                    table(
                        f"Client echo, {loop}: wsjet client / other",
                        ["workload", *[f"wsjet/{o}" for o in others], "wsjet/raw"],
                        rows,
                    )
                )
        for section, key, peer_key, libs, peer in (
            ("server-deflate", "server", "client", WS_SERVERS, deflate_peers[0]),
            ("client-deflate", "client", "server", CLIENTS, deflate_peers[1]),
        ):
            present = [lib for lib in libs if find(sec, section=section, **{key: lib})]
            if not present:
                continue
            rows = [
                [label]
                + [
                    fmt(value(sec, section=section, workload=label, **{key: lib}))
                    for lib in present
                ]
                for label, _, _ in DEFLATE_ECHO
            ]
            out.append(
                table(
                    f"{section}, {loop}: messages/s with permessage-deflate ({peer_key}: {peer})",
                    ["workload", *present],
                    rows,
                )
            )
            mine = [lib for lib in present if lib.startswith("wsjet")]
            others = [
                lib for lib in present if not lib.startswith("wsjet") and lib not in NO_DEFLATE
            ]
            rows = []
            for label, _, _ in DEFLATE_ECHO:
                row = [label]
                for m in mine:
                    a = value(sec, section=section, workload=label, **{key: m})
                    for o in others:
                        row.append(
                            fmt_ratio(
                                ratio(a, value(sec, section=section, workload=label, **{key: o}))
                            )
                        )
                rows.append(row)
            out.append(
                table(
                    f"{section}, {loop}: wsjet / other",
                    ["workload", *[f"{m}/{o}" for m in mine for o in others]],
                    rows,
                )
            )
        conns = [r for r in sec if r.get("section") == "connections"]
        if conns:
            rows = []
            for lib in WS_SERVERS:
                off = find(conns, server=lib, compression="off")
                on = find(conns, server=lib, compression="deflate")
                if off is None and on is None:
                    continue
                row = [lib]
                for rec in (off, on):
                    if rec is None or rec.get("value") is None:
                        row += ["n/a"] * 5
                    else:
                        row += [
                            fmt(rec["value"]),
                            fmt(rec.get("per_cpu")),
                            fmt(rec.get("per_server_cpu")),
                            fmt(rec["idle_kib"], 1),
                            fmt(rec["used_kib"], 1),
                        ]
                rows.append(row)
            count = conns[0].get("connections")
            out.append(
                table(
                    f"Connections, {loop}: {count} clients; handshakes/s (wall clock, per "
                    "CPU-second of server + client, per CPU-second of the server alone), "
                    "server RSS growth per connection in KiB (idle, after one message); "
                    "without, then with permessage-deflate",
                    [
                        "server",
                        "hs/s",
                        "hs/cpu-s",
                        "hs/srv-cpu-s",
                        "KiB idle",
                        "KiB used",
                        "defl hs/s",
                        "defl hs/cpu-s",
                        "defl hs/srv-cpu-s",
                        "defl KiB idle",
                        "defl KiB used",
                    ],
                    rows,
                )
            )
        out.extend(fanout_tables(sec, loop))
    return "\n\n".join(out)


Column = tuple[str, Callable[[dict[str, Any], list[dict[str, Any]]], str]]


def _per_cpu_against(peer: str) -> Column:
    return (
        f"/{peer} cpu",
        lambda rec, fans: fmt_ratio(ratio(rec.get("per_cpu"), value(fans, "per_cpu", server=peer))),
    )


#: The fan-out tables: title, columns (header, cell), and whether a failed run gets a row.
FANOUT_TABLES: list[tuple[str, str, list[Column], bool]] = [
    (
        "off",
        "Fan-out, {loop}: 100 B to {count} clients",
        [
            ("broadcasts/s", lambda rec, _: fmt(rec.get("value"))),
            ("per cpu-s", lambda rec, _: fmt(rec.get("per_cpu"))),
            (
                "messages/s",
                lambda rec, _: fmt(
                    None if rec.get("value") is None else rec["value"] * rec["connections"]
                ),
            ),
            (
                "/picows",
                lambda rec, fans: fmt_ratio(ratio(rec.get("value"), value(fans, server="picows"))),
            ),
            _per_cpu_against("picows"),
        ],
        True,
    ),
    (
        "deflate",
        "Fan-out with permessage-deflate, {loop}: 100 B to {count} clients that decode it",
        [
            ("broadcasts/s", lambda rec, _: fmt(rec.get("value"))),
            ("per cpu-s", lambda rec, _: fmt(rec.get("per_cpu"))),
            _per_cpu_against("websockets"),
            _per_cpu_against("aiohttp"),
            ("compressed", lambda rec, _: f"{rec['compressed']:.0%}"),
            ("bytes/msg", lambda rec, _: f"{rec['wire_bytes']:.0f}"),
        ],
        False,
    ),
]


def fanout_tables(sec: list[dict[str, Any]], loop: str) -> list[str]:
    """The fan-out tables: without compression, then with permessage-deflate."""
    out = []
    for compression, title, columns, failed_rows in FANOUT_TABLES:
        fans = [
            r for r in sec if r.get("section") == "fanout" and r.get("compression") == compression
        ]
        shown = [
            rec
            for rec in (find(fans, server=lib) for lib in WS_SERVERS)
            if rec is not None and (failed_rows or rec.get("value") is not None)
        ]
        if not shown:
            continue
        rows = [
            [rec["server"], *(cell(rec, fans) for _, cell in columns), str(rec.get("note", ""))]
            for rec in shown
        ]
        headers = ["server", *(header for header, _ in columns), "how"]
        out.append(table(title.format(loop=loop, count=fans[0].get("connections")), headers, rows))
    return out


def cpu_report(records: list[dict[str, Any]], loops: list[str]) -> str:
    """The echo tables again, per CPU-second of server + client, then of the side alone.

    Both processes share one CPU, so on a quiet machine the first is what the
    wall-clock rate would be; it hardly moves when other programs take the
    CPU away, which makes it the number to compare across runs. The second
    leaves out the peer's CPU (the same program for every row).
    """
    out = []
    for loop in loops:
        sec = [r for r in records if r.get("loop") == loop]
        for section, key, libs, peer, field, whose in (
            ("server-echo", "server", SERVERS, "picows client", "per_cpu", "server + client"),
            ("client-echo", "client", CLIENTS, "picows server", "per_cpu", "server + client"),
            ("server-echo", "server", SERVERS, "picows client", "per_server_cpu", "the server"),
            ("client-echo", "client", CLIENTS, "picows server", "per_client_cpu", "the client"),
        ):
            present = [lib for lib in libs if find(sec, section=section, **{key: lib})]
            if not present:
                continue
            mine = [lib for lib in present if lib.startswith("wsjet")]
            others = [lib for lib in present if not lib.startswith("wsjet")]
            rows = []
            for label, _, _ in ECHO:
                got = {
                    lib: value(sec, field, section=section, workload=label, **{key: lib})
                    for lib in present
                }
                rows.append(
                    [label]
                    + [fmt(got[lib]) for lib in present]
                    + [fmt_ratio(ratio(got[m], got[o])) for m in mine for o in others]
                )
            names = [f"{m.removeprefix('wsjet-')}/{o}" for m in mine for o in others]
            out.append(
                table(
                    f"{section}, {loop}: messages per CPU-second of {whose} ({peer})",
                    ["workload", *present, *names],
                    rows,
                )
            )
    return "\n\n".join(out)


def targets(records: list[dict[str, Any]], loop: str) -> list[dict[str, Any]]:
    """Issue 5's goals, checked against this run's numbers on ``loop``.

    Each goal gets three ratios: wall clock, per CPU-second of server +
    client, and per CPU-second of the measured side alone (the server in
    server-echo, the client in client-echo). The status follows the side's
    own CPU where there is one: it is what the goal compares (the other
    process is the same program for both), and like the second it is
    repeatable on a shared machine. Otherwise server + client, else the wall
    clock. Echo ratios are medians over rounds of the ratio within a round;
    the lowest and highest of those for the side's own CPU show the spread.
    """
    sec = [r for r in records if r.get("loop") == loop]
    checks: list[dict[str, Any]] = []

    Ratios = tuple[float | None, float | None, float | None, tuple[float, float] | None]

    def check(goal: str, ratios: Ratios, want: float) -> None:
        wall, cpu, own, spread = ratios
        got = next((r for r in (own, cpu, wall) if r is not None), None)
        status = "n/a" if got is None else "PASS" if got >= want else "MISS"
        checks.append(
            {
                "goal": goal,
                "ratio": wall,
                "cpu_ratio": cpu,
                "own_cpu_ratio": own,
                "own_cpu_spread": spread,
                "want": want,
                "status": status,
            }
        )

    def both(section: str, key: str, mine: str, other: str, label: str) -> Ratios:
        # Medians over rounds of the ratio within each round: the rounds go through
        # the libraries in turn, so the two figures of a round saw the same machine.
        mine_rec = find(sec, section=section, workload=label, **{key: mine}) or {}
        other_rec = find(sec, section=section, workload=label, **{key: other}) or {}
        own = "per_server_cpu" if key == "server" else "per_client_cpu"
        return (
            round_ratio(mine_rec, other_rec, "value"),
            round_ratio(mine_rec, other_rec, "per_cpu"),
            round_ratio(mine_rec, other_rec, own),
            round_spread(mine_rec, other_rec, own),
        )

    for label, _, _ in ECHO:
        check(
            f"callback server >= 1.0x picows server, {label}",
            both("server-echo", "server", "wsjet-cb", "picows", label),
            1.0,
        )
    for label in ("32 B", "1 KiB"):
        check(
            f"callback server >= 0.95x raw ceiling, {label}",
            both("server-echo", "server", "wsjet-cb", "raw", label),
            0.95,
        )
    for label, _, _ in ECHO:
        check(
            f"coroutine server >= 1.5x websockets, {label}",
            both("server-echo", "server", "wsjet-co", "websockets", label),
            1.5,
        )
        check(
            f"coroutine server >= 1.0x aiohttp, {label}",
            both("server-echo", "server", "wsjet-co", "aiohttp", label),
            1.0,
        )
    for label, _, _ in ECHO:
        check(
            f"wsjet client >= 1.5x websockets client, {label}",
            both("client-echo", "client", "wsjet", "websockets", label),
            1.5,
        )
    for label in ("64 KiB", "1 MiB"):
        for mine, face in (("wsjet-cb", "callback"), ("wsjet-co", "coroutine")):
            check(
                f"{face} server >= 1.3x picows server, {label}",
                both("server-echo", "server", mine, "picows", label),
                1.3,
            )
    conns = [r for r in sec if r.get("section") == "connections" and r.get("compression") == "off"]
    theirs = find(conns, server="websockets") or {}
    for mine in WSJET_SERVERS:
        rec = find(conns, server=mine) or {}
        check(
            f"{mine} handshakes/s >= 2x websockets",
            (round_ratio(rec, theirs, "value"), round_ratio(rec, theirs, "per_cpu"), None, None),
            2.0,
        )
        check(
            f"{mine} handshakes per server CPU-second >= 2x websockets",
            (round_ratio(rec, theirs, "per_server_cpu"), None, None, None),
            2.0,
        )
        # Less memory is better: the ratio is websockets' / ours.
        check(
            f"{mine} memory per idle connection <= websockets (no compression)",
            (ratio(theirs.get("idle_kib"), rec.get("idle_kib")), None, None, None),
            1.0,
        )
    return checks


def round_ratio(mine: dict[str, Any], theirs: dict[str, Any], key: str) -> float | None:
    """Median over rounds of mine[key] / theirs[key] within each round.

    Rounds interleave the libraries, so a burst of load from elsewhere hits the
    two figures of one round alike; records without rounds give the ratio of
    their values.
    """
    pairs = zip(mine.get("round_results") or [], theirs.get("round_results") or [], strict=False)
    ratios = [ratio(a.get(key), b.get(key)) for a, b in pairs]
    known = [r for r in ratios if r is not None]
    if not known:
        return ratio(mine.get(key), theirs.get(key))
    return statistics.median(known)


def steal_summary(bench: Bench) -> str:
    """How much the hypervisor took from the pinned CPU during the echo measurements."""
    shares = bench.steal_shares
    if not shares:
        return "hypervisor steal: no echo measurement"
    return (
        f"hypervisor steal on the pinned CPU during echo measurements: median "
        f"{statistics.median(shares):.1%}, worst kept {max(shares):.1%}; "
        f"{bench.repeated} client runs repeated for losing more than {STEAL_LIMIT:.0%}"
    )


def round_spread(
    mine: dict[str, Any], theirs: dict[str, Any], key: str
) -> tuple[float, float] | None:
    """The lowest and highest of mine[key] / theirs[key] within a round, if known."""
    pairs = zip(mine.get("round_results") or [], theirs.get("round_results") or [], strict=False)
    known = [r for a, b in pairs if (r := ratio(a.get(key), b.get(key))) is not None]
    return (min(known), max(known)) if known else None


def format_targets(checks: list[dict[str, Any]], loop: str) -> str:
    rows = [
        [
            c["goal"],
            fmt_ratio(c["ratio"]),
            fmt_ratio(c.get("cpu_ratio")),
            fmt_ratio(c.get("own_cpu_ratio")),
            "" if not c.get("own_cpu_spread") else "{:.2f}-{:.2f}x".format(*c["own_cpu_spread"]),
            f"{c['want']:.2f}x",
            c["status"],
        ]
        for c in checks
    ]
    return table(
        f"Targets (issue 5), {loop}: status by the measured side's own CPU where there is "
        "one, else by server + client CPU, else by the wall clock",
        ["goal", "wall clock", "per CPU", "own CPU", "rounds", "wanted", "status"],
        rows,
    )


# --- machine --------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    from importlib import metadata

    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for name in ("wsjet", "picows", "aiofastnet", "websockets", "aiohttp", "uvloop"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    commit = None
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=HERE,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=HERE,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if dirty:
            commit += "+dirty"
    speedups = subprocess.run(
        [sys.executable, "-c", "from wsjet import speedups_enabled as s; print(s())"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "versions": versions,
        "wsjet_commit": commit,
        "wsjet_speedups": speedups == "True",
        "load_average_at_start": os.getloadavg(),
    }


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fast smoke run (about a minute)")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument(
        "--extra-loop",
        choices=("uvloop", "asyncio", "none"),
        default=None,
        help="loop for a second run of the echo sections (default: the other one; none in --quick)",
    )
    parser.add_argument("--duration", type=float, default=None, help="seconds per measurement (2)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds before each (0.5)")
    parser.add_argument("--slice", type=float, default=None, help="seconds per rate sample (0.25)")
    parser.add_argument("--count", type=int, default=None, help="connections (1000)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per section (3)")
    parser.add_argument("--cpu", type=int, default=0, help="CPU to pin every process to")
    parser.add_argument(
        "--steal-retries",
        type=int,
        default=3,
        help="times an echo client run is repeated while the hypervisor steals more than "
        f"{STEAL_LIMIT:.0%}% of the pinned CPU's time (default 3)",
    )
    parser.add_argument("--no-pin", action="store_true", help="let the scheduler place processes")
    parser.add_argument("--sections", help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--servers", help=f"comma-separated subset of {','.join(SERVERS)}")
    parser.add_argument("--clients", help=f"comma-separated subset of {','.join(CLIENTS)}")
    parser.add_argument(
        "--deflate-client", default="aiohttp", choices=("wsjet", "websockets", "aiohttp")
    )
    parser.add_argument(
        "--deflate-server", default="aiohttp", choices=("wsjet-co", "websockets", "aiohttp")
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args(argv)
    quick = args.quick
    for name, full, fast in (
        ("duration", 1.0, 0.25),
        ("warmup", 0.3, 0.05),
        ("slice", 0.1, 0.05),
        ("count", 1000, 200),
        ("rounds", 3, 1),
    ):
        if getattr(args, name) is None:
            setattr(args, name, fast if quick else full)
    if args.extra_loop is None:
        args.extra_loop = "none" if quick else ("asyncio" if args.loop == "uvloop" else "uvloop")
    if args.no_pin:
        args.cpu = None
    args.sections = SECTIONS if args.sections is None else args.sections.split(",")
    for name in ("servers", "clients"):
        value = getattr(args, name)
        setattr(args, name, None if value is None else set(value.split(",")))
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.monotonic()
    bench = Bench(args)
    loops = [args.loop] + ([] if args.extra_loop in ("none", args.loop) else [args.extra_loop])
    info = machine()
    pinned = "not pinned" if args.cpu is None else f"server and client pinned to CPU {args.cpu}"
    header = "\n".join(
        [
            f"$ {' '.join([Path(sys.executable).name, *sys.argv])}",
            f"{info['cpu']} ({info['cpus']} CPUs), {info['python']}, {info['system']}",
            ", ".join(f"{k} {v}" for k, v in info["versions"].items())
            + f"; wsjet {info['wsjet_commit']}, speedups: {info['wsjet_speedups']}",
            f"{pinned}; {args.rounds} rounds of {args.duration}s per measurement after "
            f"{args.warmup}s warm-up; median of {args.slice}s slices",
            "",
        ]
    )
    print(header, flush=True)
    for loop in loops:
        for section in args.sections:
            if loop != args.loop and section not in ECHO_SECTIONS:
                continue
            print(f"[{loop}] {section}", file=sys.stderr, flush=True)
            try:
                getattr(bench, section.replace("-", "_"))(loop)
            except Exception as exc:  # a harness bug must not lose the other sections
                bench.record(section=section, loop=loop, value=None, note=f"harness error: {exc!r}")
    elapsed = time.monotonic() - started
    peers = (args.deflate_client, args.deflate_server)
    checks = targets(bench.records, args.loop)
    info["load_average_at_end"] = os.getloadavg()
    text = "\n\n".join(
        [
            report(bench.records, loops, peers),
            cpu_report(bench.records, loops),
            format_targets(checks, args.loop),
            f"{len(bench.records)} measurements in {elapsed:.0f}s; load average "
            f"{info['load_average_at_start'][0]:.1f} at start, "
            f"{info['load_average_at_end'][0]:.1f} at end",
            steal_summary(bench),
        ]
    )
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".txt").write_text(header + "\n" + text + "\n")
    document = {
        "machine": info,
        "config": {
            "command": sys.argv,
            "quick": args.quick,
            "loops": loops,
            "cpu": args.cpu,
            "duration": args.duration,
            "warmup": args.warmup,
            "slice": args.slice,
            "count": args.count,
            "rounds": args.rounds,
            "deflate_client": args.deflate_client,
            "deflate_server": args.deflate_server,
            "elapsed_seconds": elapsed,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        },
        "records": bench.records,
        "targets": checks,
        "tables": report(bench.records, loops, peers),
    }
    args.output.write_text(json.dumps(document, indent=1) + "\n")
    print(f"results: {args.output}")


if __name__ == "__main__":
    main()
