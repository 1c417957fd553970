"""options: every configuration rule fails at start-up with a precise message."""

from __future__ import annotations

import base64
import secrets
import uuid
from datetime import timedelta
from typing import Any

import pytest

from koasession import ConfigurationError, MemoryStore, SessionMiddleware
from koasession.fallbacks import StarletteReader
from koasession.serializers import TaggedSerializer

KEY = "NHys6S2KLm3FJyxPpcSVNaqd2IN4lLDtqrWcDyrtxBY"


async def noop(scope: Any, receive: Any, send: Any) -> None:
    return None


async def async_encode(data: Any) -> str:
    return ""


class OneArgSet:
    def get(self, ctx: Any) -> str | None:
        return None

    def set(self, value: str) -> None:
        return None


class HeaderKey:
    def get(self, ctx: Any) -> str | None:
        return None

    def set(self, ctx: Any, value: str) -> None:
        return None


def build(**options: Any) -> SessionMiddleware:
    options.setdefault("keys", [KEY])
    return SessionMiddleware(noop, **options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"keys": None}, "keys are required"),
        ({"keys": []}, "keys are required"),
        ({"keys": KEY}, "list of keys"),
        ({"keys": ["short"]}, "at least 32"),
        ({"keys": [""]}, "empty"),
        ({"keys": ["changeme"]}, "placeholder"),
        ({"keys": ["a random secret of 32 bytes or more"]}, "printed in documentation"),
        ({"keys": ["A Random Secret, of 32 bytes or more!"]}, "printed in documentation"),
        ({"keys": ["changeme changeme changeme changeme!"]}, "looks guessable (repeated text"),
        ({"keys": ["a" * 40]}, "looks guessable"),
        ({"keys": [b"\x00" * 40]}, "looks guessable"),
        ({"keys": ["0123456789abcdefghijklmnopqrstuvwxyz"]}, "a run of consecutive"),
        ({"keys": ["my super secret session key for production use!"]}, "common words"),
        ({"keys": ["correct horse battery staple correct horse"]}, "looks guessable"),
        ({"keys": ["qwertyuiopasdfghjklzxcvbnm1234567890"]}, "looks guessable"),
        ({"keys": [KEY, "password password password password"]}, "keys[1] looks guessable"),
        ({"keys": [KEY, 5]}, "keys[1]"),
        # Unordered: each process could sign with another key.
        ({"keys": {KEY, KEY.lower()}}, "keys must be an ordered list"),
        ({"keys": frozenset({KEY})}, "a frozenset has no order"),
        ({"keys": {"current": KEY}}, "a dict has no order"),
        ({"key": "bad name"}, "not a valid cookie name"),
        ({"key": "koa;sess"}, "not a valid cookie name"),
        ({"max_age": 86400000}, "looks like milliseconds"),
        ({"max_age": 0}, "positive"),
        ({"max_age": "forever"}, "max_age must be"),
        ({"max_age": True}, "max_age must be"),
        # Max-Age is whole seconds: under one second the cookie is written with Max-Age=0.
        ({"max_age": 0.5}, "max_age=0.5 is under 1 second"),
        ({"max_age": timedelta(milliseconds=500)}, "max_age=0.5 is under 1 second"),
        ({"max_age": float("inf")}, "over the 400-day cap"),
        ({"max_age": float("nan")}, "max_age must be positive"),
        ({"path": "/a;b"}, "inject"),
        ({"path": "relative"}, "start with '/'"),
        # Accepted before, and the cookie never came back (the request path has no query).
        ({"path": "/app?tab=1"}, "has a query or fragment, which a request path never has"),
        ({"path": "/app#top"}, "use the path alone: path='/app'"),
        ({"domain": "example.com\r\nx"}, "inject"),
        ({"same_site": "sometimes"}, "same_site must be"),
        ({"same_site": "none"}, "requires secure=True"),
        ({"partitioned": True}, "requires secure=True"),
        ({"key": "__Secure-id"}, "requires secure=True"),
        ({"key": "__Host-id", "secure": True, "domain": "example.com"}, "__Host-"),
        ({"key": "__Host-id", "secure": True, "path": "/app"}, "__Host-"),
        # Browsers match the prefixes case-insensitively (RFC 6265bis).
        ({"key": "__host-id"}, "a __Host- cookie name requires secure=True"),
        ({"key": "__HOST-id", "secure": True, "path": "/app"}, "requires domain=None"),
        ({"key": "__secure-id"}, "a __Secure- cookie name requires secure=True"),
        ({"priority": "urgent"}, "priority must be"),
        ({"algorithm": "md5"}, "algorithm must be"),
        ({"algorithm": []}, "algorithm must be"),
        ({"algorithm": None}, "algorithm must be one of"),
        ({"algorithm": {"sha256", "sha1"}}, "algorithm must be one of"),
        ({"secure": 1}, "secure must be True, False or None; got 1"),
        ({"secure": 0}, "secure must be True, False or None; got 0"),
        ({"store": object()}, "store must have a callable get()"),
        # From a settings file: truthy strings would turn on what they meant to turn off.
        ({"signed": "false"}, "signed must be True or False; got 'false'"),
        ({"http_only": "no"}, "http_only must be True or False; got 'no'"),
        ({"rolling": 1}, "rolling must be True or False; got 1"),
        ({"overwrite": None}, "overwrite must be True or False; got None"),
        # A class has get/set/destroy too: the calls would fail at each request.
        ({"store": MemoryStore}, "not the class MemoryStore: store=MemoryStore(...)"),
        ({"store": "redis://h:6379"}, "not a URL: store=store_from_url('redis://h:6379')"),
        ({"context_store": MemoryStore()}, "context_store must be a class"),
        ({"external_key": object()}, "external_key must have"),
        ({"valid": 3}, "valid must be callable"),
        # Hooks that cannot take the engine's arguments failed at every request (a 500).
        ({"genid": lambda: "id", "store": MemoryStore()}, "genid is called as genid(ctx)"),
        ({"genid": uuid.uuid4, "store": MemoryStore()}, "which uuid4() cannot take"),
        ({"valid": lambda data: True}, "valid is called as valid(ctx, data)"),
        ({"before_save": lambda session: None}, "before_save(ctx, session)"),
        ({"on_event": lambda name: None}, "on_event is called as on_event(name, payload)"),
        ({"exclude": lambda: False}, "exclude is called as exclude(scope)"),
        ({"encode": async_encode}, "encode must be a plain function"),
        ({"external_key": OneArgSet()}, "external_key.set is called as external_key.set(ctx, key)"),
        ({"on_oversize": "ignore"}, "on_oversize"),
        ({"on_store_error": "ignore"}, "on_store_error"),
        ({"idle_timeout": -1}, "idle_timeout"),
        ({"store_timeout": 0}, "store_timeout"),
        # Past the cap the stores fail at every save; inf is no number of seconds either.
        ({"session_store_ttl": 10**30}, "session_store_ttl is over the 400-day cap"),
        ({"session_store_ttl": float("inf")}, "session_store_ttl is over the 400-day cap"),
        ({"session_store_ttl": timedelta(0)}, "session_store_ttl must be a positive"),
        (
            {"encrypt": True, "store": MemoryStore(owner=lambda d: d.get("uid"))},
            "drop owner= from the store",
        ),
        ({"compress": True, "store": MemoryStore()}, "compress=True is for cookie mode"),
        ({"chunk": True, "store": MemoryStore()}, "chunk=True is for cookie mode"),
        ({"compress": True, "encrypt": True}, "CRIME/BREACH"),
        ({"chunk": True, "encrypt": True}, "chunk=True needs signed cookies"),
        ({"chunk": True, "signed": False}, "chunk=True needs signed cookies"),
        ({"serializer": object()}, "serializer must have a callable to_json_safe()"),
        # Classes have the methods too (unbound): every request would fail.
        ({"serializer": TaggedSerializer}, "not the class TaggedSerializer: serializer="),
        ({"external_key": HeaderKey}, "not the class HeaderKey: external_key=HeaderKey(...)"),
        ({"fallback": [StarletteReader]}, "fallback=[StarletteReader(...)]"),
        ({"fallback": lambda jar: None}, "fallback must be a list of readers"),
        ({"fallback": [42]}, "fallback[0] must be a reader"),
        ({"domain": "例え.jp"}, "use its IDNA (punycode) form: domain='xn--r8jz45g.jp'"),
        ({"domain": "a b.example"}, "not a host name"),
        ({"domain": "under_score.example"}, "not a host name"),
        ({"path": "/€"}, "path='/%E2%82%AC' (urllib.parse.quote(path))"),
        ({"path": "/a b"}, "path='/a%20b'"),
        ({"path": "/tab\there"}, "cannot appear in a Set-Cookie line"),
        ({"prefix": "sess "}, "prefix='sess ' contains ' '"),
        ({"prefix": "sess|"}, "prefix='sess|' contains '|'"),
        ({"prefix": "caf\u00e9:"}, "which a session id cannot"),
        ({"prefix": 'q"'}, "which a session id cannot"),
        ({"prefix": "p" * 158}, "ids are at most 200"),
    ],
)
def test_bad_configuration_fails_at_start_up(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        build(**options)
    assert message in str(info.value)


def test_a_redis_client_as_the_store_names_the_store_that_wraps_it() -> None:
    redis = pytest.importorskip("redis.asyncio")
    with pytest.raises(ConfigurationError, match=r"not a redis Redis: store=RedisStore\(client\)"):
        build(store=redis.Redis())


def test_ascii_domains_paths_and_cookie_safe_prefixes_are_accepted() -> None:
    mw = build(domain=".Example.co.uk", path="/app/v1%20x/~me", prefix="u@tenant-1:")
    assert (mw.options.domain, mw.options.path, mw.options.prefix) == (
        ".Example.co.uk",
        "/app/v1%20x/~me",
        "u@tenant-1:",
    )
    assert build(domain="xn--r8jz45g.jp", prefix="p" * 157).options.domain == "xn--r8jz45g.jp"


@pytest.mark.parametrize("weak", ["a" * 40, "changeme changeme changeme changeme!", "x" * 31])
def test_weak_key_errors_show_keygen_and_the_escape_hatch(weak: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        build(keys=[weak])
    assert "koasession keygen" in str(info.value)
    assert "allow_weak_keys=True" in str(info.value)
    assert build(keys=[weak], allow_weak_keys=True).config.keys == [weak]


def test_missing_keys_error_does_not_suggest_turning_signing_off() -> None:
    with pytest.raises(ConfigurationError) as info:
        build(keys=None)
    assert "koasession keygen" in str(info.value)
    assert "signed=False" not in str(info.value)


def test_generated_keys_always_pass() -> None:
    from koasession.diagnose import keygen

    makers = [
        keygen,
        lambda: keygen(48),
        lambda: secrets.token_urlsafe(32),
        lambda: secrets.token_hex(32),
        lambda: secrets.token_bytes(32),
        lambda: base64.b64encode(secrets.token_bytes(32)).decode(),
    ]
    for make_key in makers:
        keys = [make_key() for _ in range(1000)]
        assert build(keys=keys).config.keys == keys


def test_unsigned_cookies_need_no_keys() -> None:
    assert build(keys=None, signed=False).options.signed is False


def test_weak_keys_can_be_allowed_for_tests() -> None:
    assert build(keys=["a", "b"], allow_weak_keys=True).config.keys == ["a", "b"]


def test_hooks_of_any_fitting_signature_are_accepted() -> None:
    async def valid(ctx: Any, data: Any, *extra: Any) -> bool:
        return True

    class Listener:
        def __call__(self, name: str, payload: Any, **options: Any) -> None:
            return None

    mw = build(
        valid=valid,
        on_event=Listener(),
        before_save=lambda *args: None,
        genid=lambda ctx, prefix="s": prefix,
        store=MemoryStore(),
        exclude=lambda scope: False,
    )
    assert mw.options.valid is valid


def test_durations_are_normalised_to_seconds() -> None:
    mw = build(max_age=timedelta(hours=2), idle_timeout=timedelta(minutes=5))
    assert mw.options.max_age == 7200.0
    assert mw.options.idle_timeout == 300.0
    assert build(max_age="session").options.max_age == "session"
    # "Durations are seconds (or a timedelta)": session_store_ttl too.
    assert build(session_store_ttl=timedelta(days=2)).options.session_store_ttl == 172800.0


def test_attribute_case_is_normalised() -> None:
    mw = build(same_site="Strict", priority="HIGH")
    assert (mw.options.same_site, mw.options.priority) == ("strict", "high")


def test_secure_prefixes_accept_valid_configuration() -> None:
    assert build(key="__Host-sess", secure=True).options.key == "__Host-sess"
    assert build(same_site="none", secure=True, partitioned=True).options.partitioned


@pytest.mark.parametrize("name", ["maxAge", "max_agee"])
def test_unknown_option_names_are_refused(name: str) -> None:
    with pytest.raises(TypeError, match=name):
        build(**{name: 10})


def test_misspelt_option_names_the_python_spelling() -> None:
    with pytest.raises(TypeError, match=r"'maxAge' \(did you mean 'max_age'\?\)"):
        build(maxAge=10)
