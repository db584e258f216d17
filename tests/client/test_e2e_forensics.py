"""The SDK's forensics calls, Client and AsyncClient, against a real `jobbroker serve` process."""

from __future__ import annotations

import inspect
import uuid
from typing import Any

import pytest

import jobbroker_client as jb

from .either import Either


@pytest.fixture(params=["sync", "async"])
async def api(request: pytest.FixtureRequest, broker_url: str):
    if request.param == "sync":
        with jb.Client(broker_url) as client:
            yield Either(client)
    else:
        async with jb.AsyncClient(broker_url) as client:
            yield Either(client)


@pytest.fixture
def queue() -> str:
    return f"q-{uuid.uuid4().hex[:10]}"


async def _maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def _dead(api: Either, queue: str, message: str, payload: Any = None) -> jb.Job:
    await api.enqueue(queue, "t", payload or {}, max_attempts=1)
    [job] = await api.lease(queue, worker_id="w")
    return await api.nack(job.id, job.lease_id, {"type": "Timeout", "message": message}, retryable=False)


async def test_attempts_groups_dry_runs_and_export(api: Either, queue: str) -> None:
    first = await _dead(api, queue, "timeout after 31 ms", {"tenant": 1})
    await _dead(api, queue, "timeout after 2000 ms", {"tenant": 2})
    await _dead(api, queue, "refused")

    [attempt] = await api.attempts(first.id)
    assert isinstance(attempt, jb.Attempt) and attempt.outcome == "failed" and attempt.worker_id == "w"
    assert attempt.error == jb.ErrorInfo(type="Timeout", message="timeout after 31 ms")

    groups = await api.dlq_groups(queue=queue)
    assert [(g.count, g.error_type) for g in groups] == [(2, "Timeout"), (1, "Timeout")]
    assert isinstance(groups[0], jb.DeadGroup) and groups[0].fingerprint == first.last_fingerprint

    assert await api.replay_dlq(queue=queue, fingerprint=groups[0].fingerprint, dry_run=True) == 2
    assert await api.purge_dlq(queue=queue, payload_contains={"tenant": 2}, dry_run=True) == 1
    assert len((await api.list_dlq(queue=queue, payload_contains={"tenant": 1})).items) == 1
    with pytest.raises(jb.ValidationError) as refused:
        await api.replay_dlq()
    assert refused.value.code == "filter_required"

    exported = await api.collect("export_dlq", queue=queue)
    assert len(exported) == 3 and all(line["state"] == "dead" and line["errors"] for line in exported)


async def test_redrive_handle_follows_progress_and_audit_lists_it(api: Either, queue: str) -> None:
    for n in range(3):
        await _dead(api, queue, f"boom {n}")
    handle = await api.redrive(queue=queue, target_queue=f"{queue}-b", payload_patch={"fixed": True})
    assert isinstance(handle, jb.Redrive | jb.AsyncRedrive) and handle.total == 3
    status = await _maybe(handle.wait(timeout=20, poll_seconds=0.1))
    assert isinstance(status, jb.RedriveStatus) and (status.state, status.done, status.replayed) == ("done", 3, 3)
    again = await api.get_redrive(handle.id)
    assert again.state == "done"
    assert (await _maybe(again.cancel())).state == "done"

    events = (await api.audit(action="redrive.create", limit=100)).items
    assert handle.id in [e.target for e in events] and all(isinstance(e, jb.AuditEvent) for e in events)
    assert len(await api.collect("iter_audit", action="redrive.create", limit=1)) >= 1
