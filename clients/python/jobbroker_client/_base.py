"""What `Client` and `AsyncClient` share: configuration, request building, retry policy, parsing."""

from __future__ import annotations

import os
import random
import socket
import uuid
from typing import Any, TypeVar

import httpx

from ._exceptions import JobbrokerError, TransportError, UnexpectedResponse, error_from_response
from ._ops import Call
from ._version import __version__

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
DEFAULT_RETRIES = 3
# Statuses that mean "the broker did not do it, try again": a proxy's or the broker's own 503.
RETRY_STATUSES = frozenset({502, 503, 504})
# Errors raised before the request left this process: resending can never apply a request twice.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class BaseClient:
    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.base_url = (base_url or os.environ.get("JOBBROKER_URL") or DEFAULT_URL).rstrip("/")
        api_key = api_key if api_key is not None else os.environ.get("JOBBROKER_API_KEY")
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.retries = retries
        self.headers = {"User-Agent": f"jobbroker-client-python/{__version__}", **(headers or {})}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"

    def _request_args(self, call: Call[Any]) -> dict[str, Any]:
        timeout = self.timeout
        if call.read_timeout is not None and (timeout.read or 0) < call.read_timeout:
            timeout = httpx.Timeout(
                connect=timeout.connect, read=call.read_timeout, write=timeout.write, pool=timeout.pool
            )
        args: dict[str, Any] = {"method": call.method, "url": call.path, "timeout": timeout}
        if call.json is not None:
            args["json"] = call.json
        if call.params:
            args["params"] = dict(call.params)
        if call.headers:
            args["headers"] = dict(call.headers)
        return args

    def _retry_delay(self, call: Call[Any], attempt: int, outcome: httpx.Response | Exception) -> float | None:
        """Seconds to wait before resending `call`, or None to give up and report `outcome`."""
        if attempt >= self.retries:
            return None
        if isinstance(outcome, httpx.Response):
            if not (call.idempotent and outcome.status_code in RETRY_STATUSES):
                return None
            retry_after = outcome.headers.get("Retry-After", "")
            if retry_after.isdigit():
                return min(float(retry_after), 30.0)
        elif not (call.idempotent or isinstance(outcome, NOT_SENT)):
            return None
        return min(0.1 * 2.0**attempt, 2.0) * (0.5 + random.random() / 2)

    def _transport_error(self, call: Call[Any], exc: httpx.TransportError) -> JobbrokerError:
        name = type(exc).__name__
        return TransportError(f"{call.method} {self.base_url}{call.path} failed: {name}: {exc}")

    def _parse(self, call: Call[T], response: httpx.Response) -> T:
        if response.status_code >= 400:
            raise error_from_response(response)
        if response.status_code == 204 or not response.content:
            return call.parse(None)
        try:
            body = response.json()
        except ValueError as exc:
            raise UnexpectedResponse(
                f"{call.method} {call.path} answered {response.status_code} with non-JSON content",
                status=response.status_code,
                response=response,
            ) from exc
        return call.parse(body)
