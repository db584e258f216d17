"""Push subscriptions: create, inspect, change, delete, rotate the signing secret."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from jobbroker.api.audit_trail import AuditDep
from jobbroker.api.auth import protected
from jobbroker.api.deps import BrokerDep, SettingsDep
from jobbroker.api.jsonbody import JsonRoute
from jobbroker.api.problems import responses
from jobbroker.api.responses import ORJSON
from jobbroker.api.routes.jobs import decode_cursor, encode_cursor
from jobbroker.api.schemas import QUEUE_PATTERN
from jobbroker.api.subscription_schemas import (
    RotateSecretRequest,
    SubscriptionCreate,
    SubscriptionHealth,
    SubscriptionOut,
    SubscriptionPage,
    SubscriptionPatch,
    SubscriptionWithSecret,
)
from jobbroker.core.push import parse_subscription_id
from jobbroker.keys import Scope
from jobbroker.push import signing
from jobbroker.push.ssrf import NetworkPolicy
from jobbroker.settings import Settings

# Health reads at most this many of the broker's latest finished jobs, and reports this many deliveries.
HEALTH_SCAN = 5000
HEALTH_RECENT = 50
router = APIRouter(route_class=JsonRoute, tags=["subscriptions"], **protected(Scope.ADMIN))


def subscription_id(id: Annotated[str, Path(description="The subscription's id.", examples=["7"])]) -> int:
    return parse_subscription_id(id)


SubscriptionIdDep = Annotated[int, Depends(subscription_id)]


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The shared problem answers, with this resource's wording."""
    declared = responses(*statuses)
    if 404 in declared:
        declared[404] = {**declared[404], "description": "No such subscription"}
    declared[422] = {**declared[422], "description": "Validation error, or a subscriber URL that is not allowed"}
    return declared


async def check_url(url: str, settings: Settings) -> None:
    await NetworkPolicy.from_settings(settings.push).check(url)


@router.post(
    "/v1/subscriptions",
    status_code=201,
    response_model=SubscriptionWithSecret,
    summary="Create a push subscription",
    responses=errors(),
)
async def create_subscription(
    body: SubscriptionCreate, broker: BrokerDep, settings: SettingsDep, audit: AuditDep
) -> Response:
    """Turn a queue into push mode: the broker POSTs each of its jobs (of the given `types`) to `url`,
    signed per the Standard Webhooks spec, at most `max_concurrency` at a time across all replicas.
    A 2xx answer acks the job; anything else, or no answer within `timeout_seconds`, is a failed
    attempt, retried with the job's backoff (`Retry-After` on 429 and 503 is honoured) and dead-lettered
    as any job. The answer shows the signing `secret`, generated when none is given: this is the only
    time it is shown. A URL outside the allowed networks answers 422 `url_not_allowed`."""
    await check_url(body.url, settings)
    subscription = await broker.subscriptions.create(body.to_core(body.secret or signing.generate_secret()))
    # Never the URL (it may carry credentials) or the secret: the queue and the fields given.
    await audit("subscription.create", str(subscription["id"]), {"queue": body.queue, "fields": fields(body)})
    return ORJSON(subscription, status_code=201)


def fields(body: Any) -> list[str]:
    return sorted(body.model_fields_set)


@router.get("/v1/subscriptions", response_model=SubscriptionPage, summary="List push subscriptions", responses=errors())
async def list_subscriptions(
    broker: BrokerDep,
    queue: Annotated[str | None, Query(pattern=QUEUE_PATTERN, description="Only this queue's.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=64, description="`next_cursor` of the previous page.")] = None,
) -> Response:
    """Subscriptions oldest first, without their secrets. Follow `next_cursor` for the next page."""
    items = await broker.subscriptions.list(queue, decode_cursor(cursor), limit + 1)
    more = len(items) > limit
    items = items[:limit]
    return ORJSON({"items": items, "next_cursor": encode_cursor(int(items[-1]["id"])) if more else None})


@router.get(
    "/v1/subscriptions/{id}", response_model=SubscriptionOut, summary="Get a push subscription", responses=errors(404)
)
async def get_subscription(sid: SubscriptionIdDep, broker: BrokerDep) -> Response:
    """One subscription's settings, without its secret."""
    return ORJSON(await broker.subscriptions.get(sid))


@router.get(
    "/v1/subscriptions/{id}/health",
    response_model=SubscriptionHealth,
    summary="Get a push subscription's delivery health",
    responses=errors(404),
)
async def get_subscription_health(sid: SubscriptionIdDep, broker: BrokerDep) -> Response:
    """Deliveries in flight, and the outcome of the latest ones (the last one's HTTP status and
    error when it failed), read from the broker's most recently finished jobs and the queue's
    retrying ones: a subscription that delivered nothing lately has `last_delivery: null`."""
    return ORJSON(await broker.subscriptions.health(sid, scan=HEALTH_SCAN, limit=HEALTH_RECENT))


@router.patch(
    "/v1/subscriptions/{id}",
    response_model=SubscriptionOut,
    summary="Change a push subscription",
    responses=errors(404),
)
async def update_subscription(
    sid: SubscriptionIdDep, body: SubscriptionPatch, broker: BrokerDep, settings: SettingsDep, audit: AuditDep
) -> Response:
    """Change the URL, type filter, concurrency, timeout, description, or pause and resume delivery.
    Only the fields given change; `types: null` delivers every type. Deliveries in flight finish under
    the old settings. The queue cannot change: create another subscription instead."""
    if body.url is not None:
        await check_url(body.url, settings)
    updated = await broker.subscriptions.update(sid, body.model_dump(include=body.model_fields_set))
    await audit("subscription.update", str(sid), {"fields": fields(body)})
    return ORJSON(updated)


@router.delete("/v1/subscriptions/{id}", status_code=204, summary="Delete a push subscription", responses=errors(404))
async def delete_subscription(sid: SubscriptionIdDep, broker: BrokerDep, audit: AuditDep) -> Response:
    """Stop pushing the queue's jobs; they wait for another subscription or a pulling worker.
    Deliveries in flight finish and are acked or nacked as usual."""
    await broker.subscriptions.delete(sid)
    await audit("subscription.delete", str(sid))
    return Response(status_code=204)


@router.post(
    "/v1/subscriptions/{id}/rotate-secret",
    response_model=SubscriptionWithSecret,
    summary="Rotate a subscription's signing secret",
    responses=errors(404),
)
async def rotate_secret(
    sid: SubscriptionIdDep,
    broker: BrokerDep,
    settings: SettingsDep,
    audit: AuditDep,
    body: RotateSecretRequest | None = None,
) -> Response:
    """Replace the signing secret (generated unless given) and show it. For `overlap_seconds` (default
    24 h) every delivery carries two signatures, by the new and by the old secret, as the Standard
    Webhooks spec allows, so receivers can switch secrets at their own pace."""
    body = body or RotateSecretRequest()
    overlap_s = body.overlap_seconds if body.overlap_seconds is not None else settings.push.secret_rotation_overlap_s
    secret = body.secret or signing.generate_secret()
    rotated = await broker.subscriptions.rotate_secret(sid, secret, overlap_s)
    await audit("subscription.rotate_secret", str(sid), {"overlap_seconds": overlap_s})
    return ORJSON(rotated)
