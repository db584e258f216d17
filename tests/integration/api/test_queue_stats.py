"""The read-only series and counts the console's queues page shows: per-minute throughput and
failures, exact counts of live jobs, estimated counts of finished ones on a big table, and job
search by time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import asyncpg
import pytest

from jobbroker.store import queue as queue_store
from support import Api


async def test_stats_count_this_minutes_successes_and_deaths_of_one_queue(api: Api) -> None:
    for _ in range(3):
        await api.enqueue("stats-q")
    await api.enqueue("other-q")
    jobs = await api.lease("stats-q", max_jobs=3)
    await api.ack(jobs[0])
    await api.ack(jobs[1])
    await api.nack(jobs[2], retryable=False)
    await api.ack(await api.lease_one("other-q"))

    answer = await api.c.get("/v1/queues/stats-q/stats")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["queue"] == "stats-q" and body["bucket_seconds"] == 60
    assert len(body["buckets"]) == 60
    starts = [datetime.fromisoformat(b["start"]) for b in body["buckets"]]
    assert all(b - a == timedelta(minutes=1) for a, b in pairwise(starts))
    assert datetime.now(UTC) - starts[-1] < timedelta(minutes=1)
    assert sum(b["succeeded"] for b in body["buckets"]) == 2
    assert sum(b["failed"] for b in body["buckets"]) == 1
    assert body["buckets"][-1]["succeeded"] + body["buckets"][-2]["succeeded"] == 2


async def test_stats_window_is_bounded(api: Api) -> None:
    short = await api.c.get("/v1/queues/stats-q/stats", params={"minutes": 5})
    assert len(short.json()["buckets"]) == 5
    for minutes in (0, 1441, "x"):
        refused = await api.c.get("/v1/queues/stats-q/stats", params={"minutes": minutes})
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"


async def test_stats_ignore_jobs_that_finished_before_the_window(api: Api, pool: asyncpg.Pool) -> None:
    await api.enqueue("old-q")
    await api.ack(await api.lease_one("old-q"))
    await pool.execute("UPDATE job SET finished_at = now() - interval '2 hours' WHERE queue = 'old-q'")
    body = (await api.c.get("/v1/queues/old-q/stats")).json()
    assert sum(b["succeeded"] for b in body["buckets"]) == 0


async def test_small_tables_count_finished_jobs_exactly(api: Api) -> None:
    await api.enqueue("exact-q")
    await api.ack(await api.lease_one("exact-q"))
    [queue] = (await api.c.get("/v1/queues")).json()["items"]
    assert queue["counts"]["succeeded"] == 1 and queue["counts_estimated"] is False


async def test_big_tables_estimate_finished_jobs_and_count_live_ones(
    api: Api, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the threshold (lowered here) finished counts come from the planner's statistics."""
    monkeypatch.setattr(queue_store, "EXACT_FINISHED_ROWS", 100)
    await pool.execute(
        """INSERT INTO job (queue, type, payload, state, max_attempts, backoff_initial_s, backoff_max_s,
                            backoff_multiplier, backoff_jitter, timeout_s, finished_at)
           SELECT CASE WHEN i % 4 = 0 THEN 'small-q' ELSE 'big-q' END, 't', '{}',
                  CASE WHEN i % 10 = 0 THEN 'cancelled' ELSE 'succeeded' END,
                  5, 1, 60, 2, 0.1, 30, now()
           FROM generate_series(1, 4000) AS i"""
    )
    for _ in range(3):
        await api.enqueue("big-q")
    await pool.execute("ANALYZE job")
    queues = {q["name"]: q for q in (await api.c.get("/v1/queues")).json()["items"]}
    big, small = queues["big-q"], queues["small-q"]
    assert big["counts_estimated"] is True
    assert big["counts"]["pending"] == 3
    assert 2400 <= big["counts"]["succeeded"] + big["counts"]["cancelled"] <= 3600
    assert 600 <= small["counts"]["succeeded"] + small["counts"]["cancelled"] <= 1400
    assert big["counts"]["cancelled"] < big["counts"]["succeeded"]
    one = (await api.c.get("/v1/queues/small-q")).json()
    assert one["counts_estimated"] is True and one["counts"]["succeeded"] > 0


async def test_jobs_are_found_by_time(api: Api, pool: asyncpg.Pool) -> None:
    old = await api.enqueue("time-q")
    new = await api.enqueue("time-q")
    await pool.execute("UPDATE job SET created_at = now() - interval '3 days' WHERE id = $1", int(old["id"]))
    cut = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    recent = (await api.c.get("/v1/jobs", params={"queue": "time-q", "since": cut})).json()["items"]
    earlier = (await api.c.get("/v1/jobs", params={"queue": "time-q", "until": cut})).json()["items"]
    assert [j["id"] for j in recent] == [new["id"]]
    assert [j["id"] for j in earlier] == [old["id"]]
