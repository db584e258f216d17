"""The spec as generated clients read it: typed errors, camelCase operation ids, lint-ready info."""

from __future__ import annotations

import re
from typing import Any

import pytest

from jobbroker.api import schemas
from jobbroker.api.schemas import Strict
from jobbroker.app import create_app
from jobbroker.settings import Settings

SPEC: dict[str, Any] = create_app(Settings()).openapi()
OPERATIONS = [(path, method, op) for path, ops in SPEC["paths"].items() for method, op in ops.items()]


@pytest.mark.parametrize(("path", "method", "op"), OPERATIONS, ids=[f"{m} {p}" for p, m, _ in OPERATIONS])
def test_every_error_answer_is_a_problem_under_problem_json(path: str, method: str, op: dict[str, Any]) -> None:
    errors = {status: answer for status, answer in op["responses"].items() if status[0] in "45"}
    assert any(s.startswith("4") for s in errors), "no 4xx declared"
    for status, answer in errors.items():
        if (path, status) == ("/readyz", "503"):
            continue  # readiness answers its Health document
        assert answer["content"] == {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def test_the_problem_schema_has_the_rfc_9457_fields_and_the_code() -> None:
    problem = SPEC["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "code", "instance", "errors"} <= set(problem["properties"])
    assert {"type", "title", "status", "detail", "code"} <= set(problem["required"])
    assert "HTTPValidationError" not in SPEC["components"]["schemas"]


def test_operation_ids_are_unique_camel_case_verbs_on_nouns() -> None:
    ids = [op["operationId"] for _, _, op in OPERATIONS]
    assert len(ids) == len(set(ids))
    for operation_id in ids:
        assert re.fullmatch(
            r"(get|list|create|update|delete|enqueue|lease|heartbeat|ack|nack|release|cancel|replay|"
            r"purge|rotate|export)[A-Z][A-Za-z]*",
            operation_id,
        ), operation_id
    assert {"enqueueJob", "enqueueJobs", "leaseJobs", "ackJob", "ackJobs", "getJob", "listJobs", "listDeadJobs"} <= set(
        ids
    )


def test_every_route_keeps_its_summary_and_description() -> None:
    for path, method, op in OPERATIONS:
        assert op.get("summary") and op.get("description"), f"{method} {path}"


def test_info_servers_license_and_security_are_declared_for_every_route() -> None:
    assert SPEC["info"]["license"]["name"] and SPEC["servers"][0]["url"].startswith("http")
    for path, _, op in OPERATIONS:
        expected_open = path in ("/healthz", "/readyz")
        assert ("security" in op) and (op["security"] == []) == expected_open, path


def _request_models(cls: type = Strict) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_request_models(sub)]
    return found


@pytest.mark.parametrize("model", _request_models(), ids=lambda m: m.__name__)
def test_every_number_field_of_a_body_takes_the_exact_floats_bodies_decode_to(model: type) -> None:
    """Bodies decode floats as jiter's LosslessFloat (core/jsontext.py); a strict `float` field
    would refuse them all, so every float field is a `Number` or `OptionalNumber`."""
    for name, field in model.model_fields.items():
        if "float" in str(field.annotation):
            assert any(getattr(m, "func", None) is schemas._float for m in field.metadata), f"{model.__name__}.{name}"
