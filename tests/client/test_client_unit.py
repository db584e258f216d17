"""Client and AsyncClient against httpx.MockTransport: request shapes, errors, retries, timeouts."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

import jobbroker_client as jb

from .either import Either

JOB = {
    "id": "42",
    "queue": "emails",
    "type": "send-email",
    "payload": {"to": "a@example.com"},
    "state": "pending",
    "priority": 0,
    "attempts": 0,
    "max_attempts": 5,
    "created_at": "2024-05-01T12:00:00Z",
    "run_at": "2024-05-01T12:00:00Z",
    "tags": [],
    "errors": [],
    "cancel_requested": False,
}
QUEUE = {"name": "emails", "paused": False, "counts": {"pending": 1}, "active_leases": 0, "dlq_size": 0}


class Recorder:
    """A MockTransport handler answering from a script and recording every request."""

    def __init__(self, *answers: httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]):
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer(request) if callable(answer) else answer

    @property
    def body(self) -> Any:
        return json.loads(self.requests[-1].content)


@pytest.fixture(params=["sync", "async"])
def connect(request: pytest.FixtureRequest) -> Callable[..., Either]:
    def make(recorder: Recorder, **options: Any) -> Either:
        transport = httpx.MockTransport(recorder)
        cls = jb.Client if request.param == "sync" else jb.AsyncClient
        return Either(cls("http://broker.test", transport=transport, **options))

    return make


def ok(body: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=body)


def problem(status: int, code: str, detail: str = "nope", **extra: Any) -> httpx.Response:
    body = {"type": "about:blank", "title": code, "status": status, "detail": detail, "code": code, **extra}
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


async def test_enqueue_sends_every_option_and_parses_the_job(connect):
    rec = Recorder(ok({**JOB, "duplicate": False}, 201))
    api = connect(rec)
    run_at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    job = await api.enqueue(
        "emails",
        "send-email",
        {"to": "a@example.com"},
        priority=-1,
        run_at=run_at,
        max_attempts=5,
        backoff={"initial_seconds": 1, "max_seconds": 60, "multiplier": 2, "jitter": 0.1},
        timeout_seconds=45,
        idempotency_key="k1",
        correlation_id="c1",
        tags=["a", "b"],
    )
    assert rec.requests[0].method == "POST"
    assert rec.requests[0].url.path == "/v1/queues/emails/jobs"
    assert rec.body == {
        "type": "send-email",
        "payload": {"to": "a@example.com"},
        "priority": -1,
        "run_at": "2030-01-02T03:04:05Z",
        "max_attempts": 5,
        "backoff": {"initial_seconds": 1.0, "max_seconds": 60.0, "multiplier": 2.0, "jitter": 0.1},
        "timeout_seconds": 45.0,
        "idempotency_key": "k1",
        "correlation_id": "c1",
        "tags": ["a", "b"],
    }
    assert isinstance(job, jb.EnqueuedJob)
    assert job.id == "42" and job.state is jb.JobState.PENDING and job.duplicate is False


async def test_enqueue_defaults_payload_to_an_empty_object_and_omits_unset_options(connect):
    rec = Recorder(ok({**JOB, "duplicate": True}))
    api = connect(rec)
    job = await api.enqueue("emails", "ping", delay_seconds=3)
    assert rec.body == {"type": "ping", "payload": {}, "delay_seconds": 3.0}
    assert job.duplicate is True


async def test_enqueue_sends_a_null_payload_when_asked(connect):
    rec = Recorder(ok({**JOB, "payload": None}, 201))
    await connect(rec).enqueue("emails", "ping", None)
    assert rec.body == {"type": "ping", "payload": None}


async def test_queue_names_and_ids_are_escaped_in_paths(connect):
    rec = Recorder(ok(JOB))
    api = connect(rec)
    await api.enqueue("a/b c", "t")
    await api.get_job("x/../y")
    assert rec.requests[0].url.raw_path == b"/v1/queues/a%2Fb%20c/jobs"
    assert rec.requests[1].url.raw_path == b"/v1/jobs/x%2F..%2Fy"


async def test_enqueue_many_sends_items_in_order(connect):
    rec = Recorder(ok({"jobs": [{**JOB, "id": "1"}, {**JOB, "id": "2", "duplicate": True}]}, 201))
    api = connect(rec)
    jobs = await api.enqueue_many(
        "emails", [{"type": "a", "payload": [1]}, jb.JobSpec(type="b", priority=3, idempotency_key="k")]
    )
    assert rec.requests[0].url.path == "/v1/queues/emails/jobs:batch"
    assert rec.body == {
        "jobs": [
            {"type": "a", "payload": [1]},
            {"type": "b", "payload": {}, "priority": 3, "idempotency_key": "k"},
        ]
    }
    assert [(j.id, j.duplicate) for j in jobs] == [("1", False), ("2", True)]


async def test_list_jobs_passes_filters_and_iter_jobs_follows_cursors(connect):
    rec = Recorder(
        ok({"items": [{**JOB, "id": "1"}], "next_cursor": "c2"}),
        ok({"items": [{**JOB, "id": "2"}], "next_cursor": None}),
    )
    api = connect(rec)
    page = await api.list_jobs(queue="emails", state=jb.JobState.DEAD, tag="t", limit=1)
    assert dict(rec.requests[0].url.params) == {"queue": "emails", "state": "dead", "tag": "t", "limit": "1"}
    assert [j.id for j in page.items] == ["1"] and page.next_cursor == "c2"

    rec.answers = [
        ok({"items": [{**JOB, "id": "1"}], "next_cursor": "c2"}),
        ok({"items": [], "next_cursor": None}),
    ]
    iterator = api.client.iter_jobs(queue="emails")
    ids = [job.id async for job in iterator] if inspect.isasyncgen(iterator) else [job.id for job in iterator]
    assert ids == ["1"]
    assert rec.requests[-1].url.params["cursor"] == "c2"


async def test_cancel_replay_and_get_hit_their_routes(connect):
    rec = Recorder(ok(JOB))
    api = connect(rec)
    await api.cancel("42")
    await api.replay("42")
    await api.get_job("42")
    assert [(r.method, r.url.path) for r in rec.requests] == [
        ("POST", "/v1/jobs/42/cancel"),
        ("POST", "/v1/jobs/42/replay"),
        ("GET", "/v1/jobs/42"),
    ]


async def test_dlq_list_replay_and_purge(connect):
    rec = Recorder(ok({"items": [{**JOB, "state": "dead"}], "next_cursor": None}), ok({"count": 3}))
    api = connect(rec)
    since = datetime(2024, 1, 1, tzinfo=UTC)
    page = await api.list_dlq(queue="emails", error="boom", since=since)
    assert rec.requests[0].url.path == "/v1/dlq"
    assert dict(rec.requests[0].url.params) == {
        "queue": "emails",
        "error": "boom",
        "since": since.isoformat(),
    }
    assert page.items[0].state == "dead"
    assert await api.replay_dlq(["1", "2"], limit=10) == 3
    assert rec.requests[-1].url.path == "/v1/dlq/replay" and rec.body == {"ids": ["1", "2"], "limit": 10}
    assert await api.purge_dlq(queue="emails", type="t") == 3
    assert rec.requests[-1].url.path == "/v1/dlq/purge" and rec.body == {"queue": "emails", "type": "t"}


async def test_queue_stats_and_update_sends_only_given_fields(connect):
    rec = Recorder(ok({"items": [QUEUE]}), ok(QUEUE))
    api = connect(rec)
    queues = await api.list_queues()
    assert queues[0].name == "emails" and queues[0].counts.pending == 1
    stats = await api.get_queue("emails")
    assert stats.counts.dead == 0
    await api.update_queue("emails", paused=True, max_concurrency=None, default_backoff=jb.Backoff(multiplier=3))
    assert rec.requests[-1].method == "PATCH" and rec.requests[-1].url.path == "/v1/queues/emails"
    assert rec.body == {"paused": True, "max_concurrency": None, "default_backoff": {"multiplier": 3.0}}


async def test_lease_body_and_a_read_timeout_longer_than_the_wait(connect):
    leased = {
        **JOB,
        "state": "active",
        "lease_id": "L",
        "attempt": 1,
        "lease_expires_at": "2024-05-01T12:00:30Z",
    }
    rec = Recorder(ok({"jobs": [leased]}))
    api = connect(rec, timeout=5)
    jobs = await api.lease("emails", worker_id="w1", max_jobs=10, visibility_timeout_seconds=30, wait_seconds=20)
    assert rec.body == {
        "worker_id": "w1",
        "max_jobs": 10,
        "visibility_timeout_seconds": 30,
        "wait_seconds": 20,
    }
    assert rec.requests[0].extensions["timeout"]["read"] > 20
    assert jobs[0].lease_id == "L" and jobs[0].attempt == 1


async def test_lease_makes_up_a_worker_id_and_passes_types(connect):
    rec = Recorder(ok({"jobs": []}))
    assert await connect(rec).lease("emails", types=["a"]) == []
    assert rec.body["worker_id"] and rec.body["types"] == ["a"] and rec.body["max_jobs"] == 1


async def test_heartbeat_ack_nack_and_their_batches(connect):
    rec = Recorder(
        ok({"id": "42", "lease_expires_at": "2024-05-01T12:01:00Z", "cancel_requested": True}),
        ok({**JOB, "state": "succeeded", "result": {"ok": 1}}),
        ok({**JOB, "state": "retrying"}),
        ok({"results": [{"id": "1", "ok": True}, {"id": "2", "ok": False, "code": "lease_lost"}]}),
    )
    api = connect(rec)
    beat = await api.heartbeat("42", "L", progress={"pct": 50}, visibility_timeout_seconds=60)
    assert rec.body == {"lease_id": "L", "progress": {"pct": 50}, "visibility_timeout_seconds": 60}
    assert beat.cancel_requested is True
    job = await api.ack("42", "L", {"ok": 1})
    assert rec.body == {"lease_id": "L", "result": {"ok": 1}} and job.result == {"ok": 1}
    await api.nack("42", "L", ValueError("bad"), retry_in_seconds=5)
    assert rec.body == {
        "lease_id": "L",
        "error": {"message": "bad", "type": "ValueError"},
        "retryable": True,
        "retry_in_seconds": 5,
    }
    results = await api.ack_many([{"id": "1", "lease_id": "a"}, jb.AckItem(id="2", lease_id="b", result=3)])
    assert rec.requests[-1].url.path == "/v1/acks"
    assert rec.body == {
        "items": [{"id": "1", "lease_id": "a", "result": None}, {"id": "2", "lease_id": "b", "result": 3}]
    }
    assert [(r.ok, r.code) for r in results] == [(True, None), (False, "lease_lost")]
    await api.nack_many([{"id": "1", "lease_id": "a", "error": "boom", "retryable": False}])
    assert rec.requests[-1].url.path == "/v1/nacks"
    assert rec.body == {"items": [{"id": "1", "lease_id": "a", "error": {"message": "boom"}, "retryable": False}]}


async def test_health_and_ready(connect):
    rec = Recorder(ok({"status": "ok"}))
    api = connect(rec)
    assert await api.health() == {"status": "ok"}
    assert await api.ready() == {"status": "ok"}
    assert [r.url.path for r in rec.requests] == ["/healthz", "/readyz"]


async def test_api_key_is_sent_as_a_bearer_token(connect):
    rec = Recorder(ok(JOB))
    await connect(rec, api_key="s3cret").get_job("42")
    assert rec.requests[0].headers["Authorization"] == "Bearer s3cret"
    assert rec.requests[0].headers["User-Agent"].startswith("jobbroker-client-python/")


async def test_api_key_comes_from_the_environment_when_not_given(connect, monkeypatch):
    monkeypatch.setenv("JOBBROKER_API_KEY", "from-env")
    rec = Recorder(ok(JOB))
    await connect(rec).get_job("42")
    assert rec.requests[0].headers["Authorization"] == "Bearer from-env"


async def test_no_authorization_header_without_a_key(connect, monkeypatch):
    monkeypatch.delenv("JOBBROKER_API_KEY", raising=False)
    rec = Recorder(ok(JOB))
    await connect(rec).get_job("42")
    assert "Authorization" not in rec.requests[0].headers


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (422, "validation_error", jb.ValidationError),
        (400, "validation_error", jb.ValidationError),
        (404, "job_not_found", jb.JobNotFound),
        (404, "not_found", jb.NotFound),
        (409, "lease_lost", jb.LeaseLost),
        (409, "invalid_state", jb.InvalidState),
        (413, "payload_too_large", jb.PayloadTooLarge),
        (401, "unauthorized", jb.Unauthorized),
        (403, "forbidden", jb.Forbidden),
        (503, "database_unavailable", jb.DatabaseUnavailable),
        (409, "something_new", jb.Conflict),
        (500, "internal", jb.ServerError),
    ],
)
async def test_problem_answers_become_typed_errors(connect, status, code, cls):
    rec = Recorder(problem(status, code, "it went wrong", errors=[{"loc": ["body", "type"]}]))
    with pytest.raises(cls) as info:
        await connect(rec, retries=0).get_job("42")
    error = info.value
    assert isinstance(error, jb.JobbrokerError)
    assert (error.status, error.code, error.detail) == (status, code, "it went wrong")
    assert error.errors == [{"loc": ["body", "type"]}]
    assert code in str(error)


async def test_job_not_found_is_a_not_found_and_lease_lost_a_conflict():
    assert issubclass(jb.JobNotFound, jb.NotFound)
    assert issubclass(jb.LeaseLost, jb.Conflict) and issubclass(jb.InvalidState, jb.Conflict)
    assert issubclass(jb.DatabaseUnavailable, jb.ServerError)


async def test_a_non_json_error_still_maps_by_status(connect):
    rec = Recorder(httpx.Response(413, text="too big"))
    with pytest.raises(jb.PayloadTooLarge) as info:
        await connect(rec).enqueue("q", "t")
    assert info.value.detail == "too big" and info.value.code is None


async def test_an_answer_of_the_wrong_shape_is_an_unexpected_response(connect):
    rec = Recorder(ok({"nope": True}))
    with pytest.raises(jb.UnexpectedResponse):
        await connect(rec).get_job("42")


async def test_reads_are_retried_after_connection_errors(connect):
    rec = Recorder(httpx.ReadError("reset"), httpx.RemoteProtocolError("eof"), ok(JOB))
    job = await connect(rec).get_job("42")
    assert job.id == "42" and len(rec.requests) == 3


async def test_retries_give_up_with_a_transport_error(connect):
    rec = Recorder(httpx.ReadTimeout("slow"))
    with pytest.raises(jb.TransportError) as info:
        await connect(rec, retries=2).get_job("42")
    assert len(rec.requests) == 3
    assert "ReadTimeout" in str(info.value)


async def test_enqueue_without_an_idempotency_key_is_not_resent_after_it_may_have_arrived(connect):
    rec = Recorder(httpx.ReadError("reset"), ok({**JOB, "duplicate": False}, 201))
    with pytest.raises(jb.TransportError):
        await connect(rec).enqueue("emails", "t")
    assert len(rec.requests) == 1


async def test_enqueue_with_an_idempotency_key_is_resent(connect):
    rec = Recorder(httpx.ReadError("reset"), ok({**JOB, "duplicate": True}))
    job = await connect(rec).enqueue("emails", "t", idempotency_key="k")
    assert job.duplicate and len(rec.requests) == 2


async def test_any_call_is_resent_when_the_connection_was_never_made(connect):
    rec = Recorder(httpx.ConnectError("refused"), ok({**JOB, "duplicate": False}, 201))
    await connect(rec).enqueue("emails", "t")
    assert len(rec.requests) == 2


async def test_ack_is_resent_after_a_reset_and_lease_is_not(connect):
    rec = Recorder(httpx.ReadError("reset"), ok({**JOB, "state": "succeeded"}))
    await connect(rec).ack("42", "L")
    assert len(rec.requests) == 2
    rec = Recorder(httpx.ReadError("reset"), ok({"jobs": []}))
    with pytest.raises(jb.TransportError):
        await connect(rec).lease("emails")
    assert len(rec.requests) == 1


async def test_safe_calls_are_resent_on_503_and_unsafe_ones_are_not(connect):
    rec = Recorder(problem(503, "database_unavailable"), ok(JOB))
    assert (await connect(rec).get_job("42")).id == "42"
    rec = Recorder(problem(503, "database_unavailable"), ok(JOB))
    with pytest.raises(jb.DatabaseUnavailable):
        await connect(rec).cancel("42")
    assert len(rec.requests) == 1


def test_client_and_async_client_offer_the_same_operations():
    def surface(cls: type) -> dict[str, inspect.Signature]:
        names = {n for n in dir(cls) if not n.startswith("_")} - {"close", "aclose"}
        return {n: inspect.signature(getattr(cls, n)) for n in names if callable(getattr(cls, n))}

    sync, asyn = surface(jb.Client), surface(jb.AsyncClient)
    assert sync.keys() == asyn.keys()
    for name, signature in sync.items():
        assert str(signature).replace("AsyncIterator", "Iterator") == str(asyn[name]).replace(
            "AsyncIterator", "Iterator"
        ).replace("AsyncBaseTransport", "BaseTransport").replace("AsyncRedrive", "Redrive"), name
    for name in sync.keys() - {"iter_jobs", "iter_dlq", "iter_audit", "export_dlq"}:
        assert inspect.iscoroutinefunction(getattr(jb.AsyncClient, name)), name
