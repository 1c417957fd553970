"""The cookie format on its own: signed reads, payloads, Set-Cookie lines."""

from __future__ import annotations

from typing import Any

import pytest

from _services import require_module
from koasession import codec, cookieformat
from koasession.errors import CookieTooLargeError, InsecureConnectionError
from koasession.options import SessionOptions
from koasession.signing import Signer

OLD, NEW = "old key: 32 bytes or more, for tests", "new key: 32 bytes or more, for tests"
SIGNER = Signer([NEW, OLD])
OLD_SIGNER = Signer([OLD])


def _sig(signer: Signer, name: str, value: str) -> str:
    return signer.sign(f"{name}={value}")


def SV(value: str | None, rotated: bool = False, problem: str | None = None) -> object:
    return (value, rotated, problem)


@pytest.mark.parametrize(
    ("jar", "signer", "expected"),
    [
        ({}, SIGNER, SV(None)),
        ({"s": "v"}, None, SV("v")),
        ({"s": "v"}, SIGNER, SV("v", False, "missing signature")),
        ({"s": "v", "s.sig": "nope"}, SIGNER, SV("v", False, "bad signature")),
        ({"s": "v", "s.sig": _sig(SIGNER, "s", "v")}, SIGNER, SV("v")),
        ({"s": "v", "s.sig": _sig(OLD_SIGNER, "s", "v")}, SIGNER, SV("v", True)),
        ({"s": "w", "s.sig": _sig(SIGNER, "s", "v")}, SIGNER, SV("w", False, "bad signature")),
    ],
)
def test_read_signed(jar: dict[str, str], signer: Signer | None, expected: object) -> None:
    assert cookieformat.read_signed(jar, "s", signer) == expected


def _opened(data: Any, rotated: bool = False, problem: str | None = None) -> object:
    return (data, rotated, problem)


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _raises_value_error(value: str) -> Any:
    raise ValueError(value)


@pytest.mark.parametrize(
    ("value", "decode", "expected"),
    [
        (codec.encode({"a": 1}), None, _opened({"a": 1})),
        (codec.encode({}), None, _opened({})),
        ("bnVsbA==", None, _opened(None, False, "empty payload")),  # null
        ("MA==", None, _opened(0, False, "empty payload")),  # 0
        ("WzFd", None, _opened(None, False, "malformed payload")),  # [1]
        ("%%%", None, _opened(None, False, "malformed payload")),
        ("x", lambda v: {"v": v}, _opened({"v": "x"})),
        ("x", _raises_value_error, _opened(None, False, "malformed payload")),
        ("x", lambda v: False, _opened(False, False, "empty payload")),
        (
            "x",
            lambda v: {"a": _nested(codec.MAX_DEPTH + 1)},
            _opened(None, False, cookieformat.TOO_DEEP),
        ),
    ],
)
def test_open_payload(value: str, decode: Any, expected: object) -> None:
    assert cookieformat.open_payload(value, cipher=None, decode=decode) == expected


def test_open_payload_lets_other_decode_errors_through() -> None:
    def broken(value: str) -> Any:
        raise RuntimeError("decoder bug")

    with pytest.raises(RuntimeError):
        cookieformat.open_payload("x", cipher=None, decode=broken)


def test_encrypted_payloads_round_trip_and_report_rotation() -> None:
    crypto = require_module("koasession.crypto")
    old = crypto.CookieCipher([OLD], cookie_name="s")
    both = crypto.CookieCipher([NEW, OLD], cookie_name="s")
    sealed = cookieformat.seal_payload({"a": 1}, cipher=old, encode=None)
    assert cookieformat.looks_encrypted(sealed)
    assert cookieformat.open_payload(sealed, cipher=both, decode=None) == (_opened({"a": 1}, True))
    assert cookieformat.open_payload("garbage", cipher=both, decode=None) == (
        _opened(None, False, "cannot decrypt")
    )


@pytest.mark.parametrize(
    ("encode", "error"),
    [
        (lambda p: "a;b", ValueError),
        (lambda p: 5, ValueError),
        (_raises_value_error, TypeError),
    ],
)
def test_seal_payload_refuses_unsafe_custom_encodings(encode: Any, error: type) -> None:
    with pytest.raises(error):
        cookieformat.seal_payload({"a": 1}, cipher=None, encode=encode)


def test_seal_payload_default_is_koa_base64_json() -> None:
    sealed = cookieformat.seal_payload({"a": 1}, cipher=None, encode=None)
    assert codec.decode(sealed) == {"a": 1}
    assert cookieformat.is_cookie_payload(sealed)
    assert not cookieformat.is_cookie_payload("eyJnotjson")


@pytest.mark.parametrize(
    ("configured", "is_secure", "expected"),
    [(None, True, True), (None, False, False), (False, True, False), (True, True, True)],
)
def test_resolve_secure(configured: bool | None, is_secure: bool, expected: bool) -> None:
    assert cookieformat.resolve_secure(configured, is_secure) is expected


def test_resolve_secure_refuses_secure_cookies_over_http() -> None:
    with pytest.raises(InsecureConnectionError):
        cookieformat.resolve_secure(True, False)


@pytest.mark.parametrize(
    ("max_age", "lifetime_ms", "expected"),
    [(10.0, 10_000, (1_010.0, 10)), ("session", None, (None, None)), (1.5, 1_500, (1_001.5, 1))],
)
def test_lifetime(max_age: float | str, lifetime_ms: float | None, expected: Any) -> None:
    assert cookieformat.lifetime(max_age, lifetime_ms, 1_000_000) == expected


def test_lines_write_value_and_signature() -> None:
    attrs = cookieformat.attributes(SessionOptions(), secure=False, expires=None, max_age=None)
    assert attrs == "path=/; samesite=lax; httponly"
    lines = cookieformat.lines("s", "v", attrs, SIGNER)
    assert lines == [("s", f"s=v; {attrs}"), ("s.sig", f"s.sig={_sig(SIGNER, 's', 'v')}; {attrs}")]
    assert cookieformat.lines("s", "v", attrs, SIGNER, with_value=False) == lines[1:]
    assert cookieformat.lines("s", "v", attrs, None) == lines[:1]
    assert cookieformat.values(lines) == {"s": "v", "s.sig": _sig(SIGNER, "s", "v")}


def test_merge_overwrites_by_name_only_when_asked() -> None:
    first = [("s", "s=1"), ("s.sig", "s.sig=a")]
    second = [("s", "s=2")]
    assert cookieformat.merge(list(first), second, overwrite=True) == [
        ("s.sig", "s.sig=a"),
        ("s", "s=2"),
    ]
    assert cookieformat.merge(list(first), second, overwrite=False) == [*first, *second]


def test_oversize_lines_raise_or_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    big = [("s", "s=" + "v" * cookieformat.COOKIE_LINE_LIMIT)]
    assert cookieformat.fits([("s", "s=v")], "raise")
    with pytest.raises(CookieTooLargeError, match="over the 4096-byte browser limit"):
        cookieformat.fits(big, "raise")
    assert not cookieformat.fits(big, "warn")
    assert "cookie not sent" in caplog.text


@pytest.mark.parametrize(
    ("value", "signed", "jar", "expected"),
    [
        ("A" * 43, True, {}, True),  # an id, verified by the signed read
        ("A" * 43, False, {}, False),  # unsigned, not encrypted: nothing proves it
        ("eyJhIjoxfQ", True, {}, False),  # a payload
        ("WzFd", True, {}, False),  # JSON, not an object
        ("a;b", True, {}, False),
    ],
)
def test_is_store_id_cookie(value: str, signed: bool, jar: dict[str, str], expected: bool) -> None:
    got = cookieformat.is_store_id_cookie(
        value, jar=jar, name="s", signed=signed, encrypted=False, keys=[NEW], algorithms=["sha256"]
    )
    assert got is expected
