import pytest

import jobbroker_client as jb
from jobbroker_client.testing import make_job, run_job


def make_worker() -> jb.Worker:
    worker = jb.Worker("http://unused", queue="q")

    @worker.handler("sync")
    def sync(job: jb.JobContext) -> dict[str, object]:
        return {"to": job.payload["to"], "attempt": job.attempt, "last": job.is_last_attempt}

    @worker.handler("async")
    async def asynchronous(job: jb.JobContext) -> str:
        raise jb.PermanentError(f"bad {job.payload}")

    return worker


def test_run_job_calls_the_registered_sync_handler():
    result = run_job(make_worker(), "sync", {"to": "a@x"}, attempt=5, max_attempts=5)
    assert result == {"to": "a@x", "attempt": 5, "last": True}


def test_run_job_awaits_async_handlers_and_lets_their_exceptions_through():
    with pytest.raises(jb.PermanentError, match="bad"):
        run_job(make_worker(), "async", [1])


def test_run_job_refuses_an_unknown_type():
    with pytest.raises(LookupError):
        run_job(make_worker(), "nope")


def test_make_job_reads_like_a_leased_job():
    job = make_job("t", {"a": 1}, tags=["x"], correlation_id="c")
    assert (job.type, job.payload, job.attempt, job.tags, job.correlation_id) == ("t", {"a": 1}, 1, ["x"], "c")
    assert job.cancel_requested is False
    job.cancel_event.set()
    with pytest.raises(jb.JobCancelled):
        job.raise_if_cancelled()
