"""RFC 9457 problem details for every failure, each with a stable machine `code`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from jobbroker.api.responses import ProblemJSON
from jobbroker.core.errors import BrokerError

log = logging.getLogger("jobbroker.api")
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {}


def problem(
    status: int, code: str, title: str, detail: str, request: Request | None = None, **extra: Any
) -> ProblemJSON:
    body = {
        "type": f"urn:jobbroker:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    if request is not None:
        body["instance"] = request.url.path
    return ProblemJSON(body, status_code=status)


def _plain(value: Any) -> Any:
    """Validation contexts can hold exceptions or other objects JSON cannot carry."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


async def on_broker_error(request: Request, exc: Exception) -> ProblemJSON:
    assert isinstance(exc, BrokerError)
    return problem(exc.status, exc.code, exc.title, exc.detail, request, **exc.extra)


async def on_validation_error(request: Request, exc: Exception) -> ProblemJSON:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": _plain(e.get("loc")), "msg": str(e.get("msg")), "type": str(e.get("type"))} for e in exc.errors()]
    malformed = any(e["type"] == "json_invalid" for e in errors)
    status, detail = (
        (400, "the body is not valid JSON")
        if malformed
        else (422, "; ".join(f"{'.'.join(map(str, e['loc'] or []))}: {e['msg']}" for e in errors[:5]))
    )
    return problem(status, "validation_error", "Validation error", detail, request, errors=errors)


async def on_http_error(request: Request, exc: Exception) -> ProblemJSON:
    assert isinstance(exc, HTTPException)
    if isinstance(exc.__cause__, BrokerError):
        return await on_broker_error(request, exc.__cause__)
    code = HTTP_CODES.get(exc.status_code, "http_error")
    return problem(exc.status_code, code, code.replace("_", " ").capitalize(), str(exc.detail), request)


async def on_unexpected(request: Request, exc: Exception) -> ProblemJSON:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return problem(500, "internal_error", "Internal error", "an unexpected error occurred", request)


def install(app: FastAPI) -> None:
    app.add_exception_handler(BrokerError, on_broker_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries declaring each error answer a route can give (api/spec.py types them as Problem)."""
    described = {
        400: "Malformed request (the body is not JSON)",
        401: "Missing or unknown API key",
        403: "API key lacks the scope",
        404: "No such job",
        409: "Conflict with the job's state, its lease or an existing job",
        413: "Payload too large",
        422: "Validation error",
        503: "Database unavailable",
    }
    return {s: {"description": described[s]} for s in (400, *statuses, 422, 503)}
