"""The plain engine answers every request exactly as the general engine does.

Each scenario (a handler) runs against each cookie of a small corpus twice, through middlewares
that differ only in whether requests may start on the plain engine (``plainrequest.usable``):
status, body, every response header (Set-Cookie lines with the times of "now" masked) and the
events must be identical. The scenarios the plain engine handles by itself are also checked to
have stayed on it, so that the comparison cannot pass with the plain engine never used.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from koasession import SessionMiddleware, plainrequest
from koasession.plainrequest import PlainRequest

from ._app import KEY, OLD_KEY, client, signed_cookie
from .test_plaincookie import FUTURE, NOW_MS, _normalise, _sealed

Send = Callable[[dict[str, Any]], Awaitable[None]]
Scenario = Callable[[dict[str, Any], Send], Awaitable[Any]]

DAY_MS = 86_400_000


async def _respond(send: Send, body: Any, status: int = 200, headers: Any = ()) -> None:
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


async def read(scope: dict[str, Any], send: Send) -> str:
    await _respond(send, scope["session"].get("views"))
    return "plain"


async def counter(scope: dict[str, Any], send: Send) -> str:
    session = scope["session"]
    session["views"] = session.get("views", 0) + 1
    await _respond(send, session["views"])
    return "plain"


async def same_value(scope: dict[str, Any], send: Send) -> str:
    session = scope["session"]
    session["views"] = session.get("views")
    await _respond(send, dict(session))
    return "either"


async def int_to_float(scope: dict[str, Any], send: Send) -> str:
    session = scope["session"]
    session["views"] = float(session.get("views") or 0)  # equal as a dict, not as JSON
    await _respond(send, dict(session))
    return "either"


async def nested(scope: dict[str, Any], send: Send) -> str:
    scope["session"]["cart"] = [{"id": 1}]
    await _respond(send, "ok")
    return "plain"


async def in_place(scope: dict[str, Any], send: Send) -> str:
    session = scope["session"]
    cart = session.setdefault("cart", [])
    cart.append({"id": len(cart)})  # no write through the session: only a snapshot sees it
    await _respond(send, session["cart"])
    return "plain"


async def nested_read(scope: dict[str, Any], send: Send) -> str:
    await _respond(send, scope["session"].get("cart"))
    return "plain"


async def in_place_after_start(scope: dict[str, Any], send: Send) -> str:
    session = scope["session"]
    session.get("views")
    await _respond(send, "late")
    cart = session.get("cart")
    if isinstance(cart, list):
        cart.append("late")  # in place, after the response started: lost
    return "either"


async def nested_then_flat(scope: dict[str, Any], send: Send) -> str:
    session = scope["session"]
    session["cart"] = [1]
    session["cart"] = 2  # back to flat before the response: the plain save path
    await _respond(send, dict(session))
    return "plain"


async def too_deep(scope: dict[str, Any], send: Send) -> str:
    value: Any = "leaf"
    for _ in range(40):
        value = [value]
    scope["session"]["deep"] = value  # deeper than the read side accepts: refused at save
    await _respond(send, "deep")
    return "plain"


async def delete(scope: dict[str, Any], send: Send) -> str:
    session = scope["session"]
    session.pop("views", None)
    await _respond(send, dict(session))
    return "either"


async def clear(scope: dict[str, Any], send: Send) -> str:
    scope["session"].clear()
    await _respond(send, "cleared")
    return "either"


async def destroy(scope: dict[str, Any], send: Send) -> str:
    scope["session"].destroy()
    await _respond(send, "destroyed")
    return "general"


async def assign_none(scope: dict[str, Any], send: Send) -> str:
    scope["session"] = None
    await _respond(send, "none")
    return "general"


async def assign_dict(scope: dict[str, Any], send: Send) -> str:
    scope["session"] = {"fresh": True}
    await _respond(send, "dict")
    return "general"


async def regenerate(scope: dict[str, Any], send: Send) -> str:
    session = scope["session"]
    session["user"] = "ana"
    await session.regenerate()
    await _respond(send, "regenerated")
    return "general"


async def explicit_save(scope: dict[str, Any], send: Send) -> str:
    await scope["session"].save()
    await _respond(send, "saved")
    return "general"


async def remember_me(scope: dict[str, Any], send: Send) -> str:
    session = scope["session"]
    session.max_age = 3600
    await _respond(send, session.max_age)
    return "general"


async def skip(scope: dict[str, Any], send: Send) -> str:
    session = scope["session"]
    session["views"] = 99
    session.skip_save()
    await _respond(send, "skipped")
    return "general"


async def metadata(scope: dict[str, Any], send: Send) -> str:
    session = scope["session"]
    await _respond(send, [session.is_new, session.created_at is None, session.remaining is None])
    return "general"


async def after_start(scope: dict[str, Any], send: Send) -> str:
    await _respond(send, "late")
    scope["session"]["late"] = 1  # too late: the general engine reports it lost, after the app
    return "either"


async def read_after_start(scope: dict[str, Any], send: Send) -> str:
    await _respond(send, "late read")
    scope["session"].get("views")
    return "plain"


async def error_status(scope: dict[str, Any], send: Send) -> str:
    scope["session"]["views"] = 1000
    await _respond(send, "oops", status=500)
    return "plain"


async def crash(scope: dict[str, Any], send: Send) -> str:
    scope["session"]["views"] = 1000
    raise RuntimeError("handler failed")


async def own_headers(scope: dict[str, Any], send: Send) -> str:
    session = scope["session"]
    session["views"] = session.get("views", 0) + 1
    headers = [
        (b"set-cookie", b"koa.sess=app; path=/"),
        (b"set-cookie", b"other=1; path=/"),
        (b"vary", b"Accept"),
        (b"cache-control", b"no-store"),
    ]
    await _respond(send, "own", headers=headers)
    return "plain"


async def too_large(scope: dict[str, Any], send: Send) -> str:
    scope["session"]["blob"] = "x" * 5000
    await _respond(send, "large")
    return "general"


async def unserialisable(scope: dict[str, Any], send: Send) -> str:
    scope["session"]["when"] = {1, 2}  # a set: JSON cannot hold it
    await _respond(send, "set")
    return "general"


class Unequal:
    """A value whose == raises (as a NumPy array's does): JSON cannot hold it either."""

    def __eq__(self, other: object) -> bool:
        raise ValueError("ambiguous")

    __hash__ = None  # type: ignore[assignment]


async def raising_eq(scope: dict[str, Any], send: Send) -> str:
    scope["session"]["views"] = Unequal()
    await _respond(send, "unequal")
    return "general"


async def save_fails_and_app_goes_on(scope: dict[str, Any], send: Send) -> str:
    scope["session"]["views"] = float("nan")  # JSON cannot hold it: the commit raises
    # Swallowed (and logged) by some framework layer: the change is then reported lost.
    with contextlib.suppress(ValueError):
        await send({"type": "http.response.start", "status": 200, "headers": []})
    return "either"


async def scheme_changes_before_hand_over(scope: dict[str, Any], send: Send) -> str:
    scope["session"].get("views")  # first use: the engine reads the request now
    scope["scheme"] = "https"  # an inner middleware rewrites the scope afterwards
    scope["session"] = None
    await _respond(send, "logged out")
    return "either"


async def streamed(scope: dict[str, Any], send: Send) -> str:
    session = scope["session"]
    session["views"] = session.get("views", 0) + 1
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"a", "more_body": True})
    await send({"type": "http.response.body", "body": b"b"})
    return "plain"


async def untouched(scope: dict[str, Any], send: Send) -> str:
    await _respond(send, "untouched")
    return "none"


SCENARIOS: list[Scenario] = [
    read,
    counter,
    same_value,
    int_to_float,
    nested,
    delete,
    clear,
    destroy,
    assign_none,
    assign_dict,
    regenerate,
    explicit_save,
    remember_me,
    skip,
    metadata,
    after_start,
    read_after_start,
    error_status,
    crash,
    own_headers,
    too_large,
    unserialisable,
    streamed,
    untouched,
    raising_eq,
    save_fails_and_app_goes_on,
    scheme_changes_before_hand_over,
    in_place,
    nested_read,
    in_place_after_start,
    nested_then_flat,
    too_deep,
]


def _payload(**extra: Any) -> dict[str, Any]:
    return {"views": 3, "_expire": FUTURE, "_maxAge": DAY_MS, **extra}


#: (id, Cookie header, whether the plain engine reads it itself)
COOKIES: list[tuple[str, str | None, bool]] = [
    ("valid", signed_cookie(_payload()), True),
    ("valid-created", signed_cookie(_payload(_created=NOW_MS - 5000)), True),
    ("near-expiry", signed_cookie(_payload(_expire=NOW_MS + 3_600_000)), True),  # renew: due
    ("nested", signed_cookie(_payload(cart=[{"id": 1}])), True),
    ("other-max-age", signed_cookie(_payload(_maxAge=3_600_000)), False),
    ("expired", signed_cookie(_payload(_expire=NOW_MS - 1000)), False),
    ("old-key", signed_cookie(_payload(), key=OLD_KEY), False),
    ("none", None, True),
    ("other-cookies-only", "theme=dark; lang=fr", True),
    ("signature-only", "koa.sess.sig=" + "A" * 43, False),
    ("empty-value", "koa.sess=", False),
]


def _middleware(
    scenario: Scenario,
    plain: bool,
    seen: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    **options: Any,
) -> SessionMiddleware:
    async def app(scope: dict[str, Any], receive: Any, send: Send) -> None:
        expected = await scenario(scope, send)
        bound = getattr(scope.get("session"), "_bound", None)
        seen.append((expected, type(bound).__name__))

    with monkeypatch.context() as patch:
        if not plain:
            patch.setattr(plainrequest, "usable", lambda cfg: False)
        return SessionMiddleware(
            app,
            keys=[KEY, OLD_KEY],
            on_event=lambda name, payload: seen.append((name, payload.get("reason"))),
            **options,
        )


async def _outcome(middleware: SessionMiddleware, cookie: str | None, https: bool) -> Any:
    headers = {"cookie": cookie} if cookie else {}
    async with client(middleware, https=https) as http:
        try:
            response = await http.get("/", headers=headers)
        except Exception as exc:  # the same error, raised through the same layers
            return ("raised", type(exc).__name__, str(exc))
    other = sorted((k, v) for k, v in response.headers.items() if k != "set-cookie")
    cookies = _normalise(response.headers.get_list("set-cookie"))
    return (response.status_code, response.text, other, cookies)


async def _agree(
    scenario: Scenario,
    cookie: str | None,
    plain_reads: bool,
    monkeypatch: pytest.MonkeyPatch,
    https: bool = False,
    **options: Any,
) -> None:
    outcomes = []
    engines = []
    # One clock for both runs: a Max-Age derived from a loaded expiry must not tick over a
    # second between them.
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now)
    for plain in (True, False):
        seen: list[Any] = []
        middleware = _middleware(scenario, plain, seen, monkeypatch, **options)
        outcome = await _outcome(middleware, cookie, https)
        events = [entry for entry in seen if entry[0] not in ("plain", "general", "either", "none")]
        outcomes.append((outcome, events))
        engines.append([entry for entry in seen if entry not in events])
    assert outcomes[0] == outcomes[1]
    # The general engine never ran plain; the plain one stayed plain where it should have.
    assert all(engine != PlainRequest.__name__ for _, engine in engines[1])
    for expected, engine in engines[0]:
        if expected == "plain" and plain_reads:
            assert engine == PlainRequest.__name__
        elif expected == "general" or (expected == "plain" and not plain_reads):
            assert engine != PlainRequest.__name__


@pytest.mark.parametrize(
    ("cookie", "plain_reads"), [c[1:] for c in COOKIES], ids=[c[0] for c in COOKIES]
)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
@pytest.mark.parametrize(
    "options", [{}, {"rolling": True}, {"renew": True}], ids=["default", "rolling", "renew"]
)
async def test_plain_and_general_engines_agree(
    scenario: Scenario,
    cookie: str | None,
    plain_reads: bool,
    options: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await _agree(scenario, cookie, plain_reads, monkeypatch, **options)


@pytest.mark.parametrize(
    "options",
    [
        {"encrypt": True},
        {"algorithm": "sha1"},
        {"overwrite": False},
        {"proxy": True},
        {"max_age": 3600},
        {"http_only": False, "same_site": "strict", "path": "/app"},
        {"secure": True},
        {"secure": False},
    ],
    ids=["encrypt", "sha1", "no-overwrite", "proxy", "max-age", "attributes", "secure", "insecure"],
)
@pytest.mark.parametrize("https", [False, True], ids=["http", "https"])
@pytest.mark.parametrize(
    "scenario", [read, counter, own_headers, after_start], ids=lambda s: s.__name__
)
async def test_agree_under_options(
    scenario: Scenario, https: bool, options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = _payload(_maxAge=options.get("max_age", 86_400) * 1000)
    if options.get("encrypt"):
        cookie = _sealed(payload)
    else:
        cookie = signed_cookie(payload, alg=options.get("algorithm", "sha256"))
    await _agree(scenario, cookie, True, monkeypatch, https=https, **options)


@pytest.mark.parametrize("scenario", [read, counter], ids=lambda s: s.__name__)
async def test_a_first_visit_with_an_old_format_cookie_is_migrated_the_general_way(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    from starlette.middleware.sessions import SessionMiddleware as StarletteSessions

    from koasession.fallbacks import StarletteReader

    async def old_app(scope: dict[str, Any], receive: Any, send: Send) -> None:
        scope["session"].update({"views": 7, "user": "ana"})
        await _respond(send, "ok")

    secret = "the-old-starlette-secret"
    async with client(StarletteSessions(old_app, secret_key=secret)) as http:
        cookie = "session=" + (await http.get("/")).cookies["session"]
    options = {"fallback": [StarletteReader(secret)]}
    await _agree(scenario, cookie, False, monkeypatch, **options)
    # With readers configured, a request without our cookie is always theirs to look at.
    await _agree(scenario, None, False, monkeypatch, **options)


def test_only_the_configurations_it_can_serve_use_it() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    assert plainrequest.usable(SessionMiddleware(app, keys=[KEY]).config)
    for options in (
        {"before_save": lambda ctx, session: None},
        {"auto_commit": False},
        {"max_age": "session"},
        {"store": __import__("koasession").MemoryStore()},
    ):
        config = SessionMiddleware(app, keys=[KEY], **options).config
        assert not plainrequest.usable(config), options
