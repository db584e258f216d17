"""Operators: list, cancel, replay; the DLQ with bulk replay and purge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from support import Api


async def test_list_filters_and_paginates_newest_first(api: Api) -> None:
    ids = [
        (await api.enqueue("a", type="x" if n % 2 else "y", tags=[f"t{n % 3}"], correlation_id=f"c{n}"))["id"]
        for n in range(7)
    ]
    await api.enqueue("b")
    page = (await api.c.get("/v1/jobs", params={"queue": "a", "limit": 3})).json()
    assert [j["id"] for j in page["items"]] == ids[::-1][:3]
    seen = [j["id"] for j in page["items"]]
    while page["next_cursor"]:
        page = (await api.c.get("/v1/jobs", params={"queue": "a", "limit": 3, "cursor": page["next_cursor"]})).json()
        seen += [j["id"] for j in page["items"]]
    assert seen == ids[::-1]
    by_type = (await api.c.get("/v1/jobs", params={"type": "x"})).json()["items"]
    assert {j["id"] for j in by_type} == {ids[n] for n in (1, 3, 5)}
    by_tag = (await api.c.get("/v1/jobs", params={"tag": "t0"})).json()["items"]
    assert {j["id"] for j in by_tag} == {ids[n] for n in (0, 3, 6)}
    by_corr = (await api.c.get("/v1/jobs", params={"correlation_id": "c4"})).json()["items"]
    assert [j["id"] for j in by_corr] == [ids[4]]
    by_state = (await api.c.get("/v1/jobs", params={"state": "succeeded"})).json()
    assert by_state == {"items": [], "next_cursor": None}


async def test_a_forged_cursor_is_a_validation_error(api: Api) -> None:
    response = await api.c.get("/v1/jobs", params={"cursor": "not-a-cursor"})
    assert response.status_code == 422 and response.json()["code"] == "validation_error"


async def test_cancel_a_waiting_job(api: Api) -> None:
    job = await api.enqueue()
    cancelled = (await api.c.post(f"/v1/jobs/{job['id']}/cancel")).json()
    assert cancelled["state"] == "cancelled" and cancelled["finished_at"] is not None
    assert await api.lease() == []


async def test_cancel_a_running_job_is_seen_on_heartbeat(api: Api) -> None:
    await api.enqueue()
    job = await api.lease_one()
    requested = (await api.c.post(f"/v1/jobs/{job['id']}/cancel")).json()
    assert requested["state"] == "active" and requested["cancel_requested"] is True
    beat = await api.c.post(f"/v1/jobs/{job['id']}/heartbeat", json={"lease_id": job["lease_id"]})
    assert beat.json()["cancel_requested"] is True


async def test_cancel_a_finished_job_answers_409(api: Api) -> None:
    await api.enqueue()
    job = await api.lease_one()
    await api.ack(job)
    response = await api.c.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 409 and response.json()["code"] == "invalid_state"


async def test_replay_a_dead_job_resets_attempts_and_keeps_errors(api: Api) -> None:
    dead = await api.dead_job(message="first death")
    replayed = (await api.c.post(f"/v1/jobs/{dead['id']}/replay")).json()
    assert replayed["state"] == "pending" and replayed["attempts"] == 0
    assert replayed["errors"][0]["error"]["message"] == "first death"
    again = await api.lease_one()
    assert again["id"] == dead["id"] and again["attempt"] == 1


async def test_replay_of_a_pending_job_answers_409(api: Api) -> None:
    job = await api.enqueue()
    response = await api.c.post(f"/v1/jobs/{job['id']}/replay")
    assert response.status_code == 409 and response.json()["code"] == "invalid_state"


async def test_dlq_lists_dead_jobs_with_filters(api: Api) -> None:
    smtp = await api.dead_job("mail", message="SMTP refused", type="send")
    await api.dead_job("mail", message="template missing", type="render")
    await api.dead_job("other", message="SMTP refused")
    await api.enqueue("mail")
    everything = (await api.c.get("/v1/dlq")).json()["items"]
    assert len(everything) == 3 and all(j["state"] == "dead" for j in everything)
    found = (await api.c.get("/v1/dlq", params={"queue": "mail", "error": "smtp"})).json()["items"]
    assert [j["id"] for j in found] == [smtp["id"]]
    by_type = (await api.c.get("/v1/dlq", params={"type": "render"})).json()["items"]
    assert len(by_type) == 1
    future = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert (await api.c.get("/v1/dlq", params={"since": future})).json()["items"] == []
    assert len((await api.c.get("/v1/dlq", params={"until": future})).json()["items"]) == 3


async def test_bulk_replay_by_filter_respects_the_limit(api: Api, pool: asyncpg.Pool) -> None:
    for _ in range(5):
        await api.dead_job("mail", message="SMTP refused")
    await api.dead_job("mail", message="other")
    response = await api.c.post("/v1/dlq/replay", json={"queue": "mail", "error": "smtp", "limit": 3})
    assert response.json() == {"count": 3}
    assert await pool.fetchval("SELECT count(*) FROM job WHERE state = 'pending'") == 3
    rest = await api.c.post("/v1/dlq/replay", json={"queue": "mail", "error": "smtp"})
    assert rest.json() == {"count": 2}
    assert await pool.fetchval("SELECT count(*) FROM job WHERE state = 'dead'") == 1


async def test_bulk_replay_and_purge_by_ids(api: Api, pool: asyncpg.Pool) -> None:
    a = await api.dead_job()
    b = await api.dead_job()
    c = await api.dead_job()
    alive = await api.enqueue()
    assert (await api.c.post("/v1/dlq/replay", json={"ids": [a["id"], alive["id"]]})).json() == {"count": 1}
    assert (await api.c.post("/v1/dlq/purge", json={"ids": [b["id"], alive["id"]]})).json() == {"count": 1}
    states = dict(await pool.fetch("SELECT id::text, state FROM job"))
    assert states == {a["id"]: "pending", c["id"]: "dead", alive["id"]: "pending"}


async def test_bulk_operations_need_ids_or_a_filter(api: Api) -> None:
    await api.dead_job()
    for verb in ("replay", "purge"):
        response = await api.c.post(f"/v1/dlq/{verb}", json={"limit": 10})
        assert response.status_code == 422 and response.json()["code"] == "filter_required"
    assert len((await api.c.get("/v1/dlq")).json()["items"]) == 1
