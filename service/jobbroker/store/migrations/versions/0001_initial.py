"""Initial schema: queue and job."""

from jobbroker.store.migrations.sqlfile import run_sql_file

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0001_initial.sql")


def downgrade() -> None:
    raise NotImplementedError("jobbroker migrations are forward-only")
