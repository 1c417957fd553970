"""Keys from the environment: one variable name, several keys, a random key only with a warning."""

from __future__ import annotations

import io
import secrets
import sys

import httpx
import pytest

from integrations._support import load_example
from koasession import SessionMiddleware, keys_from_env, keys_from_env_or_random
from koasession.envkeys import KEY_ENV

NEW = secrets.token_urlsafe(32)
OLD = secrets.token_urlsafe(32)


def test_the_one_variable_name() -> None:
    assert KEY_ENV == "KOASESSION_KEY"
    assert keys_from_env(environ={"KOASESSION_KEY": NEW}) == [NEW]


def test_unset_or_blank_gives_no_keys() -> None:
    assert keys_from_env(environ={}) == []
    assert keys_from_env(environ={"KOASESSION_KEY": "  \n "}) == []


def test_whitespace_separates_keys_and_commas_do_not() -> None:
    env = {"KOASESSION_KEY": f"  {NEW}\n\t{OLD} "}
    assert keys_from_env(environ=env) == [NEW, OLD]
    with_comma = "x,y" + secrets.token_urlsafe(32)
    assert keys_from_env(environ={"KOASESSION_KEY": with_comma}) == [with_comma]


def test_numbered_variables_follow_in_numeric_order_and_are_not_split() -> None:
    spaced = "a koa key with spaces " + secrets.token_hex(16)
    env = {
        "KOASESSION_KEY_10": "ten",
        "KOASESSION_KEY_2": f" {spaced} ",
        "KOASESSION_KEY": NEW,
        "KOASESSION_KEY_1": OLD,
        "KOASESSION_KEY_X": "ignored",
        "KOASESSION_KEY_3": "",
        "OTHER_KOASESSION_KEY_4": "ignored",
    }
    assert keys_from_env(environ=env) == [NEW, OLD, spaced, "ten"]
    assert keys_from_env(environ={"KOASESSION_KEY_1": OLD}) == [OLD]


def test_other_variable_name() -> None:
    env = {"MY_APP_KEY": NEW, "KOASESSION_KEY": OLD}
    assert keys_from_env("MY_APP_KEY", environ=env) == [NEW]


def test_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOASESSION_KEY", f"{NEW} {OLD}")
    assert keys_from_env() == [NEW, OLD]


def test_set_keys_are_used_without_warning() -> None:
    out = io.StringIO()
    assert keys_from_env_or_random(environ={"KOASESSION_KEY": NEW}, stream=out) == [NEW]
    assert out.getvalue() == ""


def test_random_fallback_warns_and_differs_every_time() -> None:
    out = io.StringIO()
    first = keys_from_env_or_random(environ={}, stream=out, program="myapp")
    second = keys_from_env_or_random(environ={}, stream=out)
    assert len(first) == 1 and len(second) == 1 and first != second
    text = out.getvalue()
    assert "myapp: WARNING: KOASESSION_KEY is not set" in text
    assert "Every session ends when the process restarts" in text
    assert "koasession keygen" in text
    SessionMiddleware(_noop, keys=first)  # strong enough for the start-up check


async def _noop(scope: object, receive: object, send: object) -> None:
    return None


@pytest.mark.parametrize(
    "name", ["starlette_app", "fastapi_app", "litestar_app", "quart_app", "plain_asgi"]
)
async def test_examples_never_use_a_fixed_key(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two starts without a key: a warning each time, and one start's cookie is refused by the
    other (a fixed fallback key would make them accept each other's, and anyone's, cookies)."""
    monkeypatch.delenv("KOASESSION_KEY", raising=False)
    # A stream of our own, not capsys's: Quart keeps a logging thread writing to sys.stderr.
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    first = load_example(name)
    second = load_example(name)
    assert err.getvalue().count("KOASESSION_KEY is not set") == 2
    async with _client(first.app) as a, _client(second.app) as b:
        response = await a.get("/")
        assert response.status_code == 200 and response.json()["views"] == 1
        replay = await b.get("/", headers=_cookie_header(response))
        assert replay.json()["views"] == 1  # refused: a new session
        again = await a.get("/", headers=_cookie_header(response))
        assert again.json()["views"] == 2


async def test_examples_read_the_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOASESSION_KEY", f"{NEW} {OLD}")
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    first = load_example("starlette_app")
    second = load_example("starlette_app")
    assert err.getvalue() == ""
    async with _client(first.app) as a, _client(second.app) as b:
        response = await a.get("/")
        replay = await b.get("/", headers=_cookie_header(response))
        assert replay.json()["views"] == 2  # same keys: the session survives a "restart"


def _client(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def _cookie_header(response: httpx.Response) -> dict[str, str]:
    return {"cookie": "; ".join(f"{k}={v}" for k, v in response.cookies.items())}


def test_no_key_in_the_environment_is_an_error_naming_the_variable() -> None:
    """``keys_from_env()`` found nothing: the start-up error says where it looked."""
    from koasession import ConfigurationError

    async def app(scope: object, receive: object, send: object) -> None: ...

    with pytest.raises(ConfigurationError, match=r"keys are required.*KOASESSION_KEY is not set"):
        SessionMiddleware(app, keys=keys_from_env(environ={}))
