"""Concurrent single leases and acks go out as shared statements (store/coalesce.py); every caller
must still get exactly its own outcome, as if it had been alone."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from jobbroker.core import jsontext
from jobbroker.core.errors import InvalidInput, JobNotFound, LeaseLost
from jobbroker.core.models import NewJob
from jobbroker.store.job import JobStore
from support import decoded

Q = "coalesce"


@pytest.fixture
async def store(app: Any, pool: asyncpg.Pool) -> JobStore:
    await pool.execute("TRUNCATE job, queue")
    return app.state.broker.jobs


def record_batches(monkeypatch: pytest.MonkeyPatch, coalescer: Any) -> list[int]:
    """The size of each statement's batch, to show the calls really were coalesced."""
    sizes: list[int] = []
    flush: Callable[[list[Any]], Awaitable[list[Any]]] = coalescer._flush

    async def recording(items: list[Any]) -> list[Any]:
        sizes.append(len(items))
        return await flush(items)

    monkeypatch.setattr(coalescer, "_flush", recording)
    return sizes


async def enqueue(store: JobStore, n: int, **fields: Any) -> list[dict[str, Any]]:
    return [job for job, _ in await store.enqueue(Q, [NewJob(type="t", payload={"n": i}, **fields) for i in range(n)])]


async def test_concurrent_acks_share_a_statement_and_each_gets_its_own_outcome(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await enqueue(store, 4)
    good, repeated, stale, other = await store.lease(Q, "w", 4, None, None)
    await store.ack(int(repeated["id"]), repeated["lease_id"], None)
    # A stale lease: the job was handed back and leased again under a new lease id.
    await store.nack(int(stale["id"]), stale["lease_id"], {"message": "x"}, True, 0)
    [again] = await store.lease(Q, "w2", 1, None, None)
    assert again["id"] == stale["id"]
    sizes = record_batches(monkeypatch, store._acks)

    answers = await asyncio.gather(
        store.ack(int(good["id"]), good["lease_id"], {"ok": 1}),
        store.ack(int(repeated["id"]), repeated["lease_id"], None),
        store.ack(int(stale["id"]), stale["lease_id"], None),
        store.ack(int(other["id"]), str(uuid.uuid4()), None),
        store.ack(2**62, str(uuid.uuid4()), None),
        return_exceptions=True,
    )

    assert sizes[0] == 5
    assert answers[0]["state"] == "succeeded" and decoded(answers[0]["result"]) == {"ok": 1}
    assert answers[1]["state"] == "succeeded" and answers[1]["id"] == repeated["id"]
    assert isinstance(answers[2], LeaseLost)
    assert isinstance(answers[3], LeaseLost)
    assert isinstance(answers[4], JobNotFound)
    current = await store.get(int(stale["id"]))
    assert current["state"] == "active" and current["worker_id"] == "w2"
    assert (await store.get(int(other["id"])))["state"] == "active"


async def test_the_same_ack_twice_in_one_batch_answers_both(store: JobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    await enqueue(store, 1)
    [job] = await store.lease(Q, "w", 1, None, None)
    sizes = record_batches(monkeypatch, store._acks)

    first, second = await asyncio.gather(
        store.settle_ack(int(job["id"]), job["lease_id"], None), store.settle_ack(int(job["id"]), job["lease_id"], None)
    )

    assert sizes[0] == 2
    assert first[0]["state"] == second[0]["state"] == "succeeded"
    assert (first[1], second[1]) == (True, False)  # only one of them acked it; the other is a repeat


async def test_a_lease_id_that_is_no_uuid_is_refused_alone(store: JobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    await enqueue(store, 1)
    [job] = await store.lease(Q, "w", 1, None, None)
    sizes = record_batches(monkeypatch, store._acks)

    good, bad = await asyncio.gather(
        store.ack(int(job["id"]), job["lease_id"], None),
        store.ack(int(job["id"]), "-" * 32, None),
        return_exceptions=True,
    )

    assert sizes == [1]
    assert good["state"] == "succeeded"
    assert isinstance(bad, Exception)


async def test_concurrent_leases_deal_each_job_to_exactly_one_worker_in_lease_order(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = await enqueue(store, 3) + await enqueue(store, 3, priority=-1)
    sizes = record_batches(monkeypatch, store._leases)

    dealt = await asyncio.gather(*(store.lease(Q, f"w{i}", 1 + i % 2, None, None) for i in range(6)))

    assert sizes[0] == 6
    ids = [j["id"] for got in dealt for j in got]
    assert sorted(ids) == sorted(j["id"] for j in jobs)
    assert [len(got) for got in dealt] == [1, 2, 1, 2, 0, 0]
    # Input order gets lease order: the three priority -1 jobs go first.
    urgent = {j["id"] for j in jobs[3:]}
    assert {j["id"] for j in dealt[0] + dealt[1]} == urgent
    for i, got in enumerate(dealt):
        assert all(j["worker_id"] == f"w{i}" and j["state"] == "active" for j in got)


async def test_leases_with_other_types_or_timeouts_in_one_batch_keep_their_own_terms(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.enqueue(Q, [NewJob(type="a", payload={}), NewJob(type="b", payload={})])
    sizes = record_batches(monkeypatch, store._leases)

    only_b, only_a, none_c = await asyncio.gather(
        store.lease(Q, "wb", 5, 120, ["b"]), store.lease(Q, "wa", 5, None, ["a"]), store.lease(Q, "wc", 5, None, ["c"])
    )

    assert sizes[0] == 3
    assert [j["type"] for j in only_b] == ["b"] and [j["type"] for j in only_a] == ["a"] and none_c == []
    assert (only_b[0]["lease_expires_at"] - only_a[0]["lease_expires_at"]).total_seconds() > 60


async def test_concurrent_single_enqueues_share_a_statement_and_a_refused_one_fails_alone(
    store: JobStore, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = record_batches(monkeypatch, store._enqueues)
    # Postgres refuses the NUL character only once the statement runs: the others must not share its fate.
    payloads: list[dict[str, Any]] = [{"n": 0}, {"n": 1}, {"s": "a\u0000b"}, {"n": 3}]
    calls = [store.enqueue(Q, [NewJob(type="t", payload=p)]) for p in payloads]
    calls += [store.enqueue("coalesce-other", [NewJob(type="t", payload={"n": 4})])]
    calls += [store.enqueue(Q, [NewJob(type="t", payload={"n": 5}, idempotency_key="once")]) for _ in range(2)]
    answers = await asyncio.gather(*calls, return_exceptions=True)

    # One statement for all; refused, it was tried again call by call.
    assert sizes == [len(calls)] + [1] * len(calls)
    assert isinstance(answers[2], InvalidInput)
    created = [a[0] for i, a in enumerate(answers) if i != 2]
    assert [decoded(job["payload"]) for job, _ in created] == [
        {"n": 0},
        {"n": 1},
        {"n": 3},
        {"n": 4},
        {"n": 5},
        {"n": 5},
    ]
    assert [job["queue"] for job, _ in created] == [Q, Q, Q, "coalesce-other", Q, Q]
    # The same idempotency key twice in one statement: one job, answered to both, once as a duplicate.
    (first, first_dup), (second, second_dup) = created[-2:]
    assert first["id"] == second["id"] and sorted([first_dup, second_dup]) == [False, True]
    assert await pool.fetchval("SELECT count(*) FROM job") == 5


async def test_an_ack_whose_result_postgres_refuses_fails_alone_in_its_batch(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = await enqueue(store, 4)
    leased = await store.lease(Q, "w", 4, None, None)
    assert len(leased) == len(jobs)
    sizes = record_batches(monkeypatch, store._acks)
    results: list[Any] = [{"n": 0}, {"s": "a\u0000b"}, {"n": 2}, jsontext.loads(b"1e200000")]
    answers = await asyncio.gather(
        *(store.ack(int(j["id"]), j["lease_id"], r) for j, r in zip(leased, results, strict=True)),
        return_exceptions=True,
    )
    assert sizes == [4, 1, 1, 1, 1]
    assert [type(a).__name__ for a in answers] == ["dict", "InvalidInput", "dict", "InvalidInput"]
    assert decoded(answers[0]["result"]) == {"n": 0} and decoded(answers[2]["result"]) == {"n": 2}
    for refused in (answers[1], answers[3]):
        assert "\u0000" not in refused.detail and "numeric" not in refused.detail


async def test_a_lease_postgres_refuses_fails_alone_in_its_batch(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await enqueue(store, 3)
    sizes = record_batches(monkeypatch, store._leases)
    answers = await asyncio.gather(
        *(store.lease(Q, worker, 1, None, None) for worker in ("w1", "w\u00002", "w3")), return_exceptions=True
    )
    assert sizes == [3, 1, 1, 1]
    assert isinstance(answers[1], InvalidInput)
    assert [len(answers[0]), len(answers[2])] == [1, 1]
    assert answers[0][0]["worker_id"] == "w1" and answers[2][0]["worker_id"] == "w3"
    assert len(await store.lease(Q, "w4", 10, None, None)) == 1, "the refused lease took no job"
