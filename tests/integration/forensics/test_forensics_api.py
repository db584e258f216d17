"""Attempts, fingerprints, groups, filters, dry runs and redrives against a real broker process."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson

from support import eventually


async def enqueue(http: httpx.AsyncClient, queue: str, **body: Any) -> dict[str, Any]:
    response = await http.post(f"/v1/queues/{queue}/jobs", json={"type": "t", **body})
    assert response.status_code == 201, response.text
    return response.json()


async def lease(http: httpx.AsyncClient, queue: str, **body: Any) -> dict[str, Any]:
    response = await http.post(f"/v1/queues/{queue}/leases", json={"worker_id": "w1", **body})
    [job] = response.json()["jobs"]
    return job


async def dead(http: httpx.AsyncClient, queue: str, message: str, type: str = "Timeout", **enq: Any) -> dict[str, Any]:
    await enqueue(http, queue, max_attempts=1, **enq)
    job = await lease(http, queue)
    response = await http.post(
        f"/v1/jobs/{job['id']}/nack", json={"lease_id": job["lease_id"], "error": {"type": type, "message": message}}
    )
    assert response.json()["state"] == "dead", response.text
    return response.json()


async def test_ledger_of_a_job_that_failed_expired_was_released_and_succeeded(
    http: httpx.AsyncClient, queue_name: str
) -> None:
    job = await enqueue(http, queue_name, max_attempts=5, backoff={"initial_seconds": 0.01, "jitter": 0})
    first = await lease(http, queue_name, worker_id="w-fail")
    for _ in range(2):
        await http.post(f"/v1/jobs/{job['id']}/heartbeat", json={"lease_id": first["lease_id"]})
    await http.post(
        f"/v1/jobs/{job['id']}/nack",
        json={"lease_id": first["lease_id"], "error": {"type": "IOError", "message": "disk 3 full"}},
    )
    await asyncio.sleep(0.05)
    second = await lease(http, queue_name, worker_id="w-stall", visibility_timeout_seconds=1)

    async def expired() -> bool:
        return (await http.get(f"/v1/jobs/{job['id']}")).json()["state"] == "retrying"

    await eventually(expired, within_s=10)
    third = await lease(http, queue_name, worker_id="w-leaving")
    await http.post(f"/v1/jobs/{job['id']}/release", json={"lease_id": third["lease_id"]})
    fourth = await lease(http, queue_name, worker_id="w-ok")
    running = (await http.get(f"/v1/jobs/{job['id']}/attempts")).json()["items"]
    assert running[-1]["outcome"] is None and running[-1]["ended_at"] is None
    assert running[-1]["lease_id"] == fourth["lease_id"]
    await http.post(f"/v1/jobs/{job['id']}/ack", json={"lease_id": fourth["lease_id"]})

    attempts = (await http.get(f"/v1/jobs/{job['id']}/attempts")).json()["items"]
    assert [a["outcome"] for a in attempts] == ["failed", "lease_expired", "released", "succeeded"]
    assert [a["worker_id"] for a in attempts] == ["w-fail", "w-stall", "w-leaving", "w-ok"]
    assert [a["lease_id"] for a in attempts] == [j["lease_id"] for j in (first, second, third, fourth)]
    # The released attempt was given back, so the next lease is attempt 3 again.
    assert [a["attempt"] for a in attempts] == [1, 2, 3, 3]
    assert attempts[0]["heartbeats"] == 2 and attempts[0]["error"] == {"type": "IOError", "message": "disk 3 full"}
    assert attempts[0]["fingerprint"] == (await http.get(f"/v1/jobs/{job['id']}")).json()["errors"][0]["fingerprint"]
    assert attempts[1]["error"]["type"] == "lease_expired" and attempts[1]["duration_seconds"] >= 1
    assert all(a["ended_at"] is not None and a["duration_seconds"] >= 0 for a in attempts)
    assert all(a["http_status"] is None for a in attempts)
    missing = await http.get("/v1/jobs/999999999/attempts")
    assert missing.status_code == 404 and missing.json()["code"] == "job_not_found"


async def test_fingerprints_group_messages_differing_only_in_numbers_and_ids(
    http: httpx.AsyncClient, queue_name: str
) -> None:
    same = [
        "timeout after 3012 ms at 10.0.0.7:5432 for order ord_8Kf93jdQ2x (req 550e8400-e29b-41d4-a716-446655440000)",
        "timeout after 95 ms at 10.1.2.9:6543 for order ord_Zp01mmQ7 (req 123e4567-e89b-12d3-a456-426614174000)",
        "timeout after 7 ms at 192.168.0.1:80 for order ord_1111aaaa (req 00000000-0000-0000-0000-000000000000)",
    ]
    jobs = [await dead(http, queue_name, m) for m in same]
    other_message = await dead(http, queue_name, "connection refused by 10.0.0.7:5432")
    other_type = await dead(http, queue_name, same[0], type="DeadlineExceeded")
    prints = [j["last_fingerprint"] for j in jobs]
    assert len(set(prints)) == 1 and prints[0] is not None
    assert jobs[0]["errors"][-1]["fingerprint"] == prints[0]
    assert other_message["last_fingerprint"] not in prints and other_type["last_fingerprint"] not in prints
    assert other_message["last_fingerprint"] != other_type["last_fingerprint"]

    groups = (await http.get("/v1/dlq/groups", params={"queue": queue_name})).json()["items"]
    assert (groups[0]["count"], groups[0]["error_type"]) == (3, "Timeout")
    top = groups[0]
    assert top["fingerprint"] == prints[0] and top["sample_message"] == same[-1]
    assert top["queues"] == [queue_name] and top["types"] == ["t"]
    assert top["first_seen"] <= top["last_seen"]
    assert sorted(g["count"] for g in groups) == [1, 1, 3]

    listed = (await http.get("/v1/dlq", params={"fingerprint": prints[0]})).json()["items"]
    assert {j["id"] for j in listed} == {j["id"] for j in jobs}
    dry = await http.post("/v1/dlq/replay", json={"fingerprint": prints[0], "dry_run": True})
    assert dry.json()["count"] == 3
    replayed = await http.post("/v1/dlq/replay", json={"fingerprint": prints[0]})
    assert replayed.json() == {"count": 3}
    assert [g["count"] for g in (await http.get("/v1/dlq/groups", params={"queue": queue_name})).json()["items"]] == [
        1,
        1,
    ]


async def test_dry_runs_change_nothing_and_unfiltered_bulk_needs_all(http: httpx.AsyncClient, queue_name: str) -> None:
    jobs = [await dead(http, queue_name, f"boom {n}") for n in range(3)]
    before = [await http.get(f"/v1/jobs/{j['id']}") for j in jobs]
    for route in ("/v1/dlq/replay", "/v1/dlq/purge", "/v1/dlq/redrives"):
        response = await http.post(route, json={"queue": queue_name, "dry_run": True})
        assert response.status_code == 200 and response.json()["count"] == 3, (route, response.text)
    after = [await http.get(f"/v1/jobs/{j['id']}") for j in jobs]
    assert [r.json() for r in after] == [r.json() for r in before]

    for route in ("/v1/dlq/replay", "/v1/dlq/purge", "/v1/dlq/redrives"):
        refused = await http.post(route, json={})
        assert refused.status_code == 422 and refused.json()["code"] == "filter_required", route
        assert refused.headers["content-type"].startswith("application/problem+json")
    counted = await http.post("/v1/dlq/purge", json={"all": True, "dry_run": True})
    assert counted.status_code == 200 and counted.json()["count"] >= 3
    assert [(await http.get(f"/v1/jobs/{j['id']}")).json()["state"] for j in jobs] == ["dead"] * 3


async def test_error_filter_matches_messages_and_types_not_keys(http: httpx.AsyncClient, queue_name: str) -> None:
    job = await dead(http, queue_name, "mail server refused", type="SMTPError")
    for needle, hit in [("refused", True), ("smtperror", True), ("worker_id", False), ("message", False), ("_", False)]:
        items = (await http.get("/v1/dlq", params={"queue": queue_name, "error": needle})).json()["items"]
        assert ([j["id"] for j in items] == [job["id"]]) is hit, needle
        count = (await http.post("/v1/dlq/replay", json={"queue": queue_name, "error": needle, "dry_run": True})).json()
        assert count["count"] == (1 if hit else 0), needle


async def test_payload_contains_filters_jobs_and_the_dlq(http: httpx.AsyncClient, queue_name: str) -> None:
    a = await dead(http, queue_name, "x", payload={"customer": {"id": 7, "tier": "gold"}, "sku": "A1"})
    await dead(http, queue_name, "x", payload={"customer": {"id": 8}, "sku": "A1"})
    live = await enqueue(http, queue_name, payload={"customer": {"id": 7}})
    wanted = orjson.dumps({"customer": {"id": 7}}).decode()
    dlq = (await http.get("/v1/dlq", params={"queue": queue_name, "payload_contains": wanted})).json()["items"]
    assert [j["id"] for j in dlq] == [a["id"]]
    jobs = (await http.get("/v1/jobs", params={"queue": queue_name, "payload_contains": wanted})).json()["items"]
    assert [j["id"] for j in jobs] == [live["id"], a["id"]]
    body = {"queue": queue_name, "payload_contains": {"sku": "A1"}, "dry_run": True}
    assert (await http.post("/v1/dlq/purge", json=body)).json()["count"] == 2
    other = f"{queue_name}-p"
    priced = await dead(http, other, "x", payload={"price": 1.5, "big": 123456789012345678901234567890})
    exact = {"queue": other, "payload_contains": {"price": 1.5, "big": 123456789012345678901234567890}}
    assert (await http.post("/v1/dlq/replay", json={**exact, "dry_run": True})).json()["count"] == 1
    listed = (await http.get("/v1/dlq", params={"queue": other, "payload_contains": '{"price": 1.5}'})).json()
    assert [j["id"] for j in listed["items"]] == [priced["id"]]
    for bad in ("[1]", "not json", "3"):
        response = await http.get("/v1/dlq", params={"payload_contains": bad})
        assert response.status_code == 422 and response.json()["code"] == "validation_error", bad


async def test_redrive_into_another_queue_with_a_payload_patch(http: httpx.AsyncClient, queue_name: str) -> None:
    jobs = [await dead(http, queue_name, "bad host", payload={"host": "mx1", "debug": True, "n": n}) for n in range(5)]
    target = f"{queue_name}-fixed"
    response = await http.post(
        "/v1/dlq/redrives",
        json={"queue": queue_name, "target_queue": target, "payload_patch": {"host": "mx2", "debug": None}},
    )
    assert response.status_code == 202, response.text
    redrive = response.json()
    assert redrive["state"] in ("running", "done") and redrive["total"] == 5

    async def finished() -> bool:
        return (await http.get(f"/v1/dlq/redrives/{redrive['id']}")).json()["state"] == "done"

    await eventually(finished, within_s=15)
    final = (await http.get(f"/v1/dlq/redrives/{redrive['id']}")).json()
    assert (final["done"], final["replayed"]) == (5, 5)
    for n, job in enumerate(jobs):
        now = (await http.get(f"/v1/jobs/{job['id']}")).json()
        assert now["queue"] == target and now["state"] == "pending" and now["replays"] == 1
        assert now["payload"] == {"host": "mx2", "n": n}
    # Each batch counts its replays, by the queue they went to.
    scraped = (await http.get("/metrics")).text
    assert f'jobbroker_jobs_replayed_total{{queue="{target}"}} 5.0' in scraped
    cancel = await http.post(f"/v1/dlq/redrives/{redrive['id']}/cancel")
    assert cancel.status_code == 200 and cancel.json()["state"] == "done"
    assert (await http.get("/v1/dlq/redrives/99999999")).json()["code"] == "redrive_not_found"


async def test_a_cancelled_redrive_leaves_the_rest_dead(http: httpx.AsyncClient, queue_name: str) -> None:
    for n in range(6):
        await dead(http, queue_name, f"e{n}")
    response = await http.post("/v1/dlq/redrives", json={"queue": queue_name, "rate_per_second": 1})
    redrive = response.json()
    cancelled = (await http.post(f"/v1/dlq/redrives/{redrive['id']}/cancel")).json()
    assert cancelled["state"] == "cancelled"
    await asyncio.sleep(1.5)
    final = (await http.get(f"/v1/dlq/redrives/{redrive['id']}")).json()
    assert final["done"] == cancelled["done"] < 6
    dead_left = (await http.post("/v1/dlq/replay", json={"queue": queue_name, "dry_run": True})).json()["count"]
    assert dead_left == 6 - final["replayed"]


async def test_metrics_count_dlq_groups_and_the_largest(http: httpx.AsyncClient, queue_name: str) -> None:
    for message in ("a 1", "a 2", "a 3", "b"):
        await dead(http, queue_name, message)

    async def exported() -> bool:
        text = (await http.get("/metrics")).text
        return (
            f'jobbroker_dlq_groups{{queue="{queue_name}"}} 2.0' in text
            and f'jobbroker_dlq_largest_group_jobs{{queue="{queue_name}"}} 3.0' in text
        )

    await eventually(exported, within_s=15, every_s=0.5)


async def test_an_attempt_cancelled_while_running_ends_cancelled(http: httpx.AsyncClient, queue_name: str) -> None:
    job = await enqueue(http, queue_name)
    held = await lease(http, queue_name)
    await http.post(f"/v1/jobs/{job['id']}/cancel")
    await http.post(f"/v1/jobs/{job['id']}/release", json={"lease_id": held["lease_id"]})
    [attempt] = (await http.get(f"/v1/jobs/{job['id']}/attempts")).json()["items"]
    assert (attempt["attempt"], attempt["outcome"]) == (1, "cancelled")


async def test_an_attempt_past_its_maximum_runtime_ends_max_runtime_exceeded(
    http: httpx.AsyncClient, queue_name: str
) -> None:
    job = await enqueue(http, queue_name, max_runtime_seconds=1, max_attempts=1)
    held = await lease(http, queue_name, visibility_timeout_seconds=30)

    async def ended() -> bool:
        await http.post(f"/v1/jobs/{job['id']}/heartbeat", json={"lease_id": held["lease_id"]})
        return (await http.get(f"/v1/jobs/{job['id']}")).json()["state"] == "dead"

    await eventually(ended, within_s=15, every_s=0.3)
    [attempt] = (await http.get(f"/v1/jobs/{job['id']}/attempts")).json()["items"]
    assert attempt["outcome"] == "max_runtime_exceeded" and attempt["heartbeats"] >= 1
    assert attempt["error"]["type"] == "max_runtime_exceeded"
