"""CSRF tokens tied to the session, through real HTTP requests to a Starlette app.

The app sits in ``SessionMiddleware(CSRFMiddleware(app))`` in cookie mode and in store mode
(MemoryStore, SQLite, Redis). The app parses forms from the body it receives, so a request that
passes also proves the middleware replayed the body it read.
"""

from __future__ import annotations

import email.policy
import json
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from email.parser import BytesParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, unquote_plus

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from _services import REDIS_URL, require_module, require_redis
from koasession import (
    ConfigurationError,
    CSRFMiddleware,
    MemoryStore,
    SessionMiddleware,
    csrf_token,
    verify_csrf,
)
from koasession import csrf as csrf_module

from ._app import KEY

MODES = ["cookie", "memory", "sqlite", "redis"]
ORIGIN = "http://testserver"
HOSTILE = "https://evil.example"


async def form_page(request: Request) -> Response:
    token = csrf_token(request.session)
    return Response(
        f'<form method="post"><input type="hidden" name="csrf_token" value="{token}"></form>',
        media_type="text/html",
    )


async def transfer(request: Request) -> Response:
    # Parsed from the body the app receives (python-multipart is not a dependency).
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
    request.session["paid"] = [*request.session.get("paid", []), form.get("amount")]
    return PlainTextResponse(f"paid {form.get('amount')}")


async def upload(request: Request) -> Response:
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = BytesParser(policy=email.policy.HTTP).parsebytes(head + await request.body())
    files = [part for part in message.iter_parts() if part.get_filename()]
    assert len(files) == 1
    content = files[0].get_payload(decode=True)
    assert isinstance(content, bytes)
    return PlainTextResponse(f"{files[0].get_filename()}: {content.decode()}")


async def api(request: Request) -> Response:
    data = await request.json()
    request.session["api"] = data
    return JSONResponse({"ok": data})


async def login(request: Request) -> Response:
    request.session["user"] = "ada"
    await request.session.regenerate()
    return PlainTextResponse("logged in")


async def reauthenticate(request: Request) -> Response:
    # A new id for a session that changes nothing else (a privilege step-up, a password check).
    await request.session.regenerate()
    return PlainTextResponse("regenerated")


async def hook(request: Request) -> Response:
    return PlainTextResponse(f"hook {(await request.body()).decode()}")


async def state(request: Request) -> Response:
    return JSONResponse({k: v for k, v in request.session.items() if k != "_csrf"})


ROUTES = [
    Route("/form", form_page),
    Route("/transfer", transfer, methods=["POST"]),
    Route("/upload", upload, methods=["POST"]),
    Route("/api", api, methods=["POST", "PUT", "PATCH", "DELETE"]),
    Route("/login", login, methods=["POST"]),
    Route("/reauthenticate", reauthenticate, methods=["POST"]),
    Route("/hooks/github", hook, methods=["POST"]),
    Route("/state", state),
]

AppFactory = Callable[..., Awaitable[Any]]


@pytest.fixture(params=MODES)
async def make_app(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AppFactory]:
    """``await make_app(**csrf_options)``: the test app in the mode of the parameter."""
    mode = request.param
    stores: list[Any] = []
    prefix = f"koasession-test-csrf:{secrets.token_hex(6)}:"

    async def make(**csrf_options: Any) -> Any:
        store: Any = None
        if mode == "memory":
            store = MemoryStore()
        elif mode == "sqlite":
            require_module("aiosqlite")
            from koasession.stores.sqlite import SQLiteStore

            store = SQLiteStore(tmp_path / f"csrf{len(stores)}.db")
        elif mode == "redis":
            require_redis()
            from koasession.stores.redis import RedisStore

            store = RedisStore(REDIS_URL, key_prefix=prefix)
        stores.append(store)
        inner = CSRFMiddleware(Starlette(routes=ROUTES), **csrf_options)
        return SessionMiddleware(inner, keys=[KEY], store=store)

    yield make
    for store in stores:
        if store is not None:
            await store.close()
    if mode == "redis" and stores:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        try:
            keys = list(client.scan_iter(match=f"{prefix}*"))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


def browser(app: Any, base_url: str = ORIGIN) -> httpx.AsyncClient:
    """A client that keeps cookies, as a browser does."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


async def token_from_page(http: httpx.AsyncClient) -> str:
    page = await http.get("/form")
    assert page.status_code == 200
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match is not None, page.text
    return match.group(1)


async def test_cross_site_post_without_token_is_refused_and_changes_nothing(
    make_app: AppFactory,
) -> None:
    app = await make_app()
    async with browser(app) as http:
        await token_from_page(http)  # the victim has a session with a CSRF secret
        before = dict(http.cookies)

        # A hostile page's form: the browser names its origin and sends the session cookie.
        forged = await http.post("/transfer", data={"amount": "1000"}, headers={"origin": HOSTILE})
        assert forged.status_code == 403
        assert forged.headers["content-type"].startswith("text/plain")
        assert f"origin {HOSTILE!r} is not trusted" in forged.text
        assert forged.headers.get_list("set-cookie") == []

        # A client that sends no Origin gets no further without the token.
        tokenless = await http.post("/transfer", data={"amount": "1000"})
        assert tokenless.status_code == 403
        assert "CSRF token missing" in tokenless.text
        assert "'csrf_token' form field" in tokenless.text
        assert "'X-CSRF-Token' header" in tokenless.text
        assert tokenless.headers.get_list("set-cookie") == []

        assert dict(http.cookies) == before
        assert (await http.get("/state")).json() == {}


async def test_post_with_the_token_passes_and_the_app_reads_the_form(
    make_app: AppFactory,
) -> None:
    app = await make_app()
    async with browser(app) as http:
        token = await token_from_page(http)
        done = await http.post(
            "/transfer",
            data={"amount": "5", "csrf_token": token},
            headers={"origin": ORIGIN},
        )
        assert done.status_code == 200
        assert done.text == "paid 5"
        assert (await http.get("/state")).json() == {"paid": ["5"]}


async def test_a_valid_token_does_not_excuse_a_hostile_origin(make_app: AppFactory) -> None:
    app = await make_app()
    async with browser(app) as http:
        token = await token_from_page(http)
        refused = await http.post(
            "/transfer", data={"amount": "1", "csrf_token": token}, headers={"origin": HOSTILE}
        )
        assert refused.status_code == 403
        assert (await http.get("/state")).json() == {}


async def test_every_token_differs_and_all_of_them_work(make_app: AppFactory) -> None:
    app = await make_app()
    async with browser(app) as http:
        tokens = [await token_from_page(http) for _ in range(3)]
        assert len(set(tokens)) == 3
        for amount, token in enumerate(tokens):
            sent = await http.post("/transfer", data={"amount": str(amount), "csrf_token": token})
            assert sent.status_code == 200, sent.text
        assert (await http.get("/state")).json() == {"paid": ["0", "1", "2"]}


async def test_wrong_or_foreign_tokens_are_refused(make_app: AppFactory) -> None:
    app = await make_app()
    async with browser(app) as victim, browser(app) as attacker:
        await token_from_page(victim)
        attackers_token = await token_from_page(attacker)
        own = await token_from_page(victim)
        for bad in (attackers_token, own[:-2] + ("AA" if own[-2:] != "AA" else "BB"), "x", ""):
            refused = await victim.post("/transfer", data={"amount": "9", "csrf_token": bad})
            assert refused.status_code == 403, bad
            assert "CSRF token" in refused.text
        assert (await victim.get("/state")).json() == {}


async def test_post_from_a_browser_without_a_session_is_refused(make_app: AppFactory) -> None:
    app = await make_app()
    async with browser(app) as victim, browser(app) as stranger:
        token = await token_from_page(victim)
        refused = await stranger.post("/transfer", data={"amount": "1", "csrf_token": token})
        assert refused.status_code == 403
        assert "this session has no CSRF token" in refused.text


async def test_header_token_for_scripts(make_app: AppFactory) -> None:
    app = await make_app()
    async with browser(app) as http:
        token = await token_from_page(http)
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            refused = await http.request(method, "/api", json={"n": 1})
            assert refused.status_code == 403, method
            sent = await http.request(
                method, "/api", json={"n": method}, headers={"x-csrf-token": token}
            )
            assert sent.status_code == 200, (method, sent.text)
            assert sent.json() == {"ok": {"n": method}}
        assert (await http.get("/state")).json() == {"api": {"n": "DELETE"}}


async def test_multipart_form_with_a_file(make_app: AppFactory) -> None:
    app = await make_app()
    async with browser(app) as http:
        token = await token_from_page(http)
        sent = await http.post(
            "/upload",
            data={"csrf_token": token},
            files={"file": ("notes.txt", b"hello upload", "text/plain")},
        )
        assert sent.status_code == 200, sent.text
        assert sent.text == "notes.txt: hello upload"
        refused = await http.post(
            "/upload", files={"file": ("notes.txt", b"hello upload", "text/plain")}
        )
        assert refused.status_code == 403
        assert "CSRF token missing" in refused.text


@pytest.mark.parametrize(
    ("path", "state"),
    [
        ("/login", {"user": "ada", "paid": ["2"]}),
        # Nothing else written in the request: the saved session must still drop the secret.
        ("/reauthenticate", {"paid": ["2"]}),
    ],
)
async def test_regenerate_rotates_the_token(
    make_app: AppFactory, path: str, state: dict[str, Any]
) -> None:
    app = await make_app()
    async with browser(app) as http:
        before = await token_from_page(http)
        regenerated = await http.post(path, data={"csrf_token": before})
        assert regenerated.status_code == 200
        # The new session has no secret yet; the old token is dead from now on.
        stale = await http.post("/transfer", data={"amount": "1", "csrf_token": before})
        assert stale.status_code == 403
        fresh = await token_from_page(http)
        assert fresh != before
        sent = await http.post("/transfer", data={"amount": "2", "csrf_token": fresh})
        assert sent.status_code == 200
        assert (await http.get("/state")).json() == state


async def test_exempt_paths_and_safe_methods_pass_without_token(make_app: AppFactory) -> None:
    app = await make_app(exempt_paths=["/hooks/*", "/state"])
    async with browser(app) as http:
        hooked = await http.post("/hooks/github", content=b"ping", headers={"origin": HOSTILE})
        assert hooked.status_code == 200 and hooked.text == "hook ping"
        assert (await http.get("/state")).status_code == 200
        assert (await http.head("/form")).status_code == 200
        assert (await http.post("/transfer", data={"amount": "1"})).status_code == 403


async def test_custom_field_and_header_names(make_app: AppFactory) -> None:
    app = await make_app(field_name="authenticity_token", header_name="X-XSRF-Token")
    async with browser(app) as http:
        token = await token_from_page(http)
        assert (await http.post("/transfer", data={"csrf_token": token})).status_code == 403
        by_field = await http.post("/transfer", data={"amount": "1", "authenticity_token": token})
        assert by_field.status_code == 200
        by_header = await http.post("/api", json={}, headers={"x-xsrf-token": token})
        assert by_header.status_code == 200


async def test_https_origin_and_referer_rules(make_app: AppFactory) -> None:
    app = await make_app(trusted_origins=["https://admin.example.com"])
    async with browser(app, "https://shop.example.com") as http:
        token = await token_from_page(http)
        form = {"amount": "1", "csrf_token": token}

        no_referer = await http.post("/transfer", data=form)
        assert no_referer.status_code == 403
        assert "without Origin must send a Referer" in no_referer.text
        foreign = await http.post(
            "/transfer", data=form, headers={"referer": "https://evil.example/page"}
        )
        assert foreign.status_code == 403
        downgrade = await http.post(
            "/transfer", data=form, headers={"origin": "http://shop.example.com"}
        )
        assert downgrade.status_code == 403
        null = await http.post("/transfer", data=form, headers={"origin": "null"})
        assert null.status_code == 403

        same = await http.post(
            "/transfer", data=form, headers={"referer": "https://shop.example.com/cart?x=1"}
        )
        assert same.status_code == 200, same.text
        trusted = await http.post(
            "/transfer", data=form, headers={"origin": "https://ADMIN.example.com:443"}
        )
        assert trusted.status_code == 200, trusted.text
        assert (await http.get("/state")).json() == {"paid": ["1", "1"]}


async def test_check_origin_can_be_turned_off(make_app: AppFactory) -> None:
    app = await make_app(check_origin=False)
    async with browser(app) as http:
        token = await token_from_page(http)
        sent = await http.post(
            "/transfer", data={"amount": "1", "csrf_token": token}, headers={"origin": HOSTILE}
        )
        assert sent.status_code == 200


# -- the body, read in pieces -------------------------------------------------------------------


async def _call_chunked(app: Any, chunks: list[bytes], content_type: bytes, cookie: str) -> Any:
    """One POST whose body arrives in ``chunks``; returns (status, body, what the app read)."""
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/echo",
        "raw_path": b"/echo",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", content_type),
            (b"cookie", cookie.encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


async def echo(request: Request) -> Response:
    return Response(await request.body())


async def _echo_app_with_token() -> tuple[Any, str, str]:
    """An app echoing ``/echo``'s body behind the CSRF check, a token, and its cookie header."""
    app = SessionMiddleware(
        CSRFMiddleware(Starlette(routes=[*ROUTES, Route("/echo", echo, methods=["POST"])])),
        keys=[KEY],
    )
    async with browser(app) as http:
        token = await token_from_page(http)
        cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
    return app, token, cookie


@pytest.mark.parametrize("multipart", [False, True])
async def test_a_body_in_pieces_is_replayed_whole(multipart: bool) -> None:
    app, token, cookie = await _echo_app_with_token()
    if multipart:
        boundary = "b0undary"
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
            f"{token}\r\n--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="a.bin"\r\n\r\n'
            f"{'z' * 5000}\r\n--{boundary}--\r\n"
        ).encode()
        content_type = f"multipart/form-data; boundary={boundary}".encode()
    else:
        body = f"a={'y' * 3000}&csrf_token={token}&b=2".encode()
        content_type = b"application/x-www-form-urlencoded"
    # Cut through the token itself, and send the rest after it in small pieces.
    cut = body.index(token.encode()) + 10
    chunks = [body[:cut], *(body[i : i + 700] for i in range(cut, len(body), 700))]
    status, echoed = await _call_chunked(app, chunks, content_type, cookie)
    assert status == 200
    assert echoed == body

    flipped = token[:20] + ("B" if token[20] == "A" else "A") + token[21:]
    tampered = body.replace(token.encode(), flipped.encode())
    status, echoed = await _call_chunked(app, [tampered], content_type, cookie)
    assert status == 403 and b"CSRF token incorrect" in echoed


@pytest.mark.parametrize("multipart", [False, True])
async def test_a_body_in_tiny_pieces_finds_the_token_at_every_cut(multipart: bool) -> None:
    # Every delimiter, pair and the token itself cut at odd places: what is examined once must
    # not be skipped, and what is cut short must be read again when the rest arrives.
    app, token, cookie = await _echo_app_with_token()
    boundary = "b0undary"
    if multipart:
        filler = "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\nv{i}\r\n'
            for i in range(20)
        )
        body = (
            f'{filler}--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
            f"{token}\r\n--{boundary}--\r\n"
        ).encode()
        content_type = f"multipart/form-data; boundary={boundary}".encode()
    else:
        body = ("&".join(f"f{i}=v{i}" for i in range(40)) + f"&csrf_token={token}&z=1").encode()
        content_type = b"application/x-www-form-urlencoded"
    for size in (1, 3, 7):
        chunks = [body[i : i + size] for i in range(0, len(body), size)]
        assert await _call_chunked(app, chunks, content_type, cookie) == (200, body)


@pytest.mark.parametrize("multipart", [False, True])
async def test_a_body_in_many_pieces_is_examined_once(
    multipart: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A slow client sends a body without a token in small pieces. Rescanning everything read so
    # far on each piece made this quadratic: 1 MiB of "&" in 2 KiB pieces kept a real server's
    # event loop busy for 20 s. Each pair (or part) is examined once now, so the pieces make
    # exactly the calls the whole body makes (counted: a timing would be a flaky test).
    calls = 0

    def counted(function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            return function(*args, **kwargs)

        return wrapper

    if multipart:
        part = b'--a\r\nContent-Disposition: form-data; name="x"\r\n\r\nv\r\n'
        body = part * 2_000 + b"--a--\r\n"
        content_type = b"multipart/form-data; boundary=a"
        # Each part's headers are searched with regular expressions: count those searches.
        monkeypatch.setattr(
            csrf_module, "re", SimpleNamespace(**{**vars(re), "search": counted(re.search)})
        )
    else:
        body = b"x=1&" * 5_000  # 5,000 pairs, none the token
        content_type = b"application/x-www-form-urlencoded"
        monkeypatch.setattr(csrf_module, "unquote_plus", counted(unquote_plus))
    app = SessionMiddleware(CSRFMiddleware(Starlette(routes=ROUTES)), keys=[KEY])

    async def examined(chunks: list[bytes]) -> int:
        nonlocal calls
        calls = 0
        status, _ = await _call_chunked(app, chunks, content_type, "")
        assert status == 403
        return calls

    whole = await examined([body])
    assert whole >= 2_000  # every pair or part looked at
    assert await examined([body[i : i + 97] for i in range(0, len(body), 97)]) == whole


async def test_a_token_beyond_max_body_size_is_not_looked_for() -> None:
    app = SessionMiddleware(
        CSRFMiddleware(
            Starlette(routes=[*ROUTES, Route("/echo", echo, methods=["POST"])]),
            max_body_size=1000,
        ),
        keys=[KEY],
    )
    async with browser(app) as http:
        token = await token_from_page(http)
        cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
    first = f"csrf_token={token}&pad={'p' * 3000}".encode()
    late = f"pad={'p' * 3000}&csrf_token={token}".encode()
    form = b"application/x-www-form-urlencoded"
    pieces = [late[i : i + 500] for i in range(0, len(late), 500)]
    assert (await _call_chunked(app, pieces, form, cookie))[0] == 403
    pieces = [first[i : i + 500] for i in range(0, len(first), 500)]
    assert await _call_chunked(app, pieces, form, cookie) == (200, first)


# -- the functions on their own -------------------------------------------------------------------


def test_verify_csrf_needs_a_token_made_for_this_session() -> None:
    session: dict[str, Any] = {}
    assert verify_csrf(session, "anything") is False
    assert session == {}  # verifying never creates a secret
    token = csrf_token(session)
    assert verify_csrf(session, token) is True
    assert verify_csrf(session, token.encode()) is True
    assert verify_csrf(session, None) is False
    assert verify_csrf(session, session["_csrf"]) is False  # the unmasked secret is no token
    other: dict[str, Any] = {}
    csrf_token(other)
    assert verify_csrf(other, token) is False
    assert json.dumps(session)  # JSON-safe, as session data must be


async def test_csrf_middleware_outside_session_middleware_says_so() -> None:
    async with browser(CSRFMiddleware(Starlette(routes=ROUTES))) as http:
        with pytest.raises(LookupError, match="inside SessionMiddleware"):
            await http.post("/transfer")


async def test_lazy_store_mode_loads_the_session_to_check_the_token() -> None:
    """With ``lazy=True`` the middleware loads the session itself (the secret is in the store):
    a valid token passes and a forged one is refused, instead of ``SessionNotLoaded``."""

    async def page(request: Request) -> Response:
        return PlainTextResponse(csrf_token(await request.session.load()))

    async def pay(request: Request) -> Response:
        (await request.session.load())["paid"] = True
        return PlainTextResponse("paid")

    routes = [Route("/form", page), Route("/pay", pay, methods=["POST"])]
    app = SessionMiddleware(
        CSRFMiddleware(Starlette(routes=routes)), keys=[KEY], store=MemoryStore(), lazy=True
    )
    async with browser(app) as http:
        token = (await http.get("/form")).text
        forged = await http.post("/pay", headers={"x-csrf-token": "forged"})
        assert forged.status_code == 403
        assert forged.text.startswith("CSRF token incorrect")
        done = await http.post("/pay", headers={"x-csrf-token": token})
        assert done.status_code == 200
        assert done.text == "paid"


@pytest.mark.parametrize("proxy", [True, False])
async def test_the_origin_check_follows_the_session_middlewares_proxy_option(proxy: bool) -> None:
    """Behind a TLS-terminating proxy the server sees http; with ``proxy=True`` the session
    middleware trusts ``X-Forwarded-Proto`` (its cookies get ``Secure``), and so does the
    origin check: the page's own https origin passes, and a request without Origin needs a
    Referer as any https request does. Without ``proxy`` the forwarded scheme is not trusted."""
    app = SessionMiddleware(CSRFMiddleware(Starlette(routes=ROUTES)), keys=[KEY], proxy=proxy)
    forwarded = {"x-forwarded-proto": "https"}
    async with browser(app, base_url="http://shop.example") as http:
        page = await http.get("/form", headers=forwarded)
        assert ("; secure" in page.headers["set-cookie"]) is proxy
        match = re.search(r'value="([^"]+)"', page.text)
        assert match is not None
        # The browser is on https: it sends the Secure cookies back (httpx's jar, on http, not).
        cookie = "; ".join(line.split(";")[0] for line in page.headers.get_list("set-cookie"))
        token = {"x-csrf-token": match.group(1), "cookie": cookie, **forwarded}
        same_site = await http.post(
            "/api", json={}, headers={"origin": "https://shop.example", **token}
        )
        assert same_site.status_code == (200 if proxy else 403), same_site.text
        no_origin = await http.post("/api", json={}, headers=token)
        if proxy:
            assert no_origin.status_code == 403
            assert "without Origin must send a Referer" in no_origin.text
        else:
            assert no_origin.status_code == 200  # plain http: no Referer rule


@pytest.mark.parametrize(
    ("options", "message"),
    [
        # A single string is iterated as characters: "/api/*" exempted "/" and, through its
        # "*", every path from the check.
        ({"exempt_paths": "/api/*"}, "exempt_paths must be a list of strings"),
        ({"exempt_paths": ["*"]}, "exempt_paths: '*' must start with '/'"),
        ({"exempt_paths": ["webhooks/*"]}, "must start with '/'"),
        ({"trusted_origins": "https://admin.example.com"}, "trusted_origins must be a list"),
        ({"trusted_origins": ["admin.example.com"]}, "'admin.example.com' is not an origin"),
        ({"trusted_origins": [None]}, "got None in it"),
        ({"check_origin": "false"}, "check_origin must be True or False; got 'false'"),
        ({"max_body_size": "1MB"}, "max_body_size must be a positive number of bytes"),
        ({"max_body_size": 0}, "max_body_size must be a positive number of bytes"),
        ({"field_name": ""}, "field_name must be a non-empty string"),
        ({"header_name": None}, "header_name must be a non-empty string"),
    ],
)
def test_csrf_configuration_mistakes_fail_at_start_up(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        CSRFMiddleware(Starlette(routes=ROUTES), **options)


async def test_exempt_prefixes_and_trusted_origins_given_as_lists_still_work() -> None:
    app = SessionMiddleware(
        CSRFMiddleware(Starlette(routes=ROUTES), exempt_paths=["/api/*"]), keys=[KEY]
    )
    async with browser(app) as http:
        assert (await http.post("/transfer")).status_code == 403
    csrf = CSRFMiddleware(Starlette(routes=ROUTES), trusted_origins=["HTTPS://Admin.example.com/"])
    assert csrf.trusted_origins == {"https://admin.example.com"}
