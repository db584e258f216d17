"""W3C trace context through jobs, when `opentelemetry-api` is installed (jobbroker-client[otel]):
an enqueue sends the current span's context, and the worker runs each handler in a span that
continues the trace its job was enqueued under. Without the package both are no-ops."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

try:
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # pragma: no cover - exercised where the package is absent
    trace = None  # type: ignore[assignment]

from ._version import __version__

_PROPAGATOR = TraceContextTextMapPropagator() if trace is not None else None


def current_headers() -> dict[str, str]:
    """`traceparent` (and `tracestate`) of the current span, or nothing when there is none."""
    if _PROPAGATOR is None or not trace.get_current_span().get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier


@contextmanager
def handler_span(job: Any) -> Iterator[None]:
    """A consumer span around one handler run, child of the job's stored trace context."""
    if _PROPAGATOR is None:
        yield
        return
    parent = _PROPAGATOR.extract(getattr(job, "trace_context", None) or {})
    tracer = trace.get_tracer("jobbroker_client", __version__)
    attributes = {
        "messaging.system": "jobbroker",
        "messaging.operation.type": "process",
        "messaging.destination.name": job.queue,
        "messaging.message.id": job.id,
        "jobbroker.job.type": job.type,
        "jobbroker.job.attempt": job.attempt,
    }
    with tracer.start_as_current_span(
        f"process {job.type}", context=parent, kind=trace.SpanKind.CONSUMER, attributes=attributes
    ):
        yield
