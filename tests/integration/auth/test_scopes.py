"""Every route under every kind of key: allowed, forbidden, no key, unknown key. The table walks
`app.routes`, so a route added without a scope rule meets the contract's default (admin) and fails
here if it is open to other keys."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from auth_support import KEYS, bearer, scopes
from fastapi.routing import APIRoute

from jobbroker.api import auth
from jobbroker.api.routes import api_routes
from jobbroker.app import create_app, operation_id
from jobbroker.keys import Scope
from jobbroker.settings import Settings

# The contract (DESIGN.md, docs/operations.md): what each operation needs. Any other route: admin.
PRODUCE_OPS = {"enqueueJob", "enqueueJobs"}
CONSUME_OPS = {"leaseJobs", "heartbeatJob", "ackJob", "nackJob", "releaseJob", "ackJobs", "nackJobs"}
OPEN_PATHS = {"/healthz", "/readyz", "/docs", "/redoc", "/openapi.json"}
# Any valid key may ask these (the caller's own key id and scopes): no scope, but still a key.
ANY_KEY_PATHS = {"/v1/whoami"}
WRONG_KEY = "jbk_not-a-key-anyone-was-given"


def expected_scope(route: APIRoute) -> Scope | None:
    if route.path in OPEN_PATHS or route.path in ANY_KEY_PATHS or route.path == "/metrics":
        return None
    if operation_id(route) in PRODUCE_OPS:
        return Scope.PRODUCE
    if operation_id(route) in CONSUME_OPS:
        return Scope.CONSUME
    return Scope.ADMIN


def declared_scope(route: APIRoute) -> Scope | None:
    found = [auth.scope_of(d.call) for d in route.dependant.dependencies]
    declared = [s for s in found if s is not None]
    assert len(declared) <= 1, f"{route.path} declares several scopes"
    return declared[0] if declared else None


def _operations() -> list[tuple[str, str, Scope | None]]:
    app = create_app(Settings())
    operations = []
    for route in api_routes(app):
        for method in sorted(route.methods - {"HEAD"}):
            path = route.path_format.replace("{id}", "1").replace("{queue}", "auth-q").replace("{name}", "auth-s")
            path = path.replace("{key}", "auth-k")
            assert "{" not in path, f"fill the path parameter of {route.path}"
            operations.append((method, path, expected_scope(route)))
    return operations


OPERATIONS = _operations()
SCOPED = [op for op in OPERATIONS if op[2] is not None]


def test_every_route_declares_the_scope_the_contract_gives_it() -> None:
    app = create_app(Settings())
    routes = api_routes(app)
    assert len(routes) >= 20
    for route in routes:
        assert declared_scope(route) == expected_scope(route), f"{sorted(route.methods)} {route.path}"


def test_scoped_routes_declare_the_bearer_scheme_and_their_401_and_403() -> None:
    spec = create_app(Settings()).openapi()
    assert spec["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "jbk_...",
        "description": spec["components"]["securitySchemes"]["apiKey"]["description"],
    }
    for method, path, scope in SCOPED:
        template = next(p for p in spec["paths"] if re.fullmatch(re.sub(r"\{\w+\}", "[^/]+", p), path))
        operation = spec["paths"][template][method.lower()]
        assert operation["security"] == [{"apiKey": [str(scope)]}], f"{method} {template}"
        assert {"401", "403"} <= set(operation["responses"]), f"{method} {template}"


async def _call(client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    body: Any = {} if method in ("POST", "PATCH", "PUT") else None
    return await client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "scope"), SCOPED, ids=[f"{m} {p}" for m, p, _ in SCOPED])
async def test_route_under_each_key(secured: httpx.AsyncClient, method: str, path: str, scope: Scope) -> None:
    missing = await _call(secured, method, path, {})
    assert missing.status_code == 401, missing.text
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["code"] == "unauthorized"
    assert missing.headers["www-authenticate"].startswith("Bearer")

    wrong = await _call(secured, method, path, bearer(WRONG_KEY))
    assert wrong.status_code == 401 and wrong.json()["code"] == "unauthorized", wrong.text
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]

    for name, key in KEYS.items():
        answer = await _call(secured, method, path, bearer(key))
        # A read key may make every GET an admin key may.
        looks = Scope.READ in scopes(name) and scope is Scope.ADMIN and method == "GET"
        if scope in scopes(name) or Scope.ADMIN in scopes(name) or looks:
            assert answer.status_code not in (401, 403), f"{name}: {answer.text}"
        else:
            assert answer.status_code == 403, f"{name}: {answer.status_code} {answer.text}"
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["code"] == "forbidden"


@pytest.mark.parametrize("path", sorted(OPEN_PATHS))
async def test_probes_and_docs_stay_open(secured: httpx.AsyncClient, path: str) -> None:
    assert (await secured.get(path)).status_code == 200


async def test_an_unauthenticated_body_is_refused_before_it_is_read(secured: httpx.AsyncClient) -> None:
    """Malformed JSON or an oversized body from a caller without a key still answers 401."""
    for content in (b"{not json", b"x" * (33 * 1024 * 1024)):
        answer = await secured.post("/v1/queues/q/jobs", content=content, headers={"content-type": "application/json"})
        assert answer.status_code == 401, answer.text


@pytest.mark.parametrize(
    "header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", f"Token {KEYS['admin']}", f"bearer{KEYS['admin']}"]
)
async def test_other_authorization_forms_are_refused(secured: httpx.AsyncClient, header: str) -> None:
    answer = await secured.get("/v1/queues", headers={"Authorization": header})
    assert answer.status_code == 401, answer.text


async def test_scheme_name_is_case_insensitive(secured: httpx.AsyncClient) -> None:
    answer = await secured.get("/v1/queues", headers={"Authorization": f"bearer {KEYS['admin']}"})
    assert answer.status_code == 200, answer.text


async def test_without_keys_every_route_is_open(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v1/queues")
    assert answer.status_code == 200
    assert (await client.post("/v1/queues/q/jobs", json={"type": "t"})).status_code == 201
