"""Run a migration written in SQL, next to its alembic revision."""

from pathlib import Path

from alembic import op
from sqlalchemy.util import await_only

VERSIONS = Path(__file__).parent / "versions"


def run_sql_file(name: str) -> None:
    # The raw asyncpg connection runs a multi-statement script (with $$ bodies) in one simple query.
    driver_connection = op.get_bind().connection.driver_connection
    await_only(driver_connection.execute((VERSIONS / name).read_text()))
