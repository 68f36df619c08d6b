"""``make bench``'s reporting: timelines, the summary against the targets, the plots and the
README block it rewrites (the workloads themselves run in ``make bench``, not here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.notify import cpu_share, share_by_third
from bench.plots import plot_memory, plot_timeline
from bench.run import BEGIN, END, README, replace_block, rows
from bench.stats import summary_ms, timeline
from tests.reliability.soak import memory, readme_block


def test_timeline_cuts_samples_into_windows_from_the_earliest() -> None:
    samples = [(100.0, 0.010), (100.5, 0.030), (102.2, 0.005)]
    windows = timeline(samples)
    assert [w["from_s"] for w in windows] == [0.0, 1.0, 2.0]
    assert [w["n"] for w in windows] == [2, 0, 1]
    assert windows[0]["p50"] == 10.0
    assert windows[0]["p99"] == 30.0
    # A second without samples has no percentiles (null in JSON), not NaN or zero.
    assert windows[1]["p50"] is None
    assert windows[1]["per_s"] == 0.0
    assert timeline([]) == []
    assert timeline(samples, width_s=5.0)[0]["per_s"] == pytest.approx(0.6)


def _floor() -> dict[str, Any]:
    return {"kafka_round_trip_ms": summary_ms([0.010]), "db_commit_ms": summary_ms([0.001])}


def _results(*, notify_p99_s: float, rss_last: float) -> dict[str, dict[str, Any]]:
    return {
        "backbone": {
            "rate_per_s": 200.0,
            "written": 10,
            "lost": 0,
            "duplicated_effects": 0,
            "end_to_end_ms": summary_ms([0.030] * 10),
            "floor": _floor(),
        },
        "notify": {
            "rate": 200.0,
            "seconds": 60.0,
            "lost": 0,
            "duplicates": 0,
            "fan_out_ms": summary_ms([0.010] * 99 + [notify_p99_s] * 2),
            "worker_rss_mb": {"second_quarter_mean": 100.0, "last_quarter_mean": rss_last},
        },
    }


def test_the_summary_judges_each_figure_against_its_target() -> None:
    ok = {
        row["what"].split(":")[0]: row
        for row in rows("sqlite", _results(notify_p99_s=0.05, rss_last=105))
    }
    assert ok["backbone"]["met"] is True
    assert ok["backbone"]["to_floor"] == "p50 3.0× Kafka RTT"
    assert ok["notify"]["met"] is True
    slow = rows("sqlite", _results(notify_p99_s=0.5, rss_last=105))
    assert [r["met"] for r in slow if r["what"].startswith("notify")] == [False]
    growing = rows("sqlite", _results(notify_p99_s=0.05, rss_last=115))
    assert [r["met"] for r in growing if r["what"].startswith("notify")] == [False]
    # Only the workloads that ran are summarised.
    assert {r["what"].split(":")[0] for r in slow} == {"backbone", "notify"}


def test_the_readme_block_between_the_markers_is_replaced_and_nothing_else() -> None:
    text = f"intro\n{BEGIN}\nold figures\n{END}\noutro\n"
    new = replace_block(text, "| new | figures |")
    assert new == f"intro\n{BEGIN}\n| new | figures |\n{END}\noutro\n"
    assert replace_block(new, "again") == f"intro\n{BEGIN}\nagain\n{END}\noutro\n"
    with pytest.raises(ValueError, match="make-bench"):
        replace_block("no markers", "x")


def test_a_timeline_is_drawn_as_a_png(tmp_path: Path) -> None:
    windows = timeline([(t / 10, 0.001 * (1 + t % 7)) for t in range(100)])
    out = plot_timeline(
        windows,
        tmp_path / "x.png",
        title="t",
        latency_label="ms",
        target_p99_ms=5,
        offered_per_s=10,
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 10_000


def test_the_readme_has_the_blocks_make_bench_and_make_soak_own() -> None:
    text = README.read_text()
    for name in ("make-bench", "make-soak"):
        assert text.count(f"<!-- {name}:begin -->") == 1
        assert text.count(f"<!-- {name}:end -->") == 1
    both = replace_block(replace_block(text, "B", "make-bench"), "S", "make-soak")
    assert "<!-- make-bench:begin -->\nB\n<!-- make-bench:end -->" in both
    assert "<!-- make-soak:begin -->\nS\n<!-- make-soak:end -->" in both


def test_soak_memory_is_stable_unless_the_last_quarter_outgrows_the_second() -> None:
    flat = [(t * 5.0, {"a": 100.0 + (t % 2), "b": 100.0 + t}) for t in range(40)]
    mem = memory(flat, {"a": 100.0, "b": 100.0}, {"a": 101.0, "b": 139.0})
    assert mem["a"]["stable"] is True
    assert mem["a"]["peak"] == 101.0
    assert mem["a"]["growth"] == 1.0
    # b grows 1 MB per sample: the last quarter's mean (134.5) > 1.1 x the second's (114.5).
    assert mem["b"]["stable"] is False
    assert (mem["b"]["second_quarter_mean"], mem["b"]["last_quarter_mean"]) == (114.5, 134.5)


def test_the_soak_readme_block_names_the_command_and_the_verdicts(tmp_path: Path) -> None:
    samples = [(t * 5.0, {"x-referral-serve": 100.0 + 10 * t}) for t in range(12)]
    mem = memory(samples, {"x-referral-serve": 100.0}, {"x-referral-serve": 210.0})
    result: dict[str, Any] = {
        "minutes": 1.0,
        "rate_per_s": 20.0,
        "at": "2026-11-23T10:00:00+00:00",
        "backend": "sqlite",
        "processes": 1,
        "machine": {"load_average_1m": 1.5},
        "offered": 1200,
        "accepted": 1200,
        "filed": 1200,
        "lost": 0,
        "duplicates": {"filed": 0, "notifications": 0},
        "end_to_end_ms": summary_ms([0.05, 0.07, 0.2]),
        "rss_mb": mem,
        "memory_stable": False,
        "per_minute": [
            {"from_s": 0, "p50": 80.0, "broker_cpu_share": 0.3},
            {"from_s": 60, "p50": 120.5, "broker_cpu_share": 0.6},
        ],
    }
    block = readme_block(result)
    assert "end-to-end p50 80.0 → 120.5 ms; the embedded broker's CPU 0.3 → 0.6 cores" in block
    assert "`make soak MINUTES=1 RATE=20`" in block
    assert "| 1,200 | 1,200 | 1,200 | 0 | 0 | 70.0 / 200.0 / 200.0 |" in block
    assert "no: x-referral-serve" in block
    out = plot_memory([{"at_s": t, **row} for t, row in samples], tmp_path / "m.png", title="m")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_cpu_share_is_cpu_seconds_per_second_between_two_moments() -> None:
    # A process that burns 0.25 s a second for 30 s, then 0.75 s a second for 30 s.
    samples = [(float(t), 0.25 * min(t, 30) + 0.75 * max(0, t - 30)) for t in range(61)]
    assert cpu_share(samples, 0, 30) == 0.25
    assert cpu_share(samples, 30, 60) == 0.75
    assert cpu_share(samples, 15, 45) == 0.5
    assert cpu_share(samples, 70, 80) is None  # no samples there
    assert share_by_third(samples) == [0.25, 0.5, 0.75]
    assert share_by_third([]) == [None, None, None]
