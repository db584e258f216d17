"""JSON text in and out, exactly: a number keeps the digits it was written with, and what JSON or
Postgres cannot hold (NaN, Infinity, a lone surrogate, U+0000, nesting beyond MAX_DEPTH) is refused
with the place it was found.

Decoding keeps every float as a `LosslessFloat` holding its text and every integer as a Python int
of any size; encoding writes both back as written. The API hands request bodies to `loads`, the
store hands JSON fields to Postgres as `dumps` text, and jsonb comes back from Postgres as text
(`orjson.Fragment`) embedded in answers without being decoded: jsonb keeps arbitrary precision, so
what a client sent is what it reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jiter
import orjson

# The decoder's own nesting limit (arrays and objects, the body's own level included).
MAX_DEPTH = 200
LosslessFloat = jiter.LosslessFloat
Loc = tuple[str | int, ...]


class JsonMalformed(ValueError):
    """Not JSON at all."""


class JsonRejected(ValueError):
    """Well-formed JSON holding a value the broker cannot keep exactly; `loc` is its path."""

    def __init__(self, loc: Loc, msg: str) -> None:
        super().__init__(msg)
        self.loc = loc
        self.msg = msg


def loads(data: bytes | str) -> Any:
    """The JSON value of `data`, floats as LosslessFloat."""
    try:
        value = jiter.from_json(
            data.encode() if isinstance(data, str) else data,
            allow_inf_nan=False,
            float_mode="lossless-float",
            cache_mode="all",
        )
    except ValueError:
        raise _why(data) from None
    # Valid JSON that Postgres refuses in jsonb (and text); the escape is the only way to write it.
    if (b"\\u0000" if isinstance(data, bytes) else "\\u0000") in data:
        raise _why(data)
    return value


def dumps(value: Any) -> bytes:
    """JSON text of a decoded value (LosslessFloat, ints of any size, orjson.Fragment included)."""
    try:
        return orjson.dumps(value, default=_default)
    except orjson.JSONEncodeError:
        # orjson writes integers of at most 64 bits; bigger ones are rare enough to look for only now.
        return orjson.dumps(_big_ints(value), default=_default)


def _default(value: Any) -> Any:
    if type(value) is LosslessFloat:
        return orjson.Fragment(bytes(value))
    raise TypeError(f"{type(value).__name__} is not JSON")


def _big_ints(value: Any) -> Any:
    if type(value) is int and not -(2**63) <= value < 2**64:
        return orjson.Fragment(str(value).encode())
    if type(value) is list:
        return [_big_ints(v) for v in value]
    if type(value) is dict:
        return {k: _big_ints(v) for k, v in value.items()}
    return value


class _Constant:
    def __init__(self, name: str) -> None:
        self.name = name


def _why(data: bytes | str) -> ValueError:
    """Why the strict decoder refused `data`: the permissive one finds the value and its place."""
    try:
        value = json.loads(data, parse_constant=_Constant)
    except RecursionError:
        return JsonRejected((), f"JSON nests deeper than {MAX_DEPTH} levels")
    except json.JSONDecodeError as exc:
        return JsonMalformed(f"not valid JSON ({exc.msg} at position {exc.pos})")
    except UnicodeDecodeError:
        return JsonMalformed("not valid JSON (not UTF-8)")
    except ValueError:  # an integer beyond Python's digit limit (4300)
        return JsonRejected((), "a number has too many digits")
    for loc, problem in _problems(value, (), 1):
        return JsonRejected(loc, problem)
    return JsonMalformed("not valid JSON")


def _problems(value: Any, loc: Loc, depth: int) -> Iterator[tuple[Loc, str]]:
    if isinstance(value, _Constant):
        yield loc, f"{value.name} is not a JSON number"
    elif isinstance(value, str):
        yield from _text_problems(value, loc)
    elif isinstance(value, list | dict):
        if depth > MAX_DEPTH:
            yield loc, f"JSON nests deeper than {MAX_DEPTH} levels"
            return
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str):
                for _, problem in _text_problems(key, loc):
                    yield (*loc, key), f"key {problem}"
            yield from _problems(item, (*loc, key), depth + 1)


def _text_problems(text: str, loc: Loc) -> Iterator[tuple[Loc, str]]:
    if "\x00" in text:
        yield loc, "text holds U+0000, which PostgreSQL cannot store"
    try:
        text.encode()
    except UnicodeEncodeError:
        yield loc, "text holds a lone surrogate (not Unicode)"
