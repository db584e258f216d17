"""The OpenAPI document as clients generate from it: every error answer typed as a Problem under
`application/problem+json` (the only error media type the broker sends), camelCase operation ids,
and the info, servers and security a linter (redocly) asks for."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from jobbroker.api.schemas import Problem

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
# Operation ids are verbs on nouns. A route whose function name is already one (`get_queue`,
# `create_schedule`) gets its camelCase form; these are named otherwise.
OPERATION_IDS = {
    "enqueue": "enqueueJob",
    "enqueue_batch": "enqueueJobs",
    "cancel": "cancelJob",
    "replay": "replayJob",
    "lease": "leaseJobs",
    "heartbeat": "heartbeatJob",
    "ack": "ackJob",
    "nack": "nackJob",
    "release": "releaseJob",
    "ack_many": "ackJobs",
    "nack_many": "nackJobs",
    "list_dead": "listDeadJobs",
    "replay_dead": "replayDeadJobs",
    "purge_dead": "purgeDeadJobs",
    "rotate_secret": "rotateSubscriptionSecret",
    "healthz": "getHealth",
    "readyz": "getReadiness",
}
SERVERS = [{"url": "http://127.0.0.1:8080", "description": "A local broker (`jobbroker serve`, the default bind)."}]
LICENSE = {"name": "Apache 2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0.html"}
# FastAPI's own validation schemas: every 422 here is a Problem instead.
FASTAPI_ERROR_SCHEMAS = ("HTTPValidationError", "ValidationError")


def operation_id(route: APIRoute) -> str:
    return OPERATION_IDS.get(route.name) or re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), route.name)


def install(app: FastAPI, open_paths: frozenset[str]) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(build(), open_paths)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    # FastAPI caches the first build on app.openapi_schema: start from scratch.
    app.openapi_schema = None


def _own_model(answer: dict[str, Any]) -> bool:
    """An error answer a route declares with a model of its own (readiness answers its Health)."""
    ref = answer.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
    return bool(ref) and not ref.endswith(FASTAPI_ERROR_SCHEMAS)


def complete(spec: dict[str, Any], open_paths: frozenset[str]) -> dict[str, Any]:
    spec["info"]["license"] = LICENSE
    spec["servers"] = SERVERS
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem.pop("$defs", {}))
    schemas["Problem"] = problem
    for path, operations in spec.get("paths", {}).items():
        for operation in operations.values():
            for status, answer in operation.get("responses", {}).items():
                if status[0] in "45" and not _own_model(answer):
                    answer["content"] = {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}}
            if path in open_paths:
                operation["security"] = []
    for name in FASTAPI_ERROR_SCHEMAS:
        schemas.pop(name, None)
    return spec
