"""The SQL functions behind forensics: job_fingerprint (one place for every failure path) and
job_merge_patch (RFC 7396), run in Postgres."""

from __future__ import annotations

import json

import asyncpg
import pytest

from jobbroker.settings import DbSettings
from jobbroker.store.db import plain_url

SAME = [
    ("Timeout", "timeout after 3012 ms on 10.0.0.7:5432", "Timeout", "timeout after 95 ms on 10.9.8.7:6543"),
    (
        "KeyError",
        "user 550e8400-e29b-41d4-a716-446655440000 not found",
        "KeyError",
        "user 123e4567-e89b-12d3-a456-426614174000 not found",
    ),
    ("Mail", "could not deliver to ada@example.com", "Mail", "could not deliver to bob.smith@mail.example.org"),
    ("HTTP", "GET https://api.example.com/v1/orders/123?x=1 failed", "HTTP", "GET http://10.0.0.1/a/b failed"),
    ("Config", "key 'smtp_host' missing in \"prod.yaml\"", "Config", "key 'db' missing in \"dev.yaml\""),
    ("Seg", "fault at 0x7ffd5e8c and commit 9fceb02d0ae5", "Seg", "fault at 0xdeadbeef and commit abc12345ffee"),
    ("Order", "order ord_8Kf93jdQ2x rejected", "Order", "order ord_Zp01mmQ7 rejected"),
    ("Net", "connect to fe80::1ff:fe23:4567:890a failed", "Net", "connect to ::1 failed"),
    ("Space", "disk   3 full", "Space", "disk 4 full"),
]
DIFFERENT = [
    ("Timeout", "timeout after 3 ms", "Timeout", "refused after 3 ms"),
    ("Timeout", "timeout after 3 ms", "IOError", "timeout after 3 ms"),
    ("Net", "Net::ReadTimeout", "Net", "Net::OpenTimeout"),
    ("X", "can't connect", "X", "can't retry"),
]


@pytest.fixture
async def conn(database_url: str) -> asyncpg.Connection:
    connection = await asyncpg.connect(
        plain_url(database_url), server_settings={"search_path": DbSettings().schema_name}
    )
    yield connection
    await connection.close()


async def fingerprint(conn: asyncpg.Connection, type: str | None, message: str) -> str:
    return await conn.fetchval(
        "SELECT job_fingerprint(jsonb_build_object('type', CAST($1 AS text), 'message', CAST($2 AS text)))",
        type,
        message,
    )


@pytest.mark.parametrize(("t1", "m1", "t2", "m2"), SAME)
async def test_fingerprints_equal_when_only_numbers_ids_or_addresses_differ(
    conn: asyncpg.Connection, t1: str, m1: str, t2: str, m2: str
) -> None:
    assert await fingerprint(conn, t1, m1) == await fingerprint(conn, t2, m2)


@pytest.mark.parametrize(("t1", "m1", "t2", "m2"), DIFFERENT)
async def test_fingerprints_differ_otherwise(conn: asyncpg.Connection, t1: str, m1: str, t2: str, m2: str) -> None:
    assert await fingerprint(conn, t1, m1) != await fingerprint(conn, t2, m2)


async def test_fingerprints_are_fixed_values_documented_in_docs(conn: asyncpg.Connection) -> None:
    """Stable across processes and versions: these values are in docs/forensics.md."""
    signature = await conn.fetchval(
        "SELECT job_error_signature(CAST($1 AS jsonb))",
        '{"type": "Timeout", "message": "timeout after 3012 ms on 10.0.0.7:5432"}',
    )
    assert signature == "Timeout: timeout after <n> ms on <ip>"
    assert await fingerprint(conn, "Timeout", "timeout after 3012 ms on 10.0.0.7:5432") == "5516c71596825a45"
    assert len(await fingerprint(conn, None, "")) == 16


# RFC 7396, Appendix A.
MERGE_PATCH = [
    ('{"a":"b"}', '{"a":"c"}', '{"a":"c"}'),
    ('{"a":"b"}', '{"b":"c"}', '{"a":"b","b":"c"}'),
    ('{"a":"b"}', '{"a":null}', "{}"),
    ('{"a":"b","b":"c"}', '{"a":null}', '{"b":"c"}'),
    ('{"a":["b"]}', '{"a":"c"}', '{"a":"c"}'),
    ('{"a":"c"}', '{"a":["b"]}', '{"a":["b"]}'),
    ('{"a":{"b":"c"}}', '{"a":{"b":"d","c":null}}', '{"a":{"b":"d"}}'),
    ('{"a":[{"b":"c"}]}', '{"a":[1]}', '{"a":[1]}'),
    ('["a","b"]', '["c","d"]', '["c","d"]'),
    ('{"a":"b"}', '["c"]', '["c"]'),
    ('{"a":"foo"}', "null", "null"),
    ('{"a":"foo"}', '"bar"', '"bar"'),
    ('{"e":null}', '{"a":1}', '{"e":null,"a":1}'),
    ("[1,2]", '{"a":"b","c":null}', '{"a":"b"}'),
    ("{}", '{"a":{"bb":{"ccc":null}}}', '{"a":{"bb":{}}}'),
]


@pytest.mark.parametrize(("target", "patch", "result"), MERGE_PATCH)
async def test_merge_patch_follows_rfc_7396(conn: asyncpg.Connection, target: str, patch: str, result: str) -> None:
    merged = await conn.fetchval(
        "SELECT job_merge_patch(CAST($1 AS jsonb), CAST($2 AS jsonb)) = CAST($3 AS jsonb)", target, patch, result
    )
    assert merged


@pytest.mark.parametrize(
    ("next_state", "error", "outcome"),
    [
        ("retrying", {"type": "IOError", "message": "x"}, "failed"),
        ("dead", {"message": "x"}, "failed"),
        ("retrying", {"type": "lease_expired", "message": "x"}, "lease_expired"),
        ("dead", {"type": "max_runtime_exceeded", "message": "x"}, "max_runtime_exceeded"),
        ("cancelled", {"type": "max_runtime_exceeded", "message": "x"}, "cancelled"),
    ],
)
async def test_an_attempts_outcome_comes_from_its_next_state_and_error(
    conn: asyncpg.Connection, next_state: str, error: dict, outcome: str
) -> None:
    assert (
        await conn.fetchval("SELECT job_attempt_outcome($1, CAST($2 AS jsonb))", next_state, json.dumps(error))
        == outcome
    )


# The examples of docs/forensics.md: a fingerprint never changes once documented.
DOCUMENTED = [
    ("Timeout", "timeout after 3012 ms on 10.0.0.7:5432", "5516c71596825a45"),
    ("Timeout", "timeout after 95 ms on 10.9.8.7:6543", "5516c71596825a45"),
    ("KeyError", "user 550e8400-e29b-41d4-a716-446655440000 not found", "13dd838a5d76c199"),
    ("Mail", "could not deliver to ada@example.com", "44a1d9dc00a5a121"),
    ("HTTP", "GET https://api.example.com/v1/orders/123?x=1 failed: 502", "2e2c24569b00c7b3"),
    ("Config", "key 'smtp_host' missing in \"prod.yaml\"", "9c8efde2d74e5145"),
    ("Segfault", "fault at 0x7ffd5e8c, build 9fceb02d0ae5", "f2b29c22cc778865"),
    ("Order", "order ord_8Kf93jdQ2x rejected", "e8eeba8707e96fe3"),
    ("Net", "connect to [fe80::1ff:fe23:4567:890a]:443 failed", "870c6f7a310efac5"),
    ("Net", "Net::ReadTimeout", "5f8c21ce3321c3dd"),
    ("lease_expired", "the lease expired before an ack or nack (worker stalled)", "8b5ec332b11ff80f"),
]


@pytest.mark.parametrize(("type", "message", "expected"), DOCUMENTED)
async def test_documented_fingerprints_hold(conn: asyncpg.Connection, type: str, message: str, expected: str) -> None:
    assert await fingerprint(conn, type, message) == expected
