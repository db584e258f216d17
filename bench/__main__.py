"""`python -m bench` (or `make bench`): measure jobbroker against the raw-SQL ceiling and its peers.

python -m bench            # the full run (20,000 jobs, 30 s steady state, median of 3)
python -m bench --quick    # a smoke run: 2,000 jobs, 5 s, one run each
python -m bench --soak     # 5 minutes of steady state; broker RSS at start and end
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import report
from bench.harness import BenchDatabase, BrokerServer, reset, run_load
from bench.plan import Case, Config, cases, soak_case

RESULTS = Path(__file__).parent / "results"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 2,000 jobs, 5 s steady state, 1 run")
    p.add_argument("--soak", action="store_true", help="only the 5-minute steady-state run (memory)")
    p.add_argument("--soak-seconds", type=float, default=300)
    p.add_argument("--runs", type=int, help="runs per case; the median is reported (default 3, quick 1)")
    p.add_argument("--jobs", type=int, help="jobs per scenario (default 20,000)")
    p.add_argument("--duration", type=float, help="steady-state seconds (default 30)")
    p.add_argument(
        "--broker-workers", type=int, help="experiments only: serve --workers N (default: none, as make serve)"
    )
    p.add_argument("--only", help="comma-separated scenario keys, e.g. drain,steady,wake")
    p.add_argument("--systems", help="comma-separated systems, e.g. jobbroker,raw")
    p.add_argument("--no-peers", action="store_true", help="skip procrastinate and pgqueuer")
    p.add_argument(
        "--admin-url", default=os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    p.add_argument("--docs", action="store_true", help="rewrite docs/benchmarks.md (default for full runs)")
    p.add_argument("--no-save", action="store_true", help="print only; write no JSON")
    p.add_argument("--render-docs", action="store_true", help="only rewrite docs/benchmarks.md from saved results")
    return p.parse_args()


def config(args: argparse.Namespace) -> Config:
    c = Config(peers=not args.no_peers)
    if args.quick:
        c = replace(
            c,
            jobs=2000,
            duration_s=5,
            wake_jobs=50,
            delayed=20_000,
            backlog=100_000,
            other_backlog=20_000,
            empty_leases=200,
            procrastinate_drain_jobs=500,
        )
    if args.jobs:
        c = replace(c, jobs=args.jobs)
    if args.duration:
        c = replace(c, duration_s=args.duration)
    return c


def select(all_cases: list[Case], args: argparse.Namespace) -> list[Case]:
    keys = set(args.only.split(",")) if args.only else None
    systems = set(args.systems.split(",")) if args.systems else None
    return [c for c in all_cases if (keys is None or c.key in keys) and (systems is None or c.system in systems)]


def run_cases(selected: list[Case], runs: int, db: BenchDatabase, broker: BrokerServer) -> list[dict[str, Any]]:
    """Every case `runs` times. The systems of one scenario take turns, in reverse order every other
    run (A B C, C B A, A B C): this machine's speed drifts by more than the systems differ, and the
    mirrored order lets a drift hit them alike."""
    by_key: dict[str, list[Case]] = {}
    for case in selected:
        by_key.setdefault(case.key, []).append(case)
    rows = []
    for key, group in by_key.items():
        samples: dict[str, list[dict[str, Any]]] = {c.name: [] for c in group}
        for n in range(runs):
            for case in group if n % 2 == 0 else reversed(group):
                reset(db, case.system, case.prefill)
                params = {**case.params, "dsn": db.url, "url": broker.url}
                rss_before = broker.rss_mb()
                answer = run_load({"system": case.system, "scenario": case.scenario, "params": params}, broker, 30)
                answer["rss_mb"] = [rss_before, broker.rss_mb()]
                samples[case.name].append(answer)
                print(f"  {key:13} {case.name:24} run {n + 1}: {report.brief(answer)}", flush=True)
        for case in group:
            rows.append(
                {
                    "key": key,
                    "title": case.title,
                    "system": case.name,
                    "params": case.params,
                    "prefill": case.prefill,
                    "median": median(samples[case.name]),
                    "runs": samples[case.name],
                }
            )
    return rows


def median(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median throughput, with every latency percentile the median across runs."""
    ordered = sorted(samples, key=lambda s: s["jobs_per_s"])
    mid = dict(ordered[len(ordered) // 2])
    if all("latency" in s and s["latency"] for s in samples):
        mid["latency"] = {k: statistics.median(s["latency"][k] for s in samples) for k in samples[0]["latency"]}
    return mid


def main() -> None:
    args = parse_args()
    if args.render_docs:
        DOCS.write_text(report.markdown(RESULTS))
        return
    c = config(args)
    runs = args.runs or (1 if args.quick or args.soak else 3)
    selected = [soak_case(c, args.soak_seconds)] if args.soak else select(cases(c), args)
    db = BenchDatabase(args.admin_url)
    broker = BrokerServer(db.url, args.broker_workers)
    env = report.environment(args.admin_url, broker.processes, broker.command)
    print(f"jobbroker bench: {len(selected)} cases x {runs} runs; load {env['loadavg_start']}", flush=True)
    print(f"broker: {' '.join(broker.command)} ({broker.processes} processes), as make serve", flush=True)
    asyncio.run(db.create(peers=c.peers and not args.soak))
    try:
        broker.start()
        rows = run_cases(selected, runs, db, broker)
    finally:
        broker.stop()
        asyncio.run(db.drop())
    env["loadavg_end"] = os.getloadavg()
    kind = "soak" if args.soak else "quick" if args.quick else "partial" if args.only or args.systems else "full"
    command = "python -m bench " + " ".join(a for a in os.sys.argv[1:])
    doc = {
        "kind": kind,
        "command": command.strip(),
        "config": c.__dict__,
        "runs": runs,
        "environment": env,
        "results": rows,
    }
    print(report.table(doc))
    if not args.no_save:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"{stamp}-{kind}.json"
        path.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"results: {path.relative_to(RESULTS.parent.parent)}")
    if args.docs or kind == "full":
        DOCS.write_text(report.markdown(RESULTS))
        print(f"docs: {DOCS}")


if __name__ == "__main__":
    main()
