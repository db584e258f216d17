"""JOBBROKER_DB__LISTEN_URL: the LISTEN connection goes to its own (direct) URL, requests to the pool's."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import httpx

from jobbroker.app import create_app
from jobbroker.settings import Settings
from jobbroker.store.db import plain_url
from support import eventually


async def test_the_ready_hub_listens_on_the_listen_url_and_still_wakes_long_polls(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    url = await fresh_database()
    # asyncpg passes an unknown query parameter on as a session setting: it names the connection.
    listen_url = url + ("&" if "?" in url else "?") + "application_name=jobbroker_listen_test"
    settings = Settings(database_url=url, db={"listen_url": listen_url}, push={"enabled": False})
    app = create_app(settings)
    conn = await asyncpg.connect(plain_url(url))
    try:
        async with app.router.lifespan_context(app):

            async def listening() -> bool:
                query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'jobbroker_listen_test'"
                return await conn.fetchval(query) == 1

            await eventually(listening)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://broker") as client:
                poll = asyncio.create_task(
                    client.post("/v1/queues/lq/leases", json={"worker_id": "w", "wait_seconds": 10})
                )
                await asyncio.sleep(0.3)
                started = asyncio.get_running_loop().time()
                await client.post("/v1/queues/lq/jobs", json={"type": "t"})
                answer = await asyncio.wait_for(poll, 5)
                assert len(answer.json()["jobs"]) == 1
                assert asyncio.get_running_loop().time() - started < 2
            requests = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'jobbroker_listen_test'"
            assert await conn.fetchval(requests) == 1, "only the LISTEN connection uses the listen URL"
    finally:
        await conn.close()
