"""codec: koa's base64 JSON, byte for byte, and safe decoding."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from koasession import codec

VECTOR = "eyJtZXNzYWdlIjoiaGVsbG8iLCJfZXhwaXJlIjoxNzAwMDAwMDAwMDAwLCJfbWF4QWdlIjo4NjQwMDAwMH0="
VECTOR_DATA = {"message": "hello", "_expire": 1700000000000, "_maxAge": 86400000}


def test_encode_matches_spec_vector() -> None:
    assert codec.encode(VECTOR_DATA) == VECTOR


def test_encode_keeps_non_ascii_as_utf8_like_json_stringify() -> None:
    raw = base64.b64decode(codec.encode({"name": "Zoë 🍪"}))
    assert raw == '{"name":"Zoë 🍪"}'.encode()


@pytest.mark.parametrize(
    "value",
    [
        VECTOR,
        VECTOR.rstrip("="),  # missing padding
        VECTOR.replace("+", "-").replace("/", "_"),  # url-safe alphabet
        VECTOR + "garbage!!",  # Node stops at the first '='
        VECTOR[:10] + " \t" + VECTOR[10:],  # stray characters are skipped
    ],
)
def test_decode_is_as_lenient_as_node(value: str) -> None:
    assert codec.decode(value) == VECTOR_DATA


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[1,2]",
        b'"text"',
        b"42",
        b"null",
        b'{"a":NaN}',
        b'{"a":Infinity}',
        b'{"a":1e999}',
        b"\xff\xfe{}",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' + b"9" * 10_000 + b"}",
    ],
)
def test_decode_rejects_what_is_not_a_json_object(payload: bytes) -> None:
    assert codec.decode(base64.b64encode(payload).decode()) is None


@pytest.mark.parametrize("value", ["", "=", "!!!!", "a", "\x00\udcff"])
def test_decode_of_junk_is_none(value: str) -> None:
    assert codec.decode(value) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), json_values, max_size=6))
def test_encode_then_decode_is_identity(data: dict[str, object]) -> None:
    assert codec.decode(codec.encode(data)) == data


@given(st.text())
def test_decode_never_raises(value: str) -> None:
    result = codec.decode(value)
    assert result is None or isinstance(result, dict)


def test_lone_surrogate_is_escaped_instead_of_failing() -> None:
    assert codec.decode(codec.encode({"s": "\ud800"})) == {"s": "\ud800"}
