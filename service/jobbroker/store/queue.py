"""Queues: settings rows and statistics derived from the job table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from jobbroker.core.states import JobState
from jobbroker.store.db import Database
from jobbroker.store.queries import load

Q = load("queue")
SETTABLE = (
    "paused",
    "max_concurrency",
    "rate_limit",
    "default_max_attempts",
    "default_backoff",
    "retention",
    "dead_retention",
    "flow_max_concurrency_per_key",
    "flow_rate_limit_per_key",
    "flow_fairness",
    "default_visibility_timeout",
    "default_heartbeat_timeout",
    "default_max_runtime",
)
DEFAULT_FLOW = {"max_concurrency_per_key": None, "rate_limit_per_key": None, "fairness": "round_robin"}


def _settings(config: asyncpg.Record | None) -> dict[str, Any]:
    if config is None:
        return {
            "paused": False,
            "max_concurrency": None,
            "rate_limit": None,
            "default_max_attempts": None,
            "default_backoff": None,
            "retention_seconds": None,
            "dead_retention_seconds": None,
            "default_visibility_timeout_seconds": None,
            "default_heartbeat_timeout_seconds": None,
            "default_max_runtime_seconds": None,
            "flow": dict(DEFAULT_FLOW),
        }
    return {
        "paused": config["paused"],
        "max_concurrency": config["max_concurrency"],
        "rate_limit": config["rate_limit_per_s"],
        "default_max_attempts": config["default_max_attempts"],
        "default_backoff": config["default_backoff"],
        "retention_seconds": config["retention_s"],
        "dead_retention_seconds": config["dead_retention_s"],
        "default_visibility_timeout_seconds": config["default_visibility_timeout_s"],
        "default_heartbeat_timeout_seconds": config["default_heartbeat_timeout_s"],
        "default_max_runtime_seconds": config["default_max_runtime_s"],
        "flow": {
            "max_concurrency_per_key": config["flow_max_concurrency_per_key"],
            "rate_limit_per_key": rate_limit(config["flow_rate_max"], config["flow_rate_per_s"]),
            "fairness": config["flow_fairness"],
        },
    }


def rate_limit(max_: int | None, per_s: float | None) -> dict[str, Any] | None:
    """A rate limit's wire shape: at most `max` leases per `per_seconds`."""
    return None if max_ is None else {"max": max_, "per_seconds": per_s}


# Above this many rows (the planner's figure) finished jobs are estimated rather than counted.
EXACT_FINISHED_ROWS = 200_000


def _empty() -> dict[str, Any]:
    return {"counts": dict.fromkeys(JobState, 0), "oldest": None}


def _shares(names: list[str], shares: list[float]) -> dict[str, float]:
    return dict(zip(names, shares, strict=True))


def _add_estimates(by_queue: dict[str, dict[str, Any]], estimate: asyncpg.Record, name: str | None) -> None:
    """Each common queue's share of the table's rows, less its exactly counted jobs, split between
    succeeded and cancelled as the whole table splits."""
    states = _shares(estimate["states"], estimate["state_shares"])
    succeeded, cancelled = states.get(JobState.SUCCEEDED, 0.0), states.get(JobState.CANCELLED, 0.0)
    if succeeded + cancelled <= 0:
        return
    for queue, share in _shares(estimate["queues"], estimate["queue_shares"]).items():
        if name is not None and queue != name:
            continue
        entry = by_queue.setdefault(queue, _empty())
        rest = max(0, round(estimate["rows"] * share) - sum(entry["counts"].values()))
        entry["counts"][JobState.SUCCEEDED] = round(rest * succeeded / (succeeded + cancelled))
        entry["counts"][JobState.CANCELLED] = rest - entry["counts"][JobState.SUCCEEDED]


class QueueStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def stats(self, name: str | None = None) -> list[dict[str, Any]]:
        """Counts by state, oldest ready age, active leases and DLQ size, for every known queue.

        Live and dead jobs are counted exactly through partial indexes. Finished ones (succeeded,
        cancelled) are counted exactly while the table is small, and estimated from the planner's
        statistics once it is big (`counts_estimated`): counting them would read most of the table."""
        async with self.db.connection() as conn:
            rows = list(await conn.fetch(Q["queue_counts_live"].sql, name))
            estimate = await conn.fetchrow(Q["queue_estimate_finished"].sql)
            big = estimate is not None and estimate["rows"] > EXACT_FINISHED_ROWS
            if not big:
                rows += await conn.fetch(Q["queue_counts_finished"].sql, name)
            configs = {r["name"]: r for r in await conn.fetch(Q["queue_configs"].sql, name)}
            now = await conn.fetchval("SELECT now()")
        by_queue: dict[str, dict[str, Any]] = {}
        for row in rows:
            entry = by_queue.setdefault(row["queue"], _empty())
            entry["counts"][row["state"]] = row["n"]
            if row.get("oldest_ready_at") is not None:
                oldest = entry["oldest"]
                entry["oldest"] = row["oldest_ready_at"] if oldest is None else min(oldest, row["oldest_ready_at"])
        if big:
            _add_estimates(by_queue, estimate, name)
        names = sorted(set(by_queue) | set(configs))
        return [self._one(q, by_queue.get(q), configs.get(q), now, big) for q in names]

    @staticmethod
    def _one(
        name: str, seen: dict[str, Any] | None, config: asyncpg.Record | None, now: datetime, estimated: bool = False
    ) -> dict[str, Any]:
        counts = seen["counts"] if seen else dict.fromkeys(JobState, 0)
        oldest = seen["oldest"] if seen else None
        return {
            "name": name,
            "counts": {str(state): n for state, n in counts.items()},
            "oldest_pending_age_seconds": max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
            "active_leases": counts[JobState.ACTIVE],
            "dlq_size": counts[JobState.DEAD],
            "counts_estimated": estimated,
            **_settings(config),
        }

    async def update(self, name: str, changes: dict[str, Any]) -> None:
        """Apply the given settings (a key absent from `changes` stays as it was)."""
        args = {
            "name": name,
            "paused": changes.get("paused"),
            "max_concurrency": changes.get("max_concurrency"),
            "rate_limit_per_s": changes.get("rate_limit"),
            "default_max_attempts": changes.get("default_max_attempts"),
            "default_backoff": changes.get("default_backoff"),
            "retention_s": changes.get("retention"),
            "dead_retention_s": changes.get("dead_retention"),
            "flow_max_concurrency_per_key": changes.get("flow_max_concurrency_per_key"),
            "flow_rate_max": (changes.get("flow_rate_limit_per_key") or {}).get("max"),
            "flow_rate_per_s": (changes.get("flow_rate_limit_per_key") or {}).get("per_seconds"),
            "flow_fairness": changes.get("flow_fairness"),
            "default_visibility_timeout_s": changes.get("default_visibility_timeout"),
            "default_heartbeat_timeout_s": changes.get("default_heartbeat_timeout"),
            "default_max_runtime_s": changes.get("default_max_runtime"),
            **{f"set_{key}": key in changes for key in SETTABLE},
        }
        async with self.db.connection() as conn:
            await conn.execute(Q["queue_upsert"].sql, *Q["queue_upsert"].args(args))

    async def throughput(self, name: str, minutes: int) -> list[dict[str, Any]]:
        """Per-minute buckets (start, succeeded, failed) of the jobs that finished in the last `minutes`."""
        query = Q["queue_throughput"]
        async with self.db.connection() as conn:
            rows = await conn.fetch(query.sql, *query.args({"name": name, "minutes": minutes}))
        return [dict(r) for r in rows]
