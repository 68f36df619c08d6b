"""PNG plots of a benchmark's timeline: latency percentiles over the run, and throughput.

    python -m bench.plots bench/results/referral-sqlite.json   # writes referral-sqlite.png

The upper panel draws p50, p90 and p99 per window (log scale; the target as a dashed line
when there is one), the lower panel the load answered per second; a backlog shows as p99
rising while throughput stays below the offered rate.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt


def plot_timeline(
    windows: list[dict[str, Any]],
    out: Path,
    *,
    title: str,
    latency_label: str,
    target_p99_ms: float | None = None,
    offered_per_s: float | None = None,
) -> Path:
    """Draws ``windows`` (``bench.stats.timeline``) to ``out`` and returns it."""
    xs = [w["from_s"] for w in windows]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(9, 6), sharex=True, gridspec_kw={"height_ratios": [2, 1]}
    )
    for key, style in (("p50", "-"), ("p90", "--"), ("p99", "-")):
        ys = [w[key] if w[key] is not None else float("nan") for w in windows]
        top.plot(xs, ys, style, label=key, linewidth=1.4 if key == "p99" else 1.0)
    if target_p99_ms is not None:
        top.axhline(
            target_p99_ms, color="red", linestyle=":", label=f"target p99 {target_p99_ms:g}"
        )
    top.set_yscale("log")
    top.set_ylabel(f"{latency_label} (ms)")
    top.set_title(title)
    top.grid(True, which="both", alpha=0.3)
    top.legend(loc="upper left", fontsize="small")
    bottom.plot(xs, [w["per_s"] for w in windows], color="black", linewidth=1.0, label="answered")
    if offered_per_s is not None:
        bottom.axhline(offered_per_s, color="grey", linestyle="--", label="offered")
    bottom.set_ylabel("per second")
    bottom.set_xlabel("seconds into the run")
    bottom.grid(True, alpha=0.3)
    bottom.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def plot_memory(samples: list[dict[str, Any]], out: Path, *, title: str) -> Path:
    """Resident memory of each process over the run: ``samples`` are ``{"at_s": seconds,
    process name: MB, ...}`` rows (``make soak``); one line per process."""
    names = sorted({k for row in samples for k in row if k != "at_s"})
    fig, ax = plt.subplots(figsize=(9, 5))
    xs = [row["at_s"] for row in samples]
    for name in names:
        ax.plot(xs, [row.get(name, float("nan")) for row in samples], linewidth=1.0, label=name)
    ax.set_ylabel("RSS (MB)")
    ax.set_xlabel("seconds into the run")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize="x-small", ncol=2)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="bench/results/*.json files")
    args = parser.parse_args()
    for path in args.results:
        data = json.loads(path.read_text())
        windows = data.get("timeline") or data.get("decisions", {}).get("open_loop", {}).get(
            "timeline"
        )
        if not windows:
            print(f"{path}: no timeline")
            continue
        print(plot_timeline(windows, path.with_suffix(".png"), title=path.stem, latency_label="ms"))


if __name__ == "__main__":
    main()
