"""The spec is the product's face: complete, descriptive, committed, and its docs served offline."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from jobbroker.app import create_app
from jobbroker.settings import Settings

SPEC = Path(__file__).resolve().parents[3] / "openapi" / "openapi.json"


def test_committed_spec_matches_the_app() -> None:
    served = json.loads(json.dumps(create_app(Settings()).openapi()))
    assert SPEC.exists(), "run `jobbroker openapi --output openapi/openapi.json`"
    assert json.loads(SPEC.read_text()) == served, "openapi/openapi.json is stale: run `make openapi`"


def test_every_operation_is_documented() -> None:
    spec = create_app(Settings()).openapi()
    ids = []
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            where = f"{method.upper()} {path}"
            ids.append(op["operationId"])
            assert op.get("summary") and op.get("description"), f"{where} lacks a summary or description"
            assert any(code.startswith("2") for code in op["responses"]), where
            if path.startswith("/v1/"):
                assert "422" in op["responses"] and "503" in op["responses"], f"{where} hides its error answers"
    assert len(ids) == len(set(ids))


async def test_docs_are_served_without_a_cdn(client: httpx.AsyncClient) -> None:
    for page in ("/docs", "/redoc"):
        html = (await client.get(page)).text
        assert "cdn." not in html and "unpkg" not in html and "googleapis" not in html
    assert (await client.get("/static/swagger-ui-bundle.js")).status_code == 200
    assert (await client.get("/static/redoc.standalone.js")).status_code == 200


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["schema_current"] is True
