"""``make bench``: every workload the service issues name, at fixed rates, with the floor.

For each backend (SQLite; PostgreSQL too when reachable) it runs, one after the other on
the same machine and the same broker build (Apache Kafka, one KRaft node, by default; the
embedded Tansu broker with ``--broker tansu``; each workload starts a broker of its own):

1. **backbone** — outbox → relay → Kafka → idempotent inbox, three processes; the *floor*
   is measured in the same run: a raw Kafka round trip on the same broker and a raw
   database commit on the same database;
2. **directory** — a replica rebuilt from 20,000 synthetic units, then searches at 200/s;
3. **consent** — decisions over 100,000 stored consents at 1,000/s, and withdrawals
   propagated to two other members;
4. **referral** — two members × four services (16 processes), kontaktbegäran at a fixed
   rate from Region Kronoberg to Växjö kommun, end to end;
5. **notify** — events at 200/s into a notify worker, fan-out to inbox and signed webhook.

It writes ``bench/results/<workload>-<backend>.json`` (each with a per-second
``timeline``), ``<workload>-<backend>.png`` (latency percentiles and throughput over the
run), ``summary.md`` / ``summary.json`` (the broker, targets, figures, met or not, ratios to
the floor) and rewrites the figures block of the README between its ``make-bench`` markers,
so every figure there comes from this command. Every result records its broker
(``{"broker": {"engine": ..., "version": ...}}``) and the summary names it.

    make bench                                  # everything, about 11 minutes per backend
    make bench BROKER=tansu                     # everything on the embedded Tansu broker
    python -m bench.run --backend sqlite        # one backend
    python -m bench.run --quick --no-readme     # a smoke run: small sizes, short runs
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import backbone, brokers, consent, directory, notify, referral
from bench.plots import plot_timeline
from shared.messaging.broker import Engine

# Imported here, not inside a coroutine: tests.conftest probes PostgreSQL with asyncio.run.
from tests.conftest import POSTGRES

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"
BEGIN, END = "<!-- make-bench:begin -->", "<!-- make-bench:end -->"


@dataclass(frozen=True)
class Sizes:
    """The fixed rates and sizes of one ``make bench`` run."""

    backbone_rate: float = 200
    backbone_s: float = 30
    directory_units: int = 20_000
    directory_rate: float = 200
    directory_s: float = 30
    consents: int = 100_000
    decision_rate: float = 1000
    decision_s: float = 20
    consent_api_processes: int = 2
    withdrawals: int = 200
    referral_rate: float = 20
    referral_s: float = 60
    notify_rate: float = 200
    notify_s: float = 300  # issue 6: memory stable over a five-minute run

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            backbone_s=5,
            directory_units=2000,
            directory_s=5,
            consents=5000,
            decision_rate=200,
            decision_s=5,
            withdrawals=20,
            referral_rate=5,
            referral_s=10,
            notify_rate=50,
            notify_s=5,
        )


Workload = Callable[[str, Sizes, Engine], Coroutine[Any, Any, dict[str, Any]]]


async def _backbone(backend: str, z: Sizes, engine: Engine) -> dict[str, Any]:
    return await backbone.run_backend(backend, z.backbone_rate, z.backbone_s, engine)


async def _directory(backend: str, z: Sizes, engine: Engine) -> dict[str, Any]:
    return await directory.run(backend, z.directory_units, z.directory_rate, z.directory_s, engine)


async def _consent(backend: str, z: Sizes, engine: Engine) -> dict[str, Any]:
    return await consent.run(
        backend,
        rate=z.decision_rate,
        seconds=z.decision_s,
        n_consents=z.consents,
        clients=16,
        closed_seconds=min(10, z.decision_s),
        n_withdrawals=z.withdrawals,
        withdraw_rate=10,
        with_profile=False,
        api_processes=z.consent_api_processes,
        engine=engine,
    )


async def _referral(backend: str, z: Sizes, engine: Engine) -> dict[str, Any]:
    return await referral.run(backend, z.referral_rate, z.referral_s, 500, False, engine=engine)


async def _notify(backend: str, z: Sizes, engine: Engine) -> dict[str, Any]:
    return await notify.run(backend, z.notify_rate, z.notify_s, engine=engine)


WORKLOADS: dict[str, Workload] = {
    "backbone": _backbone,
    "directory": _directory,
    "consent": _consent,
    "referral": _referral,
    "notify": _notify,
}


# ------------------------------------------------------------------------------ summary


def _ms(v: float | None) -> str:
    return "–" if v is None else f"{v:,.1f}"


def _ratio(value: float, floor: float) -> str:
    return f"{value / floor:,.1f}×" if floor > 0 else "–"


def rows(backend: str, r: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One summary row per figure with a target: what, target, measured, met, ÷ floor."""
    floor = r["backbone"]["floor"]  # the floor is measured in the backbone run
    kafka_p50 = floor["kafka_round_trip_ms"]["p50"]
    commit_p50 = floor["db_commit_ms"]["p50"]
    out: list[dict[str, Any]] = []

    def add(what: str, target: str, measured: str, met: bool | None, to_floor: str) -> None:
        out.append(
            {
                "backend": backend,
                "what": what,
                "target": target,
                "measured": measured,
                "met": met,
                "to_floor": to_floor,
            }
        )

    if "backbone" in r:
        b = r["backbone"]
        e = b["end_to_end_ms"]
        add(
            f"backbone: outbox → Kafka → inbox at {b['rate_per_s']:g}/s",
            "nothing lost or duplicated",
            f"{b['written']:,} events, lost {b['lost']}, duplicated {b['duplicated_effects']}, "
            f"p50 {_ms(e['p50'])} / p99 {_ms(e['p99'])} ms",
            b["lost"] == 0 and b["duplicated_effects"] == 0,
            f"p50 {_ratio(e['p50'], kafka_p50)} Kafka RTT",
        )
    if "directory" in r:
        d = r["directory"]
        s = d["search"]["latency_ms"]
        add(
            f"directory: replica rebuilt from {d['units']:,} units",
            f"≤ {d['target']['rebuild_s']} s",
            f"{d['replica_rebuild_s']} s",
            d["replica_rebuild_s"] <= d["target"]["rebuild_s"],
            "–",
        )
        add(
            f"directory: search at {d['target']['rate']:g}/s",
            f"p99 ≤ {d['target']['search_p99_ms']} ms",
            f"p50 {_ms(s['p50'])} / p99 {_ms(s['p99'])} ms, errors {d['search']['errors']}",
            s["p99"] <= d["target"]["search_p99_ms"] and not d["search"]["errors"],
            f"p50 {_ratio(s['p50'], commit_p50)} DB commit",
        )
    if "consent" in r:
        c = r["consent"]
        o = c["decisions"]["open_loop"]
        lo = o["latency_ms"]
        t = c["target"]
        add(
            f"consent: decisions offered at {o['rate_per_s']:g}/s over "
            f"{c['decisions']['consents_stored']:,} consents "
            f"({c['decisions']['api_processes']} API processes)",
            f"≥ {t['decisions_per_s']:,}/s, p99 ≤ {t['decision_p99_ms']} ms",
            f"{o['answered_rate_per_s']:,}/s, p50 {_ms(lo['p50'])} / p99 {_ms(lo['p99'])} ms, "
            f"{o['api_cpu_ms_per_decision']} ms API CPU each, wrong {o['wrong_verdicts']}",
            bool(c["met"]["decision_rate"] and c["met"]["decision_p99"]),
            f"p50 {_ratio(lo['p50'], commit_p50)} DB commit",
        )
        w = c["withdrawals"]
        if w is not None:
            v = w["visible_from_response_ms"]
            add(
                "consent: withdrawal visible at the two other members",
                f"p99 ≤ {t['withdrawal_p99_s']} s",
                f"p50 {_ms(v['p50'])} / p99 {_ms(v['p99'])} ms, never seen "
                f"{sum(w['never_seen'].values())}",
                c["met"]["withdrawal_p99"],
                f"p50 {_ratio(v['p50'], kafka_p50)} Kafka RTT",
            )
    if "referral" in r:
        f = r["referral"]
        fe = f["end_to_end_ms"]
        add(
            f"referral: kontaktbegäran at {f['rate_per_s']:g}/s for {f['seconds']:g} s "
            "(16 processes)",
            f"≥ {f['target']['rate_per_s']}/s for {f['target']['seconds']} s, p99 ≤ "
            f"{f['target']['e2e_p99_ms']} ms, lost 0",
            f"{f['delivered']:,} delivered at {f['delivered_rate_per_s']}/s, lost {f['lost']}, "
            f"errors {sum(f['errors'].values())}, p50 {_ms(fe['p50'])} / p99 {_ms(fe['p99'])} ms, "
            f"{f['cpu_ms_per_delivered_referral']} ms CPU per referral",
            all(f["met"].values()),
            f"p50 {_ratio(fe['p50'], kafka_p50)} Kafka RTT",
        )
    if "notify" in r:
        n = r["notify"]
        fo = n["fan_out_ms"]
        rss = n["worker_rss_mb"]
        add(
            f"notify: fan-out at {n['rate']:g}/s for {n['seconds']:g} s",
            "p99 ≤ 100 ms, memory stable, no duplicate",
            f"p50 {_ms(fo['p50'])} / p99 {_ms(fo['p99'])} ms, lost {n['lost']}, duplicates "
            f"{n['duplicates']}, RSS second → last quarter {rss['second_quarter_mean']} → "
            f"{rss['last_quarter_mean']} MB, broker CPU by third "
            f"{' → '.join(str(x) for x in n.get('broker_cpu_share_by_third', []))} cores",
            fo["p99"] <= 100
            and n["lost"] == 0
            and n["duplicates"] == 0
            and rss["last_quarter_mean"] <= rss["second_quarter_mean"] * 1.1,
            f"p50 {_ratio(fo['p50'], commit_p50)} DB commit",
        )
    return out


def markdown(
    summary: list[dict[str, Any]],
    floors: dict[str, dict[str, Any]],
    *,
    command: str,
    when: str,
    broker: dict[str, str] | None,
    out: Path = RESULTS,
) -> str:
    met = {True: "**met**", False: "not met", None: "–"}
    lines = [
        f"Produced by `{command}` on {brokers.label(broker)}, {when} ({os.cpu_count()} "
        f"cores, Python {platform.python_version()}); every process on this one machine, "
        "loopback only.",
        "",
        "| backend | workload | target | measured | met | p50 ÷ floor |",
        "|---|---|---|---|---|---|",
    ]
    for row in summary:
        lines.append(
            f"| {row['backend']} | {row['what']} | {row['target']} | {row['measured']} | "
            f"{met[row['met']]} | {row['to_floor']} |"
        )
    lines += ["", "The floor, measured in the same run on the same broker:", ""]
    lines += ["| backend | raw Kafka round trip p50 / p99 ms | raw DB commit p50 / p99 ms |"]
    lines += ["|---|---|---|"]
    for backend, fl in floors.items():
        k, d = fl["kafka_round_trip_ms"], fl["db_commit_ms"]
        lines.append(
            f"| {backend} | {_ms(k['p50'])} / {_ms(k['p99'])} | {_ms(d['p50'])} / {_ms(d['p99'])} |"
        )
    lines += [
        "",
        "Plots (latency percentiles and throughput over each run): "
        + ", ".join(f"[{p.stem}]({_relative(p)})" for p in _workload_plots(out)),
    ]
    return "\n".join(lines)


def _relative(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def replace_block(text: str, block: str, name: str = "make-bench") -> str:
    """``text`` with what lies between the ``<!-- {name}:begin -->`` and ``<!-- {name}:end
    -->`` markers replaced by ``block`` (``make bench`` and ``make soak`` own one each)."""
    begin, finish = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    start, end = text.find(begin), text.find(finish)
    if start < 0 or end < start:
        raise ValueError(f"README has no {begin} … {finish} block")
    return text[: start + len(begin)] + "\n" + block.strip() + "\n" + text[end:]


TITLES = {
    "backbone": ("end to end (write → effect)", None),
    "directory": ("search latency", 20.0),
    "consent": ("decision latency (from due)", 5.0),
    "referral": ("end to end (POST due → filed)", 250.0),
    "notify": ("fan-out (consumed → webhook)", 100.0),
}


def timeline_of(name: str, result: dict[str, Any]) -> tuple[list[dict[str, Any]], float | None]:
    """The per-second windows a workload's result holds, and the rate it was offered."""
    if name == "directory":
        return result["search"]["timeline"], float(result["target"]["rate"])
    if name == "consent":
        o = result["decisions"]["open_loop"]
        return o["timeline"], float(o["rate_per_s"])
    rate = result.get("rate_per_s", result.get("rate"))
    return result["timeline"], None if rate is None else float(rate)


def _workload_plots(out: Path) -> list[Path]:
    """The plots of this command's workloads (``make soak`` writes its own beside them)."""
    return sorted(p for p in out.glob("*.png") if p.stem.rsplit("-", 1)[0] in WORKLOADS)


def same_broker(result: dict[str, Any], engine: Engine) -> bool:
    """Whether ``result`` was measured on a broker of ``engine``."""
    return brokers.option(brokers.recorded(result)) == engine


async def run_all(
    backends: list[str], sizes: Sizes, only: list[str], out: Path, engine: Engine
) -> dict[str, Any]:
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for backend in backends:
        results[backend] = {}
        for name in only:
            t0 = time.monotonic()
            print(f"[bench] {backend}: {name} on {engine} …", flush=True)
            r = await WORKLOADS[name](backend, sizes, engine)
            r.setdefault("backend", backend)
            r["bench_wall_s"] = round(time.monotonic() - t0, 1)
            (out / f"{name}-{backend}.json").write_text(json.dumps(r, indent=2, default=str))
            windows, offered = timeline_of(name, r)
            label, target = TITLES[name]
            png = plot_timeline(
                windows,
                out / f"{name}-{backend}.png",
                title=f"{name} ({backend}, {brokers.label(brokers.recorded(r))})",
                latency_label=label,
                target_p99_ms=target,
                offered_per_s=offered,
            )
            print(f"[bench] {backend}: {name} done in {r['bench_wall_s']} s → {png.name}")
        # The result files of this backend, written above, are reread so that the summary of
        # a partial run (--only) can use the other workloads' latest results: those measured
        # on the same broker (the floor above all).
        for name in WORKLOADS:
            path = out / f"{name}-{backend}.json"
            if path.exists():
                r = json.loads(path.read_text())
                if same_broker(r, engine):
                    results[backend][name] = r
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backend", action="append", choices=["sqlite", "postgres"])
    parser.add_argument("--only", action="append", choices=list(WORKLOADS))
    parser.add_argument("--quick", action="store_true", help="small sizes, short runs (smoke)")
    parser.add_argument("--no-readme", action="store_true", help="leave README.md as it is")
    parser.add_argument(
        "--out", type=Path, help="where results go (bench/results; var/bench-quick with --quick)"
    )
    brokers.add_argument(parser)
    args = parser.parse_args()
    backends = args.backend or (["sqlite", "postgres"] if POSTGRES else ["sqlite"])
    sizes = Sizes.quick() if args.quick else Sizes()
    out: Path = args.out or (ROOT / "var" / "bench-quick" if args.quick else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    results = asyncio.run(run_all(backends, sizes, args.only or list(WORKLOADS), out, args.broker))
    summary = [row for b in backends if "backbone" in results[b] for row in rows(b, results[b])]
    floors = {b: results[b]["backbone"]["floor"] for b in backends if "backbone" in results[b]}
    broker = next(
        (r["broker"] for b in backends for r in results[b].values() if r.get("broker")), None
    )
    plain = not (args.quick or args.only or args.backend) and args.broker == brokers.DEFAULT
    if plain:
        command = "make bench"
    else:
        command = "python -m bench.run " + " ".join(
            sys.argv[1:]
            if any(a.startswith("--broker") for a in sys.argv)
            else [*sys.argv[1:], "--broker", args.broker]
        )
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = markdown(summary, floors, command=command, when=when, broker=broker, out=out)
    (out / "summary.md").write_text(f"# Benchmark summary\n\n{text}\n")
    (out / "summary.json").write_text(
        json.dumps(
            {
                "command": command,
                "when": when,
                "broker": broker,
                "sizes": vars(sizes),
                "rows": summary,
            },
            indent=2,
        )
    )
    print(text)
    if not args.no_readme and not args.quick and out == RESULTS:
        README.write_text(replace_block(README.read_text(), text))
        print("[bench] README.md figures block rewritten")


if __name__ == "__main__":
    main()
