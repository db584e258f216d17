"""API keys on the wire: `Authorization: Bearer <key>`, checked before a request body is read, and
one scope per route.

Apply a scope to a whole router, or to one route:

    router = APIRouter(tags=["subscriptions"], **protected(Scope.ADMIN))
    @router.post("/v1/queues/{queue}/jobs", dependencies=[requires(Scope.PRODUCE)], ...)

`admit` (called by the edge middleware) answers 401 to a missing or unknown key on every path but
the open ones (probes, docs, and /metrics unless `metrics.require_auth`); the route's dependency
answers 403 to a key without the scope, and declares the bearer scheme in OpenAPI. With no keys
configured, both step aside.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Security
from fastapi.params import Depends as DependsParam
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.types import Scope as AsgiScope

from jobbroker.api.problems import problem, responses
from jobbroker.api.responses import ProblemJSON
from jobbroker.core.errors import Forbidden, Unauthorized
from jobbroker.keys import ApiKey, KeyRing, Scope

log = logging.getLogger("jobbroker.auth")
# The request scope's key under which the middleware leaves the caller's key.
API_KEY = "jobbroker.api_key"
# The console's pages and assets hold no data: their scripts call the API with the operator's key.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", "/ui"})
OPEN_PREFIXES = ("/static/", "/ui/")
CHALLENGE = 'Bearer realm="jobbroker"'
READ_METHODS = frozenset({"GET", "HEAD"})

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    bearerFormat="jbk_...",
    description="An API key from `jobbroker keys create`, sent as `Authorization: Bearer <key>`. Scopes: "
    "`produce` (enqueue), `consume` (lease, heartbeat, ack, nack), `metrics` (a protected /metrics), "
    "`read` (every GET of an admin route: look, never act), `admin` (everything).",
)


def challenge(invalid: bool) -> str:
    """The WWW-Authenticate answer of a 401 (RFC 6750): `invalid_token` when a key was sent."""
    return CHALLENGE + (', error="invalid_token"' if invalid else "")


def keyring(app: Any) -> KeyRing:
    return app.state.keys


def _token(header: str | None) -> str | None:
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def authenticate(keys: KeyRing, authorization: str | None) -> ApiKey:
    token = _token(authorization)
    if token is None:
        raise Unauthorized("an API key is required: send `Authorization: Bearer <key>`")
    key = keys.find(token)
    if key is None:
        raise InvalidKey("the API key is not valid")
    return key


def admit(keys: KeyRing, open_paths: frozenset[str], scope: AsgiScope) -> ProblemJSON | None:
    """Check a request's key before its body is read or parsed: None lets it on (its key left in the
    scope for the routes' scope checks), otherwise the 401 answer."""
    path = scope["path"]
    if not keys.enabled or path in open_paths or path.startswith(OPEN_PREFIXES):
        return None
    try:
        scope[API_KEY] = authenticate(keys, Headers(scope=scope).get("authorization"))
    except Unauthorized as exc:
        log.info("request refused: %s", exc.detail, extra={"path": path, "method": scope["method"]})
        return unauthorized(exc, path)
    return None


class InvalidKey(Unauthorized):
    """A key was sent but matches none configured."""


def _required(scope: Scope) -> Callable[..., Awaitable[None]]:
    """The dependency that lets through only keys holding `scope` (or `admin`)."""

    async def require(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer, scopes=[scope.value])],
    ) -> None:
        keys = keyring(request.app)
        if not keys.enabled:
            return
        key = request.scope.get(API_KEY)
        if key is None:
            header = f"Bearer {credentials.credentials}" if credentials is not None else None
            key = request.scope[API_KEY] = authenticate(keys, header)
        if not key.allows(scope) and not reads(key, scope, request.method):
            log.info("request forbidden", extra={"key_id": key.id, "scope": str(scope), "path": request.url.path})
            raise Forbidden(f"this API key lacks the `{scope}` scope", scope=str(scope))

    require.scope = scope  # type: ignore[attr-defined]
    return require


def reads(key: ApiKey, scope: Scope, method: str) -> bool:
    """A `read` key may make every GET (or HEAD) an admin key may: look, never act."""
    return scope is Scope.ADMIN and method in READ_METHODS and Scope.READ in key.scopes


_REQUIRED = {scope: _required(scope) for scope in Scope}


def scope_of(call: Any) -> Scope | None:
    """The scope a dependency requires, when it is one of these."""
    return getattr(call, "scope", None) if call in _REQUIRED.values() else None


def requires(scope: Scope) -> DependsParam:
    return Depends(_REQUIRED[scope])


def protected(scope: Scope) -> dict[str, Any]:
    """Router arguments: every route needs `scope`, and declares the 401 and 403 answers."""
    return {"dependencies": [requires(scope)], "responses": responses(401, 403)}


def unauthorized(exc: Unauthorized, path: str) -> ProblemJSON:
    response = problem(exc.status, exc.code, exc.title, exc.detail, instance=path)
    response.headers["WWW-Authenticate"] = challenge(isinstance(exc, InvalidKey))
    return response


async def on_unauthorized(request: Request, exc: Exception) -> ProblemJSON:
    assert isinstance(exc, Unauthorized)
    return unauthorized(exc, request.url.path)


def install(app: FastAPI, keys: KeyRing) -> None:
    """Keys on app.state, and the 401 answer's challenge header for keys refused inside a route."""
    app.state.keys = keys
    app.add_exception_handler(Unauthorized, on_unauthorized)


def open_paths(metrics_open: bool) -> frozenset[str]:
    """The paths any caller may use: probes and docs, and /metrics unless it requires a key."""
    return OPEN_PATHS | {"/metrics"} if metrics_open else OPEN_PATHS


def warn_if_open(keys: KeyRing) -> None:
    if not keys.enabled:
        log.warning("no API keys configured: authentication is off (development mode)")
