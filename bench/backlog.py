"""Large preloads for the no-cliff scenarios, written by SQL in one statement per part.

A part is a number of jobs of the broker's table: `ready` jobs of `ready_priority` in the bench
queue, `delayed` ones of priority 0 due in an hour (ahead of the ready ones in lease order, so a
lease that walked them would pay for each), and `other` ready jobs in another queue.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from bench.common import JOB_TYPE, QUEUE
from jobbroker.settings import JobDefaults, LeaseSettings

OTHER_QUEUE = "bench-other"
_D = JobDefaults()
INSERT = f"""
INSERT INTO jobbroker.job (queue, type, payload, priority, run_at, max_attempts, backoff_initial_s, backoff_max_s,
                 backoff_multiplier, backoff_jitter, timeout_s)
SELECT $1, '{JOB_TYPE}', jsonb_build_object('i', g, 'user', 'u-00042', 'op', 'noop'), $3,
       now() + make_interval(secs => $4) + g * interval '1 microsecond',
       {_D.max_attempts}, {_D.backoff_initial_s}, {_D.backoff_max_s}, {_D.backoff_multiplier},
       {_D.backoff_jitter}, {LeaseSettings().default_visibility_timeout_s}
FROM generate_series(1, $2) g
"""


async def fill(dsn: str, spec: dict[str, Any]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        if spec.get("delayed"):
            await conn.execute(INSERT, QUEUE, spec["delayed"], 0, 3600.0)
        if spec.get("other"):
            await conn.execute(INSERT, OTHER_QUEUE, spec["other"], 0, -1.0)
        if spec.get("ready"):
            await conn.execute(INSERT, QUEUE, spec["ready"], spec.get("ready_priority", 0), -1.0)
    finally:
        await conn.close()


def size(spec: int | dict[str, Any]) -> int:
    return spec if isinstance(spec, int) else sum(v for k, v in spec.items() if k in ("ready", "delayed", "other"))
