"""GET /v1/subscriptions/{id}/health: deliveries in flight and the latest outcomes, the last
one's HTTP status and error when it failed. The subscription is paused and its deliveries are
made by hand as its worker id, so the outcomes are known."""

from __future__ import annotations

import httpx

from support import Api


async def _subscription(c: httpx.AsyncClient, queue: str) -> tuple[str, str]:
    body = {"queue": queue, "url": "http://127.0.0.1:9/hook", "paused": True}
    answer = await c.post("/v1/subscriptions", json=body)
    assert answer.status_code == 201, answer.text
    sid = answer.json()["id"]
    return sid, f"push:{sid}"


async def test_health_shows_in_flight_and_the_latest_outcomes(api: Api) -> None:
    sid, worker = await _subscription(api.c, "health-q")
    fresh = (await api.c.get(f"/v1/subscriptions/{sid}/health")).json()
    assert fresh == {"id": sid, "in_flight": 0, "last_delivery": None, "recent": {"succeeded": 0, "failed": 0}}

    for _ in range(4):
        await api.enqueue("health-q")
    delivered, refused, running = await api.lease("health-q", max_jobs=3, worker_id=worker)
    assert (await api.ack(delivered)).status_code == 200
    error = {"type": "http_503", "message": "HTTP 503 Service Unavailable", "details": {"status": 503, "body": ""}}
    answer = await api.c.post(f"/v1/jobs/{refused['id']}/nack", json={"lease_id": refused["lease_id"], "error": error})
    assert answer.json()["state"] == "retrying"
    other = await api.lease_one("health-q", worker_id="someone-else")
    await api.ack(other)

    health = (await api.c.get(f"/v1/subscriptions/{sid}/health")).json()
    assert health["in_flight"] == 1
    assert health["recent"] == {"succeeded": 1, "failed": 1}
    last = health["last_delivery"]
    assert last["outcome"] == "failed" and last["http_status"] == 503
    assert last["error"] == {"type": "http_503", "message": "HTTP 503 Service Unavailable"}

    assert (await api.ack(running)).status_code == 200
    health = (await api.c.get(f"/v1/subscriptions/{sid}/health")).json()
    assert health["in_flight"] == 0
    assert health["last_delivery"]["outcome"] == "succeeded"
    assert health["recent"] == {"succeeded": 2, "failed": 1}


async def test_health_of_an_unknown_subscription_is_404(api: Api) -> None:
    answer = await api.c.get("/v1/subscriptions/999999/health")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
