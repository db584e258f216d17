"""Logging: one JSON object per line (or readable text), the request id on every line logged while a
request is served, and a log line per job event carrying the job's id, queue, correlation id and
worker. Payloads, results and secrets are never logged: events name only the fields listed here.
"""

from __future__ import annotations

import logging
import logging.config
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
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        pairs = " ".join(f"{k}={v}" for k, v in _fields(record).items() if v is not None)
        text = f"{ts} {record.levelname:<7} {record.name}: {record.getMessage()}" + (f" {pairs}" if pairs else "")
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


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
