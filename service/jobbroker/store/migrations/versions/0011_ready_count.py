"""Ready notifications carry how many jobs became ready."""

from jobbroker.store.migrations.sqlfile import run_sql_file

revision = "0011"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0011_ready_count.sql")


def downgrade() -> None:
    raise NotImplementedError("jobbroker migrations are forward-only")
