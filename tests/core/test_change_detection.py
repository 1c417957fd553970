"""Change detection: what the commit saves and what the after-response check reports as lost.

The engine proves flat data (no nested object or array) unchanged by counting the session's
writes instead of serialising it again; these cases make sure that shortcut never hides a change,
whichever way the data was changed.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from _services import require_module
from koasession import SessionMiddleware
from koasession.errors import ResponseStartedError

from ._app import KEY, client, cookie_pairs, decode_value, set_cookies, signed_cookie

Events = list[tuple[str, Any]]


def _cookie(data: dict[str, Any]) -> str:
    return signed_cookie(
        {**data, "_expire": int(time.time() * 1000) + 86_400_000, "_maxAge": 86_400_000}
    )


def _phases(handler: Any) -> Any:
    """A plain ASGI app: ``handler(session, phase)`` runs before and after the response start."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        session = scope["session"]
        handler(session, "before")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        handler(session, "after")
        await send({"type": "http.response.body", "body": b"ok"})

    return app


async def _serve(
    app: Any, data: dict[str, Any], cookie: str | None = None, **options: Any
) -> tuple[httpx.Response, Events]:
    """GET / through the middleware around ``app``, with a cookie holding ``data`` (or
    ``cookie``); the response and the events, as ``(name, reason)``."""
    events: Events = []
    middleware = SessionMiddleware(
        app,
        keys=[KEY],
        on_event=lambda name, payload: events.append((name, payload.get("reason"))),
        **options,
    )
    async with client(middleware) as http:
        response = await http.get("/", headers={"cookie": cookie or _cookie(data)})
    return response, events


async def _run(
    handler: Any, data: dict[str, Any], cookie: str | None = None, **options: Any
) -> tuple[list[str], dict[str, str], Events]:
    response, events = await _serve(_phases(handler), data, cookie, **options)
    return set_cookies(response), cookie_pairs(response), events


async def test_reading_flat_data_saves_nothing_and_reports_nothing() -> None:
    lines, _, events = await _run(lambda s, phase: s.get("views"), {"views": 1})
    assert lines == []
    assert events == []


async def test_setting_the_same_value_is_no_change() -> None:
    def handler(session: Any, phase: str) -> None:
        if phase == "before":
            session["views"] = session["views"]

    lines, _, events = await _run(handler, {"views": 1})
    assert lines == []  # koa compares serialised data: an equal value is no change
    assert events == []


async def test_a_value_changed_and_changed_back_is_no_change() -> None:
    def handler(session: Any, phase: str) -> None:
        if phase == "before":
            session["views"] = 2
            session["views"] = 1

    lines, _, events = await _run(handler, {"views": 1})
    assert lines == []
    assert events == []


async def test_the_same_values_in_another_order_are_saved_as_koa_would() -> None:
    # Equal as dicts, but koa compares the serialised text, where the order shows.
    def handler(session: Any, phase: str) -> None:
        if phase == "before":
            session["a"] = session.pop("a")

    _, pairs, _ = await _run(handler, {"a": 1, "b": 2})
    assert list(decode_value(pairs["koa.sess"]))[:2] == ["b", "a"]


@pytest.mark.parametrize(
    ("options", "expire_in_ms"),
    [
        ({"rolling": True}, 80_000_000),  # more than half left: only rolling saves
        ({"renew": True}, 1_000_000),  # less than half the lifetime left
    ],
    ids=["rolling", "renew"],
)
async def test_a_read_only_request_still_refreshes_the_lifetime(
    options: dict[str, Any], expire_in_ms: int
) -> None:
    expire = int(time.time() * 1000) + expire_in_ms
    cookie = signed_cookie({"views": 1, "_expire": expire, "_maxAge": 86_400_000})
    _, pairs, _ = await _run(lambda s, phase: s.get("views"), {}, cookie, **options)
    assert decode_value(pairs["koa.sess"])["views"] == 1
    assert decode_value(pairs["koa.sess"])["_expire"] > expire


async def test_rolling_set_for_one_read_only_request_saves_it() -> None:
    def handler(session: Any, phase: str) -> None:
        if phase == "before":
            session.options.rolling = True
            session.get("views")

    _, pairs, _ = await _run(handler, {"views": 1})
    assert decode_value(pairs["koa.sess"])["views"] == 1


async def test_reading_an_encrypted_flat_session_saves_nothing() -> None:
    require_module("cryptography")

    def writer(session: Any, phase: str) -> None:
        if phase == "before":
            session["views"] = 2

    first, _ = await _serve(_phases(writer), {}, "koa.sess=none", encrypt=True)  # none valid yet
    sealed = f"koa.sess={first.cookies['koa.sess']}"
    lines, _, events = await _run(lambda s, phase: s.get("views"), {}, sealed, encrypt=True)
    assert lines == []
    assert events == []


async def test_a_flat_change_is_saved() -> None:
    def handler(session: Any, phase: str) -> None:
        if phase == "before":
            session["views"] += 1

    _, pairs, events = await _run(handler, {"views": 1})
    assert decode_value(pairs["koa.sess"])["views"] == 2
    assert events == []


@pytest.mark.parametrize("edit", ["set", "delete", "clear", "pop", "update", "destroy"])
async def test_a_flat_change_after_the_response_started_is_reported_lost(edit: str) -> None:
    def handler(session: Any, phase: str) -> None:
        if phase == "before":
            session.get("views")
        elif edit == "set":
            session["views"] = 2
        elif edit == "delete":
            del session["views"]
        elif edit == "clear":
            session.clear()
        elif edit == "pop":
            session.pop("views")
        elif edit == "destroy":
            session.destroy()  # counts no write: the removal flag alone must tell
        else:
            session.update(views=3)

    lines, _, events = await _run(handler, {"views": 1})
    assert lines == []
    assert events == [("lost", "changed after the response started")]


async def test_the_response_starts_when_the_app_calls_send_not_when_it_awaits() -> None:
    """The README's promise: a change made between calling ``send`` with the response start
    and awaiting it is a change after the response started."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = send({"type": "http.response.start", "status": 200, "headers": []})
        scope["session"]["views"] = 2
        await started
        await send({"type": "http.response.body", "body": b"ok"})

    response, events = await _serve(app, {"views": 1})
    assert set_cookies(response) == []
    assert events == [("lost", "changed after the response started")]


async def test_a_nested_value_edited_in_place_is_saved() -> None:
    def handler(session: Any, phase: str) -> None:
        if phase == "before":
            session["cart"].append("pear")  # no write through the session itself

    _, pairs, events = await _run(handler, {"cart": ["apple"]})
    assert decode_value(pairs["koa.sess"])["cart"] == ["apple", "pear"]
    assert events == []


async def test_a_nested_value_held_from_before_and_edited_after_is_reported_lost() -> None:
    held: dict[str, Any] = {}

    def handler(session: Any, phase: str) -> None:
        if phase == "before":
            held["cart"] = session["cart"]
        else:
            held["cart"].append("pear")

    lines, _, events = await _run(handler, {"cart": ["apple"]})
    assert lines == []
    assert events == [("lost", "changed after the response started")]


async def test_a_string_with_brackets_is_still_compared() -> None:
    def handler(session: Any, phase: str) -> None:
        if phase == "before":
            session["note"] = "[kept] {as text}"

    _, pairs, _ = await _run(handler, {"note": "old"})
    assert decode_value(pairs["koa.sess"])["note"] == "[kept] {as text}"


async def test_a_change_after_a_save_in_the_handler_is_saved_again() -> None:
    async def handler_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        session = scope["session"]
        session["views"] = 5
        await session.save()  # writes the cookie now; the commit at the start sees the rest
        session["views"] = 6
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    response, _ = await _serve(handler_app, {"views": 1})
    assert decode_value(cookie_pairs(response)["koa.sess"])["views"] == 6


async def test_replacing_the_session_with_a_dict_is_saved() -> None:
    async def replacing_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["session"].get("views")  # loaded and known clean first
        scope["session"] = {"views": 9}  # koa's ctx.session = {...}
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    response, _ = await _serve(replacing_app, {"views": 1})
    assert decode_value(cookie_pairs(response)["koa.sess"])["views"] == 9


async def test_a_session_first_used_after_the_response_started_is_reported_lost() -> None:
    # The engine is made on first use; made after the response start, it knows it is too late.
    lines, _, events = await _run(
        lambda s, phase: s.__setitem__("views", 9) if phase == "after" else None, {"views": 1}
    )
    assert lines == []
    assert events == [("lost", "changed after the response started")]


async def test_saving_a_session_first_used_after_the_response_started_is_refused() -> None:
    errors: list[BaseException] = []

    async def late_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        scope["session"]["views"] = 9
        try:
            await scope["session"].save()
        except ResponseStartedError as exc:
            errors.append(exc)
        await send({"type": "http.response.body", "body": b"ok"})

    response, _ = await _serve(late_app, {"views": 1})
    assert set_cookies(response) == []
    assert len(errors) == 1


async def test_an_untouched_session_adds_nothing_and_is_released() -> None:
    seen: list[Any] = []

    async def untouched_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["session"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    response, _ = await _serve(untouched_app, {"views": 1})
    assert set_cookies(response) == []
    assert "vary" not in response.headers
    with pytest.raises(ResponseStartedError):
        seen[0].get("views")  # the request is over: its session was never read during it


async def test_removing_an_unused_session_after_the_response_started_is_reported_lost() -> None:
    async def late_logout(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        scope["session"] = None  # koa's ctx.session = null, too late to send
        await send({"type": "http.response.body", "body": b"ok"})

    response, events = await _serve(late_logout, {"views": 1})
    assert set_cookies(response) == []
    assert events == [("lost", "changed after the response started")]
