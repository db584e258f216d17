"""The broker's SQL functions (functions.sql), a repeatable migration: applied after the
versioned ones whenever its text changes, its checksum kept in the schema's repeatable_migration.

job_defaults() is applied the same way: the broker's job settings as JSON, for the functions that
applications call (the store passes its own settings to the same functions).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.util import await_only

from jobbroker.settings import JobDefaults, Settings

FUNCTIONS = "functions.sql"
DEFAULTS = "job_defaults"
SCRIPT = (Path(__file__).parent / FUNCTIONS).read_text()


def checksum(script: str) -> str:
    return hashlib.sha256(script.encode()).hexdigest()


FUNCTIONS_CHECKSUM = checksum(SCRIPT)


def job_defaults(jobs: JobDefaults, timeout_s: int) -> dict[str, Any]:
    """What a job takes when neither it nor its queue says otherwise, and the bounds of its JSON."""
    return {
        "max_attempts": jobs.max_attempts,
        "backoff_initial_s": jobs.backoff_initial_s,
        "backoff_max_s": jobs.backoff_max_s,
        "backoff_multiplier": jobs.backoff_multiplier,
        "backoff_jitter": jobs.backoff_jitter,
        "timeout_s": timeout_s,
        "error_history": jobs.error_history,
        "max_payload_bytes": jobs.max_payload_bytes,
    }


def settings_defaults(settings: Settings) -> dict[str, Any]:
    return job_defaults(settings.jobs, settings.lease.default_visibility_timeout_s)


def defaults_script(defaults: dict[str, Any]) -> str:
    literal = orjson.dumps(defaults, option=orjson.OPT_SORT_KEYS).decode().replace("'", "''")
    return (
        "CREATE OR REPLACE FUNCTION job_defaults() RETURNS jsonb LANGUAGE sql IMMUTABLE\n"
        f"SET search_path FROM CURRENT AS $$ SELECT CAST('{literal}' AS jsonb) $$;\n"
    )


def apply(connection: Connection, schema: str, defaults: dict[str, Any]) -> list[str]:
    """Run each script whose checksum changed, in the migration's transaction; answers their names."""
    connection.execute(
        text(
            f"CREATE TABLE IF NOT EXISTS {schema}.repeatable_migration ("
            " name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
    )
    applied = dict(connection.execute(text(f"SELECT name, checksum FROM {schema}.repeatable_migration")).all())
    ran = []
    previous_path = connection.execute(text("SHOW search_path")).scalar()
    # The path every function keeps (SET search_path FROM CURRENT): its own schema, then the
    # built-ins, and temporary objects (which anyone may create) last.
    connection.execute(text(f"SET search_path TO {schema}, pg_catalog, pg_temp"))
    try:
        for name, script in ((DEFAULTS, defaults_script(defaults)), (FUNCTIONS, SCRIPT)):
            digest = checksum(script)
            if applied.get(name) == digest:
                continue
            # The raw driver connection runs a multi-statement script (with $$ bodies) in one simple query.
            await_only(connection.connection.driver_connection.execute(script))
            connection.execute(
                text(
                    f"INSERT INTO {schema}.repeatable_migration (name, checksum) VALUES (:name, :digest)"
                    " ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now()"
                ),
                {"name": name, "digest": digest},
            )
            ran.append(name)
    finally:
        connection.execute(text(f"SET search_path TO {previous_path}"))
    return ran
