"""Schedules against a real server: checked when created or changed (a 4xx problem naming the
field, never a 500), a null payload kept as the JSON value null, and each cron fire isolated: a
schedule that cannot fire (stored before these checks) is logged and moved on while the others fire."""

from __future__ import annotations

import uuid

import asyncpg
import httpx
import pytest

from jobbroker.settings import DbSettings, Settings
from jobbroker.store.db import plain_url
from support import BrokerProcess, eventually

MAX_PAYLOAD = Settings().jobs.max_payload_bytes


async def connect(broker: BrokerProcess) -> asyncpg.Connection:
    return await asyncpg.connect(
        plain_url(broker.database_url), server_settings={"search_path": DbSettings().schema_name}
    )


def schedule(**fields: object) -> dict[str, object]:
    return {"name": f"s-{uuid.uuid4().hex[:8]}", "cron": "0 2 * * *", "queue": "reports", "type": "t", **fields}


@pytest.fixture
async def api(broker_url: str) -> httpx.AsyncClient:
    async with httpx.AsyncClient(base_url=broker_url, timeout=10) as client:
        yield client


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"timezone": "Europe"}, "timezone"),  # a tzdata directory
        ({"timezone": "America"}, "timezone"),
        ({"timezone": "US"}, "timezone"),
        ({"timezone": "posixrules"}, "timezone"),
        ({"timezone": "right/UTC"}, "timezone"),
        ({"timezone": "localtime"}, "timezone"),
        ({"timezone": "../../../etc/passwd"}, "timezone"),
        ({"timezone": "Europe/"}, "timezone"),
        ({"timezone": ""}, "timezone"),
        ({"cron": "* * * * * *"}, "cron"),  # six fields: seconds
        ({"cron": "@reboot"}, "cron"),
        ({"cron": "0 0 31 2 *"}, "cron"),  # never fires
        ({"cron": "*/0 * * * *"}, "cron"),
        ({"cron": "0 0 * * 8"}, "cron"),
    ],
)
async def test_bad_zones_and_cron_expressions_are_422_naming_the_field(
    api: httpx.AsyncClient, fields: dict[str, object], field: str
) -> None:
    created = await api.post("/v1/schedules", json=schedule(**fields))
    assert created.status_code == 422, created.text
    assert created.headers["content-type"].startswith("application/problem+json")
    assert created.json()["code"] == "validation_error" and field in created.json()["detail"]
    good = schedule()
    assert (await api.post("/v1/schedules", json=good)).status_code == 201
    changed = await api.patch(f"/v1/schedules/{good['name']}", json=fields)
    assert changed.status_code == 422, changed.text
    assert (await api.get(f"/v1/schedules/{good['name']}")).json()["timezone"] == "UTC"


async def test_a_payload_over_the_limit_is_refused_on_create_and_change(api: httpx.AsyncClient) -> None:
    big = {"blob": "x" * MAX_PAYLOAD}
    created = await api.post("/v1/schedules", json=schedule(payload=big))
    assert created.status_code == 413 and created.json()["code"] == "payload_too_large"
    good = schedule()
    await api.post("/v1/schedules", json=good)
    changed = await api.patch(f"/v1/schedules/{good['name']}", json={"payload": big})
    assert changed.status_code == 413 and changed.json()["code"] == "payload_too_large"


@pytest.mark.parametrize("payload", [None, 0, "", [], False, {"nested": None}])
async def test_any_json_payload_null_included_is_kept_and_enqueued(
    api: httpx.AsyncClient, broker_process: BrokerProcess, payload: object
) -> None:
    body = schedule(payload=payload)
    created = await api.post("/v1/schedules", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["payload"] == payload
    absent = {k: v for k, v in schedule().items() if k != "payload"}
    assert (await api.post("/v1/schedules", json=absent)).json()["payload"] == {}
    cleared = await api.patch(f"/v1/schedules/{absent['name']}", json={"payload": None})
    assert cleared.status_code == 200 and cleared.json()["payload"] is None
    # The fire enqueues that very payload.
    conn = await connect(broker_process)
    try:
        await conn.execute("UPDATE schedule SET next_run_at = now() WHERE name = $1", body["name"])
    finally:
        await conn.close()

    async def fired() -> bool:
        return (await api.get(f"/v1/schedules/{body['name']}")).json()["last_job_id"] is not None

    await eventually(fired, within_s=10)
    job_id = (await api.get(f"/v1/schedules/{body['name']}")).json()["last_job_id"]
    assert (await api.get(f"/v1/jobs/{job_id}")).json()["payload"] == payload


async def test_a_schedule_that_cannot_fire_holds_up_no_other(
    api: httpx.AsyncClient, broker_process: BrokerProcess
) -> None:
    """Rows as an older version could store them: each bad one is logged and moved on, once."""
    tag = uuid.uuid4().hex[:8]
    bad = {
        f"big-{tag}": ("0 * * * *", "UTC", '{"blob": "' + "x" * (MAX_PAYLOAD + 10) + '"}'),
        f"dir-{tag}": ("0 * * * *", "Europe", "{}"),
        f"six-{tag}": ("* * * * * *", "UTC", "{}"),
    }
    good = f"good-{tag}"
    conn = await connect(broker_process)
    try:
        rows = [*((name, *row) for name, row in bad.items()), (good, "* * * * *", "UTC", '{"n": 1}')]
        for name, cron, zone, payload in rows:
            await conn.execute(
                "INSERT INTO schedule (name, cron, timezone, queue, type, payload, next_run_at)"
                " VALUES ($1, $2, $3, $4, 't', CAST($5 AS jsonb), now() - interval '1 second')",
                name,
                cron,
                zone,
                f"q-{tag}",
                payload,
            )

        async def settled() -> bool:
            return await conn.fetchval(
                "SELECT count(*) FROM schedule WHERE name LIKE '%' || $1 AND next_run_at > now()", tag
            ) == len(rows)

        await eventually(settled, within_s=15)
        fired = await conn.fetch("SELECT name, last_job_id FROM schedule WHERE name LIKE '%' || $1", tag)
        jobs = await conn.fetchval("SELECT count(*) FROM job WHERE queue = $1", f"q-{tag}")
    finally:
        await conn.close()
    by_name = {r["name"]: r["last_job_id"] for r in fired}
    assert by_name[good] is not None and jobs == 1
    assert all(by_name[name] is None for name in bad)
    log = broker_process.output()
    for name in bad:
        assert f"schedule {name}: the fire at" in log, name
    # Once each, not on every tick.
    assert log.count(f"schedule big-{tag}:") == 1
