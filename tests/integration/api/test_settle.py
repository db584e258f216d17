"""Heartbeat, ack and nack, single and batched, fenced by the lease."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg

from support import Api


async def expire_lease(pool: asyncpg.Pool, job_id: str) -> None:
    await pool.execute("UPDATE job SET lease_expires_at = now() - interval '1 second' WHERE id = $1", int(job_id))


async def test_ack_stores_the_result_and_finishes_the_job(api: Api) -> None:
    await api.enqueue()
    job = await api.lease_one()
    response = await api.ack(job, result={"sent": True})
    assert response.status_code == 200
    done = response.json()
    assert done["state"] == "succeeded" and done["result"] == {"sent": True}
    assert done["finished_at"] is not None and done["lease_expires_at"] is None


async def test_repeating_an_ack_is_harmless(api: Api) -> None:
    await api.enqueue()
    job = await api.lease_one()
    await api.ack(job, result=1)
    again = await api.ack(job, result=2)
    assert again.status_code == 200 and again.json()["result"] == 1


async def test_a_stale_ack_after_re_lease_is_refused_and_changes_nothing(api: Api, pool: asyncpg.Pool) -> None:
    await api.enqueue(backoff={"initial_seconds": 0.001, "jitter": 0})
    first = await api.lease_one()
    await expire_lease(pool, first["id"])
    await _eventually_state(api, first["id"], "retrying")
    await pool.execute("UPDATE job SET run_at = now() WHERE id = $1", int(first["id"]))
    second = await api.lease_one()
    assert second["id"] == first["id"] and second["lease_id"] != first["lease_id"] and second["attempt"] == 2

    stale = await api.ack(first, result="stale")
    assert stale.status_code == 409
    assert stale.headers["content-type"] == "application/problem+json"
    assert stale.json()["code"] == "lease_lost"
    stale_nack = await api.nack(first)
    assert stale_nack.status_code == 409 and stale_nack.json()["code"] == "lease_lost"
    current = await api.get(first["id"])
    assert current["state"] == "active" and current["result"] is None
    assert (await api.ack(second, result="fresh")).json()["result"] == "fresh"


async def _eventually_state(api: Api, job_id: str, state: str) -> dict:
    for _ in range(200):
        job = await api.get(job_id)
        if job["state"] == state:
            return job
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} never became {state}")


async def test_nack_retries_with_backoff_and_records_the_error(api: Api) -> None:
    await api.enqueue(backoff={"initial_seconds": 10, "multiplier": 2, "max_seconds": 100, "jitter": 0})
    job = await api.lease_one()
    response = await api.nack(job, "smtp down", retryable=True)
    failed = response.json()
    assert response.status_code == 200 and failed["state"] == "retrying"
    delay = datetime.fromisoformat(failed["run_at"]) - datetime.now(UTC)
    assert timedelta(seconds=9) < delay <= timedelta(seconds=10)
    [entry] = failed["errors"]
    assert entry["attempt"] == 1 and entry["worker_id"] == "w1" and entry["error"] == {"message": "smtp down"}


async def test_backoff_grows_exponentially_up_to_its_cap(api: Api, pool: asyncpg.Pool) -> None:
    await api.enqueue(max_attempts=10, backoff={"initial_seconds": 1, "multiplier": 3, "max_seconds": 20, "jitter": 0})
    delays = []
    for _ in range(4):
        await pool.execute("UPDATE job SET run_at = now()")
        job = await api.lease_one()
        failed = (await api.nack(job)).json()
        delays.append(datetime.fromisoformat(failed["run_at"]) - datetime.fromisoformat(failed["updated_at"]))
    assert [round(d.total_seconds()) for d in delays] == [1, 3, 9, 20]


async def test_jitter_only_shortens_the_delay(api: Api, pool: asyncpg.Pool) -> None:
    await api.c.post(
        "/v1/queues/q/jobs:batch",
        json={"jobs": [{"type": "t", "backoff": {"initial_seconds": 100, "jitter": 0.5}}] * 20},
    )
    jobs = await api.lease(max_jobs=20)
    delays = []
    for job in jobs:
        failed = (await api.nack(job)).json()
        delays.append(
            (datetime.fromisoformat(failed["run_at"]) - datetime.fromisoformat(failed["updated_at"])).total_seconds()
        )
    assert all(50 <= d <= 100 for d in delays)
    assert len({round(d) for d in delays}) > 1, "jitter produced identical delays"


async def test_retry_in_seconds_overrides_the_backoff(api: Api) -> None:
    await api.enqueue(backoff={"initial_seconds": 1000})
    job = await api.lease_one()
    failed = (await api.nack(job, retry_in_seconds=0)).json()
    assert failed["state"] == "retrying"
    again = await api.lease_one()
    assert again["id"] == job["id"] and again["attempt"] == 2


async def test_nack_on_last_attempt_moves_to_dlq(api: Api) -> None:
    await api.enqueue(max_attempts=2)
    await api.nack(await api.lease_one(), "one", retry_in_seconds=0)
    dead = (await api.nack(await api.lease_one(), "two", retry_in_seconds=0)).json()
    assert dead["state"] == "dead" and dead["attempts"] == 2
    assert [e["error"]["message"] for e in dead["errors"]] == ["one", "two"]
    assert dead["finished_at"] is not None


async def test_non_retryable_nack_goes_straight_to_dlq(api: Api) -> None:
    await api.enqueue(max_attempts=5)
    dead = (await api.nack(await api.lease_one(), "bad input", retryable=False)).json()
    assert dead["state"] == "dead" and dead["attempts"] == 1


async def test_error_history_is_bounded_to_the_newest(api: Api, pool: asyncpg.Pool) -> None:
    await api.enqueue(max_attempts=30)
    for n in range(25):
        await pool.execute("UPDATE job SET run_at = now()")
        await api.nack(await api.lease_one(), f"e{n}", retry_in_seconds=0)
    [job] = (await api.c.get("/v1/jobs")).json()["items"]
    assert [e["error"]["message"] for e in job["errors"]] == [f"e{n}" for n in range(5, 25)]


async def test_heartbeat_extends_the_lease_and_records_progress(api: Api) -> None:
    await api.enqueue()
    job = await api.lease_one(visibility_timeout_seconds=5)
    response = await api.c.post(
        f"/v1/jobs/{job['id']}/heartbeat",
        json={"lease_id": job["lease_id"], "progress": {"pct": 50}, "visibility_timeout_seconds": 120},
    )
    assert response.status_code == 200
    beat = response.json()
    assert beat["cancel_requested"] is False
    assert datetime.fromisoformat(beat["lease_expires_at"]) - datetime.now(UTC) > timedelta(seconds=110)
    assert (await api.get(job["id"]))["progress"] == {"pct": 50}


async def test_heartbeat_with_a_stale_lease_is_refused(api: Api) -> None:
    await api.enqueue()
    job = await api.lease_one()
    await api.ack(job)
    response = await api.c.post(f"/v1/jobs/{job['id']}/heartbeat", json={"lease_id": job["lease_id"]})
    assert response.status_code == 409 and response.json()["code"] == "lease_lost"


async def test_settling_an_unknown_job_answers_404(api: Api) -> None:
    lease = "7d9f2c1e-5b1a-4c47-9a57-2f0d3f6f8a11"
    for verb in ("ack", "heartbeat"):
        response = await api.c.post(f"/v1/jobs/987654/{verb}", json={"lease_id": lease})
        assert response.status_code == 404 and response.json()["code"] == "job_not_found"
    assert (await api.c.post("/v1/jobs/not-a-number/ack", json={"lease_id": lease})).status_code == 404


async def test_batch_ack_reports_one_outcome_per_item(api: Api) -> None:
    await api.c.post("/v1/queues/q/jobs:batch", json={"jobs": [{"type": "t"}] * 3})
    a, b, c = await api.lease(max_jobs=3)
    await api.ack(c)
    items = [
        {"id": a["id"], "lease_id": a["lease_id"], "result": "ra"},
        {"id": b["id"], "lease_id": "00000000-0000-0000-0000-000000000000"},
        {"id": c["id"], "lease_id": c["lease_id"]},
        {"id": "999999", "lease_id": a["lease_id"]},
    ]
    response = await api.c.post("/v1/acks", json={"items": items})
    assert response.status_code == 200
    assert response.json()["results"] == [
        {"id": a["id"], "ok": True},
        {"id": b["id"], "ok": False, "code": "lease_lost"},
        {"id": c["id"], "ok": True},
        {"id": "999999", "ok": False, "code": "job_not_found"},
    ]
    assert (await api.get(a["id"]))["result"] == "ra"
    assert (await api.get(b["id"]))["state"] == "active"


async def test_batch_nack_applies_each_items_policy(api: Api) -> None:
    await api.c.post("/v1/queues/q/jobs:batch", json={"jobs": [{"type": "t"}] * 2})
    a, b = await api.lease(max_jobs=2)
    items = [
        {"id": a["id"], "lease_id": a["lease_id"], "error": {"message": "x"}, "retry_in_seconds": 0},
        {"id": b["id"], "lease_id": b["lease_id"], "error": {"message": "y"}, "retryable": False},
    ]
    response = await api.c.post("/v1/nacks", json={"items": items})
    assert [r["ok"] for r in response.json()["results"]] == [True, True]
    assert (await api.get(a["id"]))["state"] == "retrying"
    assert (await api.get(b["id"]))["state"] == "dead"


async def test_reaper_turns_an_expired_lease_into_a_failed_attempt(api: Api, pool: asyncpg.Pool) -> None:
    await api.enqueue(max_attempts=2, backoff={"initial_seconds": 0.001, "jitter": 0})
    job = await api.lease_one()
    await expire_lease(pool, job["id"])
    retrying = await _eventually_state(api, job["id"], "retrying")
    assert retrying["errors"][0]["error"]["type"] == "lease_expired"
    assert retrying["errors"][0]["worker_id"] == "w1"
    second = await api.lease_one()
    await expire_lease(pool, second["id"])
    dead = await _eventually_state(api, job["id"], "dead")
    assert [e["error"]["type"] for e in dead["errors"]] == ["lease_expired", "lease_expired"]


async def test_result_over_the_payload_limit_is_refused(api: Api) -> None:
    await api.enqueue()
    job = await api.lease_one()
    response = await api.ack(job, result="x" * (300 * 1024))
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"
    assert (await api.get(job["id"]))["state"] == "active"


async def test_batch_bodies_may_be_bare_lists_or_named_lists(api: Api) -> None:
    created = await api.c.post("/v1/queues/q/jobs:batch", json=[{"type": "t"}] * 3)
    assert created.status_code == 201 and len(created.json()["jobs"]) == 3
    a, b, c = await api.lease(max_jobs=3)
    bare = await api.c.post("/v1/acks", json=[{"id": a["id"], "lease_id": a["lease_id"]}])
    named = await api.c.post("/v1/acks", json={"acks": [{"id": b["id"], "lease_id": b["lease_id"]}]})
    nacked = await api.c.post(
        "/v1/nacks", json={"nacks": [{"id": c["id"], "lease_id": c["lease_id"], "retryable": False}]}
    )
    assert [r.json()["results"][0]["ok"] for r in (bare, named, nacked)] == [True, True, True]
    assert (await api.get(c["id"]))["errors"][0]["error"]["message"] == "unspecified error"


async def test_an_expired_lease_is_ready_again_at_once(api: Api, pool: asyncpg.Pool) -> None:
    await api.enqueue(backoff={"initial_seconds": 3600})
    job = await api.lease_one()
    await expire_lease(pool, job["id"])
    again = await api.lease(wait_seconds=5)
    assert [j["id"] for j in again] == [job["id"]] and again[0]["attempt"] == 2


async def test_release_gives_the_job_back_with_its_attempt(api: Api) -> None:
    await api.enqueue(max_attempts=1)
    job = await api.lease_one()
    response = await api.c.post(f"/v1/jobs/{job['id']}/release", json={"lease_id": job["lease_id"]})
    released = response.json()
    assert response.status_code == 200
    assert released["state"] == "pending" and released["attempts"] == 0 and released["errors"] == []
    again = await api.lease_one()
    assert again["id"] == job["id"] and again["attempt"] == 1, "a release must not use up the last attempt"
    stale = await api.c.post(f"/v1/jobs/{job['id']}/release", json={"lease_id": job["lease_id"]})
    assert stale.status_code == 409 and stale.json()["code"] == "lease_lost"


async def test_release_after_a_failure_returns_to_retrying_after_the_delay(api: Api) -> None:
    await api.enqueue()
    await api.nack(await api.lease_one(), retry_in_seconds=0)
    job = await api.lease_one()
    released = (
        await api.c.post(f"/v1/jobs/{job['id']}/release", json={"lease_id": job["lease_id"], "delay_seconds": 60})
    ).json()
    assert released["state"] == "retrying" and released["attempts"] == 1
    assert await api.lease() == []


async def test_a_bare_string_error_is_taken_as_the_message(api: Api) -> None:
    await api.enqueue()
    job = await api.lease_one()
    response = await api.c.post(f"/v1/jobs/{job['id']}/nack", json={"lease_id": job["lease_id"], "error": "boom"})
    assert response.json()["errors"][0]["error"] == {"message": "boom"}


async def test_concurrent_single_acks_each_get_their_own_answer(api: Api) -> None:
    """Single acks arriving together share one statement in the store; over HTTP each still
    answers alone: 200 for its own lease, 409 lease_lost for a stale one, 200 for a repeat."""
    for _ in range(3):
        await api.enqueue()
    fresh, repeated, requeued = await api.lease(max_jobs=3)
    await api.ack(repeated)
    assert (await api.nack(requeued, retry_in_seconds=0)).status_code == 200
    again = await api.lease_one()
    assert again["id"] == requeued["id"]

    answers = await asyncio.gather(api.ack(fresh), api.ack(repeated), api.ack(requeued), api.ack(again))

    assert [a.status_code for a in answers] == [200, 200, 409, 200]
    assert answers[2].json()["code"] == "lease_lost"
    assert all(a.json()["state"] == "succeeded" for a in (answers[0], answers[1], answers[3]))
