"""serializers: tagged JSON so rich values round-trip through the one codec path."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from koasession import codec
from koasession.serializers import TAG_MARKER, Serializer, TaggedSerializer

TAGGED = TaggedSerializer()


def _through_codec(data: dict[str, Any]) -> dict[str, Any]:
    """What a later request reads: the JSON-safe form written by the codec and read back."""
    safe = TAGGED.to_json_safe(data)
    decoded = codec.decode(codec.encode(safe))
    assert decoded is not None
    return TAGGED.from_json_safe(decoded)


def test_it_is_a_serializer() -> None:
    serializer: Serializer = TAGGED
    assert serializer.from_json_safe(serializer.to_json_safe({"a": 1})) == {"a": 1}


def test_rich_values_round_trip_with_their_types() -> None:
    data = {
        "at": dt.datetime(2024, 5, 6, 7, 8, 9, 123456),
        "aware": dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
        "day": dt.date(2024, 2, 29),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "price": decimal.Decimal("19.990"),
        "raw": b"\x00\xffbytes",
        "tags": {"b", "a"},
        "frozen": frozenset({1, 2}),
        "pair": (1, "two", (3.5, None)),
        "plain": [1, "x", {"k": True}],
    }
    back = _through_codec(data)
    assert back == data
    assert {key: type(value) for key, value in back.items()} == {
        key: type(value) for key, value in data.items()
    }
    assert str(back["price"]) == "19.990"  # exact, trailing zero kept
    assert back["aware"].utcoffset() == dt.timedelta(hours=-5)
    assert back["at"].tzinfo is None


def test_json_safe_form_is_plain_json_and_documented_tags() -> None:
    safe = TAGGED.to_json_safe(
        {"d": dt.date(2024, 1, 2), "u": uuid.UUID(int=1), "t": (1,), "n": 1, "s": {"b", "a"}}
    )
    assert json.loads(json.dumps(safe)) == safe
    assert safe == {
        "d": {" da": "2024-01-02"},
        "u": {" u": "00000000-0000-0000-0000-000000000001"},
        "t": {" t": [1]},
        "n": 1,
        "s": {" s": ["a", "b"]},
    }


def test_plain_json_data_is_unchanged() -> None:
    data = {"a": [1, 2.5, "x", None, True], "b": {"c": {"d": []}}, "": {}}
    assert TAGGED.to_json_safe(data) == data
    assert TAGGED.from_json_safe(data) == data


def test_user_keys_that_look_like_tags_are_escaped() -> None:
    data = {
        "x": {" t": [1, 2]},
        "y": {" di": {" u": "not a uuid"}},
        "z": {" anything": 1},
        "many": {" t": 1, " u": 2},  # two keys: not a tag, left as is
    }
    safe = TAGGED.to_json_safe(data)
    assert safe["x"] == {" di": {" t": [1, 2]}}
    assert safe["many"] == {" t": 1, " u": 2}
    assert _through_codec(data) == data


def test_top_level_keys_are_never_tagged_or_escaped() -> None:
    data = {" t": [1]}
    assert TAGGED.to_json_safe(data) == {" t": [1]}
    assert TAGGED.from_json_safe({" t": [1]}) == {" t": [1]}
    # so the middleware can add its metadata next to the data
    payload = {**TAGGED.to_json_safe({"when": dt.date(2024, 1, 1)}), "_expire": 1}
    assert TAGGED.from_json_safe(payload) == {"when": dt.date(2024, 1, 1), "_expire": 1}


def test_equal_sets_give_equal_text_for_change_detection() -> None:
    words = [f"w{i}" for i in range(50)]
    one, other = set(words), set(reversed(words))
    assert codec.dumps(TAGGED.to_json_safe({"s": one})) == codec.dumps(
        TAGGED.to_json_safe({"s": other})
    )


def test_unsupported_and_cyclic_values_are_refused() -> None:
    with pytest.raises(TypeError, match="bytearray"):
        TAGGED.to_json_safe({"x": bytearray(b"a")})
    with pytest.raises(TypeError, match="object"):
        TAGGED.to_json_safe({"x": object()})
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError, match="nested"):
        TAGGED.to_json_safe({"x": cyclic})


@pytest.mark.parametrize(
    "value",
    [
        {" nope": 1},
        {" dt": "not a date"},
        {" da": 5},
        {" u": "xyz"},
        {" dec": "1.2.3"},
        {" b": "***"},
        {" t": "not a list"},
        {" s": [[1]]},  # an unhashable member
        {" di": [1]},
    ],
)
def test_malformed_tags_raise_value_error(value: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        TAGGED.from_json_safe({"x": value})


def test_the_marker_is_a_space() -> None:
    assert TAG_MARKER == " "


# -- properties --------------------------------------------------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.binary(max_size=24)
    | st.uuids()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.dates()
    | st.datetimes()
    | st.datetimes(timezones=st.just(dt.timezone.utc))
    | st.datetimes(
        timezones=st.builds(
            dt.timezone,
            st.timedeltas(min_value=dt.timedelta(hours=-23), max_value=dt.timedelta(hours=23)).map(
                lambda d: dt.timedelta(minutes=d // dt.timedelta(minutes=1))
            ),
        )
    )
)
_hashables = (
    st.none()
    | st.integers()
    | st.text(max_size=8)
    | st.uuids()
    | st.dates()
    | st.binary(max_size=8)
)
_keys = st.text(max_size=6) | st.sampled_from([" t", " di", " u", " x", TAG_MARKER])
_values = st.recursive(
    _scalars | st.sets(_hashables, max_size=4) | st.frozensets(_hashables, max_size=4),
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(_keys, children, max_size=3)
    ),
    max_leaves=12,
)
_sessions = st.dictionaries(_keys, _values, max_size=5)


def _normalise(value: Any) -> Any:
    """JSON cannot tell an integral float from an int; compare them as JSON reads them back."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, dict):
        return {key: _normalise(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_normalise(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_normalise(item) for item in value)
    return value


@given(_sessions)
def test_round_trip_through_the_codec(data: dict[str, Any]) -> None:
    assert _through_codec(data) == _normalise(data)


@given(_sessions)
def test_json_safe_form_is_json_and_stable(data: dict[str, Any]) -> None:
    safe = TAGGED.to_json_safe(data)
    text = codec.dumps(safe)
    assert codec.loads_object(text) is not None
    assert codec.dumps(TAGGED.to_json_safe(data)) == text
    assert TAGGED.from_json_safe(safe) == data
