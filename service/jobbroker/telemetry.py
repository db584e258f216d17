"""The tracing switch. With an OTLP endpoint configured (`OTEL_EXPORTER_OTLP_ENDPOINT`) the broker
makes OpenTelemetry spans (jobbroker.otel); without one nothing of OpenTelemetry is imported and
the hot path pays nothing. Either way a job keeps the W3C trace context it was enqueued under."""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from jobbroker.core import trace

if TYPE_CHECKING:
    from types import ModuleType

    from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("jobbroker")
_otel: ModuleType | None = None


def enable(endpoint: str) -> bool:
    """Export this process's spans to `endpoint` (OTLP over HTTP). False when OpenTelemetry is missing."""
    global _otel
    try:
        from jobbroker import otel
    except ImportError as exc:
        log.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed (%s): no spans are exported; "
            "install jobbroker[otel]",
            exc.name,
        )
        return False
    otel.install(endpoint)
    _otel = otel
    return True


def fastapi_options(fastapi: type) -> dict[str, Any]:
    """FastAPI's own OpenTelemetry (newer releases) off: the broker's spans come from the ASGI
    instrumentation, which also covers the fast path, and no per-request provider checks remain."""
    if "telemetry" not in inspect.signature(fastapi.__init__).parameters:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


def enabled() -> bool:
    return _otel is not None


def wrap(app: ASGIApp) -> ASGIApp:
    """The app inside OpenTelemetry's ASGI middleware (a server span per request) when tracing is on."""
    return app if _otel is None else _otel.server_middleware(app)


class ServerSpans:
    """Middleware: a server span around each request, outermost so that every layer is inside it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = wrap(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def job_trace_context(traceparent: str | None, tracestate: str | None) -> trace.TraceContext | None:
    """The context to store with a job enqueued under these headers: the broker's own request span
    when tracing is on (a child of the producer's), else the producer's headers as they came."""
    incoming = trace.from_headers(traceparent, tracestate)
    return incoming if _otel is None else _otel.current_context(incoming)


@contextlib.contextmanager
def delivery_span(job: dict[str, Any]) -> Iterator[None]:
    """A push delivery's span, continuing the job's trace, when tracing is on."""
    if _otel is None:
        yield
        return
    with _otel.delivery_span(job):
        yield
