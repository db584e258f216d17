"""What a client sends cannot forge a log line, and no log line carries a URL's query string or
userinfo or a signing secret, in either format."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from jobbroker import logs

# What a client controls: a path (percent-decoded by the server), a worker id, a correlation id.
FORGERIES = [
    "/v1/queues/q\n2026-12-01 00:00:00.000 ERROR   jobbroker: forged",
    "w1\r\n2026-12-01 00:00:00.000 INFO    jobbroker.jobs: job acked",
    "corr\x1b[31mred\x1b[0m\x00\x85\u2028next",
    "tab\there",
]
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture(params=["text", "json"])
def captured(request: pytest.FixtureRequest) -> Iterator[tuple[logging.Logger, io.StringIO, str]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.TextFormatter() if request.param == "text" else logs.JsonFormatter())
    logger = logging.getLogger(f"jobbroker.test-safety-{request.param}")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream, request.param
    logger.removeHandler(handler)


@pytest.mark.parametrize("value", FORGERIES)
def test_client_values_stay_on_their_line(captured: tuple[logging.Logger, io.StringIO, str], value: str) -> None:
    logger, stream, kind = captured
    logger.info("%s %s %d", "POST", value, 200, extra={"worker_id": value, "correlation_id": value, "path": value})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1, lines
    if kind == "json":
        record = json.loads(lines[0])
        assert record["worker_id"] == value and value in record["message"]
    else:
        assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029" for c in lines[0])
        # A field's value is quoted as a JSON string: escaped once, and read back exactly.
        quoted = lines[0].split(" worker_id=", 1)[1].split(" correlation_id=", 1)[0]
        assert json.loads(quoted) == value


def test_a_traceback_in_text_is_indented_so_no_line_reads_as_a_record(
    captured: tuple[logging.Logger, io.StringIO, str],
) -> None:
    logger, stream, kind = captured
    try:
        raise RuntimeError("boom\n2026-12-01 00:00:00.000 INFO    jobbroker: forged")
    except RuntimeError:
        logger.exception("failed")
    lines = stream.getvalue().splitlines()
    if kind == "json":
        assert len(lines) == 1
    else:
        assert len(lines) > 1 and all(line.startswith("    ") for line in lines[1:])


@pytest.mark.parametrize(
    ("url", "logged"),
    [
        ("https://hooks.example.com/in?token=t0ps3cret", "https://hooks.example.com/in"),
        ("http://user:pa55word@127.0.0.1:8080/x?a=1#frag", "http://127.0.0.1:8080/x"),
        ("postgresql://broker:pa55word@db:5432/jobs?sslmode=require", "postgresql://db:5432/jobs"),
        ("HTTPS://h.example.com?token=t0ps3cret", "HTTPS://h.example.com"),
    ],
)
def test_urls_are_logged_without_query_or_userinfo(
    captured: tuple[logging.Logger, io.StringIO, str], url: str, logged: str
) -> None:
    logger, stream, _ = captured
    logger.warning("POST %s failed", url, extra={"url": url})
    line = stream.getvalue()
    assert logged in line
    assert "t0ps3cret" not in line and "pa55word" not in line and "a=1" not in line


def test_signing_secrets_are_masked_in_messages_fields_and_tracebacks(
    captured: tuple[logging.Logger, io.StringIO, str],
) -> None:
    logger, stream, _ = captured
    row = f"Failing row contains (7, emails, http://x/, null, {SECRET}, {SECRET[:-3]}abc, 10, 30)"
    logger.error("insert failed: %s", row, extra={"detail": row})
    try:
        raise ValueError(row)
    except ValueError:
        logger.exception("unexpected")
    text = stream.getvalue()
    assert "whsec_***" in text and "MfKQ9r8" not in text


def test_httpx_request_lines_are_not_logged_at_info() -> None:
    """httpx logs every request's full URL (with any ?token=) at info."""
    config = logs.config("json", "info")
    for name in logs.QUIET_LOGGERS:
        assert config["loggers"][name]["level"] == "WARNING"
