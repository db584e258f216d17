"""Logging: one JSON object per line (or readable text), the request id on every line logged while a
request is served, and a log line per job event carrying the job's id, queue, correlation id and
worker. Payloads, results and secrets are never logged: events name only the fields listed here.

Whatever a client sent (a path, a worker id, a correlation id) may reach a line, so both formats
keep a record on one line: JSON escapes, and text escapes control characters (a `%0A` in a path
cannot start a forged line). In every line, a URL is written without its userinfo, query string
and fragment (a subscriber's `?token=`), and a signing secret (`whsec_...`) is masked.
"""

from __future__ import annotations

import logging
import logging.config
import re
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

REQUEST_ID: ContextVar[str | None] = ContextVar("jobbroker_request_id", default=None)
# The attributes every LogRecord has; anything else on a record came through `extra=` (but
# uvicorn's `color_message`, a copy of the message with terminal colours).
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}
# What a job event may say about its job; a job's payload, result, errors and lease id stay out.
JOB_FIELDS = ("queue", "type", "state", "attempts", "correlation_id", "worker_id")

jobs_log = logging.getLogger("jobbroker.jobs")
# Libraries that log every request's full URL at info (httpx: "HTTP Request: POST <url>").
QUIET_LOGGERS = ("httpx", "httpcore")

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_URL = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)(?:[^/?#\s@]*@)?([^/?#\s]*)([^?#\s]*)(?:\?[^#\s]*)?(?:#\S*)?")
_JSON_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})
_NEEDS_QUOTES = re.compile(r'[\s"\\=\x00-\x1f\x7f-\x9f\u2028\u2029]')
_SECRET = re.compile(r"whsec_[A-Za-z0-9+/=_-]+")


def escape(text: str) -> str:
    """Control characters as visible escapes (`\\n`, `\\x1b`), so a value stays on its line."""
    return _CONTROL.sub(_escaped, text) if _CONTROL.search(text) else text


def _escaped(match: re.Match[str]) -> str:
    char = match[0]
    code = ord(char)
    return _ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def safe_url(url: str) -> str:
    """A URL without userinfo, query string or fragment: what may be logged of it."""
    return _URL.sub(r"\1\2\3", url)


def scrub(text: str) -> str:
    """`text` with every URL reduced to `safe_url` and every signing secret masked."""
    if "://" in text:
        text = safe_url(text)
    if "whsec_" in text:
        text = _SECRET.sub("whsec_***", text)
    return text


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
    request_id = REQUEST_ID.get()
    if request_id is not None:
        fields.setdefault("request_id", request_id)
    return fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrub(record.getMessage()),
            **{k: _scrub_value(v) for k, v in _fields(record).items()},
        }
        if record.exc_info:
            line["exc"] = scrub(self.formatException(record.exc_info))
        text = orjson.dumps(line, default=str).decode()
        # JSON allows these unescaped, but line readers (Python's splitlines among them) break at them.
        return text if text.isascii() else text.translate(_JSON_LINE_BREAKS)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        pairs = " ".join(f"{escape(k)}={_text(v)}" for k, v in _fields(record).items() if v is not None)
        message = escape(scrub(record.getMessage()))
        text = f"{ts} {record.levelname:<7} {record.name}: {message}" + (f" {pairs}" if pairs else "")
        if record.exc_info:
            # A traceback spans lines: each is indented, so none reads as a record of its own.
            exc = scrub(self.formatException(record.exc_info))
            text += "".join(f"\n    {escape(line)}" for line in exc.splitlines())
        return text


def _scrub_value(value: Any) -> Any:
    return scrub(value) if isinstance(value, str) else value


def _text(value: Any) -> str:
    """A field's value in a text line: as it is when plain, else quoted as a JSON string (escaped
    control characters included), so a value can neither end its line nor pass for another field."""
    text = scrub(str(value))
    if text and not _NEEDS_QUOTES.search(text):
        return text
    return orjson.dumps(text).decode().translate(_JSON_LINE_BREAKS)


def config(log_format: str, level: str, job_events: bool = True) -> dict[str, Any]:
    """A dictConfig for the root logger and uvicorn's: one stdout handler with the chosen format.
    Without `job_events`, job events below warning (all but dead and expired) are not logged."""
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {
            "stdout": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stdout"}
        },
        "root": {"handlers": ["stdout"], "level": level.upper()},
        "loggers": {
            **{
                name: {"handlers": [], "propagate": True, "level": level.upper()}
                for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "alembic")
            },
            jobs_log.name: {"level": level.upper() if job_events else "WARNING"},
            **{name: {"level": "WARNING"} for name in QUIET_LOGGERS},
        },
    }


def configure(log_format: str, level: str, job_events: bool = True) -> None:
    """Configure this process's logging (the server's; tests keep their own)."""
    logging.config.dictConfig(config(log_format, level, job_events))
    logging.captureWarnings(True)
    # Nothing here prints the caller, thread or process: skip gathering them for every record.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None


def job_event(event: str, jobs: Iterable[Mapping[str, Any]], level: int = logging.INFO, **extra: Any) -> None:
    """One line per job: `event` (enqueued, leased, acked, nacked, dead, expired, cancelled, replayed)."""
    if not jobs_log.isEnabledFor(level):
        return
    for job in jobs:
        fields = {"event": event, "job_id": str(job["id"])}
        fields.update((k, job[k]) for k in JOB_FIELDS if job.get(k) is not None)
        fields.update(extra)
        jobs_log.log(level, "job %s", event, extra=fields)
