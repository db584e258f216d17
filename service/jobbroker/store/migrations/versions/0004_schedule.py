"""Recurring jobs: the schedule table."""

from jobbroker.store.migrations.sqlfile import run_sql_file

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0004_schedule.sql")


def downgrade() -> None:
    raise NotImplementedError("jobbroker migrations are forward-only")
