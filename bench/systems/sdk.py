"""The Python SDK's `Worker` with a no-op async handler: this load-generator process is the worker."""

from __future__ import annotations

import logging
from typing import Any

from bench.common import JOB_TYPE, QUEUE, Window, result
from jobbroker_client import Worker


async def drain(p: dict[str, Any], window: Window) -> dict[str, Any]:
    logging.getLogger("jobbroker_client").setLevel(logging.WARNING)
    worker = Worker(p["url"], QUEUE, concurrency=p["concurrency"], wait_seconds=1, worker_id="bench-sdk")
    done = 0

    @worker.handler(JOB_TYPE)
    async def noop(ctx: Any) -> None:
        nonlocal done
        done += 1
        if done == p["jobs"]:
            worker.stop()

    await window.start()
    await worker.run_async(install_signal_handlers=False)
    await window.stop()
    return result(
        window, worker.stats.succeeded, expected=p["jobs"], concurrency=p["concurrency"], lost=worker.stats.lost
    )
