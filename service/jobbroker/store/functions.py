"""The broker's SQL functions (functions.sql), a repeatable migration: applied after the
versioned ones whenever the script as written changes, its checksum kept in the schema's
repeatable_migration.

The script runs the store's own statements (sql/job.sql): `{{name}}` becomes the statement's text
and `{{name.args}}` the values of its binds, named in BINDS as plpgsql expressions. job_defaults()
is applied the same way: the broker's job settings as JSON, for the functions applications call.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.util import await_only

from jobbroker.settings import JobDefaults, Settings
from jobbroker.store.queries import load

FUNCTIONS = "functions.sql"
DEFAULTS = "job_defaults"
TEMPLATE = (Path(__file__).parent / FUNCTIONS).read_text()
_PLACEHOLDER = re.compile(r"\{\{(\w+)(\.args)?\}\}")
_ENQUEUE_BINDS = {
    "queue": "queue",
    "types": "ARRAY[body ->> 'type']",
    "payloads": "ARRAY[CAST(body -> 'payload' AS text)]",
    "priorities": "ARRAY[CAST(body ->> 'priority' AS integer)]",
    "run_ats": "ARRAY[CAST(body ->> 'run_at' AS timestamptz)]",
    "delays_s": "ARRAY[CAST(body ->> 'delay_seconds' AS double precision)]",
    "max_attempts": "ARRAY[CAST(body ->> 'max_attempts' AS integer)]",
    "backoff_initial_s": "ARRAY[CAST(body #>> '{backoff,initial_seconds}' AS double precision)]",
    "backoff_max_s": "ARRAY[CAST(body #>> '{backoff,max_seconds}' AS double precision)]",
    "backoff_multiplier": "ARRAY[CAST(body #>> '{backoff,multiplier}' AS double precision)]",
    "backoff_jitter": "ARRAY[CAST(body #>> '{backoff,jitter}' AS double precision)]",
    "timeouts_s": "ARRAY[CAST(body ->> 'timeout_seconds' AS integer)]",
    "idempotency_keys": "ARRAY[body ->> 'idempotency_key']",
    "correlation_ids": "ARRAY[body ->> 'correlation_id']",
    "tags": "ARRAY[CAST(body -> 'tags' AS text)]",
    "flow_keys": "ARRAY[body ->> 'flow_key']",
    "heartbeat_timeouts_s": "ARRAY[CAST(body ->> 'heartbeat_timeout_seconds' AS integer)]",
    "max_runtimes_s": "ARRAY[CAST(body ->> 'max_runtime_seconds' AS integer)]",
    "trace_contexts": "ARRAY[CAST(nullif(body -> 'trace_context', 'null') AS text)]",
    "default_max_attempts": "CAST(defaults ->> 'max_attempts' AS integer)",
    "default_backoff_initial_s": "CAST(defaults ->> 'backoff_initial_s' AS double precision)",
    "default_backoff_max_s": "CAST(defaults ->> 'backoff_max_s' AS double precision)",
    "default_backoff_multiplier": "CAST(defaults ->> 'backoff_multiplier' AS double precision)",
    "default_backoff_jitter": "CAST(defaults ->> 'backoff_jitter' AS double precision)",
    "default_timeout_s": "CAST(defaults ->> 'timeout_s' AS integer)",
}
# Each statement's binds as expressions of the function that runs it (functions.sql). A bind
# missing here fails the migration, so a statement that grows one cannot be run without it.
BINDS: dict[str, dict[str, str]] = {
    "job_enqueue": _ENQUEUE_BINDS,
    "job_get_by_idempotency_keys": {
        "queue": "queue",
        "keys": "ARRAY[body ->> 'idempotency_key']",
        "types": "ARRAY[body ->> 'type']",
        "payloads": "ARRAY[CAST(body -> 'payload' AS text)]",
    },
    "job_ack": {
        "id": "id",
        "lease_id": "lease_id",
        "result": "result",
        "http_status": "CAST(NULL AS integer)",
        "ledger": "CAST(defaults ->> 'attempt_ledger' AS boolean)",
    },
    "job_nack": {
        "id": "id",
        "lease_id": "lease_id",
        "error": "error",
        "retryable": "retryable",
        "retry_in_s": "retry_in_seconds",
        "keep_errors": "CAST(defaults ->> 'error_history' AS integer)",
        "http_status": "CAST(NULL AS integer)",
        "ledger": "CAST(defaults ->> 'attempt_ledger' AS boolean)",
    },
}


def render(template: str = TEMPLATE) -> str:
    """The script with the store's statements and their binds written in."""
    statements = load("job")

    def expand(match: re.Match[str]) -> str:
        name, args = match.group(1), match.group(2)
        query = statements[name]
        if args:
            missing = [p for p in query.params if p not in BINDS[name]]
            if missing:
                raise ValueError(
                    f"functions.sql: no value for the binds {missing} of {name} (store/functions.py BINDS)"
                )
            return ", ".join(BINDS[name][p] for p in query.params)
        sql = query.sql.rstrip().rstrip(";")
        assert "$stmt$" not in sql
        return f"$stmt${sql}$stmt$"

    return _PLACEHOLDER.sub(expand, template)


def checksum(script: str) -> str:
    return hashlib.sha256(script.encode()).hexdigest()


SCRIPT = render()
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
        "attempt_ledger": jobs.attempt_ledger,
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
