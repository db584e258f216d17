"""Push delivery: webhook subscriptions."""

from jobbroker.store.migrations.sqlfile import run_sql_file

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0002_push.sql")


def downgrade() -> None:
    raise NotImplementedError("jobbroker migrations are forward-only")
