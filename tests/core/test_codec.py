"""codec: koa's base64 JSON, byte for byte, and safe decoding."""

from __future__ import annotations

import base64
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from koasession import codec

# Every test runs with the json module and with orjson (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("each_json_backend")

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


# -- JSON.stringify bytes (issue 10 §4); every expected string below was printed by Node 20 ---


@pytest.mark.parametrize(
    ("value", "javascript"),
    [
        (1.0, "1"),
        (-0.0, "0"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (0.000001, "0.000001"),
        (1e-5, "0.00001"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.5e21, "1.5e+21"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (5e-324, "5e-324"),
        (0.1 + 0.2, "0.30000000000000004"),
        (-2.5, "-2.5"),
        (123.456, "123.456"),
        (1e16, "10000000000000000"),
    ],
)
def test_floats_are_written_as_javascript_writes_numbers(value: float, javascript: str) -> None:
    assert codec.dumps([value]) == f"[{javascript}]"
    assert codec.dumps(value) == javascript  # also alone (a store's merge writes one value)
    assert codec.to_bytes(value) == javascript.encode()
    assert codec.js_number(value) == javascript


def test_array_index_keys_come_first_in_numeric_order_at_every_depth() -> None:
    data = {
        "b": 1,
        "10": 2,
        "2": 3,
        "a": {"1": 1, "x": 2, "0": 3},
        "4294967295": 5,  # 2**32 - 1 is not an array index
        "4294967294": 6,
        "01": 7,
        "-1": 8,
    }
    assert codec.dumps(data) == (
        '{"2":3,"10":2,"4294967294":6,"b":1,"a":{"0":3,"1":1,"x":2},"4294967295":5,"01":7,"-1":8}'
    )


def test_text_is_raw_utf8_and_only_lone_surrogates_are_escaped() -> None:
    data = {"s": "😀\ud800 \udc00\ud800", "pair": "\ud83d\ude00", "seps": "\u2028\x7f\x00"}
    assert codec.to_bytes(data) == (
        '{"s":"😀\\ud800 \\udc00\\ud800","pair":"😀","seps":"\u2028\x7f\\u0000"}'.encode()
    )
    assert codec.dumps(data) == codec.to_bytes(data).decode()


def test_integers_are_exact_beyond_two_to_the_53() -> None:
    # JavaScript would print 1152921504606847000 for both (the same double); see the README.
    assert codec.dumps({"i": 2**60, "f": float(2**60)}) == (
        '{"i":1152921504606846976,"f":1152921504606846976}'
    )


def test_common_data_is_the_c_encoders_output() -> None:
    data = {"user": "alice", "n": 42, "ok": True, "none": None, "tags": ["a", "b"], "d": {"k": 1}}
    assert codec.dumps(data) == json.dumps(data, separators=(",", ":"), ensure_ascii=False)


# Keys and strings that look like the things the fast path's substring tests look for.
_tricky_text = st.sampled_from(["1", "0", "01", "10", "a1", "1.0,", "e+", "x.0}", '"1":', ""])
_json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | _tricky_text
)
_json_data = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text() | _tricky_text, inner, max_size=4)
    ),
    max_leaves=20,
)


def _reference(value: object) -> str:
    """An independent, slow JSON.stringify: sort index keys, format numbers via js_number."""
    if isinstance(value, dict):
        keys = list(value)
        index = sorted(
            (
                k
                for k in keys
                if k.isdigit() and k.isascii() and str(int(k)) == k and int(k) < 2**32 - 1
            ),
            key=int,
        )
        ordered = index + [k for k in keys if k not in index]
        return "{" + ",".join(f"{_reference(k)}:{_reference(value[k])}" for k in ordered) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_reference(v) for v in value) + "]"
    if isinstance(value, float):
        return codec.js_number(value)
    return json.dumps(value, ensure_ascii=False)


@given(st.dictionaries(st.text() | _tricky_text, _json_data, max_size=6))
def test_fast_and_exact_paths_agree_with_a_reference(data: dict[str, object]) -> None:
    assert codec.dumps(data) == _reference(data)
    decoded = codec.decode(codec.encode(data))
    assert decoded == data  # numbers compare equal (1.0 == 1); key order is the JS order


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        ({"tags": {1, 2}}, TypeError, "session['tags'] cannot be stored as JSON"),
        ({"a": [1, {"b": object()}]}, TypeError, "session['a'][1]['b'] cannot be stored"),
        ({"r": float("inf")}, ValueError, "session['r'] cannot be stored as JSON"),
    ],
)
def test_unserialisable_values_are_named(
    data: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        codec.dumps(data)
    with pytest.raises(error, match=re.escape(message)):
        codec.snapshot(data)


def test_a_cycle_is_named_where_it_closes() -> None:
    data: dict[str, object] = {"a": {}}
    data["a"] = {"back": [data]}
    with pytest.raises(ValueError, match=re.escape("session['a']['back'][0] cannot be stored")):
        codec.dumps(data)


@pytest.mark.parametrize("text", ["null", "0", "false", '""', "42", "[1]"])
def test_decode_value_returns_non_object_payloads(text: str) -> None:
    value = base64.b64encode(text.encode()).decode()
    assert codec.decode(value) is None
    assert codec.decode_value(value) == json.loads(text)


@pytest.mark.parametrize("value", ["!!!!", base64.b64encode(b"{nope").decode(), "/w=="])
def test_decode_value_raises_when_nothing_decodes(value: str) -> None:
    with pytest.raises(ValueError):
        codec.decode_value(value)


@given(
    st.dictionaries(st.text() | _tricky_text, _json_data, max_size=6),
    st.sampled_from(
        [
            {},
            {"_session": True},
            {"_expire": 1_700_000_086_400, "_maxAge": 86_400_000},
            {"_expire": 1_700_000_001_024.5, "_maxAge": 1024.5, "_created": 1, "_accessed": 2},
        ]
    ),
)
def test_encode_payload_equals_encode_of_the_whole_payload(
    data: dict[str, object], metadata: dict[str, object]
) -> None:
    data = {k: v for k, v in data.items() if k not in codec.META_KEYS}
    expected = codec.encode({**data, **metadata})
    assert codec.encode_payload(data, codec.snapshot(data), metadata) == expected
