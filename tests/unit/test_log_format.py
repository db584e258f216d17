"""Log formatting: one JSON object per line with the request id and a record's fields, or readable text."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from jobbroker import logs
from jobbroker.api.request_context import request_id


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("jobbroker.test-format")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def test_json_lines_carry_extras_and_the_request_id(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.handlers[0].setFormatter(logs.JsonFormatter())
    token = logs.REQUEST_ID.set("req-1")
    try:
        logger.info("job %s", "acked", extra={"job_id": "42", "queue": "q"})
    finally:
        logs.REQUEST_ID.reset(token)
    logger.warning("outside a request")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "job acked" and first["level"] == "info" and first["logger"] == logger.name
    assert (first["job_id"], first["queue"], first["request_id"]) == ("42", "q", "req-1")
    assert "request_id" not in second and second["level"] == "warning"


def test_json_lines_stay_one_line_with_a_traceback(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.handlers[0].setFormatter(logs.JsonFormatter())
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        logger.exception("failed")
    [line] = stream.getvalue().splitlines()
    assert "RuntimeError" in json.loads(line)["exc"]


def test_job_events_name_the_job_and_leave_out_its_payload(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.handlers[0].setFormatter(logs.JsonFormatter())
    logs.jobs_log.addHandler(logger.handlers[0])
    level = logs.jobs_log.level
    logs.jobs_log.setLevel(logging.INFO)
    try:
        job = {
            "id": 7,
            "queue": "q",
            "type": "t",
            "state": "active",
            "attempts": 1,
            "correlation_id": "c",
            "worker_id": "w",
            "payload": {"card": "4111-1111"},
            "result": "secret-result",
            "lease_id": "0b1f3a2e-0000-4000-8000-000000000000",
        }
        logs.job_event("leased", [job])
    finally:
        logs.jobs_log.removeHandler(logger.handlers[0])
        logs.jobs_log.setLevel(level)
    line = stream.getvalue()
    assert "4111" not in line and "secret-result" not in line and "0b1f3a2e" not in line
    assert json.loads(line) | {"ts": None} == {
        "ts": None,
        "level": "info",
        "logger": "jobbroker.jobs",
        "message": "job leased",
        "event": "leased",
        "job_id": "7",
        "queue": "q",
        "type": "t",
        "state": "active",
        "attempts": 1,
        "correlation_id": "c",
        "worker_id": "w",
    }


def test_text_format_reads_as_key_value_pairs(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.handlers[0].setFormatter(logs.TextFormatter())
    logger.info("job acked", extra={"job_id": "42"})
    assert stream.getvalue().rstrip().endswith("INFO    jobbroker.test-format: job acked job_id=42")


def test_config_routes_uvicorn_and_can_quiet_job_events() -> None:
    config = logs.config("json", "info", job_events=False)
    assert config["formatters"]["default"]["()"] == "jobbroker.logs.JsonFormatter"
    assert config["loggers"]["uvicorn.access"]["propagate"] is True
    assert config["loggers"]["jobbroker.jobs"]["level"] == "WARNING"
    assert logs.config("text", "debug")["formatters"]["default"]["()"] == "jobbroker.logs.TextFormatter"


@pytest.mark.parametrize(
    ("sent", "kept"),
    [(b"abc-123", True), (b"x" * 128, True), (b"x" * 129, False), (b"has space", False), (b"", False)],
)
def test_request_ids_are_kept_only_when_printable_and_short(sent: bytes, kept: bool) -> None:
    got = request_id([(b"x-request-id", sent)])
    assert (got == sent.decode()) == kept
    assert len(got) <= 128
