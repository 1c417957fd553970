"""koasession.diagnose: offline verification of a cookie, with the exact reason for a rejection."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

from _services import require_module
from koasession import SessionMiddleware
from koasession.codec import encode
from koasession.diagnose import Diagnosis, diagnose, format_diagnosis, keygen
from koasession.signing import Signer

# Random-looking literals: the middleware refuses low-entropy keys such as "k" * 32.
KEY = "Av2GOF0cVLO5P8-zNcZcw-9BfZbnONAPwsFl3Almozw"
OLD = "coAWaQDl1l8qByJxkFdRtz-acn1luul51KSss7rizhs"
OTHER = "brdGVIAMwZz3Fy4JVI0KMaQkugICs2fy8pcADOzWy_c"
NAME = "koa.sess"
NOW = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC

# koa-session 7 test vectors (spec: keys ['a', 'b'], keygrip sha1).
KOA_VALUE = "eyJtZXNzYWdlIjoiaGVsbG8iLCJfZXhwaXJlIjoxNzAwMDAwMDAwMDAwLCJfbWF4QWdlIjo4NjQwMDAwMH0="
KOA_SIG_A = "ntlnTN4AbrwGPBBNFQbSbY7B2Oc"
KOA_SIG_B = "BzaHh3J8y624cmlqXxeCF30us6o"


def sign(value: str, key: str = KEY, alg: str = "sha256", name: str = NAME) -> str:
    return Signer([key], (alg,)).sign(f"{name}={value}")


def header(value: str, key: str = KEY, alg: str = "sha256", name: str = NAME) -> str:
    return f"{name}={value}; {name}.sig={sign(value, key, alg, name)}"


def payload(**data: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"views": 3, "_expire": int((NOW + 3600) * 1000), "_maxAge": 86400000}
    base.update(data)
    return {k: v for k, v in base.items() if v is not None}


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


# -- accepted cookies ----------------------------------------------------------------------


def test_valid_header() -> None:
    d = diagnose(header(encode(payload())), [KEY], now=NOW)
    assert d.ok, d.reason
    assert d.verified and d.key_index == 0 and d.algorithm == "sha256"
    assert d.data == payload()
    assert d.expires_at == datetime.fromtimestamp(NOW + 3600, tz=timezone.utc)
    assert d.lifetime == 86400
    assert "valid session, signed by keys[0] with sha256" in d.reason
    assert "expires at 2023-11-14 23:13:20 UTC (in 1 h)" in d.reason


def test_bare_value_with_signature() -> None:
    value = encode(payload())
    d = diagnose(value, [KEY], signature=sign(value), now=NOW)
    assert d.ok and d.value == value


def test_cookie_prefix_and_other_cookies_ignored() -> None:
    text = "Cookie: theme=dark; " + header(encode(payload())) + "; lang=en"
    assert diagnose(text, [KEY], now=NOW).ok


def test_koa_vector_sha1() -> None:
    d = diagnose(KOA_VALUE, ["a", "b"], algorithm="sha1", signature=KOA_SIG_A, now=NOW - 10)
    assert d.ok and d.key_index == 0 and d.algorithm == "sha1"
    assert d.data == {"message": "hello", "_expire": 1700000000000, "_maxAge": 86400000}


def test_rotated_key() -> None:
    d = diagnose(KOA_VALUE, ["b", "a"], algorithm="sha1", signature=KOA_SIG_A, now=NOW - 10)
    assert d.ok and d.key_index == 1
    assert "signed by keys[1] (rotated)" in d.reason
    assert any("re-issues" in note for note in d.notes)


def test_algorithm_list_second_choice() -> None:
    value = encode(payload())
    d = diagnose(header(value, alg="sha1"), [OLD, KEY], algorithm=["sha256", "sha1"], now=NOW)
    assert d.ok and d.key_index == 1 and d.algorithm == "sha1"


def test_session_lifetime() -> None:
    d = diagnose(header(encode({"user": "ann", "_session": True})), [KEY], now=NOW)
    assert d.ok and d.lifetime == "session" and d.expires_at is None
    assert "'session' lifetime" in d.reason


def test_no_expire_is_noted() -> None:
    d = diagnose(header(encode({"a": 1})), [KEY], now=NOW)
    assert d.ok and any("no _expire" in note for note in d.notes)


def test_unsigned_mode() -> None:
    d = diagnose(f"{NAME}={encode(payload())}", [], signed=False, now=NOW)
    assert d.ok and d.mode == "unsigned" and d.key_index is None


def test_custom_cookie_name() -> None:
    text = header(encode(payload()), name="sid")
    assert diagnose(text, [KEY], key="sid", now=NOW).ok


# -- rejected: where is the cookie ---------------------------------------------------------


def test_no_such_cookie() -> None:
    d = diagnose("theme=dark; lang=en", [KEY])
    assert not d.ok
    assert d.reason.startswith("no such cookie 'koa.sess'; the header has 'theme', 'lang'")


def test_no_such_cookie_old_koa_name() -> None:
    value = encode(payload())
    d = diagnose(header(value, name="koa:sess"), [KEY])
    assert not d.ok and "'koa:sess' is koa-session's pre-6 default name" in d.reason
    assert "RFC 6265" in d.reason
    assert diagnose(header(value, name="koa:sess"), [KEY], key="koa:sess", now=NOW).ok


def test_only_signature_cookie() -> None:
    d = diagnose(f"{NAME}.sig=abc", [KEY])
    assert "only 'koa.sess.sig'" in d.reason


def test_empty_input() -> None:
    assert diagnose("  ", [KEY]).reason.startswith("no cookie given")


def test_removal_cookie() -> None:
    d = diagnose(f"{NAME}=; {NAME}.sig=x", [KEY])
    assert not d.ok and "removal cookie" in d.reason


def test_duplicate_cookie_noted() -> None:
    value = encode(payload())
    text = header(value) + f"; {NAME}=other"
    d = diagnose(text, [KEY], now=NOW)
    assert d.ok and any("2 'koa.sess' cookies" in n for n in d.notes)


# -- rejected: signature -------------------------------------------------------------------


def test_missing_signature() -> None:
    value = encode(payload())
    d = diagnose(f"{NAME}={value}", [KEY], now=NOW)
    assert not d.ok and d.reason.startswith("missing signature: no 'koa.sess.sig' cookie")
    assert d.data == payload() and not d.verified  # shown, but marked unverified
    assert "UNVERIFIED" in format_diagnosis(d)


def test_bare_value_without_signature() -> None:
    d = diagnose(encode(payload()), [KEY], now=NOW)
    assert d.reason.startswith("missing signature")


def test_no_keys() -> None:
    assert diagnose(header(encode(payload())), []).reason.startswith("no keys given")


def test_signed_with_another_algorithm() -> None:
    d = diagnose(header(encode(payload()), alg="sha1"), [KEY])
    assert not d.ok
    assert d.reason.startswith("signed with sha1 (by keys[0]) but only sha256 is accepted")


def test_koa_cookie_checked_as_sha256() -> None:
    d = diagnose(KOA_VALUE, ["a", "b"], signature=KOA_SIG_B)
    assert "signed with sha1 (by keys[1]) but only sha256 is accepted" in d.reason


def test_signature_matches_no_key() -> None:
    d = diagnose(header(encode(payload()), key=OTHER), [KEY, OLD])
    assert not d.ok and d.key_index is None
    assert d.reason.startswith("signature matches none of the 2 keys with sha256")
    assert "not among those given, or the value was altered" in d.reason


def test_signature_shape_hint() -> None:
    value = encode(payload())
    d = diagnose(value, [KEY], signature=sign(value, key=OTHER, alg="sha1"))
    assert "(it has the length of a sha1 signature)" in d.reason
    d = diagnose(value, [KEY], signature="short")
    assert "its length, 5, is not that of any HMAC signature" in d.reason


def test_tampered_value() -> None:
    value = encode(payload())
    forged = encode(payload(views=1000))
    d = diagnose(f"{NAME}={forged}; {NAME}.sig={sign(value)}", [KEY])
    assert not d.ok and "signature matches none" in d.reason


def test_signed_under_other_name() -> None:
    value = encode(payload())
    d = diagnose(f"{NAME}={value}; {NAME}.sig={sign(value, name='koa:sess')}", [KEY])
    assert "signed as a 'koa:sess' cookie" in d.reason


def test_non_ascii_signature() -> None:
    value = encode(payload())
    assert not diagnose(value, [KEY], signature="é" * 43).ok


# -- rejected: payload ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("!!!!", "not base64"),
        (b64(b"\xff\xfe\x00"), "base64, but not UTF-8 text"),
        (b64("{nope"), "base64 UTF-8, but not JSON"),
        (b64("[1,2]"), "JSON, but not an object (an array)"),
        (b64('"text"'), "JSON, but not an object (a string)"),
        (b64("null"), "JSON, but not an object (null)"),
        (b64('{"a":NaN}'), "JSON object with NaN, Infinity"),
        (b64('{"a":1e999}'), "JSON object with NaN, Infinity"),
    ],
)
def test_bad_payload(value: str, reason: str) -> None:
    d = diagnose(header(value), [KEY])
    assert not d.ok and d.verified and d.data is None  # the signature held; the payload did not
    assert d.reason.startswith(reason), d.reason


def test_store_id_hint_in_cookie_mode() -> None:
    sid = "Zm9vYmFyYmF6cXV4cXV1eHh5ejEyMzQ1Njc4OTBhYmM"
    d = diagnose(header(sid), [KEY])
    assert not d.ok and "looks like a store session id: pass store=True" in d.reason


def test_lenient_base64_like_node() -> None:
    raw = json.dumps({"a": 1, "_expire": int((NOW + 60) * 1000)}, separators=(",", ":"))
    value = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    assert diagnose(header(value), [KEY], now=NOW).ok


# -- rejected: metadata ---------------------------------------------------------------------


def test_expired() -> None:
    data = payload(_expire=int((NOW - 3 * 86400) * 1000))
    d = diagnose(header(encode(data)), [KEY], now=NOW)
    assert not d.ok
    assert d.reason == "expired at 2023-11-11 22:13:20 UTC (3 days ago)"
    assert d.expires_at == datetime(2023, 11, 11, 22, 13, 20, tzinfo=timezone.utc)
    assert d.data == data and d.verified


def test_expire_not_a_number() -> None:
    d = diagnose(header(encode(payload(_expire="soon"))), [KEY], now=NOW)
    assert d.reason.startswith("_expire is not a number")


def test_idle_and_absolute_timeouts() -> None:
    data = payload(_created=int((NOW - 7200) * 1000), _accessed=int((NOW - 1000) * 1000))
    text = header(encode(data))
    assert diagnose(text, [KEY], now=NOW).ok  # not configured: not checked
    d = diagnose(text, [KEY], absolute_timeout=3600, now=NOW)
    assert d.reason.startswith("absolute timeout: _created 2023-11-14 20:13:20 UTC plus 1 h")
    d = diagnose(text, [KEY], idle_timeout=600, now=NOW)
    assert d.reason.startswith("idle timeout") and "(6 min ago)" in d.reason
    assert diagnose(text, [KEY], idle_timeout=1800, absolute_timeout=86400, now=NOW).ok


# -- store mode ----------------------------------------------------------------------------


def test_store_id() -> None:
    sid = "Zm9vYmFyYmF6cXV4cXV1eHh5ejEyMzQ1Njc4OTBhYmM"
    d = diagnose(header(sid), [KEY], store=True)
    assert d.ok and d.mode == "store" and d.data is None
    assert d.reason.startswith("valid store session id, signed by keys[0] with sha256")
    d = diagnose(header("bad id!"), [KEY], store=True)
    assert not d.ok and "is not a session id" in d.reason
    assert not diagnose(f"{NAME}={sid}", [KEY], store=True).ok


# -- encrypted mode -------------------------------------------------------------------------


@pytest.fixture
def crypto() -> Any:
    return require_module("koasession.crypto")


def test_encrypted_ok_and_rotated(crypto: Any) -> None:
    token = crypto.CookieCipher([OLD], cookie_name=NAME).seal(payload())
    d = diagnose(f"{NAME}={token}", [KEY, OLD], encrypt=True, now=NOW)
    assert d.ok and d.key_index == 1 and d.data == payload()
    assert "encrypted with keys[1]" in d.reason


def test_encrypted_failures(crypto: Any) -> None:
    token = crypto.CookieCipher([KEY], cookie_name=NAME).seal(payload())
    d = diagnose(token, [OTHER], encrypt=True)
    assert d.reason == (
        "encrypted token cannot be opened: its key id matches none of the given keys "
        "(sealed with a key that is not among them)"
    )
    other_name = crypto.CookieCipher([KEY], cookie_name="sid").seal(payload())
    d = diagnose(other_name, [KEY], encrypt=True)
    assert "its key id is that of keys[0], but authentication failed" in d.reason
    d = diagnose(encode(payload()), [KEY], encrypt=True)
    assert "format version 123" in d.reason and "encrypt=False?" in d.reason
    d = diagnose(encode({"a": 1}), [KEY], encrypt=True)  # "eyJhIjoxfQ==": padded
    assert "not canonical base64url" in d.reason and "encrypt=False?" in d.reason
    d = diagnose("AQID", [KEY], encrypt=True)
    assert "too short" in d.reason
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[0] = 2
    d = diagnose(base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("="), [KEY], encrypt=True)
    assert "format version 2, only version 1" in d.reason
    d = diagnose("A" * 20000, [KEY], encrypt=True)
    assert "longer than" in d.reason


def test_encrypted_expired(crypto: Any) -> None:
    data = payload(_expire=int((NOW - 90) * 1000))
    token = crypto.CookieCipher([KEY], cookie_name=NAME).seal(data)
    d = diagnose(token, [KEY], encrypt=True, now=NOW)
    assert d.reason == "expired at 2023-11-14 22:11:50 UTC (1 min ago)"


def test_encrypted_cookie_inspected_as_signed(crypto: Any) -> None:
    token = crypto.CookieCipher([KEY], cookie_name=NAME).seal(payload())
    d = diagnose(header(token), [KEY])
    assert "it opens as an encrypted cookie: pass encrypt=True" in d.reason


# -- arguments, formatting, keygen -----------------------------------------------------------


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="algorithm"):
        diagnose("x", [KEY], algorithm="md5")
    with pytest.raises(ValueError, match="algorithm"):
        diagnose("x", [KEY], algorithm=[])
    with pytest.raises(ValueError, match="encrypt"):
        diagnose("x", [KEY], encrypt=True, store=True)


def test_format_diagnosis() -> None:
    d = diagnose(header(encode(payload(user="ann"))), [KEY], now=NOW)
    text = format_diagnosis(d)
    assert text.startswith("koa.sess (signed): OK: valid session")
    assert "key:       keys[0] with sha256" in text
    assert "expires:   2023-11-14 23:13:20 UTC" in text
    assert "lifetime:  1 day (86400 s; koa maxAge 86400000 ms)" in text
    assert '"user": "ann"' in text
    rejected = format_diagnosis(diagnose("a=b", [KEY]))
    assert rejected.startswith("koa.sess (signed): REJECTED: no such cookie")
    long_value = format_diagnosis(Diagnosis(ok=False, reason="r", value="v" * 200))
    assert "v" * 77 + "... (200 characters)" in long_value


async def _noop_app(scope: Any, receive: Any, send: Any) -> None:
    return None


def test_keygen() -> None:
    key = keygen()
    assert len(key) == 43 and key != keygen()
    # 2,000 draws meet a leading "-" about 31 times if nothing prevents it.
    assert not any(keygen().startswith("-") for _ in range(2000))
    assert len(keygen(64)) == 86
    SessionMiddleware(_noop_app, keys=[keygen()])  # accepted as a strong key
    for bad in (16, 31, True, "32"):
        with pytest.raises(ValueError):
            keygen(bad)  # type: ignore[arg-type]


# -- agreement with the middleware ---------------------------------------------------------


async def _middleware_accepts(cookie: str, **options: Any) -> bool:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        body = json.dumps(not scope["session"].is_new).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    mw = SessionMiddleware(app, **options)
    transport = httpx.ASGITransport(app=mw)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/", headers={"cookie": cookie})
    accepted: bool = response.json()
    return accepted


def _cases() -> list[tuple[str, dict[str, Any]]]:
    now = time.time()
    live = {"v": 1, "_expire": int((now + 600) * 1000), "_maxAge": 600000}
    dead = {"v": 1, "_expire": int((now - 600) * 1000), "_maxAge": 600000}
    value = encode(live)
    return [
        (header(value), {}),
        (header(value, key=OLD), {}),
        (header(value, alg="sha1"), {}),
        (header(value, alg="sha1"), {"algorithm": ["sha256", "sha1"]}),
        (header(value, key=OTHER), {}),
        (f"{NAME}={value}", {}),
        (header(encode(dead)), {}),
        (header(b64("[1]")), {}),
        (header(b64("{x")), {}),
        (header(encode({"_session": True, "v": 2})), {}),
        (header(value, name="sid"), {"key": "sid"}),
    ]


@pytest.mark.parametrize(("cookie", "options"), _cases())
async def test_agrees_with_middleware(cookie: str, options: dict[str, Any]) -> None:
    keys = [KEY, OLD]
    accepted = await _middleware_accepts(cookie, keys=keys, **options)
    d = diagnose(
        cookie,
        keys,
        key=options.get("key", NAME),
        algorithm=options.get("algorithm", "sha256"),
    )
    assert d.ok is accepted, d.reason
