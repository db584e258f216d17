"""Flow control per key (the queue_key table, keyed lease indexes) and the three clocks of a job."""

from jobbroker.store.migrations.sqlfile import run_sql_file

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0007_flow_control.sql")


def downgrade() -> None:
    raise NotImplementedError("jobbroker migrations are forward-only")
