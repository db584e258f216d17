"""Schema migrations through alembic, and the check that the schema is current."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from jobbroker.store.db import DEFAULT_SCHEMA, Database, sqlalchemy_url

MIGRATIONS = Path(__file__).parent / "migrations"


def _config(database_url: str, schema: str = DEFAULT_SCHEMA) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    # Read by env.py and by the revisions that name the schema.
    config.attributes["schema"] = schema
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config("postgresql://localhost/x")).get_current_head()
    assert head is not None
    return head


async def upgrade(database_url: str, schema: str = DEFAULT_SCHEMA, revision: str = "head") -> None:
    """Bring the schema to the newest revision (or `revision`); safe to call from several replicas at once."""
    # alembic's env.py runs its own event loop, so it gets a thread of its own.
    await asyncio.to_thread(command.upgrade, _config(database_url, schema), revision)


async def is_current(db: Database) -> bool:
    version_table = f"{db.schema}.alembic_version"
    async with db.connection() as conn:
        exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", version_table)
        if not exists:
            return False
        return await conn.fetchval(f"SELECT version_num FROM {version_table}") == head_revision()
