"""Plot ``bench/results/latest.json`` (from ``run.py``) to ``bench/results/benchmarks.png``.

Usage: ``python bench/plot.py [RESULTS.json] [-o OUT.png]``. Throughput panels
show each library relative to a reference (1.0 = the reference's rate, given
in the panel's subtitle per workload) so that 32-byte and 1 MiB messages fit
on one axis; the connection panels show absolute numbers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent
COLORS = {
    "wsjet-cb": "#d62728",
    "wsjet-co": "#ff7f0e",
    "wsjet": "#d62728",
    "picows": "#1f77b4",
    "websockets": "#2ca02c",
    "aiohttp": "#9467bd",
    "raw": "#7f7f7f",
}
LABELS = {
    "wsjet-cb": "wsjet callback face",
    "wsjet-co": "wsjet coroutine face",
    "raw": "raw TCP (ceiling)",
}


def short(rate: float) -> str:
    return (
        f"{rate / 1000:.0f}k"
        if rate >= 10_000
        else f"{rate / 1000:.1f}k"
        if rate >= 1000
        else f"{rate:.0f}"
    )


def records(doc: dict[str, Any], **match: Any) -> list[dict[str, Any]]:
    return [r for r in doc["records"] if all(r.get(k) == v for k, v in match.items())]


#: Which number the throughput panels show: "per_cpu" (messages per CPU-second of
#: server + client, steady on a busy machine) or "value" (wall-clock rate).
METRIC = "per_cpu"


def get(doc: dict[str, Any], **match: Any) -> float | None:
    found = records(doc, **match)
    return found[0].get(METRIC) if found else None


def relative_panel(
    ax: Any,
    doc: dict[str, Any],
    section: str,
    loop: str,
    key: str,
    libs: list[str],
    reference: str,
    title: str,
) -> None:
    """Grouped bars: per workload, each library's rate / the reference's."""
    workloads = list(dict.fromkeys(r["workload"] for r in records(doc, section=section, loop=loop)))
    libs = [lib for lib in libs if records(doc, section=section, loop=loop, **{key: lib})]
    if not workloads or not libs:
        ax.set_visible(False)
        return
    width = 0.8 / len(libs)
    refs = []
    for w, workload in enumerate(workloads):
        ref = get(doc, section=section, loop=loop, workload=workload, **{key: reference})
        refs.append(f"{workload}: {short(ref)}/s" if ref else f"{workload}: n/a")
        for i, lib in enumerate(libs):
            rate = get(doc, section=section, loop=loop, workload=workload, **{key: lib})
            x = w + (i - (len(libs) - 1) / 2) * width
            if rate is None or not ref:
                ax.text(x, 0.02, "n/a", rotation=90, ha="center", va="bottom", fontsize=6)
                continue
            ratio = rate / ref
            ax.bar(
                x,
                ratio,
                width,
                color=COLORS.get(lib, "#333333"),
                label=LABELS.get(lib, lib) if w == 0 else None,
            )
            if lib.startswith("wsjet"):
                ax.text(x, ratio, f"{ratio:.2f}", ha="center", va="bottom", fontsize=6, rotation=90)
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(workloads)), workloads, fontsize=8)
    ax.set_ylabel(f"rate / {reference}")
    unit = "/cpu-s" if METRIC == "per_cpu" else "/s"
    refs = [ref.replace("/s", unit) for ref in refs]
    ax.set_title(f"{title}\n(1.0 = {'; '.join(refs)})", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")


def connections_panel(ax: Any, doc: dict[str, Any], loop: str, field: str, title: str) -> None:
    recs = records(doc, section="connections", loop=loop)
    libs = list(dict.fromkeys(r["server"] for r in recs))
    if not libs:
        ax.set_visible(False)
        return
    width = 0.38
    for j, compression in enumerate(("off", "deflate")):
        xs, ys = [], []
        for i, lib in enumerate(libs):
            found = [r for r in recs if r["server"] == lib and r["compression"] == compression]
            if found and found[0].get(field) is not None:
                xs.append(i + (j - 0.5) * width)
                ys.append(found[0][field])
        bars = ax.bar(
            xs,
            ys,
            width,
            label="no compression" if compression == "off" else "permessage-deflate",
            color=[COLORS.get(libs[round(x - (j - 0.5) * width)], "#333") for x in xs],
            alpha=1.0 if compression == "off" else 0.5,
            hatch=None if compression == "off" else "//",
        )
        ax.bar_label(bars, fmt="%.1f" if field.endswith("_kib") else "%.0f", fontsize=6)
    ax.set_xticks(range(len(libs)), libs, fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)


def fanout_panel(ax: Any, doc: dict[str, Any], loop: str) -> None:
    recs = [r for r in records(doc, section="fanout", loop=loop) if r.get(METRIC) is not None]
    if not recs:
        ax.set_visible(False)
        return
    libs = [r["server"] for r in recs]
    bars = ax.bar(libs, [r[METRIC] for r in recs], color=[COLORS.get(lib, "#333") for lib in libs])
    ax.bar_label(bars, fmt="%.0f", fontsize=7)
    count = recs[0].get("connections")
    unit = "broadcasts per CPU-second" if METRIC == "per_cpu" else "broadcasts/s"
    ax.set_title(f"Fan-out, {loop}: 100 B to {count} clients ({unit})", fontsize=9)
    ax.tick_params(axis="x", labelsize=8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="?", type=Path, default=HERE / "results" / "latest.json")
    parser.add_argument("-o", "--output", type=Path, default=HERE / "results" / "benchmarks.png")
    parser.add_argument(
        "--metric",
        choices=("per_cpu", "value"),
        default="per_cpu",
        help="per_cpu: messages per CPU-second (default); value: wall-clock rate",
    )
    args = parser.parse_args()
    global METRIC
    METRIC = args.metric
    doc = json.loads(args.results.read_text())
    loops = doc["config"]["loops"]
    main_loop, extra = loops[0], loops[1] if len(loops) > 1 else None
    servers = ["wsjet-cb", "wsjet-co", "picows", "websockets", "aiohttp", "raw"]
    clients = ["wsjet", "websockets", "aiohttp", "picows"]

    fig, axes = plt.subplots(5, 2, figsize=(15, 23))
    relative_panel(
        axes[0][0],
        doc,
        "server-echo",
        main_loop,
        "server",
        servers,
        "picows",
        f"Servers, echo round trips, {main_loop} (picows client)",
    )
    if extra:
        relative_panel(
            axes[0][1],
            doc,
            "server-echo",
            extra,
            "server",
            servers,
            "picows",
            f"Servers, echo round trips, {extra} (picows client)",
        )
    else:
        axes[0][1].set_visible(False)
    relative_panel(
        axes[1][0],
        doc,
        "client-echo",
        main_loop,
        "client",
        clients,
        "picows",
        f"Clients, echo round trips, {main_loop} (picows server)",
    )
    if extra:
        relative_panel(
            axes[1][1],
            doc,
            "client-echo",
            extra,
            "client",
            clients,
            "picows",
            f"Clients, echo round trips, {extra} (picows server)",
        )
    else:
        axes[1][1].set_visible(False)
    relative_panel(
        axes[2][0],
        doc,
        "server-deflate",
        main_loop,
        "server",
        servers[:-1],
        "websockets",
        f"Servers with permessage-deflate, {main_loop} ({doc['config']['deflate_client']} client)",
    )
    relative_panel(
        axes[2][1],
        doc,
        "client-deflate",
        main_loop,
        "client",
        clients,
        "websockets",
        f"Clients with permessage-deflate, {main_loop} ({doc['config']['deflate_server']} server)",
    )
    connections_panel(
        axes[3][0],
        doc,
        main_loop,
        METRIC,
        ("Handshakes per CPU-second of server + client" if METRIC == "per_cpu" else "Handshakes/s")
        + f", {main_loop} (picows client)",
    )
    connections_panel(
        axes[3][1],
        doc,
        main_loop,
        "idle_kib",
        f"Server memory per idle connection, KiB (RSS growth / connections), {main_loop}",
    )
    fanout_panel(axes[4][0], doc, main_loop)
    connections_panel(
        axes[4][1],
        doc,
        main_loop,
        "used_kib",
        f"Server memory per connection after one 32 B message, KiB, {main_loop}",
    )
    machine = doc["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    what = (
        "throughput as messages per CPU-second of server + client"
        if METRIC == "per_cpu"
        else "throughput as wall-clock rate"
    )
    fig.suptitle(
        f"wsjet benchmarks - {machine['cpu']}, {machine['python']}, one CPU for server and client;"
        f" {what}\n{versions}",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
