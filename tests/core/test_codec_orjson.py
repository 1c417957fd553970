"""The orjson backend writes and reads exactly what the standard path does (issue 12).

Every outcome is compared between the two backends: the bytes written, the errors raised (type
and message), the values read (``repr``, so ``1``, ``1.0`` and ``True`` differ) and the verdict
on what is refused. The generated data leans on what orjson handles differently: lone
surrogates, integers beyond 64 bits, floats at layout boundaries, NaN, array-index keys, enum
members, UUIDs, tuples, subclasses. tests/core/test_codec.py and
tests/security/test_codec_properties.py also run whole with each backend.
"""

from __future__ import annotations

import base64
import collections
import datetime
import enum
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _services import require_module
from koasession import codec

orjson = require_module("orjson")


@contextmanager
def _backend(name: str) -> Iterator[None]:
    previous = codec.set_json_backend(name)
    try:
        yield
    finally:
        codec.set_json_backend(previous)


def _outcome(function: Callable[..., Any], *args: Any) -> tuple[str, str]:
    """What ``function(*args)`` gives: its result's repr, or its error's type and message."""
    try:
        return ("ok", repr(function(*args)))
    except Exception as exc:
        return (type(exc).__name__, str(exc))


def _both(function: Callable[..., Any], *args: Any) -> tuple[tuple[str, str], tuple[str, str]]:
    with _backend("std"):
        std = _outcome(function, *args)
    with _backend("orjson"):
        fast = _outcome(function, *args)
    return std, fast


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Name(str, enum.Enum):
    ADA = "ada"


class Ratio(float, enum.Enum):
    HALF = 0.5


class Text(str):
    pass


# Characters orjson, the json module and JSON.stringify might treat differently.
_TRICKY_CHARS = [
    *(chr(c) for c in range(0x20)),
    '"',
    "\\",
    "/",
    "\x7f",
    "\x80",
    "\x9f",
    "\u2028",
    "\u2029",
    "\ufeff",
    "\uffff",
    "\ud800",  # lone surrogates, and a pair written as two code points
    "\udc00",
    "\ud83d",
    "\ude00",
    "\U0001f600",
    "é",
]
_text = st.text(st.sampled_from(_TRICKY_CHARS) | st.characters(), max_size=8)
_keys = _text | st.sampled_from(["0", "1", "10", "01", "-1", "a1", "4294967294", "4294967295"])
_ints = st.integers() | st.sampled_from(
    [2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**30]
)
_floats = st.floats() | st.sampled_from(
    [1.0, -0.0, 1e-7, 1e-6, 1e-5, 1e16, 1e20, 1e21, 1e22, 2.0**60, 5e-324, 1.7976931348623157e308]
)
_oddballs = st.sampled_from(
    [
        Color.RED,
        Level.HIGH,
        Name.ADA,
        Ratio.HALF,
        Text("t"),
        uuid.UUID(int=7),
        datetime.date(2026, 1, 1),
        orjson.Fragment(b"1"),
        collections.OrderedDict(a=1),
        (1, "two"),
        {1: "int key"},
        {None: "null key"},
        b"bytes",
    ]
)
_leaves = st.none() | st.booleans() | _ints | _floats | _text
_values = st.recursive(
    _leaves | _oddballs,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=16,
)
# Mostly plain JSON data, so that most examples are written (not refused) and bytes compared.
_plain = st.recursive(
    st.none() | st.booleans() | _ints | st.floats(allow_nan=False, allow_infinity=False) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=16,
)
_metadata = st.sampled_from(
    [{}, {"_session": True}, {"_expire": 1_700_000_086_400, "_maxAge": 86_400_000.5}]
)


@settings(max_examples=400)
@given(st.one_of(_plain, _values, st.dictionaries(_keys, _plain | _values, max_size=6)))
def test_every_writer_gives_the_same_bytes_or_the_same_error(data: Any) -> None:
    for function in (codec.dumps, codec.to_bytes, codec.encode):
        std, fast = _both(function, data)
        assert fast == std
    # The snapshot's text may lay floats out differently; its verdict may not.
    std_snapshot, fast_snapshot = _both(codec.snapshot, data)
    assert fast_snapshot[0] == std_snapshot[0]


_flat_leaves = st.none() | st.booleans() | _ints | _floats | _text
# Keys JavaScript may reorder (array indices) and look-alikes the flat test must not trip on.
_flat_keys = (
    _text
    | st.integers(min_value=0, max_value=2**33).map(str)
    | st.sampled_from(["007", "²", "1a", "-1", "1.5", "4294967294", "4294967295"])
)


@settings(max_examples=300)
@given(st.dictionaries(_flat_keys, _flat_leaves, max_size=6))
def test_the_flat_snapshot_is_the_snapshot(data: dict[str, Any]) -> None:
    """snapshot_flat skips a check that flat data cannot fail; its text and errors are the same
    as snapshot's, and the payload written from it with ``flat`` (the array-index test on the
    keys) is the one written from the standard text with the general test, on both backends."""
    for name in ("std", "orjson"):
        with _backend(name):
            assert _outcome(codec.snapshot_flat, data) == _outcome(codec.snapshot, data)
    if all(k not in codec.META_KEYS for k in data):
        meta = '"_expire":1700000086400,"_maxAge":86400000'
        with _backend("std"):
            general = _outcome(lambda d: codec.join_payload(d, codec.snapshot(d), meta), data)
        for name in ("std", "orjson"):
            with _backend(name):
                flat = _outcome(
                    lambda d: codec.join_payload(d, codec.snapshot_flat(d), meta, True), data
                )
            assert flat == general


def test_a_flat_payload_puts_array_index_keys_first_as_javascript_does() -> None:
    data = {"b": 1, "10": 2, "2": 3, "007": 4}
    for name in ("std", "orjson"):
        with _backend(name):
            raw = codec.join_payload(data, codec.snapshot_flat(data), '"_expire":1', True)
        assert raw == b'{"2":3,"10":2,"b":1,"007":4,"_expire":1}'


@settings(max_examples=300)
@given(st.dictionaries(_keys, _plain, max_size=6), _metadata)
def test_encode_payload_from_either_snapshot_is_the_same_cookie(
    data: dict[str, Any], metadata: dict[str, Any]
) -> None:
    data = {k: v for k, v in data.items() if k not in codec.META_KEYS}
    std, fast = _both(lambda d: codec.encode_payload(d, codec.snapshot(d), metadata), data)
    assert fast == std
    assert fast[1] == repr(codec.encode({**data, **metadata}))


# JSON text: canonical (what JSON.stringify and dumps write) and not (spaces, escapes, number
# spellings, duplicate keys), with the tokens on which orjson's reader differs or refuses.
_NUMBER_TOKENS = [
    "0",
    "-0",
    "1",
    "1.0",
    "1E2",
    "1e+2",
    "0.1",
    "0.10000000000000001",
    "1e-7",
    "0.000001",
    "5e-324",
    "1e400",
    "-1e400",
    "1" + "0" * 400,
    "9007199254740993",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "100000000000000000000",
    "NaN",
    "Infinity",
    "-Infinity",
    "01",
]
_STRING_TOKENS = [
    '"a"',
    '"\\ud800"',
    '"\\udc00\\ud800"',
    '"\\ud83d\\ude00"',
    '"\U0001f600"',
    '"\\u00e9"',
    '"é"',
    '"\\/"',
    '"/"',
    '"\\u2028"',
    '"\u2028"',
    '"\\u001f"',
    '"\\u001F"',
    '"\x1f"',
    '"\\b"',
    '"\\x41"',
]
_space = st.sampled_from(["", "", "", " ", "\n", "\t", "\x0c"])


def _array(items: list[str]) -> str:
    return "[" + ",".join(items) + "]"


def _object(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{key}:{value}" for key, value in pairs) + "}"


_token = st.sampled_from(_NUMBER_TOKENS + _STRING_TOKENS + ["true", "false", "null"])
_json_key = st.sampled_from(['"a"', '"b"', '"1"', '"0"', '"a"', '"\\ud800"', '"é"'])
_json_text = st.recursive(
    _token,
    lambda inner: (
        st.lists(inner, max_size=4).map(_array)
        | st.lists(st.tuples(_json_key, inner), max_size=4).map(_object)
    ),
    max_leaves=12,
)
_texts = (
    st.builds(lambda before, text, after: before + text + after, _space, _json_text, _space)
    | _plain.map(lambda value: codec.dumps({"v": value}))  # canonical, mostly readable by both
    | _plain.map(lambda value: json.dumps(value))  # the json module's own layout
)


@settings(max_examples=500)
@given(_texts)
def test_every_reader_gives_the_same_value_or_verdict(text: str) -> None:
    for function in (codec.loads, codec.loads_object):
        std, fast = _both(function, text)
        assert fast == std
    cookie = base64.b64encode(text.encode("utf-8", "surrogatepass")).decode()
    std, fast = _both(codec.decode, cookie)
    assert fast == std


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":"\xff"}',  # invalid UTF-8
        b'{"a":"\xed\xa0\x80"}',  # a UTF-8-encoded surrogate (CESU-8)
        b"\xef\xbb\xbf{}",  # a byte order mark
        b'{"a":1}\x00',
        b"[" * 33 + b"]" * 33,  # deeper than MAX_DEPTH: refused before any decoder runs
        b'{"a":' + b"[" * 31 + b"]" * 31 + b"}",  # exactly MAX_DEPTH
        b'{"a":1,"a":2}',
        b'{"big":18446744073709551616,"neg":-9223372036854775809}',
        # flat objects of strings, integers, booleans and null are taken without a read-back:
        b' { "a" : 1 , "a" : "x" , "b" : null } ',  # spacing and a duplicate key
        b'{"u64":18446744073709551615,"i64":-9223372036854775808,"z":-0}',  # largest exact ints
        b'{"e":"\\u00e9","s":"\\/","t":true}',  # escapes JSON.stringify does not write
        b'{"a":"' + b"[" * 40 + b'"}',  # brackets inside a string: one level deep
        b'{"a":' + b"[" * 40 + b"]" * 40 + b"}",  # not flat: the depth limit still applies
    ],
)
def test_decode_verdicts_on_raw_bytes_are_the_same(raw: bytes) -> None:
    std, fast = _both(codec.decode, base64.b64encode(raw).decode())
    assert fast == std


# -- each difference between orjson and JSON.stringify, and what the codec writes instead ----


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # orjson writes 1.0, 1e+16, -0.0 and 1e-6; JSON.stringify writes 1, 1e16's digits, 0
        # and 0.000001.
        ([1.0, 1e16, -0.0, 1e-6, 1e-7, 1e21], "[1,10000000000000000,0,0.000001,1e-7,1e+21]"),
        # orjson refuses lone surrogates; JSON.stringify escapes them
        ({"s": "\ud800x\udc00"}, '{"s":"\\ud800x\\udc00"}'),
        # orjson refuses integers beyond 64 bits; the codec writes their exact digits
        ({"i": 2**64, "j": -(2**63) - 1}, '{"i":18446744073709551616,"j":-9223372036854775809}'),
        # orjson keeps insertion order; JSON.stringify puts array-index keys first
        ({"b": 1, "10": 2, "2": 3}, '{"2":3,"10":2,"b":1}'),
        # orjson refuses non-str keys; the json module converts them
        ({1: "a", False: "b", None: "c", 2.5: "d"}, '{"1":"a","false":"b","null":"c","2.5":"d"}'),
        # the same escapes everywhere: controls, quote and backslash only; '/', DEL, U+2028 raw
        ({"c": '\x00\x08\t\n\x0c\r\x1f"\\/\x7f\u2028\u2029'}, None),
        # IntEnum, str-mixin enums and float-mixin enums are written as the json module writes
        ([Level.HIGH, Name.ADA, Ratio.HALF], '[3,"ada",0.5]'),
        ((1, [2, (3,)]), "[1,[2,[3]]]"),  # tuples are arrays for both
        ({"t": Text("x")}, '{"t":"x"}'),  # subclasses: passed through to the standard path
    ],
)
def test_where_orjson_differs_the_bytes_are_javascripts(data: Any, expected: str | None) -> None:
    std, fast = _both(codec.dumps, data)
    assert fast == std
    if expected is None:
        expected = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    assert fast == ("ok", repr(expected))


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"x": float("nan")}, ValueError),  # orjson writes null
        ({"x": [float("inf")]}, ValueError),  # orjson writes null
        ({"x": Color.RED}, TypeError),  # orjson writes "red"
        ({"x": uuid.UUID(int=7)}, TypeError),  # orjson writes the UUID's text
        ({"x": orjson.Fragment(b"[1]")}, TypeError),  # orjson writes the fragment
        ({"x": datetime.date(2026, 1, 1)}, TypeError),  # orjson writes the ISO date
        ({"x": b"raw"}, TypeError),
    ],
)
def test_what_the_json_module_refuses_stays_refused(data: Any, error: type[Exception]) -> None:
    for function in (codec.dumps, codec.to_bytes, codec.snapshot, codec.encode):
        std, fast = _both(function, data)
        assert fast == std
        assert fast[0] == error.__name__
        assert "session['x']" in fast[1]


def test_orjson_does_the_work_for_common_data(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    with _backend("orjson"):
        fast = codec._orjson
        assert fast is not None
        dumps, loads = fast.dumps, fast.loads
        monkeypatch.setattr(
            fast, "dumps", lambda v, option: calls.append("dumps") or dumps(v, option=option)
        )
        monkeypatch.setattr(fast, "loads", lambda t: calls.append("loads") or loads(t))
        data = {"user": "ada", "count": 3, "tags": ["a", "é"], "ok": True, "none": None}
        text = codec.snapshot(data)
        assert codec.dumps(data) == text
        assert codec.decode(codec.encode_payload(data, text, {"_session": True})) == {
            **data,
            "_session": True,
        }
        assert codec.loads_object(text) == data
    # snapshot and dumps write (and read back to check); encode_payload reuses the snapshot;
    # decode and loads_object read (and write back to check). No standard-path fallback.
    assert calls == ["dumps", "loads"] * 2 + ["loads", "dumps"] * 2


def test_a_float_layout_the_fast_paths_do_not_expect_turns_orjson_off() -> None:
    def compact(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()

    def exponent_without_sign(value: Any) -> bytes:
        return compact(value).replace(b"e+", b"e")  # 1e16 where JavaScript writes the digits

    def escaping_slashes(value: Any) -> bytes:
        return compact(value).replace(b"/", b"\\/")

    assert codec._orjson_writes_as_expected(compact)
    assert not codec._orjson_writes_as_expected(exponent_without_sign)
    assert not codec._orjson_writes_as_expected(escaping_slashes)


def test_set_json_backend_names_and_returns_the_previous_backend() -> None:
    with _backend("std"):
        assert codec.json_backend() == "std"
        assert codec.set_json_backend("auto") == "std"
        assert codec.json_backend() == "orjson"
        assert codec.set_json_backend("std") == "orjson"
        with pytest.raises(ValueError, match="unknown JSON backend"):
            codec.set_json_backend("ujson")
        assert codec.json_backend() == "std"


@pytest.mark.parametrize(
    ("value", "printed"),
    [(None, "orjson"), ("auto", "orjson"), (" STD ", "std")],
)
def test_koasession_json_chooses_the_backend_at_import(value: str | None, printed: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KOASESSION_JSON"}
    if value is not None:
        env["KOASESSION_JSON"] = value
    script = "from koasession import codec; print(codec.json_backend())"
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == printed


def test_an_unknown_koasession_json_fails_the_import() -> None:
    env = {**os.environ, "KOASESSION_JSON": "fast"}
    result = subprocess.run(
        [sys.executable, "-c", "import koasession"], env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "unknown JSON backend 'fast'" in result.stderr
