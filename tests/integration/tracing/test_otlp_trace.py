"""One trace from a producer's span through the broker to the worker's handler.

The broker is a real `jobbroker serve` process exporting to an in-process OTLP receiver
(OTEL_EXPORTER_OTLP_ENDPOINT); the producer and the worker are this process, with the
OpenTelemetry SDK exporting to memory. A push subscriber shows the context on deliveries too.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from otlp_receiver import OtlpReceiver

import jobbroker_client as jb
from support import BrokerProcess, eventually

SERVER, CLIENT = 2, 3  # OTLP span kinds
PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
_MEMORY = InMemorySpanExporter()


@pytest.fixture(scope="module")
def local_spans() -> Iterator[InMemorySpanExporter]:
    """This process's spans (the producer's and the worker's), in memory."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_MEMORY))
        trace.set_tracer_provider(provider)
    yield _MEMORY
    _MEMORY.clear()


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as r:
        yield r


@pytest.fixture(scope="module")
async def traced_broker(
    fresh_database: Callable[[], Awaitable[str]], receiver: OtlpReceiver
) -> AsyncIterator[BrokerProcess]:
    broker = BrokerProcess(
        await fresh_database(), OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY="50"
    )
    await asyncio.to_thread(broker.start)
    yield broker
    await asyncio.to_thread(broker.stop)


async def test_a_trace_runs_from_the_enqueue_to_the_workers_handler(traced_broker, receiver, local_spans) -> None:
    queue = f"tr-{uuid.uuid4().hex[:8]}"
    tracer = trace.get_tracer("test")
    async with jb.AsyncClient(traced_broker.url) as client:
        with tracer.start_as_current_span("checkout") as producer:
            job = await client.enqueue(queue, "send-email", {"to": "ada"})
        trace_id = format(producer.get_span_context().trace_id, "032x")
        stored = job.trace_context
        assert stored is not None and stored["traceparent"].split("-")[1] == trace_id

        seen: list[trace.SpanContext] = []
        worker = jb.Worker(traced_broker.url, queue=queue, wait_seconds=1)

        @worker.handler("send-email")
        def send(ctx: jb.JobContext) -> str:
            seen.append(trace.get_current_span().get_span_context())
            return "sent"

        task = asyncio.create_task(worker.run_async(install_signal_handlers=False))
        try:
            await eventually(lambda: _true(bool(seen)), within_s=15)
        finally:
            worker.stop()
            await asyncio.wait_for(task, 30)

    # The handler ran in the producer's trace, under the span the broker stored with the job.
    assert format(seen[0].trace_id, "032x") == trace_id
    [handler_span] = [s for s in local_spans.get_finished_spans() if s.name == "process send-email"]
    assert handler_span.kind is SpanKind.CONSUMER and handler_span.context.trace_id == seen[0].trace_id
    assert format(handler_span.parent.span_id, "016x") == stored["traceparent"].split("-")[2]

    # The broker's own spans reached the OTLP receiver, in that trace: its enqueue request, a
    # child of the producer's span, with the stored context's span inside it.
    await eventually(lambda: _true(any(s.kind == SERVER for s in receiver.in_trace(trace_id))), within_s=15)
    broker_spans = receiver.in_trace(trace_id)
    assert {s.service for s in broker_spans} == {"jobbroker"}
    [request] = [s for s in broker_spans if s.kind == SERVER and s.parent_span_id]
    assert request.parent_span_id == format(producer.get_span_context().span_id, "016x")
    assert "/v1/queues/{queue}/jobs" in request.name or "POST" in request.name
    ids = {s.span_id for s in broker_spans}
    assert stored["traceparent"].split("-")[2] in ids
    # Database spans (asyncpg) come from the broker too.
    await eventually(lambda: _true(any(s.scope.endswith("asyncpg") for s in receiver.spans)), within_s=15)


async def _true(value: bool) -> bool:
    return value


class _Subscriber:
    """A webhook receiver in a thread that answers 200 and keeps each delivery's headers."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        subscriber = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                subscriber.headers.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


async def test_a_push_delivery_continues_the_jobs_trace(traced_broker, receiver) -> None:
    queue = f"tp-{uuid.uuid4().hex[:8]}"
    subscriber = _Subscriber()
    try:
        async with httpx.AsyncClient(base_url=traced_broker.url) as http:
            made = await http.post("/v1/subscriptions", json={"queue": queue, "url": subscriber.url})
            assert made.status_code == 201, made.text
            job = await http.post(f"/v1/queues/{queue}/jobs", json={"type": "t"}, headers={"traceparent": PARENT})
            await eventually(lambda: _true(bool(subscriber.headers)), within_s=15)
    finally:
        subscriber.server.shutdown()
        subscriber.server.server_close()
    trace_id = PARENT.split("-")[1]
    sent = subscriber.headers[0]["traceparent"]
    assert sent.split("-")[1] == trace_id, "the delivery carries the producer's trace"
    # The delivery span and the HTTP client span inside it reach the OTLP receiver in that trace;
    # the subscriber's parent is the client span.
    await eventually(
        lambda: _true(any(s.name.startswith("deliver ") for s in receiver.in_trace(trace_id))), within_s=15
    )
    spans = receiver.in_trace(trace_id)
    [deliver] = [s for s in spans if s.name == f"deliver {queue}"]
    [client_span] = [s for s in spans if s.kind == CLIENT and s.parent_span_id == deliver.span_id]
    assert sent.split("-")[2] == client_span.span_id
    assert deliver.attributes["jobbroker.job.id"] == job.json()["id"]
