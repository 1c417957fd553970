"""errors: every public exception is exported, and "no session here" is one exception."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any

import pytest

import koasession
from _services import require_module
from koasession import NoSessionError, Session, SessionError, get_session
from koasession.session import find_session


def _package_exceptions() -> set[type[SessionError]]:
    found: set[type[SessionError]] = set()
    for info in pkgutil.walk_packages(koasession.__path__, "koasession."):
        if info.name.endswith("__main__"):  # runs the command line when imported
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an integration whose framework is not installed
            continue
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, SessionError) and value.__module__.startswith("koasession"):
                found.add(value)
    return found


def test_every_session_error_is_exported() -> None:
    exceptions = _package_exceptions()
    assert NoSessionError in exceptions
    for exc in exceptions:
        assert getattr(koasession, exc.__name__, None) is exc, exc
        assert exc.__name__ in koasession.__all__, exc


def test_no_session_error_is_caught_as_before() -> None:
    assert issubclass(NoSessionError, LookupError)
    assert issubclass(NoSessionError, RuntimeError)


@pytest.mark.parametrize("where", [{}, None, object()])
def test_get_session_without_middleware(where: Any) -> None:
    with pytest.raises(NoSessionError, match="SessionMiddleware"):
        get_session(where)


async def test_csrf_without_session_raises_no_session_error() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not reached")

    middleware = koasession.CSRFMiddleware(app)
    scope = {"type": "http", "method": "POST", "path": "/", "headers": []}
    with pytest.raises(NoSessionError, match="CSRFMiddleware"):
        await middleware(scope, None, None)  # type: ignore[arg-type]


def test_integrations_report_a_missing_session_the_same_way() -> None:
    quart = require_module("koasession.integrations.quart")
    litestar = require_module("koasession.integrations.litestar")
    fastapi = require_module("koasession.integrations.fastapi")
    from starlette.requests import Request

    with pytest.raises(NoSessionError):
        quart.current_session()
    with pytest.raises(NoSessionError):
        litestar._lookup({}, "session")
    with pytest.raises(NoSessionError):
        fastapi._lookup(Request({"type": "http", "headers": []}), "session")
    with pytest.raises(NoSessionError):
        fastapi._lookup(Request({"type": "http", "session": {}, "headers": []}), "session")


def test_find_session_says_where_it_looked_and_what_to_do() -> None:
    session = Session(None)
    assert find_session({"session": session}, "session", where="scope", fix="x") is session
    with pytest.raises(NoSessionError) as missing:
        find_session({}, "admin", where="request", fix="call setup(app)")
    assert str(missing.value) == (
        "no koasession Session under request['admin']: call setup(app) with scope_key='admin'"
    )
    with pytest.raises(NoSessionError, match=r"scope\['session'\] holds dict, not a koasession"):
        find_session({"session": {}}, "session", where="scope", fix="unused")
    with pytest.raises(NoSessionError, match="holds NoneType"):  # removed in this request
        find_session({"session": None}, "session", where="scope", fix="unused")
