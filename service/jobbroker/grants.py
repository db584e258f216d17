"""The GRANTs that let application roles call the broker's SQL functions and nothing else."""

from __future__ import annotations

import re

ROLE = re.compile(r"^[a-z_][a-z0-9_$]{0,62}$")
ENQUEUE = ("enqueue(text, text, jsonb, jsonb)",)
SETTLE = ("ack(bigint, uuid, jsonb)", "nack(bigint, uuid, jsonb, boolean, double precision)")


def statements(schema: str, enqueue_role: str | None, worker_role: str | None) -> str:
    """SQL granting `enqueue_role` jobbroker.enqueue and `worker_role` jobbroker.ack and nack.

    The functions run as their owner (SECURITY DEFINER, search_path pinned), so the roles get no
    right on any table: USAGE on the schema to name the functions, EXECUTE on these alone (the
    migrations revoke EXECUTE from PUBLIC).
    """
    lines = [f"-- jobbroker: application roles for the functions in schema {schema}; run as the broker's role."]
    for role, functions, what in (
        (enqueue_role, ENQUEUE, "may only enqueue"),
        (worker_role, SETTLE, "may only ack and nack"),
    ):
        if role is None:
            continue
        if not ROLE.match(role):
            raise ValueError(f"not a plain role name: {role!r}")
        lines.append(f"-- {role} {what} (CREATE ROLE {role} LOGIN PASSWORD '...'; if it does not exist)")
        lines.append(f"GRANT USAGE ON SCHEMA {schema} TO {role};")
        names = ", ".join(f"{schema}.{f}" for f in functions)
        lines.append(f"GRANT EXECUTE ON FUNCTION {names} TO {role};")
    return "\n".join(lines) + "\n"
