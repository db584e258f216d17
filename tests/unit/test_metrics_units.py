"""Metrics without a server: bounded labels, push status labels, and the gauges' database reads."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from jobbroker import metrics
from jobbroker.settings import MetricsSettings


def test_label_values_are_capped_per_process() -> None:
    labels = metrics._Labels()
    labels.max_values = 2
    assert [labels.queue(q) for q in ("a", "b", "c", "a")] == ["a", "b", metrics.OTHER, "a"]
    labels.type_labels = False
    assert labels.type("anything") == ""


def test_configure_applies_the_settings() -> None:
    before = (metrics.LABELS.max_values, metrics.LABELS.type_labels)
    try:
        metrics.configure(MetricsSettings(max_label_values=7, type_labels=False))
        assert (metrics.LABELS.max_values, metrics.LABELS.type_labels) == (7, False)
    finally:
        metrics.LABELS.max_values, metrics.LABELS.type_labels = before


def test_batched_observations_equal_observing_one_by_one() -> None:
    """Values on a bucket bound, between bounds, past the last one, and a None that counts nothing."""
    values = [("a", 0.005), ("a", 0.0051), ("b", 0.0), ("a", 4000.0), ("b", 1.0), ("a", None), ("b", 1.0)]

    def histogram() -> tuple[CollectorRegistry, Histogram]:
        registry = CollectorRegistry()
        return registry, Histogram("h", "h", ["queue", "outcome"], buckets=metrics.DURATION_BUCKETS, registry=registry)

    batched_registry, batched = histogram()
    metrics._observe(batched, values, "succeeded")
    single_registry, single = histogram()
    for queue, value in values:
        if value is not None:
            single.labels(queue, "succeeded").observe(value)
    exposition = generate_latest(batched_registry).decode()
    assert exposition == generate_latest(single_registry).decode()
    assert _value(exposition, "h_count", queue="a", outcome="succeeded") == 3


@pytest.mark.parametrize(
    ("status", "label"),
    [(200, "200"), (503, "503"), (99, "error"), (700, "error"), ("timeout", "timeout"), ("weird", "error")],
)
def test_push_status_labels_are_bounded(status: int | str, label: str) -> None:
    assert metrics.push_status(status) == label
    assert metrics.push_failure_reason(status) == f"push_{label}"


def _value(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


async def test_push_deliveries_are_counted_and_timed() -> None:
    metrics.push_delivered("push-unit", 202, 0.03)
    metrics.push_delivered("push-unit", "timeout", 5.0)
    text = (await metrics.exposition(metrics.QueueGauges(_rows([]), 0))).decode()
    assert _value(text, "jobbroker_push_deliveries_total", queue="push-unit", status="202") == 1
    assert _value(text, "jobbroker_push_deliveries_total", queue="push-unit", status="timeout") == 1
    assert _value(text, "jobbroker_push_delivery_duration_seconds_count", queue="push-unit") == 2


def _rows(rows: list[dict[str, Any]], calls: list[int] | None = None) -> Any:
    async def read() -> list[dict[str, Any]]:
        if calls is not None:
            calls.append(1)
        return rows

    return read


async def test_gauges_sum_states_per_queue() -> None:
    rows = [
        {"queue": "q", "state": "pending", "jobs": 3, "ready": 2, "oldest_ready_age_s": 12.5},
        {"queue": "q", "state": "retrying", "jobs": 1, "ready": 1, "oldest_ready_age_s": 40.0},
        {"queue": "q", "state": "active", "jobs": 2, "ready": 0, "oldest_ready_age_s": 0},
        {"queue": "q", "state": "dead", "jobs": 5, "ready": 0, "oldest_ready_age_s": 0},
        {"queue": "idle", "state": "pending", "jobs": 0, "ready": 0, "oldest_ready_age_s": 0},
    ]
    text = (await metrics.exposition(metrics.QueueGauges(_rows(rows), 0))).decode()
    assert _value(text, "jobbroker_database_up") == 1
    assert _value(text, "jobbroker_queue_jobs", queue="q", state="pending") == 3
    assert _value(text, "jobbroker_queue_ready_jobs", queue="q") == 3
    assert _value(text, "jobbroker_queue_oldest_ready_age_seconds", queue="q") == 40.0
    assert _value(text, "jobbroker_queue_active_leases", queue="q") == 2
    assert _value(text, "jobbroker_dlq_jobs", queue="q") == 5
    assert _value(text, "jobbroker_queue_jobs", queue="idle", state="dead") == 0


async def test_gauges_are_read_at_most_once_per_refresh_interval() -> None:
    calls: list[int] = []
    gauges = metrics.QueueGauges(_rows([], calls), refresh_s=3600)
    await gauges.families()
    await gauges.families()
    assert len(calls) == 1
    fresh = metrics.QueueGauges(_rows([], calls), refresh_s=0)
    await fresh.families()
    await fresh.families()
    assert len(calls) == 3


async def test_an_unreachable_database_reports_down_without_failing_the_scrape() -> None:
    async def broken() -> list[dict[str, Any]]:
        raise OSError("connection refused")

    text = (await metrics.exposition(metrics.QueueGauges(broken, 0))).decode()
    assert _value(text, "jobbroker_database_up") == 0
    assert "jobbroker_queue_jobs" not in text
    assert "jobbroker_jobs_enqueued" in text
