"""Job events as the broker sees them happen: each is counted in the metrics and logged, once.

The Broker calls these after the store confirmed the transition; `jobs` are the store's answers
(public jobs or rows with at least id, queue, type and, where it matters, state and times).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from jobbroker import metrics
from jobbroker.logs import job_event

Row = Mapping[str, Any]


def enqueued(jobs: list[Row]) -> None:
    metrics.enqueued(jobs)
    job_event("enqueued", jobs)


def leased(jobs: list[Row]) -> None:
    metrics.leased(jobs)
    job_event("leased", jobs)


def acked(jobs: list[Row]) -> None:
    metrics.succeeded(jobs, datetime.now(UTC))
    job_event("acked", jobs)


def nacked(jobs: list[Row], reason: str = metrics.ERROR, error_types: Iterable[str | None] | None = None) -> None:
    """Failed attempts; those now dead or cancelled are logged as such too."""
    metrics.failed(jobs, reason, datetime.now(UTC))
    types = list(error_types) if error_types is not None else [None] * len(jobs)
    for job, error_type in zip(jobs, types, strict=True):
        extra = {"reason": reason} | ({"error_type": error_type} if error_type else {})
        job_event("nacked", [job], **extra)
    _ended(jobs)


def expired(rows: list[Row]) -> None:
    """Leases the reaper found expired: stalled workers."""
    metrics.failed(rows, metrics.LEASE_EXPIRED)
    job_event("expired", rows, logging.WARNING)
    _ended(rows)


def released(job: Row) -> None:
    """A leased job given back unrun (its worker shut down): not a failure."""
    job_event("released", [job])
    _ended([job])


def _ended(jobs: list[Row]) -> None:
    job_event("dead", [j for j in jobs if j["state"] == "dead"], logging.WARNING)
    job_event("cancelled", [j for j in jobs if j["state"] == "cancelled"])


def cancelled(job: Row) -> None:
    """A cancel: immediate for a waiting job, a request (seen on heartbeat) for an active one."""
    if job["state"] == "cancelled":
        metrics.ended([job])
        job_event("cancelled", [job])
    else:
        job_event("cancel_requested", [job])


def replayed(jobs: list[Row]) -> None:
    metrics.replayed({j["queue"]: 1 for j in jobs})
    job_event("replayed", jobs)


def redrive_ended(redrive: Row) -> None:
    logging.getLogger("jobbroker.jobs").info(
        "redrive ended",
        extra={"redrive_id": redrive["id"], "state": redrive["state"], "done": redrive["done"]},
    )


def replayed_in_bulk(counts: dict[str, int]) -> None:
    metrics.replayed(counts)
    for queue, n in counts.items():
        logging.getLogger("jobbroker.jobs").info("dead jobs replayed", extra={"queue": queue, "count": n})


def purged_in_bulk(counts: dict[str, int]) -> None:
    metrics.purged(counts)
    for queue, n in counts.items():
        logging.getLogger("jobbroker.jobs").info("dead jobs purged", extra={"queue": queue, "count": n})
