"""Plain ASGI: the session is ``scope["session"]`` (examples/plain_asgi.py)."""

from __future__ import annotations

from typing import Any

from koasession import SessionMiddleware, get_session, testing

from ._support import check_counter, check_login_logout, client, load_example


async def test_counter() -> None:
    http = await check_counter(load_example("plain_asgi").app)
    await http.aclose()


async def test_login_regenerate_and_logout() -> None:
    await check_login_logout(load_example("plain_asgi").app)


async def test_lifespan_passes_through() -> None:
    app = load_example("plain_asgi").app
    assert isinstance(app, SessionMiddleware)
    messages: list[dict[str, Any]] = []
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        messages.append(message)

    # The example ignores non-http scopes; the middleware hands them over without a session
    # and completes the lifespan the example does not answer.
    scope: dict[str, Any] = {"type": "lifespan"}
    await app(scope, receive, send)
    assert "session" not in scope
    assert messages == [
        {"type": "lifespan.startup.complete"},
        {"type": "lifespan.shutdown.complete"},
    ]


async def test_get_session_outside_middleware_is_explained() -> None:
    try:
        get_session({"type": "http"})
    except LookupError as exc:
        assert "SessionMiddleware" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected LookupError")


async def test_tampered_cookie_starts_a_new_session() -> None:
    app = load_example("plain_asgi").app
    cookies = testing.session_cookies(app, {"views": 10})
    signature = cookies["koa.sess.sig"]
    cookies["koa.sess.sig"] = ("A" if signature[0] != "A" else "B") + signature[1:]
    async with client(app) as http:
        header = "; ".join(f"{name}={value}" for name, value in cookies.items())
        response = await http.get("/", headers={"cookie": header})
    assert response.json()["views"] == 1
