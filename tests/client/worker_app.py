"""A worker module run by `jobbroker-worker worker_app:worker` in the shutdown tests.

Each finished handler run appends "job_id attempt" to $JBTEST_LOG before its result is acked, so a
test can tell which runs finished and whether any finished run was repeated.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from jobbroker_client import JobContext, Worker

worker = Worker(
    os.environ["JBTEST_URL"],
    queue=os.environ["JBTEST_QUEUE"],
    concurrency=int(os.environ.get("JBTEST_CONCURRENCY", "8")),
    visibility_timeout_seconds=30,
    wait_seconds=1,
    shutdown_grace_seconds=float(os.environ.get("JBTEST_GRACE", "2")),
)


@worker.handler("work")
def work(job: JobContext) -> dict[str, str]:
    # Only a job's first run is slow, so a job released at shutdown runs quickly the next time
    # (a release returns the attempt, so the attempt number cannot tell).
    started = Path(f"{os.environ['JBTEST_LOG']}.started.{job.id}")
    if not started.exists():
        started.touch()
        time.sleep(job.payload["seconds"])
    with open(os.environ["JBTEST_LOG"], "a") as log:
        log.write(f"{job.id} {job.attempt}\n")
    return {"done": job.id}
