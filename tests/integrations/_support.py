"""Shared helpers for the integration tests: load an example, make a client, common flows."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

from koasession import testing

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` afresh (its own store and app per test)."""
    module_name = f"_koasession_example_{name}"
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def client(app: Any) -> httpx.AsyncClient:
    """An httpx client talking to ``app`` in process."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def set_cookie_lines(response: httpx.Response, name: str) -> list[str]:
    """The Set-Cookie lines of ``response`` for cookie ``name``."""
    return [line for line in response.headers.get_list("set-cookie") if line.startswith(name + "=")]


async def read(response: httpx.Response, app: Any) -> dict[str, Any] | None:
    """The session the response wrote, in either mode."""
    return await testing.aread_session(response, app)


async def check_counter(app: Any) -> httpx.AsyncClient:
    """GET / twice: the views counter goes 1, 2 through the signed cookie."""
    http = client(app)
    first = await http.get("/")
    assert first.status_code == 200, first.text
    assert first.json()["views"] == 1
    assert set_cookie_lines(first, "koa.sess") and set_cookie_lines(first, "koa.sess.sig")
    line = set_cookie_lines(first, "koa.sess")[0]
    assert "httponly" in line and "samesite=lax" in line and "path=/" in line
    assert await read(first, app) == {"views": 1}
    second = await http.get("/")
    assert second.json()["views"] == 2
    assert await read(second, app) == {"views": 2}
    return http


async def check_login_logout(app: Any, *, keeps_data: bool = True) -> None:
    """Counter, then login (regenerate), remember-me lifetime, logout (destroy), fresh start."""
    http = await check_counter(app)
    try:
        before = dict(http.cookies)
        login = await http.post("/login", json={"user": "ada"})
        assert login.status_code == 200, login.text
        expected = {"views": 2, "user": "ada"} if keeps_data else {"user": "ada"}
        assert await read(login, app) == expected
        # regenerate() re-issued the session: new cookie value (and a new id in store mode).
        assert dict(http.cookies)["koa.sess"] != before["koa.sess"]
        assert "max-age=86400" in set_cookie_lines(login, "koa.sess")[0]
        me = await http.get("/")
        assert me.json()["user"] == "ada"

        remember = await http.post("/login", json={"user": "ada", "remember": True})
        assert "max-age=2592000" in set_cookie_lines(remember, "koa.sess")[0]

        logout = await http.post("/logout")
        assert logout.status_code == 200, logout.text
        assert testing.session_removed(logout, app)
        assert await read(logout, app) is None
        for name in ("koa.sess", "koa.sess.sig"):
            (line,) = set_cookie_lines(logout, name)
            assert "max-age=0" in line and "expires=Thu, 01 Jan 1970 00:00:00 GMT" in line
        assert "koa.sess" not in http.cookies
        again = await http.get("/")
        assert again.json()["views"] == 1
        assert again.json()["user"] is None
    finally:
        await http.aclose()
