"""Prometheus metrics: job counters and histograms recorded by the broker as jobs move, push delivery
metrics recorded by the dispatcher, and queue gauges read from the database at scrape time.

Counters and histograms live in this process. Under `jobbroker serve --workers N` every worker process
writes them to PROMETHEUS_MULTIPROC_DIR and a scrape, whichever worker answers it, sums them all. The
gauges come from the database, so every replica and every worker reports the same numbers.
"""

from __future__ import annotations

import asyncio
import atexit
import bisect
import os
import re
import shutil
import tempfile
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_fastapi_instrumentator import metrics as http_metrics

from jobbroker.settings import MetricsSettings

# A `_created` series beside every counter and histogram doubles the series for a timestamp few
# dashboards use (and multiprocess mode never reports).
disable_created_metrics()
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Label value for queues and types beyond the per-process cap, so a runaway producer cannot
# create unbounded series.
OTHER = "_other"
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
# Long-polling leases hold a request up to 30 s.
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
PUSH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
LIVE_STATES = ("pending", "retrying", "active", "dead")
# Why a job attempt failed, as the `reason` label: a nack, an expired lease, or a push answer.
ERROR = "error"
LEASE_EXPIRED = "lease_expired"

ENQUEUED = Counter(
    "jobbroker_jobs_enqueued_total", "Jobs enqueued (repeated idempotency keys excluded).", ["queue", "type"]
)
LEASED = Counter("jobbroker_jobs_leased_total", "Jobs handed to a worker or push subscriber.", ["queue", "type"])
SUCCEEDED = Counter("jobbroker_jobs_succeeded_total", "Jobs acked.", ["queue", "type"])
FAILED = Counter(
    "jobbroker_jobs_failed_total",
    "Failed attempts: nacked (reason error or push_<status>) or stalled (reason lease_expired).",
    ["queue", "type", "reason"],
)
DEAD = Counter("jobbroker_jobs_dead_total", "Jobs moved to the dead-letter queue.", ["queue", "type"])
STALLED = Counter("jobbroker_jobs_stalled_total", "Leases that expired before an ack or nack.", ["queue", "type"])
CANCELLED = Counter("jobbroker_jobs_cancelled_total", "Jobs cancelled.", ["queue", "type"])
REPLAYED = Counter("jobbroker_jobs_replayed_total", "Dead or cancelled jobs sent back to pending.", ["queue"])
PURGED = Counter("jobbroker_jobs_purged_total", "Dead jobs deleted from the dead-letter queue.", ["queue"])
LONG_POLL_WOKEN = Counter(
    "jobbroker_long_poll_wakeups_total",
    "Long-polling leases woken by a notification that their queue has ready jobs (at most one per ready job).",
    ["queue"],
)
RUN_SECONDS = Histogram(
    "jobbroker_job_run_duration_seconds",
    "From lease to ack (outcome succeeded) or nack (outcome failed).",
    ["queue", "outcome"],
    buckets=DURATION_BUCKETS,
)
WAIT_SECONDS = Histogram(
    "jobbroker_job_wait_duration_seconds",
    "From ready (run_at: enqueue, due time or retry time) to lease.",
    ["queue"],
    buckets=DURATION_BUCKETS,
)
PUSH_DELIVERIES = Counter(
    "jobbroker_push_deliveries_total",
    "Webhook deliveries by HTTP status, or timeout / connection_error / error.",
    ["queue", "status"],
)
PUSH_SECONDS = Histogram(
    "jobbroker_push_delivery_duration_seconds",
    "Webhook delivery time, sent to answer.",
    ["queue"],
    buckets=PUSH_BUCKETS,
)
PUSH_OUTCOMES = frozenset({"timeout", "connection_error", "error"})


class _Labels:
    """Caps distinct label values per process; later newcomers share the label `_other`."""

    def __init__(self) -> None:
        self.max_values = MetricsSettings().max_label_values
        self.type_labels = True
        self.queues: set[str] = set()
        self.types: set[str] = set()

    def queue(self, name: str) -> str:
        return self._bounded(self.queues, name)

    def type(self, name: str) -> str:
        return self._bounded(self.types, name) if self.type_labels else ""

    def _bounded(self, seen: set[str], value: str) -> str:
        if value in seen:
            return value
        if len(seen) >= self.max_values:
            return OTHER
        seen.add(value)
        return value


LABELS = _Labels()


def configure(settings: MetricsSettings) -> None:
    LABELS.max_values = settings.max_label_values
    LABELS.type_labels = settings.type_labels


def _by_queue_type(jobs: Iterable[Any]) -> Tally[tuple[str, str]]:
    return Tally((LABELS.queue(j["queue"]), LABELS.type(j["type"])) for j in jobs)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def _q(job: Any) -> str:
    return LABELS.queue(job["queue"])


def _observe(histogram: Histogram, values: Iterable[tuple[str, float | None]], *labels: str) -> None:
    """`histogram.labels(queue, *labels).observe(value)` for (queue, value) pairs, None values skipped,
    with one write per touched bucket rather than two per value: under `serve --workers N` each write
    is a locked write to a shared file, and a 100-job lease or ack observes 100 values."""
    by_queue: dict[str, list[float]] = {}
    for queue, value in values:
        if value is not None:
            by_queue.setdefault(queue, []).append(value)
    for queue, observed in by_queue.items():
        child = histogram.labels(queue, *labels)
        # prometheus_client has no batch observe; these are the fields its observe() writes.
        bounds, buckets = child._upper_bounds, child._buckets  # type: ignore[attr-defined]
        for index, n in Tally(bisect.bisect_left(bounds, v) for v in observed).items():
            buckets[index].inc(n)
        child._sum.inc(sum(observed))  # type: ignore[attr-defined]


def enqueued(jobs: Iterable[Any]) -> None:
    for (queue, type_), n in _by_queue_type(jobs).items():
        ENQUEUED.labels(queue, type_).inc(n)


def leased(jobs: Iterable[Any]) -> None:
    jobs = list(jobs)
    for (queue, type_), n in _by_queue_type(jobs).items():
        LEASED.labels(queue, type_).inc(n)
    _observe(WAIT_SECONDS, ((_q(job), _seconds(job["run_at"], job["started_at"])) for job in jobs))


def succeeded(jobs: Iterable[Any], now: datetime) -> None:
    """Acked jobs; `now` ends the run of rows that carry no finished_at."""
    jobs = list(jobs)
    for (queue, type_), n in _by_queue_type(jobs).items():
        SUCCEEDED.labels(queue, type_).inc(n)
    runs = ((_q(job), _seconds(job["started_at"], job.get("finished_at") or now)) for job in jobs)
    _observe(RUN_SECONDS, runs, "succeeded")


def failed(jobs: Iterable[Any], reason: str, now: datetime | None = None) -> None:
    """Failed attempts, and the dead and cancelled jobs among them (by their new `state`)."""
    jobs = list(jobs)
    for (queue, type_), n in _by_queue_type(jobs).items():
        FAILED.labels(queue, type_, reason).inc(n)
        if reason == LEASE_EXPIRED:
            STALLED.labels(queue, type_).inc(n)
    ended(jobs)
    if now is not None:
        _observe(RUN_SECONDS, ((_q(job), _seconds(job.get("started_at"), now)) for job in jobs), "failed")


def ended(jobs: Iterable[Any]) -> None:
    """Count the jobs that landed in the DLQ or were cancelled."""
    for job in jobs:
        if job["state"] == "dead":
            DEAD.labels(LABELS.queue(job["queue"]), LABELS.type(job["type"])).inc()
        elif job["state"] == "cancelled":
            CANCELLED.labels(LABELS.queue(job["queue"]), LABELS.type(job["type"])).inc()


def long_poll_woken(queue: str) -> None:
    LONG_POLL_WOKEN.labels(LABELS.queue(queue)).inc()


def replayed(counts: dict[str, int]) -> None:
    for queue, n in counts.items():
        REPLAYED.labels(LABELS.queue(queue)).inc(n)


def purged(counts: dict[str, int]) -> None:
    for queue, n in counts.items():
        PURGED.labels(LABELS.queue(queue)).inc(n)


def push_status(status: int | str) -> str:
    """The `status` label of a delivery: the HTTP status code, or timeout / connection_error / error."""
    if isinstance(status, int):
        return str(status) if 100 <= status <= 599 else "error"
    return status if status in PUSH_OUTCOMES else "error"


def push_failure_reason(status: int | str) -> str:
    """The `reason` label of a failed attempt that a push delivery caused, e.g. `push_503`."""
    return f"push_{push_status(status)}"


def push_delivered(queue: str, status: int | str, seconds: float) -> None:
    """Record one webhook delivery: its HTTP status (or timeout / connection_error / error) and time."""
    label = LABELS.queue(queue)
    PUSH_DELIVERIES.labels(label, push_status(status)).inc()
    PUSH_SECONDS.labels(label).observe(max(0.0, seconds))


# The instrumentator's metric definitions, created once per process: every app built in it (tests
# build several) records into the same ones.
_HTTP = (
    http_metrics.requests(metric_namespace="jobbroker"),
    http_metrics.latency(metric_namespace="jobbroker", should_include_status=False, buckets=HTTP_BUCKETS),
)
_UNRECORDED = re.compile(r"/metrics|/static/|/docs|/redoc|/openapi\.json")


class HttpMetrics:
    """HTTP request metrics (jobbroker_http_*), by route template, method and status.

    The metrics are prometheus-fastapi-instrumentator's; its middleware is not used, because it
    cost a worker's ack more CPU than the ack itself (a Request, a Response, a gather per request, and
    FastAPI's full route matching to name the route). The edge middleware calls `record` instead."""

    def __init__(self) -> None:
        self._templates: list[tuple[re.Pattern[str], str]] | None = None

    def record(self, app: Any, method: str, path: str, status: int, seconds: float) -> None:
        if _UNRECORDED.match(path):
            return
        handler = self._template(app, path)
        info = http_metrics.Info(
            request=None,  # type: ignore[arg-type]  # the instrumentations read only the fields below
            response=None,
            method=method,
            modified_handler=handler,
            modified_status=str(status),
            modified_duration=seconds,
        )
        for instrumentation in _HTTP:
            instrumentation(info)

    def _template(self, app: Any, path: str) -> str:
        """The route template a path matches, or `none` (the instrumentator's name for no route)."""
        if self._templates is None:
            from jobbroker.api.routes import api_routes

            self._templates = [(route.path_regex, route.path) for route in api_routes(app)]
        for pattern, template in self._templates:
            if pattern.match(path):
                return template
        return "none"


class QueueGauges:
    """Queue gauges from the database: read at scrape time, at most once per `refresh_s` per process,
    one read at a time however many scrapes arrive together."""

    def __init__(self, read: Callable[[], Awaitable[list[dict[str, Any]]]], refresh_s: float) -> None:
        self.read = read
        self.refresh_s = refresh_s
        self._rows: list[dict[str, Any]] | None = None
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()

    async def snapshot(self) -> list[dict[str, Any]] | None:
        """Rows of (queue, state, jobs, ready, oldest_ready_age_s); None when the database is unreachable."""
        async with self._lock:
            if time.monotonic() - self._read_at >= self.refresh_s or self._rows is None:
                try:
                    self._rows = await self.read()
                except Exception:
                    self._rows = None
                self._read_at = time.monotonic()
            return self._rows

    async def families(self) -> list[Metric]:
        return list(_families(await self.snapshot()))


def _families(rows: list[dict[str, Any]] | None) -> Iterator[Metric]:
    up = GaugeMetricFamily("jobbroker_database_up", "1 when the last read of the queue gauges succeeded.")
    up.add_metric([], 0 if rows is None else 1)
    yield up
    if rows is None:
        return
    depth = GaugeMetricFamily("jobbroker_queue_jobs", "Live jobs by queue and state.", labels=["queue", "state"])
    ready = GaugeMetricFamily("jobbroker_queue_ready_jobs", "Jobs leasable now (run_at passed).", labels=["queue"])
    oldest = GaugeMetricFamily(
        "jobbroker_queue_oldest_ready_age_seconds", "How long the oldest leasable job has waited.", labels=["queue"]
    )
    active = GaugeMetricFamily("jobbroker_queue_active_leases", "Jobs held by a lease.", labels=["queue"])
    dlq = GaugeMetricFamily("jobbroker_dlq_jobs", "Jobs in the dead-letter queue.", labels=["queue"])
    keys = {
        "keys_ready": GaugeMetricFamily(
            "jobbroker_queue_keys_ready", "Flow keys with jobs leasable now.", labels=["queue"]
        ),
        "keys_at_limit": GaugeMetricFamily(
            "jobbroker_queue_keys_at_limit", "Flow keys at their concurrency limit.", labels=["queue"]
        ),
        "keys_paused": GaugeMetricFamily("jobbroker_queue_keys_paused", "Flow keys paused.", labels=["queue"]),
    }
    # Per fingerprint would be unbounded: the number of groups and the largest one are.
    groups = GaugeMetricFamily(
        "jobbroker_dlq_groups", "Distinct error fingerprints among the dead jobs.", labels=["queue"]
    )
    largest = GaugeMetricFamily(
        "jobbroker_dlq_largest_group_jobs", "Dead jobs in the largest fingerprint group.", labels=["queue"]
    )
    by_queue: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["state"] == "keys":
            for name, family in keys.items():
                family.add_metric([row["queue"]], row[name])
            continue
        entry = by_queue.setdefault(
            row["queue"], {"counts": dict.fromkeys(LIVE_STATES, 0), "ready": 0, "age": 0.0, "groups": 0, "largest": 0}
        )
        entry["groups"] += row.get("dlq_groups") or 0
        entry["largest"] = max(entry["largest"], row.get("dlq_largest_group") or 0)
        if row["state"] in entry["counts"]:
            entry["counts"][row["state"]] += row["jobs"]
        entry["ready"] += row["ready"] or 0
        entry["age"] = max(entry["age"], row["oldest_ready_age_s"] or 0.0)
    for queue, entry in sorted(by_queue.items()):
        for state, n in entry["counts"].items():
            depth.add_metric([queue, state], n)
        ready.add_metric([queue], entry["ready"])
        oldest.add_metric([queue], entry["age"])
        active.add_metric([queue], entry["counts"]["active"])
        dlq.add_metric([queue], entry["counts"]["dead"])
        groups.add_metric([queue], entry["groups"])
        largest.add_metric([queue], entry["largest"])
    yield from (depth, ready, oldest, active, dlq, groups, largest, *keys.values())


class _Fixed:
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


async def exposition(gauges: QueueGauges) -> bytes:
    """The text exposition: this process's (or all worker processes') metrics plus the queue gauges."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    snapshot = CollectorRegistry(auto_describe=False)
    snapshot.register(_Fixed(await gauges.families()))  # type: ignore[arg-type]
    return generate_latest(registry) + generate_latest(snapshot)


def prepare_multiprocess_dir() -> str:
    """Point PROMETHEUS_MULTIPROC_DIR (before worker processes start) at an empty directory: the
    operator's, emptied of a previous run's files, or a fresh temporary one removed at exit."""
    path = multiprocess_dir()
    if path is None:
        path = tempfile.mkdtemp(prefix="jobbroker-metrics-")
        atexit.register(shutil.rmtree, path, ignore_errors=True)
        os.environ[MULTIPROC_ENV] = path
    for stale in Path(path).glob("*.db"):
        stale.unlink()
    return path
