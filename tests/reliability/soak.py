"""Soak (reliability scenario 8 / 14): referrals between two members at a sustained rate.

Region Kronoberg and Växjö kommun run all four services (directory, consent, referral,
notify; API and worker each a process: 16) over Apache Kafka (one KRaft node; ``--broker
tansu``: the embedded Tansu broker), with the demo directory, as ``bench/referral.py`` does
(its consent recording, draining and per-task collection are reused). After a warm-up,
Region's Beroendemottagningen POSTs kontaktbegäran to Växjö's intake at ``--rate`` per
second for ``--minutes`` minutes, open loop, through ``bench/loadgen.py`` (pre-encoded
HTTP/1.1 over kept-alive connections; each request with its own ``Idempotency-Key``), and
then waits until everything drained.

Reported in ``bench/results/soak-<backend>.json``, ``.md``, ``.png`` (latency and throughput
per 10 s) and ``-memory.png`` (RSS of every process), and in the README's make-soak block:

- throughput: offered, accepted and filed per second; errors by status;
- latency percentiles: the POST (from when it was due) and end to end (due -> filed in the
  intake's worklist at Växjö), and per minute of the run;
- memory: RSS of every process every 5 s: after the warm-up, at the end, its peak, the
  growth, and whether it is stable (last quarter's mean ≤ 1.1 × the second quarter's);
- lost: accepted (201, and its idempotency record at Region) but never filed at Växjö
  (must be 0); duplicates: a referral filed twice, a history step recorded twice at either
  member, or two notifications of one arrival for the intake (must be 0);
- the broker (engine and version), and its CPU share per minute (its own process: the JVM
  of Apache Kafka, or Tansu).

    .venv/bin/python -m tests.reliability.soak --minutes 10 --rate 20
    .venv/bin/python -m tests.reliability.soak --minutes 10 --rate 20 --broker tansu

Exit status 1 when anything was lost or duplicated, 0 otherwise (figures, not a speed test).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from bench import brokers
from bench.loadgen import Answer, LoadGenerator, encode_post
from bench.notify import cpu_seconds, cpu_share, quarter_mean, rss_mb
from bench.plots import plot_memory, plot_timeline
from bench.referral import collect, record_consents, wait_drained
from bench.run import README, RESULTS, replace_block
from bench.stats import summary_ms, timeline
from services.notify.models import Notification
from services.referral.models import Incoming, Transition
from shared.messaging.broker import Engine
from shared.service import load_spec
from tests.e2e.test_referral_federation import kontaktbegaran, synthetic_person
from tests.reliability.fed import ORG_REGION, ORG_VAXJO, auth, running_federation, units
from tests.reliability.report import ROOT
from tests.reliability.tools import query
from vardkedja.federation import Federation

OUT = ROOT / "var" / "soak"
SERVICES = ("directory", "consent", "referral", "notify")
IDEMPOTENCY = load_spec("referral").infra.idempotency
CONNECTIONS = 32
RSS_EVERY_S = 5.0
STABLE_RATIO = 1.1
# The federation's default on Tansu, which answers a fetch only when the wait expires; on
# Apache Kafka the consumers use the broker's client setting.
TANSU_FETCH_MAX_WAIT_MS = 100


def _rss(fed: Federation) -> dict[str, float]:
    out: dict[str, float] = {}
    for p in fed.procs:
        try:
            out[p.name] = round(rss_mb(p.process.pid), 1)
        except FileNotFoundError:
            out[p.name] = float("nan")
    return out


async def _sample_rss(
    fed: Federation,
    samples: list[tuple[float, dict[str, float]]],
    stop: asyncio.Event,
    broker_pid: int,
    broker_cpu: list[tuple[float, float]],
) -> None:
    """Every process's RSS every ``RSS_EVERY_S`` seconds until ``stop``: (seconds, {name: MB});
    and the broker's CPU seconds so far: (seconds, CPU seconds)."""
    t0 = time.monotonic()
    while not stop.is_set():
        samples.append((round(time.monotonic() - t0, 1), _rss(fed)))
        broker_cpu.append((time.monotonic() - t0, cpu_seconds(broker_pid)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=RSS_EVERY_S)


def memory(
    samples: list[tuple[float, dict[str, float]]], start: dict[str, float], end: dict[str, float]
) -> dict[str, dict[str, Any]]:
    """Per process: start, end, peak and growth (MB), and whether it is *stable*: the mean of
    the run's last quarter at most ``STABLE_RATIO`` times the mean of its second quarter (the
    first quarter is warm-up: caches, connection pools, the GC's first generations)."""
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(start):
        series = [mb for _, row in samples if (mb := row.get(name)) is not None and mb == mb]
        second, last = quarter_mean(series, 1), quarter_mean(series, 3)
        out[name] = {
            "start": start.get(name),
            "end": end.get(name),
            "peak": round(max(series, default=float("nan")), 1),
            "growth": round(end.get(name, 0.0) - start.get(name, 0.0), 1),
            "second_quarter_mean": second,
            "last_quarter_mean": last,
            "stable": bool(last <= STABLE_RATIO * second) if series else None,
        }
    return out


def _requests(
    port: int, headers: dict[str, str], bodies: list[dict[str, Any]], run: str
) -> list[bytes]:
    return [
        encode_post(
            f"127.0.0.1:{port}",
            "/v1/referrals",
            {**headers, "Idempotency-Key": f"soak-{run}-{i:07d}"},
            json.dumps(body, ensure_ascii=False).encode(),
        )
        for i, body in enumerate(bodies)
    ]


async def _accepted_tasks(fed: Federation, run: str) -> dict[str, str]:
    """Idempotency-Key -> task id of every referral Region stored for this run (the record
    is written in the same transaction as the referral)."""
    rows = await query(
        fed.database_url_for[(ORG_REGION, "referral")],
        select(IDEMPOTENCY.c.key, IDEMPOTENCY.c.status_code, IDEMPOTENCY.c.response_body).where(
            IDEMPOTENCY.c.key.like(f"soak-{run}-%")
        ),
    )
    out: dict[str, str] = {}
    for key, status, body in rows:
        if status == 201:
            out[key] = json.loads(bytes(body))["recipients"][0]["task_id"]
    return out


async def _duplicates(fed: Federation, tasks: set[str]) -> dict[str, int]:
    """Effects that happened twice: history steps at either member, notifications."""
    twice: dict[str, int] = {}
    for orgnr in (ORG_REGION, ORG_VAXJO):
        steps = Counter(
            (r.task_id, r.side, r.from_status, r.to_status)
            for r in await query(
                fed.database_url_for[(orgnr, "referral")],
                select(
                    Transition.task_id,
                    Transition.side,
                    Transition.from_status,
                    Transition.to_status,
                ),
            )
            if r.task_id in tasks
        )
        twice[f"history_steps_{orgnr}"] = sum(n - 1 for n in steps.values() if n > 1)
    notes = Counter(
        (r.subject_id, r.recipient)
        for r in await query(
            fed.database_url_for[(ORG_VAXJO, "notify")],
            select(Notification.subject_id, Notification.recipient).where(
                Notification.kind == "referral.received"
            ),
        )
        if r.subject_id in tasks
    )
    twice["notifications"] = sum(n - 1 for n in notes.values() if n > 1)
    filed = Counter(
        r.id
        for r in await query(fed.database_url_for[(ORG_VAXJO, "referral")], select(Incoming.id))
    )
    twice["filed"] = sum(n - 1 for n in filed.values() if n > 1)
    return twice


async def run(
    *,
    minutes: float,
    rate: float,
    persons: int,
    backend: str,
    fetch_max_wait_ms: int | None,
    engine: Engine = brokers.DEFAULT,
) -> dict[str, Any]:
    work = OUT / f"work-{uuid.uuid4().hex[:6]}"
    work.mkdir(parents=True, exist_ok=True)
    broker = await brokers.start(engine, work)
    fetch_wait = brokers.fetch_wait_ms(broker, fetch_max_wait_ms, TANSU_FETCH_MAX_WAIT_MS)
    try:
        async with (
            running_federation(
                work,
                broker.bootstrap,
                backend=backend,
                services=SERVICES,
                fetch_max_wait_ms=fetch_wait,
                **brokers.client_env(broker, fetch_wait),
            ) as fed,
            httpx.AsyncClient(timeout=60) as client,
        ):
            t_setup = time.monotonic()
            sender_unit, intake = await units(fed, client)
            people = [synthetic_person(80_000 + i) for i in range(persons)]
            await record_consents(fed, client, people, sender_unit)
            setup_s = round(time.monotonic() - t_setup, 1)
            port = fed.members[0].port("referral")
            headers = auth(ORG_REGION, sender_unit, ["referral:read", "referral:write"])
            recipients = [{"orgnr": ORG_VAXJO, "unit_id": intake}]
            n = int(rate * minutes * 60)
            bodies = [
                kontaktbegaran(people[i % persons], resolve=None, recipients=recipients)
                for i in range(n)
            ]
            # Warm-up (connections, first decisions, fetch loops); not counted.
            warm_run = f"warm{uuid.uuid4().hex[:4]}"
            warm = LoadGenerator(
                "127.0.0.1",
                port,
                _requests(port, headers, bodies[:20], warm_run),
                [lambda s, b: True] * 20,
                connections=4,
            )
            await warm.connect()
            await warm.open_loop(20, 10)
            await warm.close()
            await wait_drained(fed, len(await _accepted_tasks(fed, warm_run)))

            run_id = uuid.uuid4().hex[:8]
            gen = LoadGenerator(
                "127.0.0.1",
                port,
                _requests(port, headers, bodies, run_id),
                [lambda s, b: True] * n,
                connections=CONNECTIONS,
            )
            await gen.connect()
            rss_start = _rss(fed)
            rss_samples: list[tuple[float, dict[str, float]]] = []
            broker_cpu: list[tuple[float, float]] = []
            stop = asyncio.Event()
            # The broker's own process: Tansu, or the JVM that runs Apache Kafka (started
            # directly, so its CPU time is all of the broker's threads).
            assert broker.process is not None
            sampler = asyncio.create_task(
                _sample_rss(fed, rss_samples, stop, broker.process.pid, broker_cpu)
            )
            wall0, perf0 = time.time(), time.perf_counter()
            answers, issued_s, answered_s = await gen.open_loop(n, rate)
            await gen.close()
            by_index: list[Answer] = sorted(answers, key=lambda a: a.at)
            accepted = await _accepted_tasks(fed, run_id)
            drain_s, drained = await wait_drained(
                fed, len(accepted) + len(await _accepted_tasks(fed, warm_run))
            )
            stop.set()
            await sampler
            rss_end = _rss(fed)
            rows = await collect(fed, list(accepted.values()))
            duplicates = await _duplicates(fed, set(accepted.values()))

        statuses = Counter(a.error or str(a.status) for a in by_index)
        created = [i for i, a in enumerate(by_index) if a.status == 201]
        keys = [f"soak-{run_id}-{i:07d}" for i in created]
        unstored = [k for k in keys if k not in accepted]
        lost = [t for t in accepted.values() if rows.get(t, {}).get("received_at") is None]
        e2e: list[float] = []
        by_due: list[tuple[float, float]] = []
        filed_at: list[dt.datetime] = []
        for i in created:
            task = accepted.get(f"soak-{run_id}-{i:07d}")
            received = rows.get(task or "", {}).get("received_at")
            if received is None:
                continue
            due = wall0 + (by_index[i].at - perf0)
            e2e.append(received.timestamp() - due)
            by_due.append((due, e2e[-1]))
            filed_at.append(received)
        span = (max(filed_at) - min(filed_at)).total_seconds() if len(filed_at) > 1 else 0.0
        per_minute = timeline(by_due, width_s=60.0)
        for w in per_minute:
            w["broker_cpu_share"] = cpu_share(broker_cpu, w["from_s"], w["from_s"] + 60.0)
        mem = memory(rss_samples, rss_start, rss_end)
        result = {
            "command": f".venv/bin/python -m tests.reliability.soak --minutes {minutes:g} "
            f"--rate {rate:g} --persons {persons} --backend {backend} --broker {engine} "
            f"--fetch-max-wait-ms {fetch_wait}",
            "backend": backend,
            "broker": brokers.info(broker),
            "fetch_max_wait_ms": fetch_wait,
            "minutes": minutes,
            "rate_per_s": rate,
            "processes": len(rss_start),
            "setup_s": setup_s,
            "offered": n,
            "answers": dict(statuses),
            "accepted": len(created),
            "accepted_rate_per_s": round(len(created) / answered_s, 2) if answered_s else 0.0,
            "issued_s": round(issued_s, 1),
            "answered_s": round(answered_s, 1),
            "filed": len(e2e),
            "filed_rate_per_s": round(len(e2e) / span, 2) if span else 0.0,
            "lost": len(lost) + len(unstored),
            "lost_detail": {"accepted_not_stored": len(unstored), "never_filed": len(lost)},
            "duplicates": duplicates,
            "drained": drained,
            "drain_s": round(drain_s, 1),
            "post_latency_ms": summary_ms([a.latency_s for a in by_index if a.status == 201]),
            "end_to_end_ms": summary_ms(e2e),
            "end_to_end_note": "POST due -> incoming.received_at at Växjö (filed)",
            "per_minute": per_minute,
            "timeline": timeline(by_due, width_s=10.0),
            "rss_mb": mem,
            "memory_stable": all(m["stable"] is not False for m in mem.values()),
            "rss_samples": [{"at_s": t, **row} for t, row in rss_samples],
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "load_average_1m": round(os.getloadavg()[0], 2),
            },
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        return result
    finally:
        await brokers.stop(broker)
        shutil.rmtree(work, ignore_errors=True)


def markdown(r: dict[str, Any]) -> str:
    """A human summary of one soak run."""
    e, p = r["end_to_end_ms"], r["post_latency_ms"]
    lines = [
        f"# Soak: {r['rate_per_s']:g} referrals/s for {r['minutes']:g} min ({r['backend']})",
        "",
        f"`{r['command']}` on {brokers.label(brokers.recorded(r))} — {r['processes']} "
        "processes, "
        f"{r['at']}, {r['machine']['cpus']} CPUs, load {r['machine']['load_average_1m']}",
        "",
        "| figure | value |",
        "|---|---|",
        f"| offered | {r['offered']} |",
        f"| answers | {', '.join(f'{k}: {v}' for k, v in r['answers'].items())} |",
        f"| accepted | {r['accepted']} ({r['accepted_rate_per_s']}/s) |",
        f"| filed at Växjö | {r['filed']} ({r['filed_rate_per_s']}/s) |",
        f"| **lost** | **{r['lost']}** ({r['lost_detail']}) |",
        f"| **duplicates** | **{sum(r['duplicates'].values())}** ({r['duplicates']}) |",
        f"| drained | {r['drained']} in {r['drain_s']} s |",
        f"| POST ms p50 / p90 / p99 / max | {p['p50']} / {p['p90']} / {p['p99']} / {p['max']} |",
        f"| end to end ms p50 / p90 / p99 / max | {e['p50']} / {e['p90']} / {e['p99']} / "
        f"{e['max']} |",
        "",
        "## Per minute (by when the POST was due)",
        "",
        "| from s | n | per s | e2e p50 ms | p99 ms | broker CPU (cores) |",
        "|---|---|---|---|---|---|",
        *[
            f"| {w['from_s']:g} | {w['n']} | {w['per_s']} | {w['p50']} | {w['p99']} | "
            f"{w.get('broker_cpu_share', '')} |"
            for w in r["per_minute"]
        ],
        *_broker_note(brokers.recorded(r)),
        "",
        "## Memory (RSS MB)",
        "",
        "| process | start | end | peak | growth | 2nd / last quarter mean | stable |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {name} | {m['start']} | {m['end']} | {m['peak']} | {m['growth']:+} | "
            f"{m['second_quarter_mean']} / {m['last_quarter_mean']} | {m['stable']} |"
            for name, m in r["rss_mb"].items()
        ],
        "",
    ]
    return "\n".join(lines)


def _broker_note(broker: dict[str, str]) -> list[str]:
    """Why the broker's CPU share is there: on Tansu, it grows over a run."""
    if brokers.option(broker) != "tansu":
        return []
    return [
        "",
        "The embedded broker (Tansu's memory engine) costs more per fetch the more batches a",
        "partition holds, so its CPU share rises over a run; Apache Kafka's does not.",
    ]


def readme_block(r: dict[str, Any]) -> str:
    """The README's soak figures (between its make-soak markers)."""
    e = r["end_to_end_ms"]
    growth = [m["growth"] for m in r["rss_mb"].values()]
    unstable = [name for name, m in r["rss_mb"].items() if m["stable"] is False]
    # A result without a broker predates Apache Kafka: plain `make soak` ran on Tansu then.
    on_tansu = r.get("broker") and brokers.option(r["broker"]) == "tansu"
    return "\n".join(
        [
            f"**Soak** on {brokers.label(brokers.recorded(r))} "
            f"(`make soak MINUTES={r['minutes']:g} RATE={r['rate_per_s']:g}"
            f"{' BROKER=tansu' if on_tansu else ''}`, "
            f"{r['at']}, {r['backend']}, {r['processes']} processes, load "
            f"{r['machine']['load_average_1m']} at the end; `bench/results/soak-"
            f"{r['backend']}.md`, `.png`, `-memory.png`):",
            "",
            "| offered | accepted | filed at Växjö | lost | duplicates | end to end p50 / p99 / "
            "max ms | RSS growth per process | memory stable |",
            "|---|---|---|---|---|---|---|---|",
            f"| {r['offered']:,} | {r['accepted']:,} | {r['filed']:,} | {r['lost']} | "
            f"{sum(r['duplicates'].values())} | {e['p50']} / {e['p99']} / {e['max']} | "
            f"{min(growth, default=0):+} to {max(growth, default=0):+} MB | "
            + ("yes" if r["memory_stable"] else f"no: {', '.join(unstable)}")
            + " |",
            "",
            "Stable = each process's mean RSS over the last quarter of the run at most "
            f"{STABLE_RATIO:g} × its mean over the second quarter.",
            *_per_minute_line(r.get("per_minute", []), brokers.recorded(r)),
        ]
    )


def _per_minute_line(per_minute: list[dict[str, Any]], broker: dict[str, str]) -> list[str]:
    """End-to-end p50 and the broker's CPU share, minute by minute."""
    if not per_minute:
        return []
    p50 = " → ".join(str(w["p50"]) for w in per_minute)
    cpu = " → ".join(str(w.get("broker_cpu_share", "–")) for w in per_minute)
    if brokers.option(broker) == "tansu":
        return [
            "",
            f"Minute by minute: end-to-end p50 {p50} ms; the embedded broker's CPU {cpu} "
            "cores (Tansu's cost per fetch grows with the batches a partition holds: "
            "[docs/performance.md](docs/performance.md)).",
        ]
    return ["", f"Minute by minute: end-to-end p50 {p50} ms; the broker's CPU {cpu} cores."]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=20.0, help="referrals per second")
    parser.add_argument("--persons", type=int, default=50, help="persons with a consent")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--fetch-max-wait-ms",
        type=int,
        help=f"consumers' fetch wait (Tansu: {TANSU_FETCH_MAX_WAIT_MS} ms, as it answers only "
        "when the wait expires; Apache Kafka: the broker's client setting)",
    )
    brokers.add_argument(parser)
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="where the figures go (bench/results)"
    )
    parser.add_argument("--no-readme", action="store_true", help="leave README.md as it is")
    args = parser.parse_args()
    result = asyncio.run(
        run(
            minutes=args.minutes,
            rate=args.rate,
            persons=args.persons,
            backend=args.backend,
            fetch_max_wait_ms=args.fetch_max_wait_ms,
            engine=args.broker,
        )
    )
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    stem = f"soak-{args.backend}"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    plot_timeline(
        result["timeline"],
        out / f"{stem}.png",
        title=f"soak: {args.rate:g} referrals/s for {args.minutes:g} min ({args.backend}, "
        f"{brokers.label(result['broker'])})",
        latency_label="end to end (POST due → filed)",
        target_p99_ms=None,
        offered_per_s=args.rate,
    )
    plot_memory(result["rss_samples"], out / f"{stem}-memory.png", title=f"{stem}: RSS")
    summary = markdown(result)
    (out / f"{stem}.md").write_text(summary)
    sys.stdout.write(summary + "\n")
    if not args.no_readme and out == RESULTS:
        README.write_text(replace_block(README.read_text(), readme_block(result), "make-soak"))
        sys.stdout.write("[soak] README.md soak block rewritten\n")
    sys.exit(1 if result["lost"] or sum(result["duplicates"].values()) else 0)


if __name__ == "__main__":
    main()
