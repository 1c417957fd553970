"""Table-driven tests of the pure session decisions (no request, no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from koasession import decisions
from koasession.decisions import LoadedMeta, Problem

NOW = 1_700_000_000_000.0


@pytest.mark.parametrize(
    ("data", "absolute", "idle", "expected"),
    [
        ({}, None, None, None),
        ({"_expire": NOW + 1}, None, None, None),
        ({"_expire": NOW - 1}, None, None, Problem("expired")),
        ({"_expire": "soon"}, None, None, Problem("invalid", "_expire is not a number")),
        ({"_expire": True}, None, None, Problem("invalid", "_expire is not a number")),
        ({"_expire": -1}, None, None, Problem("invalid", "_expire is out of range")),
        ({"_expire": float("nan")}, None, None, Problem("invalid", "_expire is out of range")),
        ({"_expire": 10**20}, None, None, Problem("invalid", "_expire is out of range")),
        ({"_maxAge": "x", "_expire": NOW + 1}, None, None, None),
        ({"_maxAge": -5}, None, None, Problem("invalid", "_maxAge is out of range")),
        ({"_created": NOW - 10_000}, 5.0, None, Problem("expired", "absolute timeout")),
        ({"_created": NOW - 1_000}, 5.0, None, None),
        ({"_created": NOW - 10_000}, None, None, None),
        ({"_accessed": NOW - 10_000}, None, 5.0, Problem("expired", "idle timeout")),
        ({"_accessed": NOW - 1_000}, None, 5.0, None),
        ({"_accessed": "x"}, None, 5.0, Problem("invalid", "_accessed is not a number")),
        ({"_created": "x"}, None, None, None),
        ({"_expire": NOW - 1, "_created": NOW - 10_000}, 5.0, None, Problem("expired")),
    ],
)
def test_check_times(
    data: dict[str, Any], absolute: float | None, idle: float | None, expected: Problem | None
) -> None:
    assert decisions.check_times(data, NOW, absolute_timeout=absolute, idle_timeout=idle) == (
        expected
    )


@pytest.mark.parametrize(
    ("data", "body", "meta"),
    [
        ({}, {}, LoadedMeta()),
        ({"a": 1}, {"a": 1}, LoadedMeta()),
        (
            {"a": 1, "_expire": 5, "_maxAge": 1000, "_created": 2, "_accessed": 3},
            {"a": 1},
            LoadedMeta(expire=5, created=2, accessed=3, max_age=1000),
        ),
        ({"_session": True, "b": [1]}, {"b": [1]}, LoadedMeta(max_age="session")),
    ],
)
def test_split_metadata(data: dict[str, Any], body: dict[str, Any], meta: LoadedMeta) -> None:
    assert decisions.split_metadata(data) == (body, meta)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1000, 1.0),
        (1500.5, 1.5005),
        (0, None),
        (-1, None),
        (True, None),
        ("1000", None),
        (10**15, 400 * 86400.0),
    ],
)
def test_ms_to_seconds(value: object, expected: float | None) -> None:
    assert decisions.ms_to_seconds(value) == expected


@pytest.mark.parametrize(
    ("loaded", "configured", "expected"),
    [
        (None, 86400.0, (None, False, False)),
        (86400000, 86400.0, (86400.0, False, False)),
        (86400000.0, 86400.0, (86400.0, False, True)),
        (3600000, 86400.0, (3600.0, True, True)),
        ("session", 86400.0, ("session", True, False)),
        ("session", "session", ("session", False, False)),
        ("junk", 86400.0, (None, False, False)),
    ],
)
def test_loaded_lifetime(
    loaded: object, configured: float | str, expected: tuple[object, bool, bool]
) -> None:
    assert decisions.loaded_lifetime(loaded, configured) == expected


@pytest.mark.parametrize(
    ("max_age", "loaded_ms", "loaded_s", "expected"),
    [
        (86400.0, None, None, 86400000),
        (1024.003, None, None, 1024003),
        (1.0005, 1000.5, 1.0005, 1000.5),
        (2.0, 1000.5, 1.0005, 2000),
    ],
)
def test_lifetime_ms(
    max_age: float, loaded_ms: float | None, loaded_s: float | None, expected: float
) -> None:
    assert decisions.lifetime_ms(max_age, loaded_ms, loaded_s) == expected


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (
            {"max_age": 10.0, "max_age_ms": 10_000, "created": None},
            {"_expire": 1_010_000, "_maxAge": 10_000},
        ),
        ({"max_age": "session", "max_age_ms": None, "created": None}, {"_session": True}),
        (
            {"max_age": "session", "max_age_ms": None, "created": None, "absolute_timeout": 5.0},
            {"_session": True, "_created": 1_000_000},
        ),
        (
            {"max_age": "session", "max_age_ms": None, "created": 7, "absolute_timeout": 5.0},
            {"_session": True, "_created": 7},
        ),
        (
            {"max_age": "session", "max_age_ms": None, "created": 7, "idle_timeout": 5.0},
            {"_session": True, "_accessed": 1_000_000},
        ),
    ],
)
def test_metadata(kwargs: dict[str, Any], expected: dict[str, Any]) -> None:
    args = {"absolute_timeout": None, "idle_timeout": None, **kwargs}
    assert decisions.metadata(now_ms=1_000_000, **args) == expected


_BASE: dict[str, Any] = {
    "data_json": '{"a":1}',
    "prev_json": '{"a":1}',
    "committed": False,
    "rolling": False,
    "renew": False,
    "max_age": 100.0,
    "loaded_expire": NOW + 100_000,
    "idle_timeout": None,
    "loaded_accessed": None,
}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, ""),
        ({"prev_json": None, "data_json": "{}"}, ""),
        ({"prev_json": None}, "changed"),
        ({"data_json": '{"a":2}'}, "changed"),
        ({"data_json": '{"a":2}', "committed": True}, "changed"),
        ({"rolling": True}, "rolling"),
        ({"rolling": True, "committed": True}, ""),
        ({"renew": True}, ""),
        ({"renew": True, "loaded_expire": NOW + 40_000}, "renew"),
        ({"renew": True, "loaded_expire": NOW + 40_000, "max_age": "session"}, ""),
        ({"renew": True, "loaded_expire": None}, ""),
        ({"idle_timeout": 600.0}, "idle"),
        ({"idle_timeout": 600.0, "loaded_accessed": NOW - 1_000}, ""),
        ({"idle_timeout": 600.0, "loaded_accessed": NOW - 60_000}, "idle"),
        ({"idle_timeout": 8.0, "loaded_accessed": NOW - 2_000}, "idle"),
        ({"idle_timeout": 8.0, "loaded_accessed": NOW - 1_999}, ""),
    ],
)
def test_reason_to_save(changes: dict[str, Any], expected: str) -> None:
    assert decisions.reason_to_save(**{**_BASE, **changes}, now_ms=NOW) == expected


@pytest.mark.parametrize(
    ("max_age", "session_ttl", "expected"),
    [(100.0, 5.0, 110.0), ("session", 5.0, 5.0), (0.5, 86400.0, 10.5)],
)
def test_store_ttl(max_age: float | str, session_ttl: float, expected: float) -> None:
    assert decisions.store_ttl(max_age, session_ttl) == expected


@pytest.mark.parametrize(
    ("value", "falsy"),
    [
        (None, True),
        (False, True),
        (0, True),
        (0.0, True),
        ("", True),
        (True, False),
        (1, False),
        ("0", False),
        ([], False),
        ({}, False),
    ],
)
def test_js_falsy(value: object, falsy: bool) -> None:
    assert decisions.js_falsy(value) is falsy
