"""Alembic environment: runs the SQL migrations over an async engine, one replica at a time, in the
broker's schema (config attribute "schema", JOBBROKER_DB__SCHEMA), version table included."""

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from jobbroker.settings import Settings
from jobbroker.store import functions
from jobbroker.store.db import DEFAULT_SCHEMA

# Any constant shared by every replica: migrations of concurrent starts run one after another.
MIGRATION_LOCK = 7_242_001
# Before revision 0005 every broker object, alembic's version table included, was in public.
LEGACY_SCHEMA = "public"


def _adopt_legacy_version_table(connection: Connection, schema: str) -> bool:
    """Move the version table of an installation made before the schema move into `schema`, so that
    alembic carries it on from its revision (0005 then moves the rest); answers whether it did.
    A public.alembic_version counts as the broker's only next to the broker's own job table and
    functions and at one of its revisions: an application sharing the database may keep its own."""
    legacy = connection.execute(
        text(
            "SELECT to_regclass(:own) IS NULL AND to_regclass('public.alembic_version') IS NOT NULL"
            " AND to_regclass('public.job') IS NOT NULL"
            " AND to_regprocedure('public.job_failure_state(boolean, boolean, integer, integer)') IS NOT NULL"
        ),
        {"own": f"{schema}.alembic_version"},
    ).scalar()
    if not legacy:
        return False
    versions = set(connection.execute(text("SELECT version_num FROM public.alembic_version")).scalars())
    ours = {script.revision for script in context.script.walk_revisions()}
    if not versions or not versions <= ours:
        return False
    connection.execute(text(f"ALTER TABLE public.alembic_version SET SCHEMA {schema}"))
    return True


def _run(connection: Connection) -> None:
    schema = context.config.attributes.get("schema", DEFAULT_SCHEMA)
    connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
    try:
        # Only when missing: CREATE SCHEMA IF NOT EXISTS would still need the CREATE privilege on
        # the database, which a role migrating a schema its DBA made may lack.
        if connection.execute(text("SELECT to_regnamespace(:s) IS NULL"), {"s": schema}).scalar():
            connection.execute(text(f"CREATE SCHEMA {schema}"))
        legacy = schema != LEGACY_SCHEMA and _adopt_legacy_version_table(connection, schema)
        # Migrations name objects unqualified: they are made in the schema. An installation from
        # before the move finds its tables in public until 0005 moves them.
        path = f"{schema}, {LEGACY_SCHEMA}" if legacy else schema
        connection.execute(text(f"SET search_path TO {path}"))
        context.configure(
            connection=connection,
            target_metadata=None,
            transaction_per_migration=True,
            version_table_schema=schema,
        )
        with context.begin_transaction():
            context.run_migrations()
            # The repeatable part (functions.sql) is written for the newest tables.
            if context.get_revision_argument() == context.script.get_current_head():
                defaults = context.config.attributes.get("defaults") or functions.settings_defaults(Settings())
                functions.apply(connection, schema, defaults)
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
        connection.commit()


async def _main() -> None:
    engine = create_async_engine(context.config.get_main_option("sqlalchemy.url"))
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


asyncio.run(_main())
