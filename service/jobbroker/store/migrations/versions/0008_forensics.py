"""Failure forensics: the attempt ledger, error fingerprints, redrives and the audit log."""

from jobbroker.store.migrations.sqlfile import run_sql_file

revision = "0008"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0008_forensics.sql")


def downgrade() -> None:
    raise NotImplementedError("jobbroker migrations are forward-only")
