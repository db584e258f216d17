"""Recurring jobs: the schedules API and the cron ticker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from support import Api, eventually

NIGHTLY = {
    "name": "nightly",
    "cron": "0 2 * * *",
    "queue": "reports",
    "type": "build-report",
    "payload": {"kind": "daily"},
}


async def test_create_answers_the_next_fire_time(api: Api) -> None:
    response = await api.c.post("/v1/schedules", json={**NIGHTLY, "cron": "*/5 * * * *"})
    assert response.status_code == 201
    schedule = response.json()
    next_run_at = datetime.fromisoformat(schedule["next_run_at"])
    assert datetime.now(UTC) < next_run_at <= datetime.now(UTC) + timedelta(minutes=5)
    assert next_run_at.minute % 5 == 0 and next_run_at.second == 0
    assert schedule["last_run_at"] is None and schedule["paused"] is False
    assert (await api.c.get("/v1/schedules/nightly")).json() == schedule
    assert [s["name"] for s in (await api.c.get("/v1/schedules")).json()["items"]] == ["nightly"]


async def test_the_cron_expression_is_read_in_the_schedules_time_zone(api: Api) -> None:
    schedule = (
        await api.c.post("/v1/schedules", json={**NIGHTLY, "cron": "0 9 * * *", "timezone": "America/New_York"})
    ).json()
    local = datetime.fromisoformat(schedule["next_run_at"]).astimezone(ZoneInfo("America/New_York"))
    assert (local.hour, local.minute) == (9, 0)


async def test_bad_schedules_are_refused(api: Api) -> None:
    for bad in (
        {"cron": "every day"},
        {"cron": "61 * * * *"},
        {"timezone": "Mars/Olympus"},
        {"queue": "no spaces"},
        {"name": ""},
        {"unknown": 1},
    ):
        response = await api.c.post("/v1/schedules", json={**NIGHTLY, **bad})
        assert response.status_code == 422, bad
        assert response.json()["code"] == "validation_error"
    assert (await api.c.get("/v1/schedules")).json()["items"] == []


async def test_a_taken_name_answers_409(api: Api) -> None:
    await api.c.post("/v1/schedules", json=NIGHTLY)
    again = await api.c.post("/v1/schedules", json={**NIGHTLY, "cron": "* * * * *"})
    assert again.status_code == 409 and again.json()["code"] == "schedule_exists"
    assert (await api.c.get("/v1/schedules/nightly")).json()["cron"] == "0 2 * * *"


async def test_patch_changes_fields_and_recomputes_the_next_fire(api: Api) -> None:
    await api.c.post("/v1/schedules", json=NIGHTLY)
    changed = (await api.c.patch("/v1/schedules/nightly", json={"cron": "* * * * *", "priority": 3})).json()
    assert changed["cron"] == "* * * * *" and changed["priority"] == 3 and changed["type"] == "build-report"
    assert datetime.fromisoformat(changed["next_run_at"]) <= datetime.now(UTC) + timedelta(minutes=1)
    paused = (await api.c.patch("/v1/schedules/nightly", json={"paused": True})).json()
    assert paused["paused"] is True
    missing = await api.c.patch("/v1/schedules/nope", json={"paused": True})
    assert missing.status_code == 404 and missing.json()["code"] == "schedule_not_found"


async def test_delete_removes_the_schedule(api: Api) -> None:
    await api.c.post("/v1/schedules", json=NIGHTLY)
    assert (await api.c.delete("/v1/schedules/nightly")).status_code == 204
    assert (await api.c.get("/v1/schedules/nightly")).status_code == 404
    assert (await api.c.delete("/v1/schedules/nightly")).status_code == 404


async def test_the_ticker_enqueues_a_due_schedules_job_and_moves_it_on(api: Api, pool: asyncpg.Pool) -> None:
    await api.c.post("/v1/schedules", json={**NIGHTLY, "max_attempts": 2})
    await pool.execute("UPDATE schedule SET next_run_at = now() - interval '1 second'")

    async def fired() -> bool:
        return (await api.c.get("/v1/schedules/nightly")).json()["last_job_id"] is not None

    await eventually(fired, within_s=10)
    schedule = (await api.c.get("/v1/schedules/nightly")).json()
    job = await api.get(schedule["last_job_id"])
    assert (job["queue"], job["type"], job["payload"], job["max_attempts"]) == (
        "reports",
        "build-report",
        {"kind": "daily"},
        2,
    )
    assert job["correlation_id"] == "schedule:nightly"
    assert datetime.fromisoformat(schedule["next_run_at"]) > datetime.now(UTC)
    assert await pool.fetchval("SELECT count(*) FROM job") == 1


async def test_a_paused_schedule_does_not_fire(api: Api, pool: asyncpg.Pool) -> None:
    await api.c.post("/v1/schedules", json={**NIGHTLY, "paused": True})
    await pool.execute("UPDATE schedule SET next_run_at = now() - interval '1 second'")
    await asyncio.sleep(1.5)  # several ticker rounds; there is no event to wait for when nothing happens
    assert await pool.fetchval("SELECT count(*) FROM job") == 0


async def test_replicas_firing_the_same_time_enqueue_one_job(api: Api, pool: asyncpg.Pool, app: Any) -> None:
    await api.c.post("/v1/schedules", json={**NIGHTLY, "paused": True})
    await pool.execute("UPDATE schedule SET next_run_at = now() - interval '1 second'")
    [due] = [s for s in await app.state.broker.schedules.list()]
    await asyncio.gather(*(app.state.broker.fire_schedule(due) for _ in range(5)))
    assert await pool.fetchval("SELECT count(*) FROM job") == 1
    assert await pool.fetchval("SELECT next_run_at > now() FROM schedule") is True
