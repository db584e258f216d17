"""An in-memory stand-in for the lease/heartbeat/ack/nack half of the API, as an httpx transport.

Only for unit tests of the Worker's own logic; the end-to-end tests run against the real broker.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx


class FakeBroker:
    def __init__(self, queue: str = "q") -> None:
        self.queue = queue
        self.jobs: dict[str, dict[str, Any]] = {}
        self.lease_sizes: list[int] = []
        self.heartbeats: list[dict[str, Any]] = []
        self.acks: list[dict[str, Any]] = []
        self.nacks: list[dict[str, Any]] = []
        self.releases: list[dict[str, Any]] = []
        self.lease_status = 200
        self.transport = httpx.MockTransport(self.handle)

    def add(self, type: str, payload: Any = None, max_attempts: int = 3, **fields: Any) -> str:
        job_id = str(len(self.jobs) + 1)
        now = datetime.now(UTC).isoformat()
        self.jobs[job_id] = {
            "id": job_id,
            "queue": self.queue,
            "type": type,
            "payload": payload or {},
            "state": "pending",
            "attempts": 0,
            "max_attempts": max_attempts,
            "created_at": now,
            "run_at": now,
            "cancel_requested": False,
            "lease_id": None,
            **fields,
        }
        return job_id

    def state(self, job_id: str) -> str:
        return self.jobs[job_id]["state"]

    async def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        path = request.url.path
        if path.endswith("/leases"):
            return await self._lease(body)
        if path == "/v1/acks":
            return self._settle(body["items"], self._ack_one)
        if path == "/v1/nacks":
            return self._settle(body["items"], self._nack_one)
        if path.endswith("/heartbeat"):
            return self._heartbeat(path.split("/")[3], body)
        if path.endswith("/release"):
            return self._release(path.split("/")[3], body)
        return httpx.Response(404, json={"code": "not_found", "status": 404, "detail": path})

    async def _lease(self, body: dict[str, Any]) -> httpx.Response:
        if self.lease_status != 200:
            return httpx.Response(self.lease_status, json={"code": "unauthorized", "detail": "no"})
        self.lease_sizes.append(body["max_jobs"])
        deadline = asyncio.get_running_loop().time() + body.get("wait_seconds", 0)
        while True:
            ready = [j for j in self.jobs.values() if j["state"] in ("pending", "retrying")]
            ready = [j for j in ready if not body.get("types") or j["type"] in body["types"]]
            if ready or asyncio.get_running_loop().time() >= deadline:
                break
            await asyncio.sleep(0.005)
        leased = []
        for job in ready[: body["max_jobs"]]:
            job.update(state="active", lease_id=uuid.uuid4().hex, worker_id=body["worker_id"])
            job["attempts"] += 1
            leased.append({**job, "attempt": job["attempts"]})
        return httpx.Response(200, json={"jobs": leased})

    def _heartbeat(self, job_id: str, body: dict[str, Any]) -> httpx.Response:
        job = self.jobs[job_id]
        self.heartbeats.append({"id": job_id, **body})
        if job["state"] != "active" or job["lease_id"] != body["lease_id"]:
            return httpx.Response(409, json={"code": "lease_lost", "status": 409, "detail": "stale"})
        return httpx.Response(200, json={"id": job_id, "cancel_requested": job["cancel_requested"]})

    def _release(self, job_id: str, body: dict[str, Any]) -> httpx.Response:
        job = self.jobs[job_id]
        self.releases.append({"id": job_id, **body})
        if job["state"] != "active" or job["lease_id"] != body["lease_id"]:
            return httpx.Response(409, json={"code": "lease_lost", "status": 409, "detail": "stale"})
        job.update(state="pending", attempts=job["attempts"] - 1)
        return httpx.Response(200, json={**job})

    def _settle(self, items: list[dict[str, Any]], one: Any) -> httpx.Response:
        results = []
        for item in items:
            job = self.jobs[item["id"]]
            ok = job["state"] == "active" and job["lease_id"] == item["lease_id"]
            if ok:
                one(job, item)
            results.append({"id": item["id"], "ok": ok, **({} if ok else {"code": "lease_lost"})})
        return httpx.Response(200, json={"results": results})

    def _ack_one(self, job: dict[str, Any], item: dict[str, Any]) -> None:
        self.acks.append(item)
        job.update(state="succeeded", result=item.get("result"), lease_id=None)

    def _nack_one(self, job: dict[str, Any], item: dict[str, Any]) -> None:
        self.nacks.append(item)
        retry = item.get("retryable", True) and job["attempts"] < job["max_attempts"]
        job.update(state="retrying" if retry else "dead", lease_id=None)
