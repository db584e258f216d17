"""Drop job_scheduled, which job_ready covers."""

from jobbroker.store.migrations.sqlfile import run_sql_file

revision = "0010"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0010_lean_job_indexes.sql")


def downgrade() -> None:
    raise NotImplementedError("jobbroker migrations are forward-only")
