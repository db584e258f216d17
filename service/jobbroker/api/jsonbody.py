"""Request bodies decoded exactly (core/jsontext.py), on the fast path and through FastAPI alike.

FastAPI decodes a body with `json.loads`, which takes NaN and Infinity, turns 1e400 into inf and
keeps lone surrogates, so every router here builds its routes with `JsonRoute`, whose request
decodes with `jsontext.loads`: refused values answer 422 naming their place, malformed text 400.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from jobbroker.core import jsontext
from jobbroker.core.errors import InvalidInput


def rejection(exc: jsontext.JsonRejected) -> InvalidInput:
    where = ".".join(map(str, ("body", *exc.loc)))
    errors = [{"loc": ["body", *exc.loc], "msg": exc.msg, "type": "json_value"}]
    return InvalidInput(f"{where}: {exc.msg}", errors=errors)


def decode(body: bytes) -> Any:
    """The body's JSON value; raises json.JSONDecodeError (400) or InvalidInput (422)."""
    try:
        return jsontext.loads(body)
    except jsontext.JsonMalformed as exc:
        raise json.JSONDecodeError(str(exc), "", 0) from None
    except jsontext.JsonRejected as exc:
        raise rejection(exc) from None


class JsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = decode(await self.body())
            except InvalidInput as exc:
                # FastAPI turns anything but HTTPException into a 400; the problem handler reads the cause.
                raise HTTPException(422) from exc
        return self._json


class JsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handler(request: Request) -> Response:
            return await handle(JsonRequest(request.scope, request.receive))

        return handler
