"""Helpers for unit-testing handlers without a broker.

from jobbroker_client.testing import make_job, run_job

def test_send_email():
    assert run_job(worker, "send-email", {"to": "a@example.com"}) == {"sent": True}
"""

from __future__ import annotations

import asyncio
import inspect
from datetime import UTC, datetime
from typing import Any

from ._context import JobContext
from ._models import JobState, LeasedJob
from ._worker import Worker


def make_job(
    type: str = "test",
    payload: Any = None,
    *,
    attempt: int = 1,
    max_attempts: int = 5,
    id: str = "1",
    queue: str = "test",
    worker_id: str = "test-worker",
    **fields: Any,
) -> JobContext:
    """A JobContext like the one a Worker hands its handlers, for calling a handler directly."""
    now = datetime.now(UTC)
    job = LeasedJob(
        id=id,
        queue=queue,
        type=type,
        payload={} if payload is None else payload,
        state=JobState.ACTIVE,
        attempts=attempt,
        attempt=attempt,
        max_attempts=max_attempts,
        lease_id="00000000-0000-0000-0000-000000000000",
        created_at=now,
        run_at=now,
        **fields,
    )
    return JobContext(job, worker_id)


def run_job(worker: Worker, type: str, payload: Any = None, **fields: Any) -> Any:
    """Run the handler `worker` registered for `type` on a made-up job; return what it returns.

    Exceptions (PermanentError, Retry, anything) propagate as they would reach the worker.
    Call it from synchronous tests; in async tests, `await` the handler on `make_job(...)` yourself.
    """
    handler = worker._handlers.get(type)
    if handler is None:
        raise LookupError(f"no handler registered for {type!r}")
    result = handler(make_job(type, payload, **fields))
    if inspect.isawaitable(result):
        return asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable
