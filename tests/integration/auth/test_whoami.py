"""GET /v1/whoami: any valid key learns its own public id and scopes (the console hides what the
key may not do); no key or an unknown one is a 401."""

from __future__ import annotations

import httpx
import pytest
from auth_support import KEYS, bearer, scopes

from jobbroker import keys


@pytest.mark.parametrize("name", sorted(KEYS))
async def test_each_key_sees_its_id_and_scopes(secured: httpx.AsyncClient, name: str) -> None:
    answer = await secured.get("/v1/whoami", headers=bearer(KEYS[name]))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["authentication"] is True
    assert set(body["scopes"]) == {str(s) for s in scopes(name)}
    assert body["key_id"] == keys.digest(KEYS[name]).hex()[:12]
    assert KEYS[name] not in answer.text


async def test_no_key_or_an_unknown_key_is_refused(secured: httpx.AsyncClient) -> None:
    assert (await secured.get("/v1/whoami")).status_code == 401
    assert (await secured.get("/v1/whoami", headers=bearer("jbk_nobody"))).status_code == 401


async def test_without_keys_every_caller_holds_every_scope(client: httpx.AsyncClient) -> None:
    body = (await client.get("/v1/whoami")).json()
    assert body == {"authentication": False, "key_id": None, "scopes": [str(s) for s in keys.Scope]}


async def test_a_read_key_looks_but_never_acts(secured: httpx.AsyncClient) -> None:
    reader = bearer(KEYS["read"])
    assert (await secured.get("/v1/queues", headers=reader)).status_code == 200
    assert (await secured.get("/v1/jobs", headers=reader)).status_code == 200
    assert (await secured.get("/v1/dlq", headers=reader)).status_code == 200
    for method, path, body in [
        ("PATCH", "/v1/queues/read-q", {"paused": True}),
        ("POST", "/v1/dlq/replay", {"queue": "read-q"}),
        ("POST", "/v1/queues/read-q/jobs", {"type": "t"}),
        ("POST", "/v1/queues/read-q/leases", {"worker_id": "w"}),
    ]:
        answer = await secured.request(method, path, json=body, headers=reader)
        assert answer.status_code == 403, f"{method} {path}: {answer.text}"
    assert (await secured.get("/v1/queues/read-q", headers=bearer(KEYS["admin"]))).json()["paused"] is False
