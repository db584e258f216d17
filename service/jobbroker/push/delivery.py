"""One delivery: sign a leased job, POST it, and turn the answer into an ack or a nack.

The `webhook-id` is `job_<job id>`: the same on every attempt and after a replay from the DLQ, as the
Standard Webhooks spec asks of a resent message, so a receiver can deduplicate on it. The body's
`attempt` tells attempts apart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from jobbroker import telemetry
from jobbroker.core import jsontext
from jobbroker.core.push import PushTarget
from jobbroker.push import signing
from jobbroker.push.ssrf import AddressRefused

# Statuses whose Retry-After header sets the next attempt's time.
RETRY_AFTER_STATUSES = (429, 503)


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    max_result_bytes: int
    error_body_chars: int
    max_retry_after_s: float


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """An ack (error is None) with the result to store, or a nack's error and retry time.

    `status` is the answer's HTTP status, or the failure's kind (`timeout`, `connection_error`, ...)
    when there was none; `seconds` the time from sending to the answer.
    """

    status: int | str
    result: Any = None
    error: dict[str, Any] | None = None
    retry_in_s: float | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def webhook_id(job: dict[str, Any]) -> str:
    return f"job_{job['id']}"


def body(job: dict[str, Any]) -> bytes:
    """The JSON a subscriber receives."""
    return orjson.dumps(
        {
            "id": job["id"],
            "queue": job["queue"],
            "type": job["type"],
            "payload": job["payload"],
            "attempt": job["attempt"],
            "max_attempts": job["max_attempts"],
            "correlation_id": job["correlation_id"],
            "flow_key": job["flow_key"],
            "created_at": job["created_at"],
        },
        option=orjson.OPT_UTC_Z,
    )


def request_headers(target: PushTarget, job: dict[str, Any], content: bytes, now: float) -> dict[str, str]:
    headers = signing.headers(target.signing_secrets, webhook_id(job), int(now), content)
    headers["content-type"] = "application/json"
    if job["correlation_id"]:
        headers["x-correlation-id"] = job["correlation_id"]
    # The producer's trace goes on to the subscriber (with tracing on, the delivery span's context
    # replaces it, in the same trace).
    if job.get("trace_context"):
        headers.update(job["trace_context"])
    return headers


async def send(client: httpx.AsyncClient, target: PushTarget, job: dict[str, Any], limits: Limits) -> Outcome:
    """POST the job within the subscription's timeout (connecting, sending and reading, all told)."""
    content = body(job)
    headers = request_headers(target, job, content, time.time())
    started = time.monotonic()
    with telemetry.delivery_span(job):
        outcome = await _post(client, target, content, headers, limits)
    return dataclasses.replace(outcome, seconds=time.monotonic() - started)


async def _post(
    client: httpx.AsyncClient, target: PushTarget, content: bytes, headers: dict[str, str], limits: Limits
) -> Outcome:
    try:
        async with asyncio.timeout(target.timeout_s):
            async with client.stream("POST", target.url, content=content, headers=headers) as response:
                answer = await _read(response, limits.max_result_bytes)
    except (TimeoutError, httpx.TimeoutException):
        return _failure("timeout", f"no answer from the subscriber within {target.timeout_s}s")
    except httpx.ConnectError as exc:
        if isinstance(exc.__cause__, AddressRefused):
            return _failure("url_not_allowed", str(exc.__cause__))
        return _failure("connection_error", f"cannot connect to the subscriber: {exc or type(exc).__name__}")
    except httpx.TransportError as exc:
        return _failure("connection_error", f"{type(exc).__name__}: {exc}")
    return outcome(response, answer, limits)


async def _read(response: httpx.Response, limit: int) -> bytes:
    """At most limit + 1 bytes of the answer: enough to tell whether it fits."""
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(chunks)[: limit + 1]


def outcome(response: httpx.Response, answer: bytes, limits: Limits) -> Outcome:
    status = response.status_code
    if 200 <= status < 300:
        return Outcome(status, result=_json_result(response, answer, limits.max_result_bytes))
    snippet = answer[: limits.error_body_chars * 4].decode("utf-8", "replace")[: limits.error_body_chars]
    retry_in = None
    if status in RETRY_AFTER_STATUSES:
        retry_in = retry_after_s(response.headers.get("retry-after"), datetime.now(UTC))
        if retry_in is not None:
            retry_in = min(retry_in, limits.max_retry_after_s)
    message = f"HTTP {status} {response.reason_phrase}".rstrip() + (f": {snippet}" if snippet else "")
    details: dict[str, Any] = {"status": status, "body": snippet}
    if retry_in is not None:
        details["retry_after_seconds"] = retry_in
    return _failure(f"http_{status}", message, retry_in, details, status)


def _json_result(response: httpx.Response, answer: bytes, limit: int) -> Any:
    """A small JSON answer is the job's result (as a pulled job's handler return value); else none."""
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if not answer or len(answer) > limit or not (media_type == "application/json" or media_type.endswith("+json")):
        return None
    try:
        return jsontext.loads(answer)  # exact: a big integer stays that integer
    except ValueError:  # not JSON, or a value JSON or Postgres cannot hold (NaN, U+0000, ...)
        return None


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """Seconds until a Retry-After (delay-seconds or HTTP-date) comes; None when absent or malformed."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _failure(
    kind: str,
    message: str,
    retry_in_s: float | None = None,
    details: dict[str, Any] | None = None,
    status: int | None = None,
) -> Outcome:
    error: dict[str, Any] = {"type": kind, "message": message}
    if details:
        error["details"] = details
    return Outcome(kind if status is None else status, error=error, retry_in_s=retry_in_s)
