"""Schema migrations through alembic, and the check that the schema is current."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from jobbroker.settings import Settings
from jobbroker.store import functions
from jobbroker.store.db import DEFAULT_SCHEMA, Database, sqlalchemy_url

MIGRATIONS = Path(__file__).parent / "migrations"


def _config(database_url: str, schema: str = DEFAULT_SCHEMA, defaults: dict[str, Any] | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    # Read by env.py and by the revisions that name the schema.
    config.attributes["schema"] = schema
    config.attributes["defaults"] = defaults
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config("postgresql://localhost/x")).get_current_head()
    assert head is not None
    return head


async def upgrade(
    database_url: str, schema: str = DEFAULT_SCHEMA, revision: str = "head", defaults: dict[str, Any] | None = None
) -> None:
    """Bring the schema to the newest revision (or `revision`), then (at the newest) the broker's
    functions, with `defaults` (functions.job_defaults) for those that applications call; safe to
    call from several replicas at once."""
    # alembic's env.py runs its own event loop, so it gets a thread of its own.
    await asyncio.to_thread(command.upgrade, _config(database_url, schema, defaults), revision)


async def upgrade_for(database_url: str, settings: Settings) -> None:
    """`upgrade` as these settings configure the broker."""
    await upgrade(database_url, settings.db.schema_name, defaults=functions.settings_defaults(settings))


async def is_current(db: Database) -> bool:
    """The newest revision, and the functions of this version of the broker."""
    version_table = f"{db.schema}.alembic_version"
    async with db.connection() as conn:
        exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", version_table)
        if not exists or await conn.fetchval(f"SELECT version_num FROM {version_table}") != head_revision():
            return False
        return (
            await conn.fetchval(
                f"SELECT checksum FROM {db.schema}.repeatable_migration WHERE name = $1", functions.FUNCTIONS
            )
            == functions.FUNCTIONS_CHECKSUM
        )
