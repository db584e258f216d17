"""Wake waiting leases from a row trigger that leases and acks never fire."""

from jobbroker.store.migrations.sqlfile import run_sql_file

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0003_ready_trigger.sql")


def downgrade() -> None:
    raise NotImplementedError("jobbroker migrations are forward-only")
