"""Bad input of any shape, against a real server: a 4xx problem+json, never a 500, never a partial write."""

from __future__ import annotations

import uuid

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from(
    [
        "type",
        "payload",
        "priority",
        "delay_seconds",
        "run_at",
        "max_attempts",
        "backoff",
        "timeout_seconds",
        "idempotency_key",
        "correlation_id",
        "tags",
        "worker_id",
        "max_jobs",
        "wait_seconds",
        "visibility_timeout_seconds",
        "types",
        "lease_id",
        "error",
        "retryable",
        "retry_in_seconds",
        "result",
        "items",
        "jobs",
        "ids",
        "queue",
        "limit",
        "since",
        "until",
        "paused",
        "max_concurrency",
    ]
)
bodies = json_values | st.dictionaries(field_names, json_values, max_size=6)
ROUTES = [
    ("POST", "/v1/queues/{q}/jobs"),
    ("POST", "/v1/queues/{q}/jobs:batch"),
    ("POST", "/v1/queues/{q}/leases"),
    ("POST", "/v1/jobs/1/heartbeat"),
    ("POST", "/v1/jobs/1/ack"),
    ("POST", "/v1/jobs/1/nack"),
    ("POST", "/v1/acks"),
    ("POST", "/v1/nacks"),
    ("POST", "/v1/dlq/replay"),
    ("POST", "/v1/dlq/purge"),
    ("PATCH", "/v1/queues/{q}"),
]


def assert_problem_or_success(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["status"] == response.status_code and problem["code"] and problem["detail"]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_arbitrary_json_bodies_never_cause_a_500(broker_url: str, method: str, path: str) -> None:
    queue = f"fuzz-{uuid.uuid4().hex[:8]}"
    created = 0
    with httpx.Client(base_url=broker_url, timeout=10) as http:

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(body=bodies)
        def check(body: object) -> None:
            nonlocal created
            if isinstance(body, dict) and "wait_seconds" in body:
                body["wait_seconds"] = 0
            response = http.request(method, path.format(q=queue), json=body)
            assert_problem_or_success(response)
            if response.status_code == 201 and path.endswith("/jobs"):
                created += 1
            if response.status_code == 201 and path.endswith(":batch"):
                created += len(response.json()["jobs"])

        check()
        stats = http.get(f"/v1/queues/{queue}").json()
        if "jobs" in path:
            assert sum(stats["counts"].values()) == created, "a refused request left jobs behind"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"null",
        b"[]",
        b'{"type": "t", "payload": }',
        b"\xff\xfe",
        b'{"type": "t"}' * 2,
        b'{"type": "t", "priority": 1e999}',
        b'{"type": "t", "delay_seconds": NaN}',
        b'{"type": "t", "run_at": "yesterday"}',
        b'{"type": "t", "priority": 99999999999999999999}',
    ],
)
def test_malformed_bodies_are_refused_with_a_problem(broker_url: str, raw: bytes) -> None:
    queue = f"raw-{uuid.uuid4().hex[:8]}"
    response = httpx.post(
        f"{broker_url}/v1/queues/{queue}/jobs", content=raw, headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500
    assert_problem_or_success(response)
    assert sum(httpx.get(f"{broker_url}/v1/queues/{queue}").json()["counts"].values()) == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/queues/bad%20name/jobs"),
        ("POST", "/v1/queues/" + "x" * 200 + "/jobs"),
        ("GET", "/v1/jobs/abc"),
        ("GET", "/v1/jobs/99999999999999999999999"),
        ("GET", "/v1/jobs/-1"),
        ("GET", "/v1/nowhere"),
        ("DELETE", "/v1/jobs/1"),
        ("GET", "/v1/jobs?limit=0"),
        ("GET", "/v1/jobs?state=lost"),
        ("GET", "/v1/dlq?since=notadate"),
    ],
)
def test_bad_paths_and_queries_are_refused_with_a_problem(broker_url: str, method: str, path: str) -> None:
    response = httpx.request(method, f"{broker_url}{path}", json={"type": "t"})
    assert 400 <= response.status_code < 500
    assert_problem_or_success(response)


def test_a_body_over_the_request_limit_is_refused_with_413(broker_url: str) -> None:
    queue = f"big-{uuid.uuid4().hex[:8]}"
    blob = b'{"jobs": [' + b",".join([b'{"type": "t", "payload": "' + b"x" * 200_000 + b'"}'] * 200) + b"]}"
    response = httpx.post(
        f"{broker_url}/v1/queues/{queue}/jobs:batch",
        content=blob,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"
