"""Exact JSON text: numbers as written, refusals with their place."""

from __future__ import annotations

import pytest

from jobbroker.core import jsontext


@pytest.mark.parametrize(
    "text",
    [
        b"123456789012345678901234567890",
        b"-98765432109876543210987654321",
        b"18446744073709551616",
        b"1e400",
        b"1e-400",
        b"0.1",
        b"0.10000000000000000000001",
        b'{"a": [1.5, {"b": 9007199254740993}], "c": "\\ud83d\\ude00"}',
    ],
)
def test_numbers_and_text_round_trip_as_written(text: bytes) -> None:
    assert jsontext.dumps(jsontext.loads(text)) == jsontext.dumps(jsontext.loads(jsontext.dumps(jsontext.loads(text))))
    assert jsontext.dumps(jsontext.loads(text)).replace(b" ", b"") == text.replace(b" ", b"").replace(
        b"\\ud83d\\ude00", "\U0001f600".encode()
    )


@pytest.mark.parametrize(
    ("text", "loc", "msg"),
    [
        (b'{"x": NaN}', ("x",), "NaN"),
        (b'{"x": [0, -Infinity]}', ("x", 1), "-Infinity"),
        (b'{"x": {"y": "\\ud800"}}', ("x", "y"), "surrogate"),
        (b'["a\\u0000"]', (0,), "U+0000"),
        (b'{"k\\u0000": 1}', ("k\u0000",), "key"),
        (b"[" * 300 + b"]" * 300, None, "deeper than 200"),
        (b"[" * 5000 + b"]" * 5000, (), "deeper than 200"),
    ],
)
def test_what_json_or_postgres_cannot_hold_is_refused_with_its_place(text: bytes, loc: tuple, msg: str) -> None:
    with pytest.raises(jsontext.JsonRejected) as refused:
        jsontext.loads(text)
    assert msg in refused.value.msg
    if loc is not None:
        assert refused.value.loc == loc


@pytest.mark.parametrize("text", [b"", b"{", b'{"a": }', b"\xff", b"[1,]", b"{'a': 1}"])
def test_malformed_text_is_malformed(text: bytes) -> None:
    with pytest.raises(jsontext.JsonMalformed):
        jsontext.loads(text)
