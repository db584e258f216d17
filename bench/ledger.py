"""The attempt ledger's cost on the hot path: drain throughput with and without it, in one run.

    python -m bench.ledger [--jobs 20000] [--runs 3] [--broker-workers 2] [--scenarios drain,unbatched]

Two brokers serve one database, one with `JOBBROKER_JOBS__ATTEMPT_LEDGER=false` (no ledger row per
ended attempt); for each scenario they drain the same preloaded jobs in turns, in mirrored order
every other run (on, off, off, on, ...), and the median of the runs is compared. `drain` is 8
workers leasing 100 and acking them in one POST /v1/acks (job_ack_many); `unbatched` is 16 workers
leasing one job and acking it alone (coalesced job_ack_each). Saved to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
from pathlib import Path

import asyncpg
import httpx

from bench.common import JOB_TYPE, QUEUE, payload
from bench.harness import BenchDatabase, BrokerServer, reset, run_load

RESULTS = Path(__file__).parent / "results"
SCENARIOS = {
    "drain": {"workers": 8, "batch": 100},
    "unbatched": {"workers": 16},
}


async def _empty_ledger(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("TRUNCATE jobbroker.job_attempt")
    finally:
        await conn.close()


def _prefill(url: str, jobs: int) -> None:
    """The jobs to drain, enqueued in batches over HTTP (the same for both brokers)."""
    with httpx.Client(base_url=url, timeout=60) as http:
        for start in range(0, jobs, 500):
            batch = [{"type": JOB_TYPE, "payload": payload(i)} for i in range(start, min(jobs, start + 500))]
            http.post(f"/v1/queues/{QUEUE}/jobs:batch", json={"jobs": batch}).raise_for_status()


def compare(db: BenchDatabase, brokers: dict[str, BrokerServer], scenario: str, jobs: int, runs: int) -> dict:
    samples: dict[str, list[float]] = {name: [] for name in brokers}
    for n in range(runs):
        for name in brokers if n % 2 == 0 else reversed(list(brokers)):
            reset(db, "jobbroker", 0)
            asyncio.run(_empty_ledger(db.url))
            _prefill(brokers[name].url, jobs)
            params = {**SCENARIOS[scenario], "jobs": jobs, "dsn": db.url, "url": brokers[name].url}
            answer = run_load({"system": "jobbroker", "scenario": scenario, "params": params}, brokers[name])
            samples[name].append(answer["jobs_per_s"])
            print(f"  {scenario:10} ledger {name:3} run {n + 1}: {answer['jobs_per_s']:.0f} jobs/s", flush=True)
    on, off = statistics.median(samples["on"]), statistics.median(samples["off"])
    return {"scenario": scenario, "jobs_per_s": samples, "median_on": on, "median_off": off, "ratio": on / off}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=20_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--broker-workers", type=int, default=None)
    p.add_argument("--scenarios", default="drain,unbatched")
    p.add_argument(
        "--admin-url", default=os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    args = p.parse_args()
    db = BenchDatabase(args.admin_url)
    asyncio.run(db.create(peers=False))
    brokers = {"on": BrokerServer(db.url, args.broker_workers), "off": BrokerServer(db.url, args.broker_workers)}
    # The one setting the two brokers differ in.
    brokers["off"].env["JOBBROKER_JOBS__ATTEMPT_LEDGER"] = "false"
    rows = []
    try:
        for broker in brokers.values():
            broker.start()
        for scenario in args.scenarios.split(","):
            rows.append(compare(db, brokers, scenario, args.jobs, args.runs))
    finally:
        for broker in brokers.values():
            broker.stop()
        asyncio.run(db.drop())
    for row in rows:
        print(
            f"{row['scenario']:10} ledger on {row['median_on']:.0f} jobs/s, off {row['median_off']:.0f} jobs/s: "
            f"{row['ratio']:.1%} of the rate without it"
        )
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{stamp}-ledger.json"
    doc = {"kind": "ledger", "jobs": args.jobs, "runs": args.runs, "loadavg": os.getloadavg(), "results": rows}
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"results: {path}")


if __name__ == "__main__":
    main()
