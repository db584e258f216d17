"""Keyed drains: flow control per key against the unkeyed drain, in one run on one broker.

    .venv/bin/python -m bench.flow [--jobs 20000] [--keys 10000] [--big 50000] [--small-keys 100]
                                    [--small-jobs 100] [--workers 8] [--batch 100] [--runs 1]

- unkeyed: `--jobs` jobs without a flow key, drained as bench's `drain` does (8 workers, leases of
  100, one `POST /v1/acks` per lease);
- keyed: the same number of jobs over `--keys` distinct keys, the queue at
  `flow.max_concurrency_per_key: 1`; reported as a ratio of the unkeyed drain (target >= 0.6);
- skewed: one key with `--big` jobs enqueued first, then `--small-keys` keys with `--small-jobs`
  each, round robin, no per-key limit: when each small key finishes against how far the big key
  got (target: every small key done before 10% of the big backlog), and the small keys' p99 wait
  against what FIFO order would give (the big backlog first, at the unkeyed drain's rate).

Jobs are preloaded with one INSERT per scenario (the enqueue path is bench's `enqueue`); the
broker runs as bench runs it (exactly as `make serve` starts it, at its defaults). The load
generator runs in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

import asyncpg
import uvloop

from bench.harness import BenchDatabase, BrokerServer
from bench.httpclient import Connection, connect_many

SCHEMA = "jobbroker"
PREFILL = """
INSERT INTO job (queue, type, payload, max_attempts, backoff_initial_s, backoff_max_s, backoff_multiplier,
                 backoff_jitter, timeout_s, flow_key)
SELECT $1, 'noop', jsonb_build_object('i', g, 'op', 'noop'), 3, 1, 60, 2, 0, 30, $2 || (g % $3)
FROM generate_series(1, $4) AS g
"""


async def connect(dsn: str) -> asyncpg.Connection:
    return await asyncpg.connect(dsn, server_settings={"search_path": SCHEMA})


async def prefill(dsn: str, queue: str, jobs: int, key_prefix: str | None, keys: int = 1) -> None:
    conn = await connect(dsn)
    try:
        await conn.execute(PREFILL, queue, key_prefix, keys, jobs)
        await conn.execute("VACUUM ANALYZE job")
        await conn.execute("VACUUM ANALYZE queue_key")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def reset(dsn: str) -> None:
    conn = await connect(dsn)
    try:
        await conn.execute("TRUNCATE job, queue, queue_key")
    finally:
        await conn.close()


async def drain(url: str, queue: str, workers: int, batch: int, on_ack: Any = None) -> dict[str, Any]:
    """Workers lease `batch` and ack each lease in one request until the queue is empty."""
    conns = await connect_many(url, workers)
    acked = 0

    async def worker(conn: Connection, n: int) -> None:
        nonlocal acked
        idle = 0
        while idle < 3:
            body = {"worker_id": f"w{n}", "max_jobs": batch}
            jobs = (await conn.post(f"/v1/queues/{queue}/leases", body, expect=(200,)))["jobs"]
            if not jobs:
                # Keys at their limit can leave a lease empty while others' jobs are in flight.
                idle += 1
                await asyncio.sleep(0.01)
                continue
            idle = 0
            items = [{"id": j["id"], "lease_id": j["lease_id"]} for j in jobs]
            answer = await conn.post("/v1/acks", {"items": items})
            if not all(r["ok"] for r in answer["results"]):
                raise RuntimeError("acks refused")
            acked += len(jobs)
            if on_ack is not None:
                on_ack(jobs, time.perf_counter())

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(c, n) for n, c in enumerate(conns)))
    seconds = time.perf_counter() - t0
    for c in conns:
        c.close()
    return {"jobs": acked, "seconds": round(seconds, 3), "jobs_per_s": round(acked / seconds, 1)}


async def set_flow(url: str, queue: str, flow: dict[str, Any]) -> None:
    [conn] = await connect_many(url, 1)
    status, answer = await conn.request("PATCH", f"/v1/queues/{queue}", {"flow": flow})
    conn.close()
    if status != 200:
        raise RuntimeError(f"PATCH queue: {status} {answer}")


async def unkeyed(a: argparse.Namespace, db: BenchDatabase, url: str) -> dict[str, Any]:
    await reset(db.url)
    await prefill(db.url, "plain", a.jobs, None)
    return await drain(url, "plain", a.workers, a.batch)


async def keyed(a: argparse.Namespace, db: BenchDatabase, url: str) -> dict[str, Any]:
    await reset(db.url)
    await set_flow(url, "keyed", {"max_concurrency_per_key": 1})
    await prefill(db.url, "keyed", a.jobs, "tenant-", a.keys)
    return await drain(url, "keyed", a.workers, a.batch)


async def skewed(a: argparse.Namespace, db: BenchDatabase, url: str, unkeyed_jps: float) -> dict[str, Any]:
    await reset(db.url)
    await set_flow(url, "skewed", {"fairness": "round_robin"})
    await prefill(db.url, "skewed", a.big, "big", 1)
    await prefill(db.url, "skewed", a.small_keys * a.small_jobs, "small-", a.small_keys)
    left = {f"small-{i}": a.small_jobs for i in range(a.small_keys)}
    big_done = 0
    finished: dict[str, tuple[float, int]] = {}
    t0 = time.perf_counter()

    def on_ack(jobs: list[dict[str, Any]], now: float) -> None:
        nonlocal big_done
        for job in jobs:
            key = job["flow_key"]
            if key.startswith("big"):
                big_done += 1
            else:
                left[key] -= 1
                if left[key] == 0:
                    finished[key] = (now - t0, big_done)

    figures = await drain(url, "skewed", a.workers, a.batch, on_ack)
    waits = sorted(t for t, _ in finished.values())
    # FIFO would hand out the whole big backlog first: small key i finishes after big + (i+1) * small_jobs jobs.
    fifo = sorted((a.big + (i + 1) * a.small_jobs) / unkeyed_jps for i in range(a.small_keys))
    worst_big = max(b for _, b in finished.values()) if finished else None
    return {
        **figures,
        "small_keys_finished": len(finished),
        "small_key_finish_p99_s": round(_p99(waits), 3) if waits else None,
        "fifo_small_key_finish_p99_s": round(_p99(fifo), 3),
        "big_done_when_last_small_finished": worst_big,
        "big_fraction_when_last_small_finished": round(worst_big / a.big, 4) if worst_big is not None else None,
    }


def _p99(values: list[float]) -> float:
    return values[min(len(values) - 1, int(0.99 * len(values)))]


async def run(a: argparse.Namespace, db: BenchDatabase, url: str) -> dict[str, Any]:
    plain = await unkeyed(a, db, url)
    keys = await keyed(a, db, url)
    skew = await skewed(a, db, url, plain["jobs_per_s"])
    return {
        "unkeyed": plain,
        "keyed": keys,
        "keyed_vs_unkeyed": round(keys["jobs_per_s"] / plain["jobs_per_s"], 3),
        "skewed": skew,
        "skewed_vs_unkeyed": round(skew["jobs_per_s"] / plain["jobs_per_s"], 3),
    }


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.flow")
    p.add_argument(
        "--admin-url",
        default=os.environ.get("JOBBROKER_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    p.add_argument("--jobs", type=int, default=20_000)
    p.add_argument("--keys", type=int, default=10_000)
    p.add_argument("--big", type=int, default=50_000)
    p.add_argument("--small-keys", type=int, default=100)
    p.add_argument("--small-jobs", type=int, default=100)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--broker-workers", type=int, help="experiments only (default: as make serve)")
    p.add_argument("--runs", type=int, default=1)
    return p.parse_args()


def main() -> None:
    a = parse_args()
    db = BenchDatabase(a.admin_url)
    asyncio.run(db.create(peers=False))
    broker = BrokerServer(db.url, a.broker_workers)
    try:
        broker.start()
        for _ in range(a.runs):
            doc = uvloop.run(run(a, db, broker.url))
            doc["loadavg"] = os.getloadavg()
            doc["config"] = {k: v for k, v in vars(a).items() if k != "admin_url"}
            print(json.dumps(doc, indent=2), flush=True)
    finally:
        broker.stop()
        asyncio.run(db.drop())


if __name__ == "__main__":
    main()
