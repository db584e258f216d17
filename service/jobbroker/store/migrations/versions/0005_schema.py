"""Every broker object in the broker's own schema (JOBBROKER_DB__SCHEMA, default jobbroker).

A new installation made its objects there already (env.py runs every revision in the schema).
One made before this revision has them in public: they move, rows, sequences, indexes, constraints
and triggers with them (ALTER ... SET SCHEMA moves a table's dependents). An object already in the
schema stays, and a public object of the same name is then the application's and stays too.
"""

from alembic import context, op
from sqlalchemy import text

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLES = ("queue", "job", "subscription", "schedule")
FUNCTIONS = (
    "job_failure_state(boolean, boolean, integer, integer)",
    "job_backoff_s(integer, double precision, double precision, double precision, double precision)",
    "job_append_error(jsonb, jsonb, integer)",
    "job_notify_ready()",
    "job_notify_ready_row()",
    "subscription_notify_changed()",
)


def _moves(schema: str, kind: str, names: tuple[str, ...]) -> list[str]:
    bind = op.get_bind()
    lookup = "to_regclass" if kind == "TABLE" else "to_regprocedure"
    moved = []
    for name in names:
        legacy, present = bind.execute(
            text(f"SELECT {lookup}(:legacy) IS NOT NULL, {lookup}(:own) IS NOT NULL"),
            {"legacy": f"public.{name}", "own": f"{schema}.{name}"},
        ).one()
        if legacy and not present:
            moved.append(f"ALTER {kind} public.{name} SET SCHEMA {schema}")
    return moved


def upgrade() -> None:
    schema = context.config.attributes["schema"]
    if schema == "public":
        return
    for statement in _moves(schema, "TABLE", TABLES) + _moves(schema, "FUNCTION", FUNCTIONS):
        op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError("jobbroker migrations are forward-only")
