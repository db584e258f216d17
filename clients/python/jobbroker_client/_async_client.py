"""The asyncio client: the same operations as `Client`, awaitable."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx

from . import _ops as ops
from ._base import DEFAULT_RETRIES, DEFAULT_TIMEOUT, BaseClient, default_worker_id
from ._exceptions import error_from_response
from ._models import (
    AckItem,
    Attempt,
    AuditEvent,
    Backoff,
    BatchItemResult,
    DeadGroup,
    EnqueuedJob,
    ErrorInfo,
    Heartbeat,
    Job,
    JobSpec,
    JobState,
    LeasedJob,
    NackItem,
    Page,
    QueueStats,
)
from ._ops import UNSET
from ._redrive import AsyncRedrive

T = TypeVar("T")


class AsyncClient(BaseClient):
    """An asyncio jobbroker client. Use it as an async context manager, or await `aclose()`.

    `api_key` defaults to $JOBBROKER_API_KEY and `base_url` to $JOBBROKER_URL.
    Safe calls (reads, ack/nack/heartbeat, enqueue with an idempotency key) are resent up to
    `retries` times when the connection fails or the broker answers 502/503/504.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout=timeout, retries=retries, headers=headers)
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=self.headers, transport=transport)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _run(self, call: ops.Call[T]) -> T:
        attempt = 0
        while True:
            try:
                response = await self._http.request(**self._request_args(call))
            except httpx.TransportError as exc:
                delay = self._retry_delay(call, attempt, exc)
                if delay is None:
                    raise self._transport_error(call, exc) from exc
            else:
                delay = self._retry_delay(call, attempt, response)
                if delay is None:
                    return self._parse(call, response)
            attempt += 1
            await asyncio.sleep(delay)

    # producers

    async def enqueue(
        self,
        queue: str,
        type: str,
        payload: Any = UNSET,
        *,
        priority: int | None = None,
        delay_seconds: float | None = None,
        run_at: datetime | None = None,
        max_attempts: int | None = None,
        backoff: Backoff | Mapping[str, Any] | None = None,
        timeout_seconds: float | None = None,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
        tags: Sequence[str] | None = None,
        flow_key: str | None = None,
        heartbeat_timeout_seconds: int | None = None,
        max_runtime_seconds: int | None = None,
    ) -> EnqueuedJob:
        """Add one job; with an `idempotency_key` already used in this queue, get the existing job."""
        spec = JobSpec(
            type=type,
            payload={} if payload is UNSET else payload,
            priority=priority,
            delay_seconds=delay_seconds,
            run_at=run_at,
            max_attempts=max_attempts,
            backoff=ops.backoff_body(backoff),
            timeout_seconds=timeout_seconds,
            idempotency_key=idempotency_key,
            correlation_id=correlation_id,
            tags=list(tags) if tags is not None else None,
            flow_key=flow_key,
            heartbeat_timeout_seconds=heartbeat_timeout_seconds,
            max_runtime_seconds=max_runtime_seconds,
        )
        return await self._run(ops.enqueue(queue, spec))

    async def enqueue_many(self, queue: str, jobs: Iterable[JobSpec | Mapping[str, Any]]) -> list[EnqueuedJob]:
        """Add up to 1000 jobs in one transaction (all or none); answers in input order."""
        return await self._run(ops.enqueue_many(queue, jobs))

    # jobs

    async def get_job(self, job_id: str) -> Job:
        return await self._run(ops.get_job(job_id))

    async def list_jobs(
        self,
        *,
        queue: str | None = None,
        state: JobState | str | None = None,
        type: str | None = None,
        correlation_id: str | None = None,
        tag: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Job]:
        return await self._run(
            ops.list_jobs(
                queue=queue,
                state=state,
                type=type,
                correlation_id=correlation_id,
                tag=tag,
                limit=limit,
                cursor=cursor,
            )
        )

    def iter_jobs(self, **filters: Any) -> AsyncIterator[Job]:
        """Every job matching the `list_jobs` filters, following cursors page by page."""
        return self._iterate(self.list_jobs, filters)

    async def cancel(self, job_id: str) -> Job:
        """Cancel a waiting job; an active one only gets `cancel_requested` (its worker decides)."""
        return await self._run(ops.cancel(job_id))

    async def replay(self, job_id: str) -> Job:
        """Send a dead or cancelled job back to pending with its attempts reset."""
        return await self._run(ops.replay(job_id))

    # dead-letter queue

    async def list_dlq(
        self,
        *,
        queue: str | None = None,
        type: str | None = None,
        error: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        fingerprint: str | None = None,
        payload_contains: Mapping[str, Any] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Job]:
        filters = {"queue": queue, "type": type, "error": error, "since": since, "until": until}
        return await self._run(
            ops.list_dlq(
                **filters, fingerprint=fingerprint, payload_contains=payload_contains, limit=limit, cursor=cursor
            )
        )

    def iter_dlq(self, **filters: Any) -> AsyncIterator[Job]:
        return self._iterate(self.list_dlq, filters)

    async def replay_dlq(
        self,
        ids: Sequence[str] | None = None,
        *,
        queue: str | None = None,
        type: str | None = None,
        error: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        fingerprint: str | None = None,
        payload_contains: Mapping[str, Any] | None = None,
        limit: int | None = None,
        dry_run: bool = False,
        all: bool = False,
    ) -> int:
        """Replay dead jobs chosen by ids or by filter; answers how many were replayed
        (with `dry_run=True`: would be, changing nothing). With no ids and no filter the broker
        refuses (`ValidationError`, code `filter_required`) unless `all=True`."""
        filters = {"queue": queue, "type": type, "error": error, "since": since, "until": until}
        return await self._run(
            ops.replay_dlq(
                ids,
                **filters,
                fingerprint=fingerprint,
                payload_contains=payload_contains,
                limit=limit,
                dry_run=dry_run,
                all=all,
            )
        )

    async def purge_dlq(
        self,
        ids: Sequence[str] | None = None,
        *,
        queue: str | None = None,
        type: str | None = None,
        error: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        fingerprint: str | None = None,
        payload_contains: Mapping[str, Any] | None = None,
        limit: int | None = None,
        dry_run: bool = False,
        all: bool = False,
    ) -> int:
        """Delete dead jobs chosen by ids or by filter; answers how many were deleted
        (with `dry_run=True`: would be, changing nothing). With no ids and no filter the broker
        refuses (`ValidationError`, code `filter_required`) unless `all=True`."""
        filters = {"queue": queue, "type": type, "error": error, "since": since, "until": until}
        return await self._run(
            ops.purge_dlq(
                ids,
                **filters,
                fingerprint=fingerprint,
                payload_contains=payload_contains,
                limit=limit,
                dry_run=dry_run,
                all=all,
            )
        )

    # failure forensics

    async def attempts(self, job_id: str) -> list[Attempt]:
        """Every attempt of a job, oldest first, with its outcome; the running one last."""
        return await self._run(ops.attempts(job_id))

    async def dlq_groups(
        self,
        *,
        queue: str | None = None,
        type: str | None = None,
        error: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        fingerprint: str | None = None,
        payload_contains: Mapping[str, Any] | None = None,
        limit: int | None = None,
    ) -> list[DeadGroup]:
        """Dead jobs grouped by the fingerprint of their last failure, largest group first."""
        filters = {"queue": queue, "type": type, "error": error, "since": since, "until": until}
        return await self._run(
            ops.dlq_groups(**filters, fingerprint=fingerprint, payload_contains=payload_contains, limit=limit)
        )

    async def redrive(
        self,
        ids: Sequence[str] | None = None,
        *,
        queue: str | None = None,
        type: str | None = None,
        error: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        fingerprint: str | None = None,
        payload_contains: Mapping[str, Any] | None = None,
        target_queue: str | None = None,
        payload_patch: Any = None,
        rate_per_second: float | None = None,
        limit: int | None = None,
        all: bool = False,
    ) -> AsyncRedrive:
        """Start replaying the chosen dead jobs in the background; the handle follows its progress."""
        filters = {"queue": queue, "type": type, "error": error, "since": since, "until": until}
        options = {"target_queue": target_queue, "payload_patch": payload_patch, "rate_per_second": rate_per_second}
        call = ops.create_redrive(
            ids, **filters, fingerprint=fingerprint, payload_contains=payload_contains, limit=limit, all=all, **options
        )
        return AsyncRedrive(self, await self._run(call))

    async def get_redrive(self, redrive_id: str) -> AsyncRedrive:
        return AsyncRedrive(self, await self._run(ops.get_redrive(redrive_id)))

    async def audit(
        self,
        *,
        action: str | None = None,
        actor: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[AuditEvent]:
        """Admin actions newest first (follow `next_cursor`, or use `iter_audit`)."""
        return await self._run(
            ops.audit(action=action, actor=actor, since=since, until=until, limit=limit, cursor=cursor)
        )

    def iter_audit(self, **filters: Any) -> AsyncIterator[AuditEvent]:
        return self._iterate(self.audit, filters)

    async def export_dlq(self, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """Every dead job matching the filters (as `list_dlq` takes them), one dict at a time, streamed."""
        async with self._http.stream("GET", ops.EXPORT_PATH, params=ops.dlq_params(filters), timeout=None) as response:
            if response.status_code >= 400:
                await response.aread()
                raise error_from_response(response)
            async for line in response.aiter_lines():
                if line:
                    yield json.loads(line)

    # queues

    async def list_queues(self) -> list[QueueStats]:
        return await self._run(ops.list_queues())

    async def get_queue(self, queue: str) -> QueueStats:
        return await self._run(ops.get_queue(queue))

    async def update_queue(
        self,
        queue: str,
        *,
        paused: bool = UNSET,
        max_concurrency: int | None = UNSET,
        rate_limit: Any = UNSET,
        default_max_attempts: int | None = UNSET,
        default_backoff: Backoff | Mapping[str, Any] | None = UNSET,
        retention_seconds: float | None = UNSET,
        dead_retention_seconds: float | None = UNSET,
        **more: Any,
    ) -> QueueStats:
        """Change only the settings passed (None clears one where the broker allows it)."""
        return await self._run(
            ops.update_queue(
                queue,
                paused=paused,
                max_concurrency=max_concurrency,
                rate_limit=rate_limit,
                default_max_attempts=default_max_attempts,
                default_backoff=default_backoff,
                retention_seconds=retention_seconds,
                dead_retention_seconds=dead_retention_seconds,
                **more,
            )
        )

    # low-level worker calls

    async def lease(
        self,
        queue: str,
        *,
        worker_id: str | None = None,
        max_jobs: int = 1,
        visibility_timeout_seconds: float | None = None,
        wait_seconds: float = 0,
        types: Sequence[str] | None = None,
    ) -> list[LeasedJob]:
        """Lease up to `max_jobs` ready jobs, waiting up to `wait_seconds` (≤ 30) for the first."""
        return await self._run(
            ops.lease(
                queue,
                worker_id=worker_id or default_worker_id(),
                max_jobs=max_jobs,
                visibility_timeout_seconds=visibility_timeout_seconds,
                wait_seconds=wait_seconds,
                types=types,
            )
        )

    async def heartbeat(
        self,
        job_id: str,
        lease_id: str,
        *,
        progress: Any = None,
        visibility_timeout_seconds: float | None = None,
    ) -> Heartbeat:
        return await self._run(
            ops.heartbeat(job_id, lease_id, progress=progress, visibility_timeout_seconds=visibility_timeout_seconds)
        )

    async def ack(self, job_id: str, lease_id: str, result: Any = None) -> Job:
        return await self._run(ops.ack(job_id, lease_id, result))

    async def nack(
        self,
        job_id: str,
        lease_id: str,
        error: ErrorInfo | Mapping[str, Any] | str | BaseException,
        *,
        retryable: bool = True,
        retry_in_seconds: float | None = None,
        pause_key: bool = False,
    ) -> Job:
        return await self._run(
            ops.nack(
                job_id, lease_id, error, retryable=retryable, retry_in_seconds=retry_in_seconds, pause_key=pause_key
            )
        )

    async def release(self, job_id: str, lease_id: str, *, delay_seconds: float | None = None) -> Job:
        """Give a leased job back unrun; its attempt is returned."""
        return await self._run(ops.release(job_id, lease_id, delay_seconds=delay_seconds))

    async def ack_many(self, items: Iterable[AckItem | Mapping[str, Any]]) -> list[BatchItemResult]:
        return await self._run(ops.ack_many(items))

    async def nack_many(self, items: Iterable[NackItem | Mapping[str, Any]]) -> list[BatchItemResult]:
        return await self._run(ops.nack_many(items))

    # health

    async def health(self) -> Any:
        return await self._run(ops.health())

    async def ready(self) -> Any:
        return await self._run(ops.ready())

    async def _iterate(self, list_page: Any, filters: dict[str, Any]) -> AsyncIterator[Any]:
        cursor = filters.pop("cursor", None)
        while True:
            page = await list_page(**filters, cursor=cursor)
            for item in page.items:
                yield item
            if not page.next_cursor:
                return
            cursor = page.next_cursor
