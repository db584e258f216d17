"""Redrive across replicas with a SIGKILL, export memory, and the audit log, each against its own
broker processes (they need a database, keys or a process of their own)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx
import psutil
import pytest

from conftest import connect, make_dead_jobs
from jobbroker import keys
from jobbroker.keys import Scope
from support import BrokerProcess, eventually

pytestmark = pytest.mark.slow


@pytest.mark.timeout(180)
async def test_redrive_survives_a_replica_killed_midway_and_replays_each_job_once(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    url = await fresh_database()
    await make_dead_jobs(url, "crashy", 10_000)
    replicas = [BrokerProcess(url), BrokerProcess(url)]
    for replica in replicas:
        await asyncio.to_thread(replica.start)
    try:
        async with httpx.AsyncClient(base_url=replicas[1].url, timeout=30) as http:
            response = await http.post("/v1/dlq/redrives", json={"queue": "crashy", "rate_per_second": 500})
            assert response.status_code == 202, response.text
            redrive = response.json()
            assert redrive["total"] == 10_000
            started = time.monotonic()

            async def progress() -> int:
                return (await http.get(f"/v1/dlq/redrives/{redrive['id']}")).json()["done"]

            async def halfway() -> bool:
                return await progress() >= 4_000

            await eventually(halfway, within_s=60, every_s=0.1)
            replicas[0].kill()
            at_kill = await progress()
            assert at_kill < 10_000

            async def finished() -> bool:
                return (await http.get(f"/v1/dlq/redrives/{redrive['id']}")).json()["state"] != "running"

            await eventually(finished, within_s=90, every_s=0.2)
            elapsed = time.monotonic() - started
            final = (await http.get(f"/v1/dlq/redrives/{redrive['id']}")).json()
        print(f"redrive: killed a replica at {at_kill} of 10,000; done in {elapsed:.1f} s")
        assert (final["state"], final["total"], final["done"], final["replayed"]) == ("done", 10_000, 10_000, 10_000)
        # 10,000 at 500/s: about 20 s, never much faster than the rate allows.
        assert elapsed >= 17, elapsed
        conn = await connect(url)
        try:
            replays = await conn.fetch("SELECT replays, state, count(*) AS n FROM job GROUP BY 1, 2")
            left = await conn.fetchval("SELECT count(*) FROM redrive_item")
        finally:
            await conn.close()
        assert [(r["replays"], r["state"], r["n"]) for r in replays] == [(1, "pending", 10_000)]
        assert left == 0
    finally:
        for replica in replicas:
            await asyncio.to_thread(replica.stop)


@pytest.mark.timeout(240)
async def test_export_streams_100k_dead_jobs_with_flat_memory(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    url = await fresh_database()
    await make_dead_jobs(url, "exported", 100_000)
    broker = BrokerProcess(url)
    await asyncio.to_thread(broker.start)
    try:
        assert broker.proc is not None
        process = psutil.Process(broker.proc.pid)
        async with httpx.AsyncClient(base_url=broker.url, timeout=60) as http:
            # A small export first, so the code paths and pools are warm before measuring.
            async with http.stream("GET", "/v1/dlq/export", params={"type": "none"}) as warm:
                assert warm.status_code == 200 and [line async for line in warm.aiter_lines()] == []
            baseline = process.memory_info().rss
            peak, lines, total_bytes = baseline, 0, 0
            async with http.stream("GET", "/v1/dlq/export", params={"queue": "exported"}) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("application/x-ndjson")
                first = None
                async for line in response.aiter_lines():
                    if not line:
                        continue
                    lines += 1
                    total_bytes += len(line)
                    first = first or line
                    if lines % 5_000 == 0:
                        peak = max(peak, process.memory_info().rss)
        assert lines == 100_000
        assert '"state":"dead"' in first and '"errors":[{' in first
        growth_mb = (peak - baseline) / 2**20
        size_mb, rss_mb = total_bytes / 2**20, baseline / 2**20
        print(f"export: {lines} lines, {size_mb:.0f} MB; broker RSS {rss_mb:.0f} MB, grew {growth_mb:.1f} MB")
        # The export is about 90 MB of JSON; holding it, or its rows, would grow the broker by more.
        assert total_bytes > 60 * 2**20
        assert growth_mb < 25, f"broker RSS grew {growth_mb:.1f} MB while streaming {total_bytes / 2**20:.0f} MB"
    finally:
        await asyncio.to_thread(broker.stop)


@pytest.mark.timeout(120)
async def test_the_audit_log_records_each_admin_route_and_no_secret(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    url = await fresh_database()
    admin_key = keys.generate()
    broker = BrokerProcess(url, JOBBROKER_API_KEYS=keys.entry(admin_key, [Scope.ADMIN]))
    await asyncio.to_thread(broker.start)
    secret = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODkw"
    new_secret = "whsec_" + "WllYV1ZVVFNSUVBPTk1MS0pJSEdGRURDQkE5ODc2NTQz"
    try:
        async with httpx.AsyncClient(
            base_url=broker.url, timeout=30, headers={"Authorization": f"Bearer {admin_key}", "X-Request-ID": "req-1"}
        ) as http:
            await make_dead_jobs(url, "audited", 3)
            job = (await http.post("/v1/queues/audited/jobs", json={"type": "t"})).json()
            steps = [
                ("job.cancel", http.post(f"/v1/jobs/{job['id']}/cancel")),
                ("job.replay", http.post(f"/v1/jobs/{job['id']}/replay")),
                ("dlq.replay", http.post("/v1/dlq/replay", json={"queue": "audited", "limit": 1})),
                ("dlq.purge", http.post("/v1/dlq/purge", json={"queue": "audited", "limit": 1})),
                ("redrive.create", http.post("/v1/dlq/redrives", json={"queue": "audited", "rate_per_second": 0.01})),
                ("queue.update", http.patch("/v1/queues/audited", json={"paused": True})),
                (
                    "subscription.create",
                    http.post(
                        "/v1/subscriptions",
                        json={"queue": "pushed", "url": "http://127.0.0.1:9/hook?token=s3cr3t", "secret": secret},
                    ),
                ),
                (
                    "schedule.create",
                    http.post(
                        "/v1/schedules", json={"name": "nightly", "cron": "0 3 * * *", "queue": "audited", "type": "t"}
                    ),
                ),
            ]
            answers = {}
            for action, call in steps:
                response = await call
                assert response.status_code < 300, (action, response.text)
                answers[action] = response.json()
            sid = answers["subscription.create"]["id"]
            rid = answers["redrive.create"]["id"]
            more = [
                ("redrive.cancel", http.post(f"/v1/dlq/redrives/{rid}/cancel")),
                ("subscription.update", http.patch(f"/v1/subscriptions/{sid}", json={"max_concurrency": 2})),
                (
                    "subscription.rotate_secret",
                    http.post(f"/v1/subscriptions/{sid}/rotate-secret", json={"secret": new_secret}),
                ),
                ("subscription.delete", http.delete(f"/v1/subscriptions/{sid}")),
                ("schedule.update", http.patch("/v1/schedules/nightly", json={"cron": "0 4 * * *"})),
                ("schedule.delete", http.delete("/v1/schedules/nightly")),
            ]
            for action, call in more:
                response = await call
                assert response.status_code < 300, (action, response.text)
            # A dry run changes nothing and is not an action.
            await http.post("/v1/dlq/replay", json={"queue": "audited", "dry_run": True})

            page = (await http.get("/v1/audit", params={"limit": 5})).json()
            events = page["items"]
            while page["next_cursor"]:
                page = (await http.get("/v1/audit", params={"limit": 5, "cursor": page["next_cursor"]})).json()
                events += page["items"]
            wanted = [action for action, _ in steps + more]
            assert [e["action"] for e in reversed(events)] == wanted
            assert {e["actor"] for e in events} == {keys.public_id(admin_key)}
            assert {e["request_id"] for e in events} == {"req-1"}
            by_action = {e["action"]: e for e in events}
            assert by_action["dlq.replay"]["count"] == 1
            assert by_action["dlq.replay"]["filter"] == {"queue": "audited", "limit": 1}
            assert by_action["job.cancel"]["target"] == job["id"]
            assert by_action["redrive.create"]["target"] == rid and by_action["redrive.create"]["count"] == 1
            assert by_action["queue.update"]["filter"] == {"paused": True}
            only = (await http.get("/v1/audit", params={"action": "dlq.purge"})).json()["items"]
            assert [e["action"] for e in only] == ["dlq.purge"]
            nobody = (await http.get("/v1/audit", params={"actor": "someone-else"})).json()["items"]
            assert nobody == []
            served = (await http.get("/v1/audit", params={"limit": 1000})).text
        conn = await connect(url)
        try:
            stored = await conn.fetchval("SELECT string_agg(CAST(a AS text), ' ') FROM audit_event a")
        finally:
            await conn.close()
        for text in (served, stored):
            for leaked in (admin_key, admin_key[4:], secret, new_secret, "s3cr3t", keys.digest(admin_key).hex()):
                assert leaked not in text
    finally:
        await asyncio.to_thread(broker.stop)
