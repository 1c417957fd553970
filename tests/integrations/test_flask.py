"""Flask: koasession beside Flask's own ``session`` (examples/flask_app.py, koasession.flask)."""

from __future__ import annotations

import pytest
from flask import Flask, request
from flask import session as flask_session

from koasession import MemoryStore
from koasession.flask import init_app, koasession_session, run

from ._support import load_example

KEY = "Hq3vN8yTzKc2WmRb5XpLd7FgJs4Ea9Uo6iVn1BkYtQw"


def cookie_lines(response: object, name: str = "koa.sess") -> list[str]:
    lines: list[str] = response.headers.getlist("Set-Cookie")  # type: ignore[attr-defined]
    return [line for line in lines if line.startswith(name + "=")]


def test_counter_login_regenerate_and_logout() -> None:
    app = load_example("flask_app").app
    http = app.test_client()
    first = http.get("/")
    assert first.json == {"views": 1, "user": None}
    line = cookie_lines(first)[0]
    assert "httponly" in line and "samesite=lax" in line and cookie_lines(first, "koa.sess.sig")
    assert http.get("/").json == {"views": 2, "user": None}

    before = http.get_cookie("koa.sess")
    login = http.post("/login", json={"user": "ada", "remember": True})
    assert login.json == {"user": "ada"}
    assert "max-age=2592000" in cookie_lines(login)[0]
    after = http.get_cookie("koa.sess")
    assert before is not None and after is not None and after.value != before.value
    assert http.get("/").json == {"views": 3, "user": "ada"}

    logout = http.post("/logout")
    assert "max-age=0" in cookie_lines(logout)[0]
    assert http.get_cookie("koa.sess") is None
    assert http.get("/").json == {"views": 1, "user": None}


def make_app(**options: object) -> Flask:
    app = Flask(__name__)

    @app.get("/")
    def home() -> dict[str, object]:
        session = koasession_session()
        session["views"] = session.get("views", 0) + 1
        return dict(session)

    @app.get("/both")
    def both() -> dict[str, object]:
        flask_session["flask"] = "theirs"
        koasession_session()["ours"] = True
        return {"flask": dict(flask_session), "ours": dict(koasession_session())}

    @app.get("/fail")
    def fail() -> tuple[str, int]:
        koasession_session()["half"] = "done"
        return "failed", 500

    @app.get("/crash")
    def crash() -> str:
        koasession_session()["half"] = "done"
        raise RuntimeError("boom")

    @app.get("/save")
    def save() -> str:
        run(koasession_session().save())
        return "saved"

    app.secret_key = "flask's own secret, unrelated to koasession"
    init_app(app, [KEY], **options)  # type: ignore[arg-type]
    return app


def test_flask_session_stays_flasks() -> None:
    http = make_app().test_client()
    response = http.get("/both")
    assert response.json == {"flask": {"flask": "theirs"}, "ours": {"ours": True}}
    names = {line.split("=", 1)[0] for line in response.headers.getlist("Set-Cookie")}
    assert names == {"session", "koa.sess", "koa.sess.sig"}


def test_5xx_is_not_committed_and_a_crash_writes_nothing() -> None:
    store = MemoryStore()
    app = make_app(store=store)
    http = app.test_client()
    http.get("/")
    sid = http.get_cookie("koa.sess")
    assert sid is not None
    failed = http.get("/fail")
    assert failed.status_code == 500 and not cookie_lines(failed)

    app.testing = True  # Flask lets the exception through, to the middleware and the test
    with pytest.raises(RuntimeError, match="boom"):
        http.get("/crash")
    app.testing = False
    crashed = http.get("/crash")  # Flask's own 500 page: still no commit
    assert crashed.status_code == 500 and not cookie_lines(crashed)
    assert http.get("/").json == {"views": 2}


class DownStore(MemoryStore):
    down = False

    async def set(self, *args: object, **kw: object) -> object:
        if self.down:
            raise ConnectionError("store down")
        return await super().set(*args, **kw)  # type: ignore[arg-type]


def test_store_outage_is_a_503_even_through_flasks_error_handling() -> None:
    store = DownStore()
    http = make_app(store=store).test_client()
    http.get("/")
    store.down = True
    commit = http.get("/")  # the commit at start_response fails
    assert commit.status_code == 503 and commit.headers["Retry-After"] == "5"
    save = http.get("/save")  # a StoreError Flask turned into its 500 page
    assert save.status_code == 503 and save.get_data() == b"Session store unavailable"


def test_init_app_twice_is_refused() -> None:
    app = make_app()
    with pytest.raises(RuntimeError, match="already"):
        init_app(app, [KEY])


def test_koasession_session_without_init_app_is_a_clear_error() -> None:
    app = Flask(__name__)

    @app.get("/")
    def home() -> str:
        koasession_session()
        return "unreachable"

    app.testing = True
    with pytest.raises(RuntimeError, match="init_app"):
        app.test_client().get("/")


def test_headers_beyond_latin1_neither_crash_nor_change() -> None:
    # PEP 3333 headers are latin-1 text, but Werkzeug's test client passes a request header's
    # str on as given, and a view may echo it in a response header: without koasession Flask
    # serves both. A session read or written must not turn either into a 500.
    app = make_app()

    @app.get("/echo")
    def echo() -> tuple[str, int, dict[str, str]]:
        koasession_session()["seen"] = True
        return "ok", 200, {"X-Echo": request.headers.get("X-Name", "")}

    http = app.test_client()
    name = "caf\u00e9 \u20ac \u4e2d"
    assert http.get("/", headers={"X-Name": name}).json == {"views": 1}
    assert http.get("/", headers={"X-Name": name}).json == {"views": 2}  # the cookie still read
    response = http.get("/echo", headers={"X-Name": name})
    assert response.status_code == 200
    assert response.headers["X-Echo"] == name
    assert cookie_lines(response)
