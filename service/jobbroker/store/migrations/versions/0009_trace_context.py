"""W3C trace context stored with each job."""

from jobbroker.store.migrations.sqlfile import run_sql_file

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0009_trace_context.sql")


def downgrade() -> None:
    raise NotImplementedError("jobbroker migrations are forward-only")
