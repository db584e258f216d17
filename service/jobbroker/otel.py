"""The broker's OpenTelemetry spans: HTTP server (ASGI), database (asyncpg) and push client (httpx),
exported over OTLP/HTTP. Imported only when tracing is on (see telemetry.py); needs jobbroker[otel]."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp

from jobbroker import __version__
from jobbroker.core.trace import TraceContext

PROPAGATOR = TraceContextTextMapPropagator()
# Health probes and scrapes would be most of the spans and tell nothing.
EXCLUDED_URLS = "healthz,readyz,metrics"
_installed = False


def install(endpoint: str) -> None:
    """Once per process: a tracer provider exporting to `endpoint`, and the database and HTTP client
    instrumentations. The SDK reads its other OTEL_* variables itself (sampler, headers, batching)."""
    global _installed
    if _installed:
        return
    resource = Resource.create({"service.name": "jobbroker", "service.version": __version__})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(endpoint))))
    trace.set_tracer_provider(provider)
    AsyncPGInstrumentor().instrument()
    HTTPXClientInstrumentor().instrument()
    _installed = True


def traces_url(endpoint: str) -> str:
    """The traces path under an OTLP/HTTP base endpoint, as the OpenTelemetry spec derives it."""
    return endpoint.rstrip("/") + "/v1/traces"


def server_middleware(app: ASGIApp) -> ASGIApp:
    return OpenTelemetryMiddleware(app, excluded_urls=EXCLUDED_URLS)


def current_context(incoming: TraceContext | None) -> TraceContext | None:
    """The current span's context in W3C form, or the incoming one when no span is recording."""
    if not trace.get_current_span().get_span_context().is_valid:
        return incoming
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier)
    return carrier or incoming


@contextmanager
def delivery_span(job: dict[str, Any]) -> Iterator[None]:
    parent = PROPAGATOR.extract(job.get("trace_context") or {})
    tracer = trace.get_tracer("jobbroker.push", __version__)
    attributes = {
        "messaging.system": "jobbroker",
        "messaging.destination.name": job["queue"],
        "jobbroker.job.id": job["id"],
    }
    with tracer.start_as_current_span(
        f"deliver {job['queue']}", context=parent, kind=trace.SpanKind.PRODUCER, attributes=attributes
    ):
        yield
