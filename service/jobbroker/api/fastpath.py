"""The hot routes without the framework's per-request machinery.

Routing, dependency solving and body parsing in FastAPI cost a worker's lease or ack more CPU than
everything the broker then does for it. For the routes a worker or producer calls in a loop, this
middleware matches the path itself, validates the body with the route's own model and calls the
route's own endpoint. A request it does not take exactly as it is (a path or body that fails
validation, a header it does not expect, a key without the scope) goes on to FastAPI untouched,
its body replayed, so every error answer is still FastAPI's own; so does every other route.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_type_hints

from pydantic import BaseModel
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobbroker.api import auth
from jobbroker.api.problems import on_broker_error
from jobbroker.api.routes import api_routes, jobs, leases
from jobbroker.api.schemas import LINE_PATTERN, QUEUE_PATTERN
from jobbroker.core import jsontext
from jobbroker.core.errors import BrokerError
from jobbroker.core.models import parse_job_id
from jobbroker.keys import Scope as KeyScope

HOT_ENDPOINTS = (
    leases.lease,
    leases.heartbeat,
    leases.ack,
    leases.nack,
    leases.release,
    leases.ack_many,
    leases.nack_many,
    jobs.enqueue,
    jobs.enqueue_batch,
)
_QUEUE = re.compile(QUEUE_PATTERN)
_LINE = re.compile(LINE_PATTERN)
_CORRELATION_MAX = 255
_JSON_TYPES = ("application/json", "")


@dataclass(frozen=True)
class _HotRoute:
    pattern: re.Pattern[str]
    endpoint: Callable[..., Any]
    body: type[BaseModel]
    scope: KeyScope | None
    wants_request: bool
    wants_correlation: bool
    wants_trace: bool


def _hot_routes(app: Any) -> dict[str, list[_HotRoute]]:
    """The hot routes of `app`, by method, read from its own route table."""
    table: dict[str, list[_HotRoute]] = {}
    for route in api_routes(app):
        if route.endpoint not in HOT_ENDPOINTS:
            continue
        params = inspect.signature(route.endpoint).parameters
        scopes = [auth.scope_of(d.dependency) for d in route.dependencies]
        hot = _HotRoute(
            pattern=route.path_regex,
            endpoint=route.endpoint,
            body=get_type_hints(route.endpoint)["body"],
            scope=next((s for s in scopes if s is not None), None),
            wants_request="request" in params,
            wants_correlation="correlation_id" in params,
            wants_trace="traceparent" in params,
        )
        for method in route.methods:
            table.setdefault(method, []).append(hot)
    return table


def _path_args(match: re.Match[str]) -> dict[str, Any] | None:
    args: dict[str, Any] = {}
    for name, value in match.groupdict().items():
        if name == "queue":
            if not _QUEUE.fullmatch(value):
                return None
            args["queue"] = value
        elif name == "id":
            try:
                args["job_id"] = parse_job_id(value)
            except BrokerError:  # FastAPI answers it
                return None
        else:
            return None
    return args


class FastPath:
    """Add it innermost: the request id, metrics, authentication and body limit still apply."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._routes: dict[str, list[_HotRoute]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = match = None
        if scope["type"] == "http":
            if self._routes is None:
                self._routes = _hot_routes(scope["app"])
            for candidate in self._routes.get(scope["method"], ()):
                match = candidate.pattern.match(scope["path"])
                if match is not None:
                    route = candidate
                    break
        if route is None or match is None:
            await self.app(scope, receive, send)
            return
        kwargs = self._arguments(route, match, scope)
        if kwargs is None:
            await self.app(scope, receive, send)
            return
        try:
            body = await _read_body(receive)
        except BrokerError as exc:  # the body limit
            await (await on_broker_error(Request(scope), exc))(scope, receive, send)
            return
        try:
            kwargs["body"] = route.body.model_validate(jsontext.loads(body))
        except ValueError:  # not JSON, a refused value, or a ValidationError: FastAPI answers it
            await self.app(scope, _replay(body, receive), send)
            return
        if route.wants_request:
            kwargs["request"] = Request(scope, receive)
        kwargs["broker"] = scope["app"].state.broker
        try:
            response = await route.endpoint(**kwargs)
        except BrokerError as exc:
            response = await on_broker_error(Request(scope), exc)
        await response(scope, receive, send)

    def _arguments(self, route: _HotRoute, match: re.Match[str], scope: Scope) -> dict[str, Any] | None:
        """The endpoint's path and header arguments, or None when FastAPI should handle the request."""
        headers = Headers(scope=scope)
        content_type = headers.get("content-type")
        if content_type is not None and content_type.split(";")[0].strip().lower() not in _JSON_TYPES:
            return None
        if route.scope is not None and scope["app"].state.keys.enabled:
            key = scope.get(auth.API_KEY)
            if key is None or not key.allows(route.scope):
                return None
        kwargs = _path_args(match)
        if kwargs is not None and route.wants_correlation:
            correlation = headers.get("x-correlation-id")
            if correlation is not None and (len(correlation) > _CORRELATION_MAX or not _LINE.fullmatch(correlation)):
                return None
            kwargs["correlation_id"] = correlation
        if kwargs is not None and route.wants_trace:
            kwargs["traceparent"] = headers.get("traceparent")
            kwargs["tracestate"] = headers.get("tracestate")
        return kwargs


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands over the already-read body first, then the client's own messages."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
