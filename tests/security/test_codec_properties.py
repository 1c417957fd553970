"""Property tests for the signed-mode cookie codec (base64 of compact JSON).

Decoding must never raise and must only ever yield a JSON object; encoding then decoding is the
identity on JSON-safe data, including through Node's lenient base64 spellings.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from koasession import codec

# Every test runs with the json module and with orjson (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("each_json_backend")

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=25,
)
json_objects = st.dictionaries(st.text(), json_values, max_size=8)


@settings(max_examples=1000)
@given(st.text())
def test_decode_never_raises_on_text(value: str) -> None:
    result = codec.decode(value)
    assert result is None or isinstance(result, dict)


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_decode_never_raises_on_base64_of_anything(raw: bytes) -> None:
    result = codec.decode(base64.b64encode(raw).decode())
    assert result is None or isinstance(result, dict)


@settings(max_examples=500)
@given(json_values)
def test_decode_accepts_only_objects(value: Any) -> None:
    raw = json.dumps(value, separators=(",", ":")).encode()
    result = codec.decode(base64.b64encode(raw).decode())
    if isinstance(value, dict):
        assert result == value
    else:
        assert result is None


@settings(max_examples=500)
@given(json_objects)
def test_encode_decode_identity(data: dict[str, Any]) -> None:
    encoded = codec.encode(data)
    assert codec.decode(encoded) == data
    # Node's lenient reader: url-safe alphabet and missing padding mean the same cookie
    lenient = encoded.replace("+", "-").replace("/", "_").rstrip("=")
    assert codec.decode(lenient) == data


@settings(max_examples=300)
@given(json_objects)
def test_encoding_is_cookie_safe(data: dict[str, Any]) -> None:
    encoded = codec.encode(data)
    assert all(c.isalnum() or c in "+/=" for c in encoded)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


@settings(max_examples=1000)
@given(json_values, st.booleans())
def test_nesting_scan_agrees_with_the_structure(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert codec.nesting_depth(text) == _depth(value)
    assert codec.too_deep(text) == (_depth(value) > codec.MAX_DEPTH)


@settings(max_examples=500)
@given(st.text(alphabet=st.sampled_from(list('[]{}"\\ax,:')), max_size=200))
def test_nesting_scan_never_raises_on_any_text(text: str) -> None:
    assert codec.nesting_depth(text) >= 0
    assert codec.loads_object(text) is None or isinstance(codec.loads_object(text), dict)
