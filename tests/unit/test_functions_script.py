"""store/functions.sql as the runner writes it: the store's statements and every one of their binds."""

from __future__ import annotations

import pytest

from jobbroker.store import functions
from jobbroker.store.queries import load


def test_the_script_runs_the_stores_own_statements_with_every_bind_given() -> None:
    statements = load("job")
    assert "{{" not in functions.SCRIPT
    for name in functions.BINDS:
        assert f"$stmt${statements[name].sql.rstrip(';')}$stmt$" in functions.SCRIPT
        assert set(statements[name].params) <= set(functions.BINDS[name])


def test_a_statement_bind_with_no_value_fails_the_render(monkeypatch: pytest.MonkeyPatch) -> None:
    binds = {k: v for k, v in functions.BINDS["job_ack"].items() if k != "ledger"}
    monkeypatch.setitem(functions.BINDS, "job_ack", binds)
    with pytest.raises(ValueError, match=r"no value for the binds \['ledger'\] of job_ack"):
        functions.render("SELECT {{job_ack.args}}")


def test_a_change_to_a_statement_changes_the_checksum() -> None:
    assert functions.checksum(functions.render()) == functions.FUNCTIONS_CHECKSUM
    assert functions.checksum(functions.render(functions.TEMPLATE + "\n-- x")) != functions.FUNCTIONS_CHECKSUM
