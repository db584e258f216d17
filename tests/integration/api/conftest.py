"""Small steps of the worker protocol, shared by the API tests."""

from __future__ import annotations

from typing import Any

import httpx
import pytest


class Api:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.c = client

    async def enqueue(self, queue: str = "q", type: str = "t", **body: Any) -> dict[str, Any]:
        response = await self.c.post(f"/v1/queues/{queue}/jobs", json={"type": type, **body})
        assert response.status_code in (200, 201), response.text
        return response.json()

    async def lease(self, queue: str = "q", max_jobs: int = 1, **body: Any) -> list[dict[str, Any]]:
        response = await self.c.post(
            f"/v1/queues/{queue}/leases", json={"worker_id": "w1", "max_jobs": max_jobs, **body}
        )
        assert response.status_code == 200, response.text
        return response.json()["jobs"]

    async def lease_one(self, queue: str = "q", **body: Any) -> dict[str, Any]:
        [job] = await self.lease(queue, **body)
        return job

    async def ack(self, job: dict[str, Any], **body: Any) -> httpx.Response:
        return await self.c.post(f"/v1/jobs/{job['id']}/ack", json={"lease_id": job["lease_id"], **body})

    async def nack(self, job: dict[str, Any], message: str = "boom", **body: Any) -> httpx.Response:
        return await self.c.post(
            f"/v1/jobs/{job['id']}/nack", json={"lease_id": job["lease_id"], "error": {"message": message}, **body}
        )

    async def get(self, job_id: str) -> dict[str, Any]:
        response = await self.c.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()

    async def dead_job(self, queue: str = "q", message: str = "fatal", **enqueue: Any) -> dict[str, Any]:
        await self.enqueue(queue, **enqueue)
        job = await self.lease_one(queue)
        response = await self.nack(job, message, retryable=False)
        assert response.json()["state"] == "dead"
        return response.json()


@pytest.fixture
def api(client: httpx.AsyncClient) -> Api:
    return Api(client)
