"""Without an OTLP endpoint the broker imports none of OpenTelemetry's SDK, exporters or
instrumentations, whatever is installed (recent FastAPI releases import opentelemetry-api
themselves; the broker turns their telemetry off)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from jobbroker.core import trace

PROBE = """
import sys
import httpx
from jobbroker.app import create_app
from jobbroker.settings import Settings
app = create_app(Settings())
import jobbroker.cli, jobbroker.push.dispatcher
heavy = ("opentelemetry.sdk", "opentelemetry.instrumentation", "opentelemetry.exporter", "jobbroker.otel")
print(sorted(m for m in sys.modules if m.startswith(heavy)))
"""


def test_the_app_imports_no_opentelemetry_without_an_endpoint() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, env={})
    assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.parametrize(
    ("traceparent", "tracestate", "expected"),
    [
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None, True),
        (" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00 ", "a=b", True),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", None, False),
        ("0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None, False),
        (None, "a=b", False),
    ],
)
def test_from_headers(traceparent: str | None, tracestate: str | None, expected: bool) -> None:
    context = trace.from_headers(traceparent, tracestate)
    assert (context is not None) is expected
    if context is not None:
        assert context["traceparent"] == traceparent.strip()
        assert context.get("tracestate") == tracestate


def test_an_overlong_tracestate_is_dropped_and_the_traceparent_kept() -> None:
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert trace.from_headers(parent, "a=" + "b" * 600) == {"traceparent": parent}
