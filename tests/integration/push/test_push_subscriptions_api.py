"""The /v1/subscriptions API: CRUD, secrets, validation, and refused subscriber URLs."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from push_support import subscribe

URL = "http://127.0.0.1:9/hook"
SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


async def count(pool: asyncpg.Pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM subscription")


async def test_create_answers_the_subscription_with_a_generated_secret_shown_once(client: httpx.AsyncClient) -> None:
    created = await subscribe(client, "emails", URL, types=["send-email"], max_concurrency=3, timeout_seconds=5)
    assert created["secret"].startswith("whsec_") and len(base64.b64decode(created["secret"][6:])) == 32
    assert {k: created[k] for k in ("queue", "url", "types", "max_concurrency", "timeout_seconds", "paused")} == {
        "queue": "emails",
        "url": URL,
        "types": ["send-email"],
        "max_concurrency": 3,
        "timeout_seconds": 5,
        "paused": False,
    }
    fetched = (await client.get(f"/v1/subscriptions/{created['id']}")).json()
    assert "secret" not in fetched
    assert fetched == {k: v for k, v in created.items() if k != "secret"}
    listed = (await client.get("/v1/subscriptions")).json()
    assert [s["id"] for s in listed["items"]] == [created["id"]] and "secret" not in listed["items"][0]
    second = await subscribe(client, "emails", URL)
    assert second["secret"] != created["secret"]
    assert (second["max_concurrency"], second["timeout_seconds"], second["types"]) == (10, 30, None)


async def test_a_given_secret_is_kept(client: httpx.AsyncClient) -> None:
    assert (await subscribe(client, "q", URL, secret=SECRET))["secret"] == SECRET


async def test_list_filters_by_queue_and_pages(client: httpx.AsyncClient) -> None:
    ids = [(await subscribe(client, "a", URL))["id"] for _ in range(3)]
    await subscribe(client, "b", URL)
    first = (await client.get("/v1/subscriptions", params={"queue": "a", "limit": 2})).json()
    assert [s["id"] for s in first["items"]] == ids[:2] and first["next_cursor"]
    rest = (await client.get("/v1/subscriptions", params={"queue": "a", "cursor": first["next_cursor"]})).json()
    assert [s["id"] for s in rest["items"]] == ids[2:] and rest["next_cursor"] is None
    for params in ({"cursor": "nonsense"}, {"limit": 0}, {"limit": 501}, {"queue": "bad queue"}):
        assert (await client.get("/v1/subscriptions", params=params)).status_code == 422, params


async def test_patch_changes_only_the_given_fields(client: httpx.AsyncClient) -> None:
    sub = await subscribe(client, "q", URL, types=["a"], description="x")
    patched = await client.patch(f"/v1/subscriptions/{sub['id']}", json={"max_concurrency": 2, "types": None})
    assert patched.status_code == 200
    body = patched.json()
    assert (body["max_concurrency"], body["types"], body["description"], body["url"]) == (2, None, "x", URL)
    assert body["updated_at"] > sub["updated_at"]
    same = await client.patch(f"/v1/subscriptions/{sub['id']}", json={})
    assert same.status_code == 200 and same.json()["max_concurrency"] == 2


async def test_rotation_shows_the_new_secret_and_when_the_old_stops_signing(client: httpx.AsyncClient) -> None:
    sub = await subscribe(client, "q", URL)
    rotated = await client.post(f"/v1/subscriptions/{sub['id']}/rotate-secret", json={"overlap_seconds": 3600})
    assert rotated.status_code == 200
    body = rotated.json()
    assert body["secret"] != sub["secret"] and body["secret_rotated_at"] is not None
    ends = datetime.fromisoformat(body["previous_secret_expires_at"])
    assert abs(ends - datetime.now(UTC) - timedelta(hours=1)) < timedelta(minutes=1)
    given = await client.post(f"/v1/subscriptions/{sub['id']}/rotate-secret", json={"secret": SECRET})
    assert given.json()["secret"] == SECRET
    default = datetime.fromisoformat(given.json()["previous_secret_expires_at"]) - datetime.now(UTC)
    assert timedelta(hours=23) < default <= timedelta(hours=24)
    assert "secret" not in (await client.get(f"/v1/subscriptions/{sub['id']}")).json()


async def test_delete_removes_it(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    sub = await subscribe(client, "q", URL)
    assert (await client.delete(f"/v1/subscriptions/{sub['id']}")).status_code == 204
    assert await count(pool) == 0
    again = await client.delete(f"/v1/subscriptions/{sub['id']}")
    assert again.status_code == 404 and again.json()["code"] == "subscription_not_found"


@pytest.mark.parametrize("sid", ["999999", "abc", "0", "-1", "99999999999999999999", "1e3"])
@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [("GET", "", None), ("PATCH", "", {"paused": True}), ("DELETE", "", None), ("POST", "/rotate-secret", None)],
)
async def test_unknown_ids_answer_404(
    client: httpx.AsyncClient, sid: str, method: str, suffix: str, body: dict[str, Any] | None
) -> None:
    response = await client.request(method, f"/v1/subscriptions/{sid}{suffix}", json=body)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "subscription_not_found"


@pytest.mark.parametrize(
    "fields",
    [
        {"queue": "bad queue"},
        {"queue": None},
        {"url": ""},
        {"url": "x" * 3000},
        {"url": 5},
        {"types": []},
        {"types": ["has space"]},
        {"types": "a"},
        {"max_concurrency": 0},
        {"max_concurrency": 1001},
        {"max_concurrency": "many"},
        {"timeout_seconds": 0},
        {"timeout_seconds": 901},
        {"paused": "maybe"},
        {"secret": "not-a-secret"},
        {"secret": "whsec_" + base64.b64encode(b"short").decode()},
        {"secret": "whsec_" + base64.b64encode(b"k" * 65).decode()},
        {"secret": "whsec_!!!!"},
        {"description": "d" * 501},
        {"description": "nul \u0000 inside"},
        {"types": ["nul\u0000"]},
        {"url": "http://127.0.0.1/\u0000"},
        {"unknown": 1},
    ],
)
async def test_invalid_fields_are_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, pool: asyncpg.Pool, fields: dict[str, Any]
) -> None:
    response = await client.post("/v1/subscriptions", json={"queue": "q", "url": URL, **fields})
    assert response.status_code == 422, response.text
    assert response.json()["code"] in ("validation_error", "url_not_allowed")
    assert await count(pool) == 0


@pytest.mark.parametrize(
    "patch",
    [
        {"url": None},
        {"paused": None},
        {"max_concurrency": None},
        {"timeout_seconds": None},
        {"max_concurrency": 0},
        {"queue": "other"},
        {"secret": SECRET},
        {"url": "http://10.0.0.1/"},
    ],
)
async def test_invalid_patches_change_nothing(
    client: httpx.AsyncClient, pool: asyncpg.Pool, patch: dict[str, Any]
) -> None:
    sub = await subscribe(client, "q", URL)
    response = await client.patch(f"/v1/subscriptions/{sub['id']}", json=patch)
    assert response.status_code == 422, response.text
    fetched = (await client.get(f"/v1/subscriptions/{sub['id']}")).json()
    assert fetched == {k: v for k, v in sub.items() if k != "secret"}


async def test_malformed_bodies_answer_4xx(client: httpx.AsyncClient) -> None:
    for content in (b"{", b"[]", b"null", b'"x"', b"\xff"):
        response = await client.post("/v1/subscriptions", content=content, headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500, (content, response.status_code)
    sub = await subscribe(client, "q", URL)
    response = await client.post(
        f"/v1/subscriptions/{sub['id']}/rotate-secret", content=b"{", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    bad_overlap = await client.post(f"/v1/subscriptions/{sub['id']}/rotate-secret", json={"overlap_seconds": -1})
    assert bad_overlap.status_code == 422


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://10.0.0.1/hook", "10.0.0.1"),
        ("http://192.168.1.10:8080/hook", "192.168.1.10"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("http://[::ffff:10.0.0.1]/hook", "::ffff:10.0.0.1"),
        ("http://[fd00::1]/hook", "fd00::1"),
        ("http://0.0.0.0:8080/", "0.0.0.0"),
        ("http://100.64.0.1/", "100.64.0.1"),
        ("ftp://example.com/hook", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("http://user:pw@127.0.0.1/hook", "credentials"),
        ("http:///nohost", "no host"),
        ("http://127.0.0.1:99999/", "malformed"),
        ("http://127.0.0.1/a b", "spaces"),
        ("http://exämple.com/", "ASCII"),
        ("http://does-not-exist.invalid/hook", "does not resolve"),
    ],
)
async def test_a_disallowed_url_is_refused_with_a_clear_422(
    client: httpx.AsyncClient, pool: asyncpg.Pool, url: str, why: str
) -> None:
    response = await client.post("/v1/subscriptions", json={"queue": "q", "url": url})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "url_not_allowed" and why in problem["detail"]
    assert await count(pool) == 0


async def test_loopback_is_allowed_by_default(client: httpx.AsyncClient) -> None:
    for url in ("http://127.0.0.1:9/hook", "http://localhost:9/hook", "http://[::1]:9/hook"):
        await subscribe(client, "q", url)
