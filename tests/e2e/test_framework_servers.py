"""The framework integrations under the servers their users run them with: Quart under
Hypercorn, Litestar and FastAPI under uvicorn, aiohttp under its own ``web.run_app``.

Subprocesses, real HTTP (httpx). Each app has the same pages (a counter, a CSRF-protected
login with ``regenerate()``, a flash message across a 303, a crash, a logout) and runs in
cookie mode and with a RedisStore; the client walks through them, then the server is stopped
with SIGTERM: it must exit as it does for any app, print no traceback other than the crash's,
and (store mode) close its store after the app's shutdown ("STORE CLOSED" in its output).
A store that cannot be reached answers 503 with ``Retry-After`` under each framework.
"""

from __future__ import annotations

import json
import signal
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from _services import require_module

from ._processes import (
    ServerProcess,
    assert_quiet,
    listening_socket,
    redis_env,
    redis_keys,
    spawn,
)

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups and signals"),
]

#: The store and the SIGTERM report every app shares: a RedisStore from ``STORE_URL`` (none
#: without it) whose close() says so in the output.
STORE = """
import os
from koasession import keys_from_env
from koasession.stores import store_from_url

OPTIONS = {}
if os.environ.get("STORE_URL"):
    store = store_from_url(os.environ["STORE_URL"], key_prefix=os.environ["KEY_PREFIX"])
    _close = store.close

    async def close():
        await _close()
        os.write(1, b"STORE CLOSED\\n")

    store.close = close
    OPTIONS["store"] = store
    if os.environ.get("LAZY"):
        OPTIONS["lazy"] = True
KEYS = keys_from_env()
"""

QUART_APP = (
    STORE
    + """
from quart import Quart, redirect
from koasession import CSRFMiddleware, csrf_token, flash, pop_flashes
from koasession.integrations.quart import current_session, install

app = Quart(__name__)
app.asgi_app = CSRFMiddleware(app.asgi_app)
install(app, keys=KEYS, **OPTIONS)

@app.get("/")
async def home():
    session = current_session()
    session["views"] = session.get("views", 0) + 1
    return {"views": session["views"], "user": session.get("user")}

@app.get("/form")
async def form():
    return csrf_token(current_session())

@app.post("/login")
async def login():
    session = current_session()
    session["user"] = "ada"
    await session.regenerate()
    return {"user": "ada"}

@app.post("/save")
async def save():
    flash(current_session(), "Saved", "success")
    return redirect("/messages", 303)

@app.get("/messages")
async def messages():
    return "\\n".join(f"{f.category}: {f.message}" for f in pop_flashes(current_session()))

@app.get("/crash")
async def crash():
    current_session()["crashed"] = True
    raise RuntimeError("crash in the handler")

@app.post("/logout")
async def logout():
    await current_session().flush()
    return "bye"
"""
)

LITESTAR_APP = (
    STORE
    + """
from typing import Any
from litestar import Litestar, Request, get, post
from litestar.response import Redirect
from koasession import CSRFMiddleware, csrf_token, flash, pop_flashes
from koasession.integrations.litestar import LitestarSessionMiddleware

@get("/")
async def home(request: Request) -> dict[str, Any]:
    views = request.session.get("views", 0) + 1
    request.session["views"] = views
    return {"views": views, "user": request.session.get("user")}

@get("/form")
async def form(request: Request) -> str:
    return csrf_token(request.session)

@post("/login", status_code=200)
async def login(request: Request) -> dict[str, Any]:
    request.session["user"] = "ada"
    await request.session.regenerate()
    return {"user": "ada"}

@post("/save")
async def save(request: Request) -> Redirect:
    flash(request.session, "Saved", "success")
    return Redirect("/messages", status_code=303)

@get("/messages")
async def messages(request: Request) -> str:
    return "\\n".join(f"{f.category}: {f.message}" for f in pop_flashes(request.session))

@get("/crash")
async def crash(request: Request) -> str:
    request.session["crashed"] = True
    raise RuntimeError("crash in the handler")

@post("/logout", status_code=200)
async def logout(request: Request) -> str:
    request.clear_session()
    return "bye"

app = LitestarSessionMiddleware(
    CSRFMiddleware(Litestar([home, form, login, save, messages, crash, logout])),
    keys=KEYS,
    **OPTIONS,
)
"""
)

FASTAPI_APP = (
    STORE
    + """
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, RedirectResponse
from koasession import CSRFMiddleware, SessionMiddleware, csrf_token, flash, pop_flashes
from koasession.integrations.fastapi import SessionDep

api = FastAPI()

@api.get("/")
async def home(session: SessionDep) -> dict:
    session["views"] = session.get("views", 0) + 1
    return {"views": session["views"], "user": session.get("user")}

@api.get("/form", response_class=PlainTextResponse)
async def form(session: SessionDep) -> str:
    return csrf_token(session)

@api.post("/login")
async def login(session: SessionDep) -> dict:
    session["user"] = "ada"
    await session.regenerate()
    return {"user": "ada"}

@api.post("/save")
async def save(session: SessionDep) -> RedirectResponse:
    flash(session, "Saved", "success")
    return RedirectResponse("/messages", status_code=303)

@api.get("/messages", response_class=PlainTextResponse)
async def messages(session: SessionDep) -> str:
    return "\\n".join(f"{f.category}: {f.message}" for f in pop_flashes(session))

@api.get("/crash")
async def crash(session: SessionDep) -> None:
    session["crashed"] = True
    raise RuntimeError("crash in the handler")

@api.post("/logout", response_class=PlainTextResponse)
async def logout(session: SessionDep) -> str:
    await session.flush()
    return "bye"

app = SessionMiddleware(CSRFMiddleware(api), keys=KEYS, **OPTIONS)
"""
)

#: aiohttp has no ASGI CSRFMiddleware: the handlers check the token with verify_csrf().
AIOHTTP_APP = (
    STORE
    + """
import socket
from aiohttp import web
from koasession import csrf_token, flash, pop_flashes, verify_csrf
from koasession.aiohttp import get_session, setup

routes = web.RouteTableDef()

async def checked(request):
    session = await get_session(request)
    if not verify_csrf(session, request.headers.get("x-csrf-token")):
        raise web.HTTPForbidden(text="CSRF token missing")
    return session

@routes.get("/")
async def home(request):
    session = await get_session(request)
    session["views"] = session.get("views", 0) + 1
    return web.json_response({"views": session["views"], "user": session.get("user")})

@routes.get("/form")
async def form(request):
    return web.Response(text=csrf_token(await get_session(request)))

@routes.post("/login")
async def login(request):
    session = await checked(request)
    session["user"] = "ada"
    await session.regenerate()
    return web.json_response({"user": "ada"})

@routes.post("/save")
async def save(request):
    flash(await checked(request), "Saved", "success")
    raise web.HTTPSeeOther("/messages")

@routes.get("/messages")
async def messages(request):
    session = await get_session(request)
    return web.Response(text="\\n".join(f"{f.category}: {f.message}" for f in pop_flashes(session)))

@routes.get("/crash")
async def crash(request):
    (await get_session(request))["crashed"] = True
    raise RuntimeError("crash in the handler")

@routes.post("/logout")
async def logout(request):
    await (await checked(request)).flush()
    return web.Response(text="bye")

app = web.Application()
app.add_routes(routes)
setup(app, keys=KEYS, **OPTIONS)

if __name__ == "__main__":
    web.run_app(app, sock=socket.socket(fileno=int(os.environ["LISTEN_FD"])), print=None)
"""
)

#: framework: (module that must be importable, app source, server command before the module).
FRAMEWORKS: dict[str, tuple[str, str, list[str]]] = {
    "quart-hypercorn": ("quart", QUART_APP, ["-m", "hypercorn", "--bind", "fd://{fd}"]),
    "litestar-uvicorn": ("litestar", LITESTAR_APP, ["-m", "uvicorn", "--fd", "{fd}"]),
    "fastapi-uvicorn": ("fastapi", FASTAPI_APP, ["-m", "uvicorn", "--fd", "{fd}"]),
    "aiohttp-run_app": ("aiohttp", AIOHTTP_APP, []),
}
#: The exit status after SIGTERM: uvicorn shuts down, then dies of the signal it caught.
EXIT_STATUS = {"litestar-uvicorn": -signal.SIGTERM, "fastapi-uvicorn": -signal.SIGTERM}
#: Lines the servers print that are not noise: aiohttp reports its string request keys once.
KNOWN = ("NotAppKeyWarning", "web_advanced.html", "request[cfg.options", "request[self._scope")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """``serve(framework, **env)``: the framework's app on a socket bound here, answering."""
    servers: list[ServerProcess] = []

    def start(framework: str, **env: str) -> ServerProcess:
        module_name, source, command = FRAMEWORKS[framework]
        require_module(module_name)
        if command and command[1] in ("hypercorn", "uvicorn"):
            require_module(command[1])
        module = f"app_{framework.split('-')[0]}_{len(servers)}"
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        sock, port = listening_socket()
        fd = str(sock.fileno())
        argv = (
            [c.replace("{fd}", fd) for c in command] + [f"{module}:app"]
            if command
            else [f"{module}.py"]
        )
        log = tmp_path / f"{module}.log"
        proc = spawn(
            argv,
            cwd=tmp_path,
            log=log,
            env={
                "KOASESSION_KEY": "tONGABbpJHX1qcgawgKRl25XMtIgY78OAfLS-XgbRG8",
                "LISTEN_FD": fd,
                **env,
            },
            pass_fds=(sock.fileno(),),
        )
        sock.close()  # the child holds its own copy
        server = ServerProcess(f"http://127.0.0.1:{port}", proc, log)
        servers.append(server)
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(server.url + "/ready", timeout=1)  # a 404: no session
                return server
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"{framework} did not answer:\n{server.text()}") from None
                time.sleep(0.1)

    yield start
    for server in servers:
        server.stop_and_kill()


def cookie_names(response: httpx.Response) -> list[str]:
    return sorted(line.split("=", 1)[0] for line in response.headers.get_list("set-cookie"))


def walk_through(url: str, stored: Callable[[], list[dict[str, object]]] | None = None) -> None:
    """Counter, login, flash, crash and logout, as a browser (one cookie jar) goes through them;
    ``stored`` returns the store's entries (store mode)."""
    with httpx.Client(base_url=url, timeout=10) as http:
        first = http.get("/")
        assert first.json() == {"views": 1, "user": None}
        assert cookie_names(first) == ["koa.sess", "koa.sess.sig"]
        assert first.headers["vary"] == "Cookie"
        assert first.headers["cache-control"] == "private"
        assert http.get("/").json() == {"views": 2, "user": None}
        anonymous = http.cookies["koa.sess"]
        token = http.get("/form").text
        refused = http.post("/login")
        assert refused.status_code == 403, refused.text
        assert refused.headers.get_list("set-cookie") == []
        login = http.post("/login", headers={"x-csrf-token": token})
        assert login.status_code == 200, login.text
        assert cookie_names(login) == ["koa.sess", "koa.sess.sig"]
        assert http.cookies["koa.sess"] != anonymous  # regenerated
        assert http.get("/").json() == {"views": 3, "user": "ada"}
        stale = http.post("/save", headers={"x-csrf-token": token})  # from before the login
        assert stale.status_code == 403, stale.text
        token = http.get("/form").text
        saved = http.post("/save", headers={"x-csrf-token": token})
        assert saved.status_code == 303
        assert http.get("/messages").text == "success: Saved"
        assert http.get("/messages").text == ""
        if stored is not None:
            assert [entry.get("user") for entry in stored()] == ["ada"]  # the anonymous id is gone
        crash = http.get("/crash", headers={"connection": "close"})
        assert crash.status_code == 500
        assert crash.headers.get_list("set-cookie") == []
        if stored is not None:
            assert "crashed" not in stored()[0]
        logout = http.post("/logout", headers={"x-csrf-token": http.get("/form").text})
        assert logout.status_code == 200, logout.text
        assert "max-age=0" in logout.headers["set-cookie"]
        assert logout.headers["vary"] == "Cookie"
        assert "koa.sess" not in http.cookies
        if stored is not None:
            assert stored() == []
        assert http.get("/").json() == {"views": 1, "user": None}


def stop_cleanly(server: ServerProcess, framework: str, *, store: bool) -> str:
    code = server.stop()
    output = server.text()
    assert code == EXIT_STATUS.get(framework, 0), output
    # The crash's own traceback is the app's (Litestar logs none outside debug mode); nothing
    # else may be printed.
    _, _, tail = output.rpartition("RuntimeError: crash in the handler")
    assert_quiet(tail, ignore=lambda line: any(k in line for k in KNOWN))
    if store:
        assert output.count("STORE CLOSED") == 1, output
    else:
        assert "STORE CLOSED" not in output
    return output


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
def test_cookie_mode(serve: Callable[..., ServerProcess], framework: str) -> None:
    server = serve(framework)
    walk_through(server.url)
    stop_cleanly(server, framework, store=False)


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
def test_redis_store(serve: Callable[..., ServerProcess], framework: str) -> None:
    with redis_env(framework) as env:

        def stored() -> list[dict[str, object]]:
            import redis

            with redis.Redis.from_url(env["STORE_URL"]) as client:
                entries = [client.get(key) for key in redis_keys(env)]
            return [json.loads(raw) for raw in entries if raw is not None]

        server = serve(framework, **env)
        walk_through(server.url, stored)
        stop_cleanly(server, framework, store=True)


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
def test_store_outage_answers_503(serve: Callable[..., ServerProcess], framework: str) -> None:
    server = serve(framework, STORE_URL="redis://127.0.0.1:1", KEY_PREFIX="unreachable:")
    with httpx.Client(base_url=server.url, timeout=20) as http:
        down = http.get("/")
    assert down.status_code == 503
    assert down.headers["retry-after"]
    assert down.headers.get_list("set-cookie") == []
    code = server.stop()
    assert code == EXIT_STATUS.get(framework, 0), server.text()
    assert_quiet(server.text(), ignore=lambda line: any(k in line for k in KNOWN))


@pytest.mark.parametrize("framework", ["fastapi-uvicorn", "aiohttp-run_app"])
def test_lazy_redis_store(serve: Callable[..., ServerProcess], framework: str) -> None:
    """``lazy=True``: FastAPI's SessionDep and aiohttp's ``get_session`` load the session;
    CSRFMiddleware (FastAPI) loads it to check tokens."""
    with redis_env(f"{framework}-lazy") as env:
        server = serve(framework, LAZY="1", **env)
        walk_through(server.url)
        stop_cleanly(server, framework, store=True)
