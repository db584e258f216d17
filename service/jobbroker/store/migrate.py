"""Schema migrations through alembic, and the check that the schema is current."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from jobbroker.store.db import Database, sqlalchemy_url

MIGRATIONS = Path(__file__).parent / "migrations"


def _config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config("postgresql://localhost/x")).get_current_head()
    assert head is not None
    return head


async def upgrade(database_url: str) -> None:
    """Bring the schema to the newest revision; safe to call from several replicas at once."""
    # alembic's env.py runs its own event loop, so it gets a thread of its own.
    await asyncio.to_thread(command.upgrade, _config(database_url), "head")


async def is_current(db: Database) -> bool:
    async with db.connection() as conn:
        exists = await conn.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
        if not exists:
            return False
        return await conn.fetchval("SELECT version_num FROM alembic_version") == head_revision()
