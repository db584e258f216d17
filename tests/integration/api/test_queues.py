"""Queue statistics and settings."""

from __future__ import annotations

import asyncpg

from support import Api


async def test_stats_count_jobs_by_state(api: Api, pool: asyncpg.Pool) -> None:
    for _ in range(3):
        await api.enqueue("mail")
    await api.enqueue("mail", delay_seconds=60)
    await api.lease_one("mail")
    await api.dead_job("mail")
    await pool.execute(
        "UPDATE job SET run_at = now() - interval '30 seconds' WHERE state = 'pending' AND run_at < now()"
    )
    stats = (await api.c.get("/v1/queues/mail")).json()
    assert stats["counts"] == {"pending": 3, "active": 1, "retrying": 0, "succeeded": 0, "dead": 1, "cancelled": 0}
    assert stats["active_leases"] == 1 and stats["dlq_size"] == 1
    assert 29 < stats["oldest_pending_age_seconds"] < 60
    listing = (await api.c.get("/v1/queues")).json()["items"]
    assert [q["name"] for q in listing] == ["mail"]


async def test_an_unknown_queue_has_zero_counts(api: Api) -> None:
    stats = (await api.c.get("/v1/queues/nothing-here")).json()
    assert stats["name"] == "nothing-here" and sum(stats["counts"].values()) == 0
    assert stats["oldest_pending_age_seconds"] == 0


async def test_patch_changes_only_the_given_settings(api: Api) -> None:
    first = (await api.c.patch("/v1/queues/mail", json={"max_concurrency": 5, "retention_seconds": 3600})).json()
    assert first["max_concurrency"] == 5 and first["retention_seconds"] == 3600 and first["paused"] is False
    second = (await api.c.patch("/v1/queues/mail", json={"paused": True})).json()
    assert second["paused"] is True and second["max_concurrency"] == 5 and second["retention_seconds"] == 3600
    lifted = (await api.c.patch("/v1/queues/mail", json={"max_concurrency": None})).json()
    assert lifted["max_concurrency"] is None and lifted["paused"] is True


async def test_retention_deletes_finished_jobs_past_their_queues_retention(
    api: Api, pool: asyncpg.Pool, app: object
) -> None:
    await api.c.patch("/v1/queues/short", json={"retention_seconds": 60})
    await api.enqueue("short")
    await api.ack(await api.lease_one("short"))
    await api.enqueue("long")
    await api.ack(await api.lease_one("long"))
    await pool.execute("UPDATE job SET finished_at = now() - interval '2 minutes'")
    deleted = await app.state.broker.jobs.delete_expired(100)  # type: ignore[attr-defined]
    assert deleted == 1
    assert await pool.fetchval("SELECT queue FROM job") == "long"
