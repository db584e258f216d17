"""Named SQL blocks: `-- name: x` in store/sql/*.sql, with `:param` binds turned into `$n`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SQL_DIR = Path(__file__).parent / "sql"
_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
# A bind is ":word" not preceded by another colon (so "::type" casts and "a:b" in strings are left alone).
_BIND = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@dataclass(frozen=True)
class Query:
    name: str
    sql: str
    params: tuple[str, ...]

    def args(self, values: dict[str, Any]) -> list[Any]:
        """Positional arguments in bind order; a missing or unexpected name is a programming error."""
        extra = values.keys() - set(self.params)
        if extra:
            raise TypeError(f"{self.name}: unexpected binds {sorted(extra)}")
        return [values[name] for name in self.params]


def _compile(name: str, text: str) -> Query:
    params: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in params:
            params.append(match.group(1))
        return f"${params.index(match.group(1)) + 1}"

    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return Query(name, _BIND.sub(number, body).strip(), tuple(params))


def parse(text: str) -> dict[str, Query]:
    chunks = _NAME.split(text)
    return {name: _compile(name, body) for name, body in zip(chunks[1::2], chunks[2::2], strict=True)}


def load(table: str) -> dict[str, Query]:
    return parse((SQL_DIR / f"{table}.sql").read_text())
