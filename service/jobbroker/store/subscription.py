"""Push subscriptions: one method per named query in sql/subscription.sql."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from jobbroker.core.errors import InvalidInput, SubscriptionNotFound
from jobbroker.core.push import NewSubscription, PushTarget, push_worker_id
from jobbroker.store.db import Database
from jobbroker.store.queries import load

Q = load("subscription")
Subscription = dict[str, Any]
# API field name -> column, for the settings a PATCH may change.
SETTABLE = {
    "url": "url",
    "types": "types",
    "max_concurrency": "max_concurrency",
    "timeout_seconds": "timeout_s",
    "paused": "paused",
    "description": "description",
}


def public_subscription(row: asyncpg.Record) -> Subscription:
    """The API's view of a subscription: string id, seconds for durations, never a secret."""
    return {
        "id": str(row["id"]),
        "queue": row["queue"],
        "url": row["url"],
        "types": row["types"],
        "max_concurrency": row["max_concurrency"],
        "timeout_seconds": row["timeout_s"],
        "paused": row["paused"],
        "description": row["description"],
        "secret_rotated_at": row["secret_rotated_at"],
        "previous_secret_expires_at": row["previous_secret_expires_at"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def _with_secret(row: asyncpg.Record) -> Subscription:
    return {**public_subscription(row), "secret": row["secret"]}


@asynccontextmanager
async def _refusals() -> AsyncIterator[None]:
    """A row the table's constraints refuse is a validation error naming the constraint only: the
    driver's message carries the whole row ("Failing row contains ..."), signing secrets included."""
    try:
        yield
    except asyncpg.IntegrityConstraintViolationError as exc:
        constraint = exc.constraint_name or "a constraint"
        raise InvalidInput(f"the subscription was refused by the database ({constraint})") from None


class SubscriptionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, new: NewSubscription) -> Subscription:
        """Store a subscription; the answer carries its secret (the only read that does, with rotate)."""
        q = Q["subscription_create"]
        args = {
            "queue": new.queue,
            "url": new.url,
            "types": list(new.types) if new.types is not None else None,
            "secret": new.secret,
            "max_concurrency": new.max_concurrency,
            "timeout_s": new.timeout_s,
            "paused": new.paused,
            "description": new.description,
        }
        async with self.db.connection() as conn, _refusals():
            return _with_secret(await conn.fetchrow(q.sql, *q.args(args)))

    async def get(self, subscription_id: int) -> Subscription:
        async with self.db.connection() as conn:
            row = await conn.fetchrow(Q["subscription_get"].sql, subscription_id)
        return public_subscription(_found(row, subscription_id))

    async def list(self, queue: str | None, after_id: int | None, limit: int) -> list[Subscription]:
        q = Q["subscription_list"]
        async with self.db.connection() as conn:
            rows = await conn.fetch(q.sql, *q.args({"queue": queue, "after_id": after_id, "limit": limit}))
        return [public_subscription(r) for r in rows]

    async def update(self, subscription_id: int, changes: dict[str, Any]) -> Subscription:
        """Apply the given settings (API field names); a key absent from `changes` stays as it was."""
        args: dict[str, Any] = {"id": subscription_id}
        for field, column in SETTABLE.items():
            args[column] = changes.get(field)
            args[f"set_{column}"] = field in changes
        if args["types"] is not None:
            args["types"] = list(args["types"])
        q = Q["subscription_update"]
        async with self.db.connection() as conn, _refusals():
            row = await conn.fetchrow(q.sql, *q.args(args))
        return public_subscription(_found(row, subscription_id))

    async def delete(self, subscription_id: int) -> None:
        async with self.db.connection() as conn:
            _found(await conn.fetchrow(Q["subscription_delete"].sql, subscription_id), subscription_id)

    async def rotate_secret(self, subscription_id: int, secret: str, overlap_s: int) -> Subscription:
        q = Q["subscription_rotate_secret"]
        async with self.db.connection() as conn, _refusals():
            row = await conn.fetchrow(q.sql, *q.args({"id": subscription_id, "secret": secret, "overlap_s": overlap_s}))
        return _with_secret(_found(row, subscription_id))

    async def enabled(self) -> list[tuple[int, str]]:
        """(id, queue) of every subscription that is not paused."""
        async with self.db.connection() as conn:
            return [(r["id"], r["queue"]) for r in await conn.fetch(Q["subscription_enabled"].sql)]

    @asynccontextmanager
    async def claim(self, subscription_id: int) -> AsyncIterator[PushTarget | None]:
        """Hold the subscription's row lock while the caller leases for it; None once it is gone.

        The caller's lease runs on another connection and commits before this lock is released, so
        the next claimer in any replica counts those jobs as active.
        """
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(Q["subscription_lock"].sql, subscription_id)
            if row is None:
                yield None
                return
            count = Q["subscription_active_count"]
            args = {"queue": row["queue"], "worker_id": push_worker_id(subscription_id)}
            active = await conn.fetchval(count.sql, *count.args(args))
            yield PushTarget(
                id=row["id"],
                queue=row["queue"],
                url=row["url"],
                types=tuple(row["types"]) if row["types"] is not None else None,
                max_concurrency=row["max_concurrency"],
                timeout_s=row["timeout_s"],
                paused=row["paused"],
                signing_secrets=tuple(row["signing_secrets"]),
                active=active,
            )

    async def health(self, subscription_id: int, scan: int, limit: int) -> dict[str, Any]:
        """Deliveries in flight and the latest outcomes (see subscription_recent_deliveries)."""
        subscription = await self.get(subscription_id)
        args = {"queue": subscription["queue"], "worker_id": push_worker_id(subscription_id)}
        recent_q, flight_q = Q["subscription_recent_deliveries"], Q["subscription_in_flight"]
        async with self.db.connection() as conn:
            rows = await conn.fetch(recent_q.sql, *recent_q.args({**args, "scan": scan, "limit": limit}))
            in_flight = await conn.fetchval(flight_q.sql, *flight_q.args(args))
        recent = [_delivery(r) for r in rows]
        return {
            "id": str(subscription_id),
            "in_flight": in_flight,
            "last_delivery": recent[0] if recent else None,
            "recent": {
                "succeeded": sum(d["outcome"] == "succeeded" for d in recent),
                "failed": sum(d["outcome"] == "failed" for d in recent),
            },
        }


def _found(row: asyncpg.Record | None, subscription_id: int) -> asyncpg.Record:
    if row is None:
        raise SubscriptionNotFound(f"no subscription with id {subscription_id}")
    return row


def _delivery(row: asyncpg.Record) -> dict[str, Any]:
    """One delivery's outcome: a succeeded job's last attempt succeeded; otherwise its last error."""
    if row["state"] == "succeeded":
        return {"at": row["at"], "outcome": "succeeded", "http_status": None, "error": None}
    status = row["http_status"]
    error = {"type": row["error_type"], "message": row["error_message"]}
    return {
        "at": row["at"],
        "outcome": "failed",
        "http_status": int(status) if status is not None and status.isdigit() else None,
        "error": error if row["error_type"] is not None or row["error_message"] is not None else None,
    }
