"""A property-based search for any request on which the plain and the general engine disagree.

``test_plainrequest.py`` compares the two engines on a fixed corpus of cookies and hand-written
handlers. Here hypothesis draws the requests instead: the middleware's options, the clock, the
Cookie header (a signed or sealed payload of drawn data and metadata, plainly valid or with a
defect or two: bad metadata, a tampered or old-key signature, a wrong length, quotes, a duplicate
that shadows it...), the JSON backend, and handlers made of a few actions on the session before,
while and after the response starts (reads, writes that change nothing or only the JSON, in-place
edits, replacing the session in the scope, the session's other methods, values JSON cannot hold,
time passing). A case is one to three requests, each next one sending back the cookies that the
responses before it set, as a browser would.

Each case is served three ways: through a middleware whose requests may start on the plain
engine; through one where ``plainrequest.usable`` says no, so the general engine serves every
request (the reference: the two middlewares of ``test_plainrequest._agree``); and through the
general engine without the fast lane of :mod:`koasession.plaincookie` either (which the general
engine also uses to read and write the default cookie). The clock is frozen: it moves only
between requests and where a handler waits. Everything observable must be identical: the
messages the server receives (status, every header in order, sealed values opened, each body
part), the exception that escapes, the events with their payloads, and what each action of the
handler got back or raised.

So that the comparison cannot pass with the plain engine never used, each test counts the cases
the plain engine served to the end and the cookies it wrote itself, and requires some.
``KOASESSION_PROPERTY_EXAMPLES=5000`` (say) in the environment searches harder.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import enum
import json
import math
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from koasession import SessionMiddleware, codec, plainrequest
from koasession import cookies as cookies_module
from koasession.decisions import MAX_TIME_MS
from koasession.fallbacks import StarletteReader
from koasession.options import MAX_AGE_CAP
from koasession.plainrequest import PlainRequest

from ._app import KEY, OLD_KEY, http_scope, sign
from .test_plainrequest import Unequal

try:
    from koasession.crypto import CookieCipher

    CookieCipher([KEY], cookie_name="probe")  # imports the cryptography backend
    NO_CRYPTO = ""
except ImportError as exc:  # pragma: no cover - the dev extra installs it
    NO_CRYPTO = f"encrypt=True needs the cryptography package ({exc})"

#: The JSON backends the requests are drawn with: both, unless KOASESSION_JSON=std asks for an
#: install without orjson (``make test-oldest``).
BACKENDS = ["std"]
if os.environ.get("KOASESSION_JSON", "").strip().lower() != "std":
    with contextlib.suppress(ImportError):
        import orjson  # noqa: F401

        BACKENDS.append("orjson")

#: How many requests each test draws (its own default when unset); raise it to search harder.
EXAMPLES = int(os.environ.get("KOASESSION_PROPERTY_EXAMPLES", "0")) or None

Send = Callable[[dict[str, Any]], Awaitable[None]]
ABSENT = "<absent>"
DAY_MS = 86_400_000
#: The frozen clock is this (2026-01-01) plus a drawn fraction of a second: a failing example
#: replays exactly, whenever it runs.
BASE_MS = 1_767_225_600_000


def _weighted(**weights: int) -> st.SearchStrategy[str]:
    return st.sampled_from([name for name, weight in weights.items() for _ in range(weight)])


def _mix(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """A draw from one of the strategies, picked with the given weights (the first when
    shrinking). ``st.one_of`` would not do: it flattens nested choices into one uniform choice
    and drops repeated strategies."""
    return st.sampled_from([s for weight, s in choices for _ in range(weight)]).flatmap(
        lambda strategy: strategy
    )


# -- session data ---------------------------------------------------------------------------------

TEXTS = st.one_of(
    st.text(max_size=6),
    st.sampled_from(
        [
            "",
            "Zoë 🎉",
            '"quoted"',
            "back\\slash",
            "\n\t\x00\x1f",
            "\u2028\u2029",
            "\ud800",  # a lone surrogate: escaped in the cookie's JSON
            "\udfff\ud800",
            "[x]",
            "{}",
            '1":',
            "</script>",
        ]
    ),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.integers(-(2**70), 2**70),
    st.sampled_from([2**53 + 1, 2**63, 2**64, -(2**64) - 1, 10**30]),
    st.sampled_from([0.0, -0.0, 1.0, 1.5, -2.5, 1e21, 1e-7, 1e16, 0.1 + 0.2, 5e-324, 1.5e300]),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXTS,
)
#: Keys that are array indices (written first, in numeric order), and some that only look so.
INDEX_KEYS = ["0", "1", "10", "2", "4294967294"]
OTHER_KEYS = ["views", "user", "cart", "01", "4294967295", "-1", "1.5", "²", "x1", "_x", "_"]
DATA_KEYS = _mix(
    (2, st.sampled_from(OTHER_KEYS)),
    (1, st.sampled_from(INDEX_KEYS)),
    (1, st.text(max_size=4).filter(lambda key: key not in codec.META_KEYS)),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(DATA_KEYS, inner, max_size=3),
    max_leaves=4,
)
#: Values equal to each other as Python values but not as JSON (1, 1.0, True...).
LOOKALIKES = st.sampled_from([1, 1.0, True, 0, 0.0, -0.0, False, "1", None, [], {}])
#: Session data: mostly flat (the plain engine's own case), sometimes nested.
DATA_VALUES = _mix((2, SCALARS), (1, LOOKALIKES), (1, VALUES))
DATA = _mix(
    (4, st.dictionaries(DATA_KEYS, DATA_VALUES, min_size=1, max_size=4)),
    (1, st.just({})),
)


# -- options ---------------------------------------------------------------------------------

OTHER_OPTIONS: dict[str, st.SearchStrategy[Any]] = {
    "max_age": st.sampled_from([60, 3600, 86400.0, 1.5, 1.0015, 1024.003, MAX_AGE_CAP]),
    "overwrite": st.just(False),
    "algorithm": st.sampled_from(["sha1", ["sha256", "sha1"], ["sha1", "sha256"]]),
    "record_created": st.just(False),
    "proxy": st.just(True),
    "same_site": st.sampled_from(["strict", None]),
    "http_only": st.just(False),
    "path": st.just("/app"),
    "domain": st.just("example.com"),
    "priority": st.just("high"),
    "on_oversize": st.just("warn"),
    "key": st.just("sid"),
    "scope_key": st.just("sess"),
}


class OldCookies(StarletteReader):
    """A reader of an older cookie format, with a repr that reads well in a failure report."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "StarletteReader('an-old-starlette-secret')"


@st.composite
def option_sets(draw: st.DrawFn, encrypt: bool) -> dict[str, Any]:
    """The middleware's options: the refreshing ones and ``secure`` often, others now and then."""
    options: dict[str, Any] = {}
    for name, value in (("rolling", True), ("renew", True)):
        if draw(st.sampled_from([False, False, False, True])):
            options[name] = value
    secure = draw(st.sampled_from([None, None, True, False]))
    if secure is not None:
        options["secure"] = secure
    names = draw(st.lists(st.sampled_from(sorted(OTHER_OPTIONS)), max_size=2, unique=True))
    options.update({name: draw(OTHER_OPTIONS[name]) for name in sorted(names)})
    if encrypt:
        options["encrypt"] = True
        options.pop("algorithm", None)  # not used: the cookie is sealed, not signed
    if draw(st.sampled_from([False] * 19 + [True])):  # with readers of old cookies configured
        options["fallback"] = [OldCookies("an-old-starlette-secret")]
    return options


# -- the cookie --------------------------------------------------------------------------------

#: What a payload's metadata may be beyond what the fast lane reads, by label (see _meta).
EXPIRE_DEFECTS = ["now", "past", "null", "float", "integral-float", "bool", "text", "huge"]
EXPIRE_DEFECTS += ["absent"]
MAX_AGE_DEFECTS = ["other", "null", "negative", "zero", "float", "integral", "huge", "bool"]
CREATED_DEFECTS = ["null", "float", "negative", "huge", "bool", "text"]
RESERVED_DEFECTS = ["session", "session-false", "accessed", "device"]

#: The defects a cookie of the "any" tests may have (none, one or two), by kind.
DEFECTS = {
    "expire": EXPIRE_DEFECTS,
    "max-age": MAX_AGE_DEFECTS,
    "created": CREATED_DEFECTS,
    "reserved": RESERVED_DEFECTS,
    # A lone surrogate written raw (not UTF-8); a member twice (both parsers keep the last).
    "json": ["raw-utf8", "duplicate-expire", "duplicate-created"],
    # Another cookie of the session cookie's name first: the first one wins.
    "shadow": ["cookie", "signature", "trimmed-name"],
}
SIGNED_DEFECTS = {
    **DEFECTS,
    "value": ["unpadded", "urlsafe", "space", "garbage", "quoted"],
    "sig": ["old-key", "second-alg", "other-alg", "tampered", "missing", "empty", "padded"],
}
SIGNED_DEFECTS["sig"].append("non-ascii")
SEALED_DEFECTS = {**DEFECTS, "sealed": ["old-key", "tampered", "signed-not-sealed"]}


@st.composite
def defects(draw: st.DrawFn, encrypt: bool) -> list[str]:
    kinds = SEALED_DEFECTS if encrypt else SIGNED_DEFECTS
    out: dict[str, str] = {}
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 1, 1, 2]))):
        kind = draw(st.sampled_from(sorted(kinds)))
        out[kind] = draw(st.sampled_from(kinds[kind]))
    return [f"{kind}:{label}" for kind, label in out.items()]


def _meta(expire: str, max_age: str, created: str, reserved: str, now: float, life: int) -> Any:
    """The payload's metadata for the drawn labels (``life``: the configured max_age in ms)."""
    ms = int(now)
    values = {
        "_expire": {
            "future": ms + DAY_MS,
            "soon": ms + 1,
            "renew-due": ms + life // 2 - 1,
            "renew-not-due": ms + life // 2 + 1,
            "now": ms,  # expired, unless the clock stands on a whole millisecond
            "past": ms - 1000,
            "null": None,
            "float": ms + DAY_MS + 0.5,
            "integral-float": float(ms + DAY_MS),
            "bool": True,
            "text": str(ms + DAY_MS),
            "huge": 10**20,
            "max": int(MAX_TIME_MS),
        }.get(expire, ABSENT),
        "_maxAge": {
            "configured": life,
            "other": 3_600_000 if life != 3_600_000 else 60_000,
            "null": None,
            "negative": -5,
            "zero": 0,
            "float": life + 0.5,
            "integral": float(life),
            "huge": 10**20,
            "bool": True,
        }.get(max_age, ABSENT),
        "_created": {
            "past": ms - 5000,
            "null": None,
            "float": now - 5000.5,
            "negative": -1,
            "zero": 0,
            "huge": 10**17,
            "bool": True,
            "text": "yesterday",
        }.get(created, ABSENT),
        "_session": {"session": True, "session-false": False}.get(reserved, ABSENT),
        "_accessed": ms if reserved == "accessed" else ABSENT,
        "_device": {"ua": "x"} if reserved == "device" else ABSENT,
    }
    return {name: value for name, value in values.items() if value is not ABSENT}


def _json(payload: dict[str, Any], style: str) -> bytes:
    """The payload's JSON as some writer would make it."""
    if style == "js":  # as koa-session (and this package) writes it
        return codec.to_bytes(payload)
    if style == "spaced":
        return json.dumps(payload, ensure_ascii=False).encode("utf-8", "surrogatepass")
    if style == "raw-utf8":
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        return text.encode("utf-8", "surrogatepass")
    return json.dumps(payload, separators=(",", ":")).encode()  # 1.0, 1e+21, \u escapes


@dataclass(frozen=True)
class Cookie:
    """How the request's Cookie header was made (for the report), and its fields."""

    recipe: tuple[Any, ...]
    fields: tuple[str, ...]


def _signature(kind: str, name: str, value: str, algorithms: list[str]) -> str | None:
    good = sign(name, value, KEY, algorithms[0])
    return {
        "good": good,
        "old-key": sign(name, value, OLD_KEY, algorithms[0]),
        "second-alg": sign(name, value, KEY, algorithms[-1]),
        "other-alg": sign(name, value, KEY, "sha512"),
        "tampered": sign(name, value + "x", KEY, algorithms[0]),
        "padded": good + "=",
        "non-ascii": good[:-1] + "é",
        "empty": "",
        "missing": None,
    }[kind]


def _value(form: str, raw: bytes) -> str:
    value = base64.b64encode(raw).decode()
    if form == "unpadded":
        return value.rstrip("=") or value + "A"
    if form == "urlsafe":
        return value.replace("+", "-").replace("/", "_")
    if form == "space":
        return value[:4] + " " + value[4:]
    if form == "garbage":
        return value + "!"
    return value


@st.composite
def cookies(draw: st.DrawFn, options: dict[str, Any], now_ms: float, plain: bool) -> Cookie:
    """A Cookie header; with ``plain``, absent or one the plain engine reads itself, else with a
    defect or two (or none), or damaged."""
    name = options.get("key", "koa.sess")
    sig_name = name + ".sig"
    life = round(options.get("max_age", 86400) * 1000)
    encrypt = bool(options.get("encrypt"))
    if plain:
        state = draw(_weighted(payload=8, none=1, unrelated=1))
    else:
        state = draw(_weighted(payload=10, none=1, unrelated=1, damaged=1))
    recipe: list[Any] = [state]
    pairs: list[str] = []  # "name=value" texts
    first: list[str] = []  # pairs that come before the session cookie (a shadow)
    if state == "damaged":
        damaged = [f"{name}=", f"{sig_name}=" + "A" * 43, f'{name}=""', f"{name}=%%%", name]
        pairs.append(draw(st.sampled_from(damaged)))
        recipe.append(pairs[-1])
    elif state == "payload":
        data = draw(DATA)
        labels = {
            # Mostly what the fast lane reads; a whole-millisecond clock also reads "now".
            "expire": draw(
                _weighted(future=12, soon=1, max=1, now=1, **{"renew-due": 2, "renew-not-due": 2})
            ),
            # "other": read by the fast lane, with a lifetime of its own (the general rules).
            "max-age": draw(_weighted(configured=6, absent=3, zero=1, other=1)),
            "created": draw(_weighted(absent=4, past=4, zero=1)),
            "reserved": "none",
            "json": draw(_weighted(js=4, python=3, spaced=1)),
            "value": "canonical",
            "sig": "good",
            "sealed": "key",
            "shadow": "none",
        }
        faults = [] if plain else draw(defects(encrypt))
        for defect in faults:
            field, _, label = defect.partition(":")
            labels[field] = label
        meta = _meta(
            labels["expire"], labels["max-age"], labels["created"], labels["reserved"], now_ms, life
        )
        payload = {**meta, **data} if draw(st.booleans()) else {**data, **meta}
        recipe += [payload, faults]
        style = labels["json"]
        raw = _json(payload, "python" if style.startswith("duplicate") else style)
        if style.startswith("duplicate"):
            member = "_" + style.partition("-")[2]
            raw = b'{"' + member.encode() + b'":0,' + raw[1:] if raw != b"{}" else raw
        if encrypt:
            kind = labels["sealed"]
            if kind == "signed-not-sealed":
                value = base64.b64encode(raw).decode()
            else:
                key = OLD_KEY if kind == "old-key" else KEY
                value = CookieCipher([key], cookie_name=name).seal_bytes(raw)
                if kind == "tampered":
                    value = value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1]
            pairs.append(f"{name}={value}")
        else:
            quoted = labels["value"] == "quoted"
            value = _value(labels["value"], raw)
            algorithms = options.get("algorithm", "sha256")
            algorithms = [algorithms] if isinstance(algorithms, str) else algorithms
            signature = _signature(labels["sig"], name, value, algorithms)
            pairs.append(f'{name}="{value}"' if quoted else f"{name}={value}")
            if signature is not None:
                pairs.append(f"{sig_name}={signature}")
        shadow = labels["shadow"]
        if shadow != "none":
            first.append(
                {
                    "cookie": f"{name}=c2Vjb25k",
                    "signature": f"{sig_name}=" + "A" * 43,
                    "trimmed-name": f"\t{name}=e30=",  # the session cookie's name, once trimmed
                }[shadow]
            )
    unrelated = ["theme=dark", "lang=fr", f"{name}2=x", f"\xa0{name}=e30="]  # \xa0: not trimmed
    extras = draw(st.lists(st.sampled_from(unrelated), max_size=2))
    if state == "unrelated" and not extras:
        extras = ["theme=dark"]
    recipe.append(extras)
    pairs += extras
    order = draw(st.permutations(range(len(pairs))))
    pairs = first + [pairs[i] for i in order]
    if not pairs:
        return Cookie(tuple(recipe), ())
    separator = draw(st.sampled_from(["; ", ";", " ; "]))
    split = draw(st.integers(0, len(pairs) - 1))  # several Cookie fields, as HTTP/2 may send
    fields = [separator.join(pairs[:split]), separator.join(pairs[split:])]
    return Cookie(tuple(recipe), tuple(field for field in fields if field))


# -- the handler ---------------------------------------------------------------------------------

#: Session methods beyond the mapping: most take the request to the general engine.
VERBS = [
    "is_new",
    "populated",
    "to_json",
    "max_age",
    "set_max_age",
    "destroy",
    "save",
    "regenerate",
    "skip_save",
    "created_at",
    "expires_at",
    "remaining",
    "accessed_at",
    "external_key",
    "load",
    "reload",
    "reload_sync",
    "flush",
    "flush_sync",
    "manually_commit",
    "options_rolling",
    "options_secure",
]
BAD = ["nan", "inf", "set", "unequal", "deep", "tuple", "bytes", "intenum", "strsub"]


class Number(enum.IntEnum):
    ONE = 1


class Text(str):
    """A ``str`` subclass: JSON writes it as a string, orjson leaves it to the json module."""


class Loaded(int):
    """An action's key: the ``n``-th key of the loaded data (resolved once the data is drawn)."""


#: The loaded keys most often, so that reads, rewrites and deletions find them; "_expire" and 1
#: are refused (reserved, not a str).
KEYS = _mix(
    (6, st.integers(0, 7).map(Loaded)),
    (1, st.sampled_from(["views", "cart", "_expire", "_session", 1])),
    (1, DATA_KEYS),
)


def actions(plain: bool) -> st.SearchStrategy[tuple[Any, ...]]:
    """One thing a handler does with its session (or the scope that holds it); with ``plain``,
    mostly what the plain engine serves itself."""
    values = _mix((1, VALUES), (1, LOOKALIKES))
    small = st.dictionaries(KEYS, values, max_size=2)
    common = [
        ("read", st.tuples(st.sampled_from(["get", "getitem", "contains"]), KEYS)),
        ("look", st.sampled_from([("len",), ("items",), ("verb", "is_new"), ("verb", "destroy")])),
        ("set", st.tuples(st.just("set"), KEYS, values)),
        ("delete", st.tuples(st.sampled_from(["del", "pop"]), KEYS)),
        # Writes that may change nothing, or only the JSON: equal dicts, other text.
        ("retype", st.tuples(st.just("retype"), KEYS, st.integers(0, 3))),
        ("rewrite", st.tuples(st.sampled_from(["rewrite", "readd"]), KEYS)),
        ("in place", st.tuples(st.sampled_from(["append", "mutate"]), KEYS, values)),
        ("update", st.tuples(st.just("update"), small)),
        ("clear", st.just(("clear",))),
        # Time passing during the request (the clock is frozen otherwise): by a millisecond,
        # to the next second, past the renewal point or past the expiry of a loaded cookie.
        ("wait", st.tuples(st.just("wait"), st.sampled_from([1, 1000, 43_200_000, 86_400_001]))),
    ]
    rare = [
        st.tuples(st.just("scope"), st.sampled_from(["none", "restore", "delete", "list"])),
        st.tuples(st.just("scope"), st.just("dict"), small),
        st.tuples(st.just("verb"), st.sampled_from(VERBS)),
        st.tuples(st.just("bad"), KEYS, st.sampled_from(BAD)),
        st.tuples(st.just("big"), KEYS, st.integers(2600, 3300)),  # near the cookie size limit
    ]
    # Most handlers only read and write values (the plain engine's work); the rest hand over.
    weights = {"retype": 3}
    return _mix(
        *((weights.get(name, 1) * (6 if plain else 2), strategy) for name, strategy in common),
        *((1, strategy) for strategy in rare),
    )


#: For plain and not: a non-empty list of actions, and a short, possibly empty one.
ACTIONS = {
    plain: (
        st.lists(actions(plain), min_size=1, max_size=3).map(tuple),
        st.lists(actions(plain), max_size=2).map(tuple),
    )
    for plain in (True, False)
}


def _resolve(value: Any, data_keys: list[str]) -> Any:
    """``value`` with each :class:`Loaded` key replaced by the loaded key it stands for."""
    if isinstance(value, Loaded):
        return data_keys[value % len(data_keys)] if data_keys else "views"
    if isinstance(value, tuple):
        return tuple(_resolve(item, data_keys) for item in value)
    if isinstance(value, dict):
        return {_resolve(k, data_keys): v for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Handler:
    """What the application does: actions before, while and after the response starts."""

    before: tuple[tuple[Any, ...], ...]
    response: str  # "plain", "streamed", "none" (returns without one), "crash" (raises first)
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    swallow: bool  # a failing response start is caught and the handler goes on
    retry: int | None  # then another response start with this status (an error page)
    during: tuple[tuple[Any, ...], ...]
    after: tuple[tuple[Any, ...], ...]
    crash_after: bool


APP_HEADERS = [
    (b"set-cookie", b"koa.sess=app; path=/"),
    (b"Set-Cookie", b"sid=app; path=/"),
    (b"set-cookie", b"koa.sess.sig=app; path=/"),
    (b"set-cookie", b"other=1; path=/"),
    (b"vary", b"Accept"),
    (b"Vary", b"accept, cookie"),
    (b"vary", b"*"),
    (b"cache-control", b"no-store"),
    (b"content-type", b"text/plain"),
]
RESPONSES = _weighted(plain=8, streamed=2, none=1, crash=1)
STATUSES = st.sampled_from([200] * 6 + [204, 302, 404, 500, 503])
HEADER_SETS = st.lists(st.sampled_from(APP_HEADERS), max_size=3, unique=True)
UNUSED = st.sampled_from([False] * 7 + [True])  # now and then a session never used


@st.composite
def handlers(draw: st.DrawFn, data_keys: list[str], plain: bool) -> Handler:
    """A handler; with ``plain``, one that mostly reads and writes values."""
    used, few = ACTIONS[plain]
    response = draw(RESPONSES)
    return Handler(
        before=() if draw(UNUSED) else _resolve(draw(used), data_keys),
        response=response,
        status=draw(STATUSES),
        headers=tuple(draw(HEADER_SETS)),
        swallow=draw(st.booleans()),
        retry=draw(st.sampled_from([None, None, 500, 200])),
        during=_resolve(draw(few), data_keys) if response == "streamed" else (),
        after=_resolve(draw(few), data_keys) if draw(st.booleans()) else (),
        crash_after=draw(st.sampled_from([False] * 9 + [True])),
    )


def show(value: Any) -> Any:
    """``value`` as comparable text: types kept apart (1, 1.0, True), no object addresses."""
    if isinstance(value, dict):
        return ("dict", [(show(k), show(v)) for k, v in value.items()])
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [show(v) for v in value])
    if type(value) in (str, int, float, bool, bytes, type(None), datetime):
        return repr(value)
    if isinstance(value, BaseException):
        return (type(value).__name__, str(value))
    return type(value).__name__


def _bad_value(kind: str) -> Any:
    deep: Any = "leaf"
    for _ in range(40):
        deep = [deep]
    return {
        "nan": float("nan"),
        "inf": float("inf"),
        "set": {1, 2},
        "unequal": Unequal(),
        "deep": deep,
        "tuple": (1, 2),  # written as a JSON array, read back as a list
        "bytes": b"x",
        "intenum": Number.ONE,  # equal to 1, written as 1
        "strsub": Text("views"),
    }[kind]


def _retyped(value: Any, variant: int) -> Any:
    """A value equal to ``value`` as Python compares, of another type when there is one
    (1, 1.0 and True; 0, 0.0, -0.0 and False; 2**70 and its float), else a copy."""
    if type(value) not in (int, float, bool):
        return value if variant % 2 else copy.deepcopy(value)
    candidates = []
    for convert in (float, int, bool, lambda v: -0.0):
        with contextlib.suppress(OverflowError, ValueError):
            other = convert(value)
            if other == value and (type(other), math.copysign(1, other)) != (
                type(value),
                math.copysign(1, value),
            ):
                candidates.append(other)
    candidates = candidates or [value]
    return candidates[variant % len(candidates)]


async def _verb(session: Any, name: str) -> Any:
    if name in ("is_new", "populated", "max_age", "created_at", "expires_at", "remaining"):
        return getattr(session, name)
    if name in ("accessed_at", "external_key"):
        return getattr(session, name)
    if name == "set_max_age":
        session.max_age = 3600
    elif name == "to_json":
        return session.to_json()
    elif name in ("destroy", "skip_save", "reload_sync", "flush_sync"):
        getattr(session, name)()
    elif name in ("save", "regenerate", "load", "reload", "flush", "manually_commit"):
        await getattr(session, name)()
    elif name == "options_rolling":
        session.options.rolling = True
    elif name == "options_secure":
        session.options.secure = False
    return None


async def _act(action: tuple[Any, ...], scope: dict[str, Any], key: str, session: Any) -> Any:
    """Apply ``action``; what it returned, or the exception it raised."""
    kind = action[0]
    try:
        current = scope.get(key)
        target = current if isinstance(current, dict) else session  # a dict put in the scope
        if kind == "get":
            return show(target.get(action[1]))
        if kind == "getitem":
            return show(target[action[1]])
        if kind == "contains":
            return action[1] in target
        if kind == "del":
            del target[action[1]]
        elif kind == "pop":
            return show(target.pop(action[1], "<missing>"))
        elif kind == "set":
            target[action[1]] = copy.deepcopy(action[2])
        elif kind == "rewrite":  # the same value again: a write, but no change
            target[action[1]] = target[action[1]]
        elif kind == "readd":  # the same items in another order: equal dicts, other JSON
            target[action[1]] = target.pop(action[1])
        elif kind == "retype":
            target[action[1]] = _retyped(target.get(action[1]), action[2])
        elif kind == "append":
            found = target.setdefault(action[1], [])
            if isinstance(found, list):
                found.append(copy.deepcopy(action[2]))  # in place: no write through the session
        elif kind == "mutate":
            found = target.get(action[1])
            if isinstance(found, list):
                found.insert(0, copy.deepcopy(action[2]))
            elif isinstance(found, dict):
                found["k"] = copy.deepcopy(action[2])
        elif kind == "update":
            target.update(copy.deepcopy(action[1]))
        elif kind == "clear":
            target.clear()
        elif kind == "len":
            return len(target)
        elif kind == "items":
            return show(list(target.items()))
        elif kind == "scope":
            what = action[1]
            if what == "none":
                scope[key] = None
            elif what == "restore":
                scope[key] = session
            elif what == "delete":
                scope.pop(key, None)
            elif what == "list":
                scope[key] = [1]
            else:
                scope[key] = copy.deepcopy(action[2])
        elif kind == "verb":
            return show(await _verb(session, action[1]))
        elif kind == "bad":
            target[action[1]] = _bad_value(action[2])
        elif kind == "big":
            target[action[1]] = "x" * action[2]
        return None
    except Exception as exc:
        return ("raised", type(exc).__name__, str(exc))


class Clock:
    """The frozen ``time.time`` of a case: it moves only between its requests."""

    def __init__(self, ms: float) -> None:
        self.ms = ms

    def __call__(self) -> float:
        return self.ms / 1000


class Run:
    """What the requests through one middleware produced, and which engine served them."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.handler: Handler | None = None  # the handler of the request under way
        self.trace: list[Any] = []
        self.events: list[Any] = []
        self.engines: list[str] = []
        self.plain_saved = 0
        #: The browser's cookies: the first request's, then what each response set.
        self.jar: dict[str, str] = {}

    def on_event(self, name: str, payload: dict[str, Any]) -> None:
        extra = sorted((k, show(v)) for k, v in payload.items() if k not in ("key", "value", "ctx"))
        self.events.append((name, show(payload.get("key")), show(payload.get("value")), extra))

    def keep(self, lines: list[bytes]) -> None:
        """Store the cookies a response set, as a browser would (path, domain and the rest of
        the attributes aside)."""
        for line in lines:
            pair, _, attributes = line.decode("latin-1").partition(";")
            name, _, value = pair.partition("=")
            attributes = attributes.lower()
            if "max-age=0" in attributes or "1970" in attributes:
                self.jar.pop(name.strip(), None)
            else:
                self.jar[name.strip()] = value.strip()


def _app(run: Run, scope_key: str) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Send) -> None:
        handler = run.handler
        assert handler is not None
        session = scope[scope_key]

        async def act(phase: str, steps: tuple[tuple[Any, ...], ...]) -> None:
            for step in steps:
                if step[0] == "wait":
                    run.clock.ms += step[1]
                    continue
                run.trace.append((phase, step[0], await _act(step, scope, scope_key, session)))
                run.engines.append(type(session._bound).__name__)

        await act("before", handler.before)
        if handler.response == "crash":
            raise RuntimeError("handler failed")
        if handler.response == "none":
            return
        start = {"type": "http.response.start", "status": handler.status}
        start["headers"] = list(handler.headers)
        try:
            await send(start)
        except Exception as exc:
            run.trace.append(("start raised", type(exc).__name__, str(exc)))
            if not handler.swallow:
                raise
            if handler.retry is not None:
                retry = {"type": "http.response.start", "status": handler.retry, "headers": []}
                try:
                    await send(retry)
                except Exception as again:
                    run.trace.append(("retry raised", type(again).__name__, str(again)))
        bound = session._bound
        run.engines.append(type(bound).__name__)
        run.plain_saved += isinstance(bound, PlainRequest) and bool(bound.cookie_lines)
        if handler.response == "streamed":
            await send({"type": "http.response.body", "body": b"a", "more_body": True})
            await act("during", handler.during)
        await send({"type": "http.response.body", "body": b"b"})
        await act("after", handler.after)
        if handler.crash_after:
            raise RuntimeError("handler failed after the response")

    return app


# -- the requests, three ways ----------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One request of a case: when (ms after the previous one), how, and what the app does."""

    later_ms: float
    https: bool
    forwarded: bool
    handler: Handler


@dataclass(frozen=True)
class Case:
    """Requests through one middleware: the first with the drawn Cookie header, each next one
    with the cookies the responses before it set (as a browser sends them back)."""

    options: dict[str, Any]
    clock_ms: float
    backend: str
    cookie: Cookie
    steps: tuple[Step, ...]


@st.composite
def cases(draw: st.DrawFn, encrypt: bool, plain: bool) -> Case:
    """Requests; with ``plain``, the first one's cookie is one the plain engine reads (or none)."""
    options = draw(option_sets(encrypt))
    clock_ms = BASE_MS + draw(st.sampled_from([0, 0.25, 999.75]) | st.integers(0, 999))
    cookie = draw(cookies(options, clock_ms, plain))
    payload = cookie.recipe[1] if cookie.recipe[0] == "payload" else {}
    keys = [k for k in payload if k not in codec.META_KEYS]
    life = options.get("max_age", 86400) * 1000
    steps = []
    for index in range(draw(st.sampled_from([1, 1, 2, 2, 3]))):
        # The same second, the next one, or when the cookie is due for renewal or expired.
        later = draw(st.sampled_from([0, 1, 999.5, 1000, 60_000, life / 2 + 1, life + 1]))
        steps.append(
            Step(
                later_ms=0 if index == 0 else later,
                https=draw(st.booleans()),
                forwarded=draw(st.sampled_from([False] * 4 + [True])),
                handler=draw(handlers(keys, plain)),
            )
        )
    return Case(options, clock_ms, draw(st.sampled_from(BACKENDS)), cookie, tuple(steps))


_CIPHERS: dict[str, Any] = {}


def _open_sealed(name: str, value: str) -> Any:
    """The payload of a sealed Set-Cookie value, whose random nonce differs between the runs."""
    if NO_CRYPTO or not value:
        return None
    cipher = _CIPHERS.get(name)
    if cipher is None:
        cipher = _CIPHERS[name] = CookieCipher([KEY, OLD_KEY], cookie_name=name)
    return cipher.open(value)


def _headers(headers: list[tuple[bytes, bytes]], encrypt: bool) -> list[Any]:
    out: list[Any] = []
    for name, value in headers:
        if encrypt and name.lower() == b"set-cookie":
            pair, _, attributes = value.decode("latin-1").partition(";")
            cookie_name, _, cookie_value = pair.partition("=")
            opened = _open_sealed(cookie_name, cookie_value)
            if opened is not None:
                out.append((name, cookie_name, "sealed", show(opened), attributes))
                continue
        out.append((name, value))
    return out


async def _request(
    middleware: SessionMiddleware, run: Run, step: Step, fields: list[str], encrypt: bool
) -> Any:
    """One request: the messages the server got (sealed values opened) and what escaped."""
    headers = [(b"host", b"testserver")]
    headers += [(b"cookie", field.encode("latin-1")) for field in fields]
    if step.forwarded:
        headers.append((b"x-forwarded-proto", b"https"))
    scope = http_scope(headers, https=step.https)
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers") or [])
            run.keep([v for k, v in headers if k.lower() == b"set-cookie"])
            sent.append(("start", message.get("status"), _headers(headers, encrypt)))
        else:
            sent.append(("body", message.get("body"), message.get("more_body", False)))

    run.handler = step.handler
    try:
        await middleware(scope, receive, send)
    except Exception as exc:
        return sent, ("raised", type(exc).__name__, str(exc))
    return sent, None


#: The three ways a request is served: the plain engine where the configuration allows it;
#: the general engine only (the reference, as in ``test_plainrequest._agree``); and the general
#: engine without the fast lane of :mod:`koasession.plaincookie` either, which the general
#: engine also uses to read and write the default cookie.
ENGINES = ("plain", "general", "general without the fast lane")


def _middleware(case: Case, run: Run, engine: str) -> SessionMiddleware:
    app = _app(run, case.options.get("scope_key", "session"))
    with contextlib.ExitStack() as stack:
        if engine != "plain":
            stack.enter_context(mock.patch.object(plainrequest, "usable", lambda cfg: False))
        middleware = SessionMiddleware(
            app, keys=[KEY, OLD_KEY], on_event=run.on_event, **case.options
        )
    if engine == ENGINES[2]:
        middleware.config.plain_cookie = None
    return middleware


async def _serve(case: Case, engine: str, clock: Clock) -> tuple[list[Any], Run]:
    """The case's requests through one middleware: what each produced, and the run."""
    run = Run(clock)
    middleware = _middleware(case, run, engine)
    encrypt = bool(case.options.get("encrypt"))
    outcomes = []
    for index, step in enumerate(case.steps):
        clock.ms += step.later_ms
        if index == 0:
            fields = list(case.cookie.fields)
            run.jar = cookies_module.parse_cookie_header(fields)
        else:
            fields = ["; ".join(f"{k}={v}" for k, v in run.jar.items())] if run.jar else []
        outcome = await _request(middleware, run, step, fields, encrypt)
        outcomes.append((outcome, list(run.events), list(run.trace)))
        run.events.clear()
        run.trace.clear()
    return outcomes, run


def _runs(case: Case) -> tuple[list[Any], list[Run]]:
    """The case served each of the three ways: what was observed, and the runs."""
    outcomes = []
    runs = []
    previous = codec.set_json_backend(case.backend)
    try:
        for engine in ENGINES:
            clock = Clock(case.clock_ms)
            with mock.patch.object(time, "time", clock):
                outcome, run = asyncio.run(_serve(case, engine, clock))
            outcomes.append(outcome)
            runs.append(run)
    finally:
        codec.set_json_backend(previous)
    return outcomes, runs


def _check(case: Case, stats: Counter[str]) -> None:
    note(f"Cookie fields: {case.cookie.fields!r}")
    (plain, general, slow), (plain_run, *general_runs) = _runs(case)
    for run in general_runs:
        assert "PlainRequest" not in run.engines  # the reference never ran plain
    assert plain == general, "the plain engine and the general engine disagree"
    assert general == slow, "the general engine disagrees with itself without the fast lane"
    stats["requests"] += 1
    if plain_run.engines and plain_run.engines[-1] == "PlainRequest":
        stats["stayed plain"] += 1
    stats["plain saved"] += plain_run.plain_saved


def _enough(stats: Counter[str], plain: bool) -> None:
    """The plain engine really served requests to the end and, where the cookies are those it
    reads itself, wrote cookies itself (required of a run of 100 cases or more: hypothesis
    starts with the simplest cases, which save nothing, so a short run may have few)."""
    assert stats["requests"] > 0
    if plain:
        assert stats["stayed plain"] >= stats["requests"] // 10, stats
        assert stats["plain saved"] > 0 or stats["requests"] < 100, stats
    else:
        assert stats["stayed plain"] > 0, stats


SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}


@pytest.mark.parametrize("plain", [True, False], ids=["plain-cookies", "any-cookies"])
def test_engines_agree(plain: bool) -> None:
    """Signed cookies: requests the plain engine reads itself, then any request."""
    stats: Counter[str] = Counter()

    @settings(max_examples=EXAMPLES or (200 if plain else 150), **SETTINGS)
    @given(cases(encrypt=False, plain=plain))
    def check(case: Case) -> None:
        _check(case, stats)

    check()
    _enough(stats, plain)


@pytest.mark.skipif(bool(NO_CRYPTO), reason=NO_CRYPTO or "cryptography is installed")
@pytest.mark.parametrize("plain", [True, False], ids=["plain-cookies", "any-cookies"])
def test_engines_agree_when_encrypted(plain: bool) -> None:
    """Sealed cookies (``encrypt=True``), the same way."""
    stats: Counter[str] = Counter()

    @settings(max_examples=EXAMPLES or 40, **SETTINGS)
    @given(cases(encrypt=True, plain=plain))
    def check(case: Case) -> None:
        _check(case, stats)

    check()
    _enough(stats, plain)
