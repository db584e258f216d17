"""The SQL loader: every named block parses, binds become positional, casts are left alone."""

from __future__ import annotations

import pytest

from jobbroker.store.queries import SQL_DIR, load, parse


def test_binds_become_numbered_in_first_use_order_and_repeat() -> None:
    [query] = parse("-- name: q\n-- a comment\nSELECT :b, CAST(:a AS int), :b, x::text, 'a:b' FROM t;\n").values()
    assert query.params == ("b", "a")
    assert query.sql == "SELECT $1, CAST($2 AS int), $1, x::text, 'a:b' FROM t;"
    assert query.args({"a": 1, "b": 2}) == [2, 1]


def test_unexpected_or_missing_binds_are_programming_errors() -> None:
    [query] = parse("-- name: q\nSELECT :a;\n").values()
    with pytest.raises(TypeError):
        query.args({"a": 1, "zzz": 2})
    with pytest.raises(KeyError):
        query.args({})


@pytest.mark.parametrize("table", sorted(p.stem for p in SQL_DIR.glob("*.sql")))
def test_every_block_has_a_purpose_comment_and_sorted_names(table: str) -> None:
    text = (SQL_DIR / f"{table}.sql").read_text()
    queries = load(table)
    assert queries, f"{table}.sql has no named blocks"
    assert list(queries) == sorted(queries), f"{table}.sql blocks are not in alphabetical order"
    for name, query in queries.items():
        assert text.split(f"-- name: {name}\n", 1)[1].startswith("-- "), f"{name} lacks its purpose comment"
        assert query.sql.strip(), name
        assert "::" not in query.sql.replace("'::", ""), f"{name}: write CAST(x AS t), not x::t"
