"""The coalescer alone: batching, per-caller answers, failures."""

from __future__ import annotations

import asyncio

import pytest

from jobbroker.store.coalesce import Coalescer


async def test_calls_arriving_together_share_one_flush_and_get_their_own_answers() -> None:
    batches: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        batches.append(items)
        return [i * 10 for i in items]

    c = Coalescer(flush, max_batch=100, in_flight=1)
    assert await asyncio.gather(*(c.submit(i) for i in range(5))) == [0, 10, 20, 30, 40]
    assert batches == [[0, 1, 2, 3, 4]]


async def test_calls_arriving_during_a_flush_go_in_the_next_one_capped_at_max_batch() -> None:
    batches: list[list[int]] = []
    gate = asyncio.Event()

    async def flush(items: list[int]) -> list[int]:
        batches.append(items)
        await gate.wait()
        return items

    c = Coalescer(flush, max_batch=2, in_flight=1)
    first = asyncio.ensure_future(c.submit(0))
    await asyncio.sleep(0.01)
    later = [asyncio.ensure_future(c.submit(i)) for i in (1, 2, 3)]
    await asyncio.sleep(0.01)
    gate.set()
    assert await asyncio.gather(first, *later) == [0, 1, 2, 3]
    assert batches == [[0], [1, 2], [3]]


async def test_a_failed_flush_fails_every_caller_in_it_and_the_next_batch_runs() -> None:
    calls = 0

    async def flush(items: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database away")
        return items

    c = Coalescer(flush, max_batch=10, in_flight=1)
    answers = await asyncio.gather(c.submit(1), c.submit(2), return_exceptions=True)
    assert all(isinstance(a, RuntimeError) for a in answers)
    assert await c.submit(3) == 3


async def test_a_cancelled_caller_does_not_disturb_the_others() -> None:
    async def flush(items: list[int]) -> list[int]:
        await asyncio.sleep(0.01)
        return items

    c = Coalescer(flush, max_batch=10, in_flight=1)
    doomed = asyncio.ensure_future(c.submit(1))
    kept = asyncio.ensure_future(c.submit(2))
    await asyncio.sleep(0)
    doomed.cancel()
    assert await kept == 2
    with pytest.raises(asyncio.CancelledError):
        await doomed


async def test_a_flush_failing_with_an_isolated_error_is_retried_item_by_item() -> None:
    batches: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        batches.append(items)
        if 3 in items:
            raise ValueError("refused")
        return [i * 10 for i in items]

    c = Coalescer(flush, max_batch=10, in_flight=1, isolate=(ValueError,))
    answers = await asyncio.gather(*(c.submit(i) for i in range(5)), return_exceptions=True)
    assert answers[:3] == [0, 10, 20] and answers[4] == 40
    assert isinstance(answers[3], ValueError)
    assert batches == [[0, 1, 2, 3, 4], [0], [1], [2], [3], [4]]


async def test_a_flush_failing_otherwise_fails_the_whole_batch_without_retries() -> None:
    batches: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        batches.append(items)
        raise RuntimeError("database away")

    c = Coalescer(flush, max_batch=10, in_flight=1, isolate=(ValueError,))
    answers = await asyncio.gather(*(c.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(a, RuntimeError) for a in answers) and batches == [[0, 1, 2]]
