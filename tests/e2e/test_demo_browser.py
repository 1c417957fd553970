"""The demo of ``make demo``, end to end in a real browser (headless system Chromium).

The browser's own cookie jar receives our Set-Cookie lines and sends them back: the views counter
only climbs if it accepted them. Cookie mode and store mode are both covered, as are "remember
me" (a per-request max_age), logout, and "log out everywhere" through a store's owner index.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from koasession.codec import decode
from koasession.demo import REMEMBER_ME, build_app
from koasession.ids import is_valid_id
from koasession.stores.memory import MemoryStore

from .conftest import DemoServer

pytestmark = pytest.mark.timeout(120)

KEYS = ["S3MUq8oDFdQ6w1-pv4wmTyyO3N-_YtjpWnzVgnKxjyk"]
DAY = 86400
SLACK = 120  # seconds of tolerance on cookie expiry times


def _owner(data: dict[str, Any]) -> Any:
    return data.get("user")


@pytest.fixture
def context_factory(browser: Any) -> Iterator[Callable[[str], Any]]:
    """``new(base_url)``: a fresh browser context (its own cookie jar), closed after the test."""
    contexts: list[Any] = []

    def new(base_url: str) -> Any:
        context = browser.new_context(base_url=base_url)
        context.set_default_timeout(15000)
        contexts.append(context)
        return context

    yield new
    for context in contexts:
        context.close()


def jar(context: Any) -> dict[str, dict[str, Any]]:
    """The context's cookies by name."""
    return {cookie["name"]: cookie for cookie in context.cookies()}


def cookie_header_length(context: Any) -> int:
    """Length of the Cookie header the browser sends for the cookies now in its jar."""
    return len("; ".join(f"{c['name']}={c['value']}" for c in context.cookies()))


def shown_session(page: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(page.inner_text("#session"))
    return data


def views(page: Any) -> int:
    return int(page.inner_text("#views"))


def expires_in(cookie: dict[str, Any]) -> float:
    return float(cookie["expires"]) - time.time()


def log_in(page: Any, user: str, *, remember: bool) -> None:
    page.fill("#user", user)
    if remember:
        page.check("#remember")
    page.click("#login")
    page.locator("#who").wait_for()
    page.wait_for_load_state()
    assert page.inner_text("#who") == user
    # The form's hidden CSRF token got the POST through; the login's flash shows once.
    assert page.inner_text("#flash-success") == f"Welcome, {user}!"


def test_cookie_mode(
    browser: Any, serve: Callable[[Any], DemoServer], context_factory: Any
) -> None:
    server = serve(build_app(None, keys=KEYS))
    context = context_factory(server.url)
    page = context.new_page()

    # First visit: a new session, saved in a signed cookie the browser accepts.
    page.goto("/")
    assert page.inner_text("#mode") == "signed cookie"
    assert views(page) == 1
    assert page.inner_text("#cookie-size") == "0"  # nothing to send on the first request
    cookies = jar(context)
    assert set(cookies) == {"koa.sess", "koa.sess.sig"}
    value = cookies["koa.sess"]
    assert value["httpOnly"] and value["sameSite"] == "Lax" and value["path"] == "/"
    assert not value["secure"]  # plain http, secure=None: no Secure attribute
    assert abs(expires_in(value) - DAY) < SLACK  # the default lifetime applies from the start
    assert abs(expires_in(cookies["koa.sess.sig"]) - DAY) < SLACK

    # The browser returns the cookie: the counter climbs across reloads.
    for expected in (2, 3):
        sent = cookie_header_length(context)
        page.reload()
        assert views(page) == expected
        assert page.inner_text("#cookie-size") == str(sent)  # the size of what was sent
    assert shown_session(page) == {"views": 3}
    payload = decode(jar(context)["koa.sess"]["value"])
    assert payload is not None and payload["views"] == 3 and payload["_maxAge"] == DAY * 1000

    # Log in with "remember me": a 30-day cookie, the name shown, the session decoded on the page.
    before = jar(context)["koa.sess"]["value"]
    log_in(page, "alice", remember=True)
    assert "(remembered)" in page.inner_text("body")
    cookies = jar(context)
    assert cookies["koa.sess"]["value"] != before
    assert abs(expires_in(cookies["koa.sess"]) - REMEMBER_ME) < SLACK
    assert abs(expires_in(cookies["koa.sess.sig"]) - REMEMBER_ME) < SLACK
    shown = shown_session(page)
    assert shown["user"] == "alice" and shown["remember"] is True
    payload = decode(cookies["koa.sess"]["value"])
    assert payload is not None and payload["user"] == "alice"
    assert payload["_maxAge"] == REMEMBER_ME * 1000
    assert int(page.inner_text("#cookie-size")) > 0

    # The 30-day lifetime sticks to the session on later requests (read back from _maxAge).
    count = views(page)
    page.reload()
    assert views(page) == count + 1 and page.inner_text("#who") == "alice"
    assert abs(expires_in(jar(context)["koa.sess"]) - REMEMBER_ME) < SLACK

    # Log out: both cookies expired by the 303, then the redirected page starts a new session.
    with page.expect_response(lambda r: r.url.endswith("/logout")) as info:
        page.click("#logout")
    response = info.value
    assert response.status == 303
    set_cookie = response.all_headers().get("set-cookie", "")
    assert "koa.sess=; path=/; expires=Thu, 01 Jan 1970 00:00:00 GMT" in set_cookie
    assert "koa.sess.sig=" in set_cookie
    page.locator("#user").wait_for()
    page.wait_for_load_state()
    assert page.locator("#who").count() == 0
    assert page.locator("#login").is_visible()
    assert views(page) == 1
    assert shown_session(page) == {"views": 1}
    cookies = jar(context)
    payload = decode(cookies["koa.sess"]["value"])
    assert payload is not None and "user" not in payload
    assert abs(expires_in(cookies["koa.sess"]) - DAY) < SLACK  # no longer remembered


def test_login_without_remember_me(
    browser: Any, serve: Callable[[Any], DemoServer], context_factory: Any
) -> None:
    server = serve(build_app(None, keys=KEYS))
    context = context_factory(server.url)
    page = context.new_page()
    page.goto("/")
    log_in(page, "bob", remember=False)
    assert "(remembered)" not in page.inner_text("body")
    assert abs(expires_in(jar(context)["koa.sess"]) - DAY) < SLACK
    assert "remember" not in shown_session(page)


def test_store_mode(browser: Any, serve: Callable[[Any], DemoServer], context_factory: Any) -> None:
    store = MemoryStore()  # no owner index: no "log out everywhere"
    server = serve(build_app(store, keys=KEYS))
    context = context_factory(server.url)
    page = context.new_page()

    page.goto("/")
    page.reload()
    assert page.inner_text("#mode") == "store: MemoryStore"
    assert views(page) == 2
    first_id = jar(context)["koa.sess"]["value"]
    assert is_valid_id(first_id) and decode(first_id) is None  # only an id, not the data

    log_in(page, "carol", remember=True)
    assert page.locator("#logout-everywhere").count() == 0
    cookies = jar(context)
    logged_in_id = cookies["koa.sess"]["value"]
    assert logged_in_id != first_id  # regenerate() at login: a new id (no session fixation)
    assert abs(expires_in(cookies["koa.sess"]) - REMEMBER_ME) < SLACK
    assert shown_session(page)["user"] == "carol"
    old_cookies = context.cookies()

    page.click("#logout")
    page.locator("#user").wait_for()
    page.wait_for_load_state()
    assert views(page) == 1
    assert jar(context)["koa.sess"]["value"] not in (first_id, logged_in_id)

    # The logged-out id is dead on the server: replaying its cookies gives a fresh session.
    replay = context_factory(server.url)
    replay.add_cookies(old_cookies)
    other = replay.new_page()
    other.goto("/")
    assert views(other) == 1 and other.locator("#who").count() == 0


def test_store_mode_label_on_first_visit(
    browser: Any, serve: Callable[[Any], DemoServer], context_factory: Any
) -> None:
    server = serve(build_app(MemoryStore(), keys=KEYS))
    page = context_factory(server.url).new_page()
    page.goto("/")
    assert page.inner_text("#mode") == "store: MemoryStore"


def test_bundled_store_with_owner_index_offers_logout_everywhere(
    browser: Any, serve: Callable[[Any], DemoServer], context_factory: Any
) -> None:
    server = serve(build_app(MemoryStore(owner=_owner), keys=KEYS))
    page = context_factory(server.url).new_page()
    page.goto("/")
    log_in(page, "dave", remember=False)
    assert page.locator("#logout-everywhere").is_visible()


def test_logout_everywhere(
    browser: Any, serve: Callable[[Any], DemoServer], context_factory: Any
) -> None:
    server = serve(build_app(MemoryStore(owner=_owner), keys=KEYS))
    laptop = context_factory(server.url).new_page()
    phone = context_factory(server.url).new_page()
    other_user = context_factory(server.url).new_page()
    for page, user in ((laptop, "erin"), (phone, "erin"), (other_user, "frank")):
        page.goto("/")
        log_in(page, user, remember=True)
        assert page.locator("#logout-everywhere").is_visible()
    assert laptop.context.cookies()[0]["value"] != phone.context.cookies()[0]["value"]

    laptop.click("#logout-everywhere")
    laptop.locator("#user").wait_for()
    laptop.wait_for_load_state()
    assert laptop.locator("#who").count() == 0

    # The other browser of the same user is logged out; another user is not.
    phone.reload()
    assert phone.locator("#who").count() == 0 and phone.locator("#login").is_visible()
    assert views(phone) == 1
    other_user.reload()
    assert other_user.inner_text("#who") == "frank"
