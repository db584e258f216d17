"""The console's test rig: a real broker process with API keys, a little realistic data, and
Playwright driving Debian's Chromium (skipped, with the reason, where Chromium is absent)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from jobbroker import keys
from jobbroker.keys import Scope
from jobbroker.settings import DbSettings
from jobbroker.store.db import plain_url

REPO = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO / "tests" / "artifacts" / "console"
CHROMIUM = os.environ.get("JOBBROKER_TEST_CHROMIUM", "/usr/bin/chromium")
ADMIN_KEY = keys.generate()
READ_KEY = keys.generate()
PRODUCE_KEY = keys.generate()
KEY_ENTRIES = ",".join(
    [keys.entry(ADMIN_KEY, [Scope.ADMIN]), keys.entry(READ_KEY, [Scope.READ]), keys.entry(PRODUCE_KEY, [Scope.PRODUCE])]
)


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium; .ci/run installs it)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    return None


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _settle(c: httpx.AsyncClient, queue: str, outcomes: list[tuple[str, Any]]) -> list[str]:
    """Lease one job per outcome and ack it ("ack", result) or fail it for good ("dead", error)."""
    leased = await c.post(
        f"/v1/queues/{queue}/leases", json={"worker_id": f"worker-{queue}-1", "max_jobs": len(outcomes)}
    )
    assert leased.status_code == 200, leased.text
    ids = []
    for job, (outcome, value) in zip(leased.json()["jobs"], outcomes, strict=False):
        if outcome == "ack":
            r = await c.post(f"/v1/jobs/{job['id']}/ack", json={"lease_id": job["lease_id"], "result": value})
        else:
            body = {"lease_id": job["lease_id"], "error": value, "retryable": outcome != "dead"}
            r = await c.post(f"/v1/jobs/{job['id']}/nack", json=body)
        assert r.status_code == 200, r.text
        ids.append(job["id"])
    return ids


async def seed(url: str) -> dict[str, Any]:
    """A few queues an operator would recognise: mail going out, a paused billing queue with dead
    jobs of two kinds of failure, nightly reports, a schedule and a push subscription."""
    async with httpx.AsyncClient(base_url=url, headers=bearer(ADMIN_KEY), timeout=10) as c:

        async def enqueue(queue: str, type: str, n: int, **extra: Any) -> list[str]:
            jobs = [{"type": type, "payload": {"n": i, "customer_id": 1000 + i}, **extra} for i in range(n)]
            r = await c.post(f"/v1/queues/{queue}/jobs:batch", json={"jobs": jobs})
            assert r.status_code == 201, r.text
            return [j["id"] for j in r.json()["jobs"]]

        await enqueue("emails", "send_welcome", 12, tags=["onboarding"], max_attempts=3)
        mail_ok = await _settle(c, "emails", [("ack", {"message_id": f"<m{i}@mail>"}) for i in range(6)])
        mail_dead = await _settle(
            c,
            "emails",
            [
                ("dead", {"type": "SMTPRecipientsRefused", "message": f"550 mailbox unavailable for user {i}"})
                for i in range(3)
            ],
        )
        await enqueue("billing", "charge_card", 8, correlation_id="order-7731")
        billing_dead = await _settle(
            c,
            "billing",
            [
                ("dead", {"type": "CardDeclined", "message": f"card declined: insufficient funds (ch_{i}9f3a)"})
                for i in range(4)
            ]
            + [("dead", {"type": "TimeoutError", "message": "gateway timed out after 30 s"})],
        )
        retried = await _settle(c, "billing", [("retry", {"type": "ConnectionError", "message": "reset by peer"})])
        assert (await c.patch("/v1/queues/billing", json={"paused": True, "max_concurrency": 4})).status_code == 200
        await enqueue("reports", "build_report", 5, delay_seconds=3600)
        await enqueue("reports", "build_report", 3)
        for tenant, n in (("tenant-a", 4), ("tenant-b", 2)):
            await enqueue("exports", "export_csv", n, flow_key=tenant)
        schedule = {
            "name": "nightly-report",
            "cron": "0 3 * * *",
            "timezone": "Europe/Paris",
            "queue": "reports",
            "type": "build_report",
            "payload": {"kind": "nightly"},
        }
        assert (await c.post("/v1/schedules", json=schedule)).status_code == 201
        sub = {"queue": "webhooks", "url": "http://127.0.0.1:9/hooks/jobs", "description": "CRM sync"}
        r = await c.post("/v1/subscriptions", json=sub)
        assert r.status_code == 201, r.text
        # Nothing listens there: the dispatcher's deliveries fail, and the page shows it.
        await enqueue("webhooks", "contact.updated", 2)
        return {
            "mail_ok": mail_ok,
            "mail_dead": mail_dead,
            "billing_dead": billing_dead,
            "retried": retried,
            "subscription": r.json()["id"],
        }


async def history(database_url: str) -> None:
    """An hour of finished work behind the live jobs, so the throughput series have a shape (with a
    dip twenty minutes ago)."""
    conn = await asyncpg.connect(plain_url(database_url), server_settings={"search_path": DbSettings().schema_name})
    try:
        await conn.execute(
            """INSERT INTO job (queue, type, payload, state, attempts, max_attempts, backoff_initial_s, backoff_max_s,
                                backoff_multiplier, backoff_jitter, timeout_s, created_at, finished_at)
               SELECT q, t, jsonb_build_object('n', i), 'succeeded', 1, 5, 1, 60, 2, 0.1, 30, at - interval '2 s', at
               FROM generate_series(1, 3000) AS i,
                    LATERAL (SELECT now() - make_interval(secs => (i * 7919) % 3600) AS at) AS w,
                    LATERAL (SELECT CASE WHEN i % 3 = 0 THEN 'billing' ELSE 'emails' END AS q,
                                    CASE WHEN i % 3 = 0 THEN 'charge_card' ELSE 'send_welcome' END AS t) AS k
               WHERE i % 5 <> 0 OR extract(epoch FROM now() - at) NOT BETWEEN 1080 AND 1500"""
        )
    finally:
        await conn.close()


async def has_route(url: str, method: str, path: str) -> bool:
    """Whether this broker's OpenAPI document lists the route."""
    async with httpx.AsyncClient(base_url=url) as c:
        spec = (await c.get("/openapi.json")).json()
    return method.lower() in spec["paths"].get(path, {})
