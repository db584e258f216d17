"""The dependency-free Node worker (clients/node) against a real broker process."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

import jobbroker_client as jb
from support import eventually

EXAMPLE = Path(__file__).resolve().parents[2] / "clients" / "node" / "example.mjs"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed on this machine (Node 18+ needed)")


def start_node(broker_url: str, queue: str, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [NODE or "node", str(EXAMPLE)],
        env={**os.environ, "JOBBROKER_URL": broker_url, "JOBBROKER_QUEUE": queue, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


async def stop(proc: subprocess.Popen[bytes]) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        output, _ = await asyncio.to_thread(proc.communicate, timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, output.decode()
    return output.decode()


async def test_node_worker_acks_nacks_heartbeats_and_releases_on_sigterm(broker_url: str):
    queue = f"q-{uuid.uuid4().hex[:10]}"
    async with jb.AsyncClient(broker_url) as client:
        echoes = await client.enqueue_many(queue, [{"type": "echo", "payload": {"n": n}} for n in range(20)])
        failing = await client.enqueue(
            queue, "fail", max_attempts=2, backoff={"initial_seconds": 0.05, "max_seconds": 0.05, "jitter": 0}
        )
        rejected = await client.enqueue(queue, "reject", {"bad": True}, max_attempts=5)
        unknown = await client.enqueue(queue, "mystery", max_attempts=5)
        # Longer than the 1s visibility timeout: only heartbeats keep it from being leased again.
        long = await client.enqueue(queue, "sleep", {"seconds": 2.5}, max_attempts=5)

        node = start_node(broker_url, queue, JOBBROKER_VISIBILITY_TIMEOUT="1", JOBBROKER_GRACE="1")
        try:

            async def settled() -> bool:
                counts = (await client.get_queue(queue)).counts
                return counts.succeeded == 21 and counts.dead == 3

            await eventually(settled, within_s=60)
            stuck = await client.enqueue(queue, "sleep", {"seconds": 600}, max_attempts=5)

            async def running() -> bool:
                return (await client.get_job(stuck.id)).state == "active"

            await eventually(running, within_s=30)
            output = await stop(node)
        finally:
            node.kill()
        assert "stopped:" in output

        for job in echoes:
            done = await client.get_job(job.id)
            assert done.result == {"echo": job.payload, "attempt": 1}
        slept = await client.get_job(long.id)
        assert (slept.state, slept.attempts, slept.errors, slept.result) == ("succeeded", 1, [], {"slept": 2.5})

        dead = await client.get_job(failing.id)
        assert dead.state == "dead" and dead.attempts == 2
        assert [e.error.message for e in dead.errors] == [f"failing on purpose (attempt {n})" for n in (1, 2)]
        assert all("example.mjs" in e.error.details["traceback"] for e in dead.errors)
        permanent = await client.get_job(rejected.id)
        assert (permanent.state, permanent.attempts, permanent.errors[0].error.type) == ("dead", 1, "PermanentError")
        no_handler = await client.get_job(unknown.id)
        assert no_handler.state == "dead" and no_handler.errors[0].error.type == "NoHandler"

        released = await client.get_job(stuck.id)
        assert released.state == "pending" and released.attempts == 0 and released.errors == []


async def test_node_worker_retry_with_pause_key_pauses_only_that_key(broker_url: str) -> None:
    queue = f"q-{uuid.uuid4().hex[:10]}"
    async with jb.AsyncClient(broker_url) as client, httpx.AsyncClient(base_url=broker_url) as http:
        throttled = await client.enqueue(queue, "throttled", {"seconds": 30}, flow_key="tenant-a")
        node = start_node(broker_url, queue)
        try:

            async def paused() -> bool:
                return (await http.get(f"/v1/queues/{queue}/keys/tenant-a")).json()["paused_until"] is not None

            await eventually(paused, within_s=30)
            held = await client.enqueue(queue, "echo", {"n": 1}, flow_key="tenant-a")
            free = await client.enqueue(queue, "echo", {"n": 2}, flow_key="tenant-b")

            async def other_key_done() -> bool:
                return (await client.get_job(free.id)).state == "succeeded"

            await eventually(other_key_done, within_s=30)
            await asyncio.sleep(0.5)
            assert (await client.get_job(held.id)).state == "pending"
            assert (await client.get_job(throttled.id)).state == "retrying"
        finally:
            await stop(node)
            node.kill()
