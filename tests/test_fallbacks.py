"""fallbacks: migration readers, tested against cookies minted by the real libraries."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

import pytest
from flask import Flask
from flask import session as flask_session
from hypothesis import given
from hypothesis import strategies as st
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware as StarletteSessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from starsessions import CookieStore, load_session
from starsessions import SessionMiddleware as StarsessionsMiddleware

from _services import require_module
from koasession import SessionMiddleware, cookiesize, fallbacks
from koasession.fallbacks import (
    FallbackResult,
    FlaskReader,
    KoaCookieReader,
    StarletteReader,
    StarsessionsReader,
    read_fallback,
)
from koasession.serializers import TaggedSerializer
from koasession.signing import Signer

SECRET = "old-app-secret-7f3a9c"
OTHER = "another-secret-0b1e2d"
DATA = {"user": "ada", "cart": [1, 2, {"sku": "x"}], "n": 1.5, "ok": True, "none": None}


def _later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    real = time.time
    monkeypatch.setattr(fallbacks.time, "time", lambda: real() + seconds)


def _tamper(value: str) -> str:
    """Flip one character of the payload part (before the timestamp and signature)."""
    index = 2
    flipped = "A" if value[index] != "A" else "B"
    return value[:index] + flipped + value[index + 1 :]


# -- Starlette ---------------------------------------------------------------------------------


def _starlette_cookie(data: Mapping[str, Any], secret: str = SECRET, **options: Any) -> str:
    async def login(request: Request) -> JSONResponse:
        request.session.update(data)
        return JSONResponse({})

    app = Starlette(
        routes=[Route("/", login)],
        middleware=[Middleware(StarletteSessionMiddleware, secret_key=secret, **options)],
    )
    with TestClient(app) as client:
        response = client.get("/")
        value = response.cookies.get(options.get("session_cookie", "session"))
    assert value
    return value


def test_starlette_cookie_is_read_with_its_data_and_cookie_to_remove() -> None:
    value = _starlette_cookie(DATA)
    result = StarletteReader(SECRET)({"session": value, "other": "x"})
    assert result == FallbackResult(DATA, ("session",), "starlette")


def test_starlette_custom_cookie_name_and_key_list() -> None:
    value = _starlette_cookie({"a": 1}, session_cookie="sid")
    assert StarletteReader(SECRET)({"sid": value}) is None  # looks at "session" by default
    reader = StarletteReader([OTHER, SECRET], cookie_name="sid")
    result = reader({"sid": value})
    assert result is not None and result.data == {"a": 1} and result.remove == ("sid",)


def test_starlette_wrong_secret_tampering_and_garbage_are_refused() -> None:
    value = _starlette_cookie(DATA)
    assert StarletteReader(OTHER)({"session": value}) is None
    assert StarletteReader(SECRET)({"session": _tamper(value)}) is None
    payload, _, signature = value.rpartition(".")
    assert StarletteReader(SECRET)({"session": payload + "." + signature[::-1]}) is None
    for junk in ["", ".", "..", "a.b.c", "é.é.é", value + ".x", "x" * 5000]:
        assert StarletteReader(SECRET)({"session": junk}) is None
    assert StarletteReader(SECRET)({}) is None


def test_starlette_max_age_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    value = _starlette_cookie(DATA)
    reader = StarletteReader(SECRET, max_age=60)
    assert reader({"session": value}) is not None
    _later(monkeypatch, 61)
    assert reader({"session": value}) is None
    assert StarletteReader(SECRET)({"session": value}) is not None  # 14 days by default


def test_starlette_cookie_from_the_future_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    value = _starlette_cookie(DATA)
    _later(monkeypatch, -3600)
    assert StarletteReader(SECRET)({"session": value}) is None


def test_signed_non_object_payload_is_refused() -> None:
    # A validly signed value that is not a JSON object (the key leaked into another use).
    import itsdangerous

    signer = itsdangerous.TimestampSigner(SECRET)
    for body in [b"[1,2]", b"null", b"{bad json", b'{"x": NaN}', b"\xff\xfe"]:
        value = signer.sign(base64.b64encode(body)).decode()
        assert StarletteReader(SECRET)({"session": value}) is None


# -- starsessions ------------------------------------------------------------------------------


def _starsessions_cookie(data: Mapping[str, Any], lifetime: int = 0) -> str:
    async def login(request: Request) -> JSONResponse:
        await load_session(request)
        request.session.update(data)
        return JSONResponse({})

    app = Starlette(
        routes=[Route("/", login)],
        middleware=[
            Middleware(
                StarsessionsMiddleware,
                store=CookieStore(secret_key=SECRET),
                lifetime=lifetime,
                cookie_https_only=False,
            )
        ],
    )
    with TestClient(app) as client:
        value = client.get("/").cookies.get("session")
    assert value
    return value


def test_starsessions_cookie_is_read_without_its_metadata() -> None:
    value = _starsessions_cookie(DATA, lifetime=3600)
    result = StarsessionsReader(SECRET, lifetime=3600)({"session": value})
    assert result == FallbackResult(DATA, ("session",), "starsessions")


def test_starsessions_session_only_cookie_is_read() -> None:
    value = _starsessions_cookie({"a": [1]})
    result = StarsessionsReader(SECRET)({"session": value})
    assert result is not None and result.data == {"a": [1]}


def test_starsessions_wrong_secret_tampering_and_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    value = _starsessions_cookie(DATA, lifetime=60)
    assert StarsessionsReader(OTHER, lifetime=60)({"session": value}) is None
    assert StarsessionsReader(SECRET, lifetime=60)({"session": _tamper(value)}) is None
    _later(monkeypatch, 61)
    assert StarsessionsReader(SECRET, lifetime=60)({"session": value}) is None
    # The session's own metadata (created + lifetime) expires it even with a longer reader
    # lifetime, as starsessions' remaining time would.
    assert StarsessionsReader(SECRET, lifetime=3600)({"session": value}) is None


# -- Flask -------------------------------------------------------------------------------------


def _flask_cookie(data: Mapping[str, Any], secret: str = SECRET, **config: Any) -> str:
    app = Flask(__name__)
    app.secret_key = secret
    app.config.update(config)

    @app.route("/")
    def login() -> str:
        flask_session.update(data)
        return ""

    client = app.test_client()
    client.get("/")
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def test_flask_cookie_is_read() -> None:
    value = _flask_cookie(DATA)
    assert not value.startswith(".")
    assert FlaskReader(SECRET)({"session": value}) == FallbackResult(DATA, ("session",), "flask")


def test_flask_permanent_flag_is_not_session_data() -> None:
    app = Flask(__name__)
    app.secret_key = SECRET

    @app.route("/")
    def login() -> str:
        flask_session.permanent = True
        flask_session["user"] = "ada"
        return ""

    client = app.test_client()
    client.get("/")
    cookie = client.get_cookie("session")
    assert cookie is not None
    result = FlaskReader(SECRET)({"session": cookie.value})
    assert result is not None and result.data == {"user": "ada"}


def test_flask_compressed_cookie_is_read() -> None:
    data = {"notes": ["the same words again"] * 60}
    value = _flask_cookie(data)
    assert value.startswith(".")  # Flask chose zlib
    result = FlaskReader(SECRET)({"session": value})
    assert result is not None and result.data == data


def test_flask_secret_key_fallbacks() -> None:
    value = _flask_cookie(DATA, secret=OTHER)
    assert FlaskReader(SECRET)({"session": value}) is None
    assert FlaskReader([SECRET, OTHER])({"session": value}) is not None


def test_flask_wrong_secret_tampering_expiry_and_salt(monkeypatch: pytest.MonkeyPatch) -> None:
    value = _flask_cookie(DATA)
    assert FlaskReader(OTHER)({"session": value}) is None
    assert FlaskReader(SECRET)({"session": _tamper(value)}) is None
    assert FlaskReader(SECRET, salt="other-salt")({"session": value}) is None
    assert FlaskReader(SECRET, key_derivation="django-concat")({"session": value}) is None
    # A Starlette cookie with the same secret is not a Flask cookie (salt, derivation differ).
    assert FlaskReader(SECRET)({"session": _starlette_cookie(DATA)}) is None
    assert StarletteReader(SECRET)({"session": value}) is None
    _later(monkeypatch, 31 * 24 * 3600 + 1)  # PERMANENT_SESSION_LIFETIME's default
    assert FlaskReader(SECRET)({"session": value}) is None


def test_flask_tuple_markup_and_escaped_dicts_decode_to_json() -> None:
    data = {"t": (1, (2, 3)), "m": Markup("<b>hi</b>"), "d": {" t": "not a tag"}, "l": [(4,)]}
    result = FlaskReader(SECRET)({"session": _flask_cookie(data)})
    assert result is not None
    assert result.data == {"t": [1, [2, 3]], "m": "<b>hi</b>", "d": {" t": "not a tag"}, "l": [[4]]}
    assert json.loads(json.dumps(result.data)) == result.data


RICH = {
    "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "at": dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc),
    "raw": b"\x00\x01binary",
    "nested": [{"when": dt.datetime(2023, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)}],
}


def test_flask_rich_values_are_refused_by_default() -> None:
    value = _flask_cookie(RICH)
    assert FlaskReader(SECRET)({"session": value}) is None
    for key in ["id", "at", "raw"]:
        assert FlaskReader(SECRET)({"session": _flask_cookie({key: RICH[key]})}) is None


def test_flask_rich_values_as_text() -> None:
    result = FlaskReader(SECRET, rich_values="text")({"session": _flask_cookie(RICH)})
    assert result is not None
    assert result.data == {
        "id": "12345678-1234-5678-1234-567812345678",
        "at": "2024-05-06T07:08:09+00:00",
        "raw": base64.b64encode(b"\x00\x01binary").decode(),
        "nested": [{"when": "2023-01-02T03:04:05+00:00"}],
    }


def test_flask_rich_values_tagged_for_the_tagged_serializer() -> None:
    result = FlaskReader(SECRET, rich_values="tagged")({"session": _flask_cookie(RICH)})
    assert result is not None
    assert json.loads(json.dumps(result.data)) == result.data
    assert TaggedSerializer().from_json_safe(result.data) == RICH


def test_flask_unknown_tag_is_refused() -> None:
    import itsdangerous

    serializer = itsdangerous.URLSafeTimedSerializer(
        SECRET, salt="cookie-session", signer_kwargs={"key_derivation": "hmac"}
    )
    value = serializer.dumps({"x": {" od": [["a", 1]]}})
    assert FlaskReader(SECRET, rich_values="text")({"session": value}) is None
    plain = serializer.dumps({"x": {"od": 1}})
    assert FlaskReader(SECRET)({"session": plain}) is not None


def test_flask_zip_bomb_is_refused() -> None:
    import zlib

    import itsdangerous

    signer = itsdangerous.TimestampSigner(SECRET, salt="cookie-session", key_derivation="hmac")
    bomb = zlib.compress(b'{"x":"' + b"a" * (4 << 20) + b'"}', 9)
    payload = "." + base64.urlsafe_b64encode(bomb).rstrip(b"=").decode()
    value = signer.sign(payload).decode()
    assert FlaskReader(SECRET)({"session": value}) is None


# -- our own cookie mode -----------------------------------------------------------------------

KEY = "xZqTBffAl431XeYZcNG6xjzkB2O-ln8mGRKOPBZEH9I"


def _koa_cookies(data: Mapping[str, Any], **options: Any) -> dict[str, str]:
    async def login(request: Request) -> JSONResponse:
        request.scope["session"].update(data)
        return JSONResponse({})

    app = SessionMiddleware(Starlette(routes=[Route("/", login)]), [KEY], **options)
    with TestClient(app) as client:
        response = client.get("/")
        return dict(response.cookies.items())


def test_own_signed_cookie_is_read_without_metadata() -> None:
    cookies = _koa_cookies(DATA)
    assert set(cookies) == {"koa.sess", "koa.sess.sig"}
    result = KoaCookieReader([KEY])(cookies)
    assert result == FallbackResult(DATA, ("koa.sess", "koa.sess.sig"), "koasession-cookie")


def test_own_cookie_with_custom_key_and_algorithm() -> None:
    cookies = _koa_cookies({"a": 1}, key="app.sid", algorithm="sha512")
    assert KoaCookieReader([KEY], key="app.sid")(cookies) is None
    reader = KoaCookieReader([KEY], key="app.sid", algorithms=["sha256", "sha512"])
    result = reader(cookies)
    assert result is not None and result.data == {"a": 1}


def test_own_cookie_forged_missing_signature_and_wrong_key() -> None:
    cookies = _koa_cookies(DATA)
    assert KoaCookieReader(["another key of enough length 12345"])(cookies) is None
    assert KoaCookieReader([KEY])({"koa.sess": cookies["koa.sess"]}) is None
    forged = dict(cookies, **{"koa.sess": cookies["koa.sess"][:-4] + "AAAA"})
    assert KoaCookieReader([KEY])(forged) is None


def test_own_cookie_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    cookies = _koa_cookies(DATA, max_age=60)
    assert KoaCookieReader([KEY])(cookies) is not None
    _later(monkeypatch, 61)
    assert KoaCookieReader([KEY])(cookies) is None


def test_own_encrypted_cookie() -> None:
    require_module("cryptography")
    cookies = _koa_cookies(DATA, encrypt=True)
    assert set(cookies) == {"koa.sess"}
    assert KoaCookieReader([KEY])(cookies) is None  # not signed: the signed reader refuses it
    result = KoaCookieReader([KEY], encrypt=True)(cookies)
    assert result == FallbackResult(DATA, ("koa.sess",), "koasession-cookie")
    tampered = {"koa.sess": cookies["koa.sess"][:-2] + "AA"}
    assert KoaCookieReader([KEY], encrypt=True)(tampered) is None


def test_own_compressed_and_chunked_cookies() -> None:
    cookies = _koa_cookies(DATA)
    signer = Signer([KEY])
    compressed = cookiesize.compress_value(
        _koa_cookies({"notes": ["the same words again"] * 60})["koa.sess"]
    )
    assert cookiesize.is_compressed(compressed)
    jar = {"koa.sess": compressed, "koa.sess.sig": signer.sign(f"koa.sess={compressed}")}
    result = KoaCookieReader([KEY])(jar)
    assert result is not None and result.data == {"notes": ["the same words again"] * 60}

    chunked = dict(
        cookiesize.chunk_cookies("koa.sess", cookies["koa.sess"], signer, attributes_length=4030)
    )
    assert len(chunked) > 2
    result = KoaCookieReader([KEY])(chunked)
    assert result is not None and result.data == DATA
    assert set(result.remove) == set(chunked)
    # A stray whole cookie (another path, a sibling subdomain) does not hide the chunks.
    for stray in ("x", "", cookies["koa.sess"]):
        result = KoaCookieReader([KEY])(dict(chunked, **{"koa.sess": stray}))
        assert result is not None and result.data == DATA


def test_read_fallback_tries_readers_in_order_and_survives_a_broken_one() -> None:
    def broken(cookies: Mapping[str, str]) -> FallbackResult | None:
        raise RuntimeError("bug in a custom reader")

    value = _flask_cookie(DATA)
    readers = [broken, StarletteReader(SECRET), FlaskReader(SECRET)]
    result = read_fallback(readers, {"session": value})
    assert result is not None and result.source == "flask"
    assert read_fallback(readers, {"session": "junk"}) is None
    assert read_fallback([], {"session": value}) is None


def test_readers_need_a_secret() -> None:
    with pytest.raises(ValueError):
        StarletteReader("")
    with pytest.raises(ValueError):
        FlaskReader([])
    with pytest.raises(ValueError):
        FlaskReader(SECRET, rich_values="loose")  # type: ignore[arg-type]


_cookie_text = st.text(max_size=60) | st.from_regex(r"[A-Za-z0-9_.=~-]{0,80}", fullmatch=True)


@given(
    st.dictionaries(
        st.sampled_from(["session", "koa.sess", "koa.sess.sig", "koa.sess.1"]), _cookie_text
    )
)
def test_readers_never_raise_on_arbitrary_cookies(jar: dict[str, str]) -> None:
    readers = [
        StarletteReader(SECRET),
        StarsessionsReader(SECRET),
        FlaskReader(SECRET, rich_values="text"),
        KoaCookieReader([KEY]),
    ]
    for reader in readers:
        assert reader(jar) is None


_json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from([" t", " di", " b", " u", " d", " m", "a", " di__"]),
            children,
            max_size=2,
        )
    ),
    max_leaves=8,
)


@given(st.binary(max_size=64) | _json_like.map(lambda v: json.dumps(v).encode()), st.booleans())
def test_validly_signed_garbage_never_raises(body: bytes, compress: bool) -> None:
    import zlib

    import itsdangerous

    starlette = itsdangerous.TimestampSigner(SECRET).sign(base64.b64encode(body)).decode()
    assert StarletteReader(SECRET)({"session": starlette}) is None or body.startswith(b"{")
    assert StarsessionsReader(SECRET)({"session": starlette}) is None or body.startswith(b"{")
    raw = zlib.compress(body) if compress else body
    payload = ("." if compress else "") + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    flask_signer = itsdangerous.TimestampSigner(
        SECRET, salt="cookie-session", key_derivation="hmac"
    )
    flask = flask_signer.sign(payload).decode()
    for mode in ("refuse", "text", "tagged"):
        result = FlaskReader(SECRET, rich_values=mode)({"session": flask})  # type: ignore[arg-type]
        assert result is None or json.loads(json.dumps(result.data)) == result.data


def test_signature_spellings_outside_the_alphabet_are_refused() -> None:
    value = _starlette_cookie(DATA)
    assert StarletteReader(SECRET)({"session": value + "!"}) is None
    assert StarletteReader(SECRET)({"session": value + "="}) is None
    assert StarletteReader(SECRET)({"session": value + "A"}) is None
