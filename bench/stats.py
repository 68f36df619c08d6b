"""Figures every benchmark reports the same way: percentiles, and latency over time.

``summary_ms`` turns latencies in seconds into n/p50/p90/p99/max/mean in milliseconds.
``timeline`` cuts (when, latency) samples into windows of the run, so a growing backlog
shows as a rising p99 and a falling throughput (what ``bench.plots`` draws).
"""

from __future__ import annotations

import collections
import statistics
from collections.abc import Iterable
from typing import Any


def pct(values: list[float], p: float) -> float:
    """The ``p``-th percentile by nearest rank (NaN for no values)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary_ms(values: list[float]) -> dict[str, float]:
    """n, p50, p90, p99, max and mean in milliseconds of latencies given in seconds."""
    ms = [v * 1000 for v in values]
    return {
        "n": len(ms),
        "p50": round(pct(ms, 50), 2),
        "p90": round(pct(ms, 90), 2),
        "p99": round(pct(ms, 99), 2),
        "max": round(max(ms), 2) if ms else float("nan"),
        "mean": round(statistics.fmean(ms), 2) if ms else float("nan"),
    }


def timeline(samples: Iterable[tuple[float, float]], width_s: float = 1.0) -> list[dict[str, Any]]:
    """Windows of ``width_s`` seconds over ``(when_s, latency_s)`` samples, ``when_s`` on any
    clock (the earliest sample is the run's second 0): from_s, n, per_s, p50, p90, p99 (ms).

    A sample belongs to the window in which its work was *due* or *started*, so a window's
    n/per_s is the load offered and answered then, and its percentiles what that load saw.
    """
    points = list(samples)
    if not points:
        return []
    t0 = min(t for t, _ in points)
    buckets: dict[int, list[float]] = collections.defaultdict(list)
    for t, latency in points:
        buckets[int((t - t0) // width_s)].append(latency)
    out: list[dict[str, Any]] = []
    for k in range(max(buckets) + 1):
        m = summary_ms(buckets.get(k, []))
        window: dict[str, Any] = {"from_s": round(k * width_s, 3), "n": m["n"]}
        window["per_s"] = round(m["n"] / width_s, 1)
        for p in ("p50", "p90", "p99"):  # an empty window has none (JSON null, not NaN)
            window[p] = m[p] if m["n"] else None
        out.append(window)
    return out
