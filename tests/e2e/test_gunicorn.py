"""The WSGI adapter under gunicorn: real worker processes (forked), real HTTP (httpx).

Users serve Flask with gunicorn. What only a real gunicorn shows: store mode runs the stores on
an event loop in a daemon thread, which a fork does not carry into the workers (the middleware
starts a new one when the pid changed); ``--preload`` builds the app, the middleware and the
store in the master before the fork; ``gthread`` workers call the middleware from several
threads at once; and each worker closes its stores at exit (``atexit``).

gunicorn serves a socket this test bound on a free loopback port (``--bind fd://N``), with its
control socket off (gunicorn 27 otherwise shares one per user between concurrent servers). Each
server runs in a session of its own, killed as a group after the test. The output goes to a file
with ``PYTHONWARNINGS=default``, so that a connection dropped unclosed shows there as a
ResourceWarning; gunicorn's own, for its copies of the listening socket, are set aside
(:func:`listener_warning`). The ASGI case runs uvicorn's gunicorn worker class.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import secrets
import sqlite3
import textwrap
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from _services import require_module, unavailable

from ._processes import ServerProcess, assert_quiet, listening_socket, spawn
from ._processes import redis_env as redis_env_of

pytestmark = pytest.mark.timeout(120)

KEY = "tONGABbpJHX1qcgawgKRl25XMtIgY78OAfLS-XgbRG8"

#: The store of the apps below, chosen by the environment; its close() reports to the log.
STORE_SETUP = """
import os
from koasession.stores import store_from_url

def make_store():
    url = os.environ.get("STORE_URL")
    if not url:
        return None
    if url.startswith("redis"):
        store = store_from_url(url, key_prefix=os.environ["KEY_PREFIX"])
    else:
        store = store_from_url(url)
    close = store.close

    async def reporting_close():
        if os.environ.get("LEAK"):
            await abandon_a_connection(url)
        else:
            await close()
        # One write: the workers and the master share the log.
        os.write(1, f"STORE CLOSED {os.getpid()}\\n".encode())

    store.close = reporting_close
    return store

# The control's leak: a connection of the store's kind, let go of instead of closed.
async def abandon_a_connection(url):
    if url.startswith("redis"):
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(url)
        await client.ping()
    else:
        import aiosqlite

        client = await aiosqlite.connect(url.removeprefix("sqlite:///"))
        await client.execute("SELECT 1")

store = make_store()
options = {"store": store} if store is not None else {}
"""

FLASK_APP = (
    STORE_SETUP
    + f"""
from flask import Flask, request
from koasession.flask import init_app, koasession_session, run

app = Flask(__name__)

@app.get("/ping")
def ping():
    return "pong"

@app.get("/")
def home():
    session = koasession_session()
    session["views"] = session.get("views", 0) + 1
    return {{"views": session["views"], "user": session.get("user"), "pid": os.getpid()}}

@app.post("/login")
def login():
    session = koasession_session()
    session["user"] = "ada"
    run(session.regenerate())
    return {{"user": "ada", "pid": os.getpid()}}

@app.post("/logout")
def logout():
    koasession_session().destroy()
    return {{"user": None}}

@app.get("/balance")
def balance():
    return {{"balance": koasession_session().setdefault("balance", 100)}}

@app.post("/spend")
def spend():
    session = koasession_session()
    session["balance"] -= 50
    if request.args.get("save"):
        run(session.save())
    raise RuntimeError("crash half-way through")

middleware = init_app(app, ["{KEY}"], **options)

if os.environ.get("WARM_UP"):
    # A request in the master before the fork (with --preload): the middleware's loop thread
    # and the store's connection exist there, and the workers must not use them.
    with app.test_client() as client:
        assert client.get("/").json["views"] == 1
    os.write(1, f"WARMED UP {{os.getpid()}}\\n".encode())
"""
)

#: A WSGI app without a framework: its exception escapes to the middleware and to gunicorn
#: (Flask turns it into a 500 response of its own).
PLAIN_WSGI_APP = (
    STORE_SETUP
    + f"""
import json
from koasession.wsgi import SessionMiddleware, run

def inner(environ, start_response):
    session = environ["koasession.session"]
    path = environ["PATH_INFO"]
    if path == "/ping":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"pong"]
    if path == "/balance":
        body = json.dumps({{"balance": session.setdefault("balance", 100)}}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    session["balance"] -= 50
    if "save" in environ.get("QUERY_STRING", ""):
        run(session.save())
    raise RuntimeError("crash half-way through")

app = SessionMiddleware(inner, keys=["{KEY}"], **options)
"""
)

ASGI_APP = (
    STORE_SETUP
    + f"""
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from koasession import SessionMiddleware

async def ping(request: Request) -> PlainTextResponse:
    return PlainTextResponse("pong")

async def home(request: Request) -> JSONResponse:
    request.session["views"] = request.session.get("views", 0) + 1
    return JSONResponse({{"views": request.session["views"], "pid": os.getpid()}})

app = SessionMiddleware(
    Starlette(routes=[Route("/ping", ping), Route("/", home)]), keys=["{KEY}"], **options
)
"""
)

#: gunicorn 27 opens a control socket at one path per user: two servers at once would share
#: it. A setting gunicorn does not know is ignored in a config file (not on the command line).
CONFIG = "control_socket_disable = True\n"


@dataclass
class Server(ServerProcess):
    """A gunicorn master (the leader of its own process group), and the port it serves."""

    port: int = 0

    def output(self) -> str:
        """Stop the server (SIGTERM to the master); everything it printed, once it exited."""
        code = self.stop(timeout=30)
        assert code == 0, f"gunicorn exited with {code}:\n{self.text()}"
        return self.text()


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """``gunicorn(source, *args, **env)``: serve ``app`` from ``source`` with gunicorn and
    ``args``, ``env`` added to the environment; returns once a worker answers ``/ping``."""
    require_module("gunicorn")
    require_module("flask")
    servers: list[Server] = []
    config = tmp_path / "gunicorn.conf.py"
    config.write_text(CONFIG)

    def start(source: str, *args: str, **env: str) -> Server:
        module = f"app_{secrets.token_hex(4)}"
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        log = tmp_path / f"{module}.log"
        sock, port = listening_socket()
        command = ["-m", "gunicorn", "--config", str(config)]
        command += ["--bind", f"fd://{sock.fileno()}", "--chdir", str(tmp_path), *args]
        command.append(f"{module}:app")
        proc = spawn(command, cwd=tmp_path, log=log, env=env, pass_fds=(sock.fileno(),))
        sock.close()  # the master holds its own copy
        server = Server(f"http://127.0.0.1:{port}", proc, log, port)
        servers.append(server)
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"gunicorn exited early:\n{server.text()}")
            try:
                if httpx.get(server.url + "/ping", timeout=1).text == "pong":
                    return server
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"gunicorn did not answer:\n{server.text()}")
            time.sleep(0.1)

    yield start
    for server in servers:
        server.stop_and_kill()


@pytest.fixture
def redis_env() -> Iterator[dict[str, str]]:
    """The environment of the apps for a RedisStore under a prefix of the test's own; the keys
    are deleted after the test."""
    with redis_env_of("gunicorn") as env:
        yield env


def redis_value(env: dict[str, str], sid: str) -> Any:
    """The session stored under ``sid`` by the apps run with ``env`` (``None``: no such key)."""
    import redis

    client = redis.Redis.from_url(env["STORE_URL"])
    try:
        raw = client.get(env["KEY_PREFIX"] + sid)
    finally:
        client.close()
    return None if raw is None else public(json.loads(raw))


def sqlite_rows(path: Path) -> dict[str, Any]:
    """The sessions in the SQLiteStore file at ``path``, by id."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT id, data FROM koasession_sessions")
        return {sid: public(json.loads(data)) for sid, data in rows}


def public(data: dict[str, Any]) -> dict[str, Any]:
    """A stored session without the middleware's own fields (``_expire`` and the like)."""
    return {k: v for k, v in data.items() if not k.startswith("_")}


def listener_warning(port: int) -> re.Pattern[str]:
    """gunicorn leaves copies of the listening socket to the garbage collector (the master one
    made from the descriptor, each worker its own at exit), with or without koasession
    (gunicorn 27): those ResourceWarning lines are gunicorn's. A socket of a connection to a
    store has a ``raddr`` after ``laddr``, so its line does not match.
    """
    return re.compile(
        r"ResourceWarning: unclosed <socket\.socket [^>]*"
        rf"laddr=\('127\.0\.0\.1', {port}\)>$"
    )


#: The hint under every ResourceWarning; a warning of ours keeps its own "unclosed" line.
_TRACEMALLOC_HINT = "ResourceWarning: Enable tracemalloc to get the object allocation traceback"


def assert_clean(output: str, port: int) -> None:
    """No traceback or warning in ``output`` but gunicorn's own (see :func:`listener_warning`).

    Line by line: the master and the workers write to one log as they exit together, so a
    warning and the hint under it need not be next to each other.
    """
    gunicorns = listener_warning(port)
    assert_quiet(
        output, lambda line: bool(gunicorns.search(line)) or line.strip() == _TRACEMALLOC_HINT
    )


def closed_in(output: str) -> list[int]:
    """The pids whose store reported its close."""
    return sorted(int(pid) for pid in re.findall(r"^STORE CLOSED (\d+)$", output, re.MULTILINE))


def worker_pids(output: str) -> list[int]:
    return sorted(int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", output))


def session_cookies(response: httpx.Response) -> list[str]:
    """The names of the cookies the response sets."""
    return sorted(line.split("=", 1)[0] for line in response.headers.get_list("set-cookie"))


def count_on_both_workers(http: httpx.Client, views: int = 0) -> tuple[int, set[int]]:
    """Count on with ``http`` until two worker processes have answered: the session goes on
    from one to the other. Returns the count reached and the pids seen."""
    pids: set[int] = set()
    # Each request on a new connection, which any idle worker may accept. A bound, not a
    # timing: a worker still booting on a loaded machine joins later.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        response = http.get("/", headers={"connection": "close"})
        assert response.status_code == 200, response.text
        views += 1
        assert response.json()["views"] == views
        pids.add(response.json()["pid"])
        if len(pids) == 2:
            return views, pids
    raise AssertionError(f"one worker answered every request for 30 s: {pids}")


# -- 1. Flask under sync workers: counter, login, logout -----------------------------------------


@pytest.mark.parametrize("mode", ["cookie", "redis"])
def test_flask_session_under_two_sync_workers(
    gunicorn: Callable[..., Server], request: pytest.FixtureRequest, mode: str
) -> None:
    """The session follows a browser across two sync workers; the response that sets the
    cookie says ``Vary: Cookie`` and ``Cache-Control: private``; a login issues a new id for
    the same data (the old one gone from the store); a logout clears the cookie and the
    stored session; each worker closes its store at SIGTERM, and the shutdown is quiet."""
    env: dict[str, str] = request.getfixturevalue("redis_env") if mode == "redis" else {}
    server = gunicorn(FLASK_APP, "--workers", "2", **env)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert not http.get("/ping").headers.get_list("set-cookie")  # untouched: nothing written
        first = http.get("/")
        assert first.json()["views"] == 1
        assert session_cookies(first) == ["koa.sess", "koa.sess.sig"]
        assert first.headers.get_list("vary") == ["Cookie"]
        assert first.headers["cache-control"] == "private"
        views, pids = count_on_both_workers(http, 1)

        before = http.cookies["koa.sess"]
        login = http.post("/login")
        assert login.status_code == 200
        assert session_cookies(login) == ["koa.sess", "koa.sess.sig"]
        assert login.headers.get_list("vary") == ["Cookie"]
        assert login.headers["cache-control"] == "private"
        after = http.cookies["koa.sess"]
        assert after != before
        if mode == "redis":
            assert redis_value(env, before) is None  # the old id is gone
            assert redis_value(env, after) == {"views": views, "user": "ada"}
        home = http.get("/").json()
        assert home["views"] == views + 1 and home["user"] == "ada"

        logout = http.post("/logout")
        assert logout.status_code == 200
        assert session_cookies(logout) == ["koa.sess", "koa.sess.sig"]
        assert logout.headers["cache-control"] == "private"
        assert all(
            "expires=thu, 01 jan 1970" in line.lower()
            for line in logout.headers.get_list("set-cookie")
        )
        assert "koa.sess" not in http.cookies
        if mode == "redis":
            assert redis_value(env, after) is None
        fresh = http.get("/").json()
        assert fresh["views"] == 1 and fresh["user"] is None
    output = server.output()
    assert_clean(output, server.port)
    assert pids <= set(worker_pids(output))
    if mode == "redis":
        assert closed_in(output) == worker_pids(output)  # each worker, and no master (no preload)


# -- 2. --preload: the master used the store before the fork -------------------------------------


@pytest.fixture
def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The environment of the apps for the store kind ``request.param``."""
    if request.param == "redis":
        env: dict[str, str] = request.getfixturevalue("redis_env")
        return env
    return {"STORE_URL": f"sqlite:///{tmp_path / 'sessions.db'}"}


def stored(env: dict[str, str], sid: str) -> Any:
    """The session under ``sid`` in the store of ``env`` (``None``: none)."""
    if env["STORE_URL"].startswith("redis"):
        return redis_value(env, sid)
    return sqlite_rows(Path(env["STORE_URL"].removeprefix("sqlite:///"))).get(sid)


@pytest.mark.parametrize("store_env", ["redis", "sqlite"], indirect=True)
def test_preloaded_app_works_in_each_worker(
    gunicorn: Callable[..., Server], store_env: dict[str, str]
) -> None:
    """With ``--preload`` the master builds the app and, here, serves a request of its own
    before the fork, so the workers inherit a running loop thread (as a dead copy) and the
    store's connection. Each worker must start its own loop and connection: the session goes
    on across both, a login works, the store holds the result, and at SIGTERM each worker and
    the master close their store, quietly."""
    server = gunicorn(FLASK_APP, "--preload", "--workers", "2", WARM_UP="1", **store_env)
    master = server.proc.pid
    assert f"WARMED UP {master}\n" in server.text()
    with httpx.Client(base_url=server.url, timeout=10) as http:
        views, pids = count_on_both_workers(http)
        assert master not in pids
        assert stored(store_env, http.cookies["koa.sess"]) == {"views": views}
        assert http.post("/login", headers={"connection": "close"}).status_code == 200
        views, _ = count_on_both_workers(http, views)
        assert stored(store_env, http.cookies["koa.sess"]) == {"views": views, "user": "ada"}
    output = server.output()
    workers = worker_pids(output)
    assert pids <= set(workers)
    assert closed_in(output) == sorted([master, *workers])
    assert_clean(output, server.port)


# -- 3. gthread: several threads of a worker use the store at once ------------------------------


@pytest.mark.parametrize("store_env", ["redis", "sqlite"], indirect=True)
def test_threads_share_the_store(
    gunicorn: Callable[..., Server], store_env: dict[str, str]
) -> None:
    """Eight browsers at once against two gthread workers of four threads: every request is
    answered, each browser's count goes up by one per request, and the store ends with each
    browser's count."""
    server = gunicorn(
        FLASK_APP, "--worker-class", "gthread", "--threads", "4", "--workers", "2", **store_env
    )
    requests_each = 10

    def browse(_: int) -> tuple[list[int], str]:
        with httpx.Client(base_url=server.url, timeout=20) as http:
            counts = []
            for _ in range(requests_each):
                response = http.get("/")
                # The server's log says why (a store_error line names the store's failure).
                assert response.status_code == 200, f"{response.text}\n{server.text()}"
                counts.append(response.json()["views"])
            return counts, http.cookies["koa.sess"]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(browse, range(8)))
    expected = list(range(1, requests_each + 1))
    assert [counts for counts, _ in results] == [expected] * 8
    assert len({sid for _, sid in results}) == 8
    for _, sid in results:
        assert stored(store_env, sid) == {"views": requests_each}
    output = server.output()
    assert closed_in(output) == worker_pids(output)
    assert_clean(output, server.port)


# -- 4. a failed request writes nothing ----------------------------------------------------------

CRASH_APPS = {"flask": FLASK_APP, "wsgi": PLAIN_WSGI_APP}


@pytest.mark.parametrize("mode", ["cookie", "redis"])
@pytest.mark.parametrize("app", ["flask", "wsgi"])
def test_a_crash_writes_nothing(
    gunicorn: Callable[..., Server], request: pytest.FixtureRequest, app: str, mode: str
) -> None:
    """A view that changes the session then raises: a 500 without a cookie, and the store
    unchanged; an explicit save before the crash is kept. Flask answers the 500 itself; the
    plain WSGI app's exception goes through the middleware to gunicorn's error page."""
    env: dict[str, str] = request.getfixturevalue("redis_env") if mode == "redis" else {}
    server = gunicorn(CRASH_APPS[app], "--workers", "1", **env)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.get("/balance").json() == {"balance": 100}
        sid = http.cookies["koa.sess"]
        crash = http.post("/spend")
        assert crash.status_code == 500
        assert not crash.headers.get_list("set-cookie")
        if mode == "redis":
            assert redis_value(env, sid) == {"balance": 100}
        assert http.get("/balance").json() == {"balance": 100}
        saved = http.post("/spend", params={"save": 1})
        assert saved.status_code == 500
        if mode == "redis":
            assert redis_value(env, sid) == {"balance": 50}
        assert http.get("/balance").json() == {"balance": 50}
    assert "RuntimeError: crash half-way through" in server.output()


# -- 5. the shutdown check sees a leak -----------------------------------------------------------


@pytest.mark.parametrize("store_env", ["redis", "sqlite"], indirect=True)
def test_a_connection_left_open_shows_in_the_output(
    gunicorn: Callable[..., Server], store_env: dict[str, str]
) -> None:
    """The control of the shutdown checks above: when the worker's close at exit lets go of
    a connection instead of closing it, the driver's warning reaches the output and
    assert_clean fails on it (gunicorn's own warnings aside). (A store simply left open stays
    referenced until the interpreter's last teardown, which warns of nothing: there, the
    "STORE CLOSED" line of each worker is the evidence.)"""
    server = gunicorn(FLASK_APP, "--workers", "1", LEAK="1", **store_env)
    assert httpx.get(server.url + "/", timeout=10).json()["views"] == 1
    output = server.output()
    assert closed_in(output) == worker_pids(output)
    with pytest.raises(AssertionError, match=r"deleted before being closed|unclosed"):
        assert_clean(output, server.port)


# -- 6. an ASGI app under uvicorn's gunicorn worker ----------------------------------------------


def uvicorn_worker_class() -> str:
    """The worker class of the uvicorn-worker package, else the one uvicorn still ships."""
    for module in ("uvicorn_worker", "uvicorn.workers"):
        with contextlib.suppress(ImportError):
            if importlib.util.find_spec(module) is not None:
                return f"{module}.UvicornWorker"
    unavailable("no UvicornWorker: pip install uvicorn-worker")


def test_asgi_app_under_uvicorn_workers_with_preload(
    gunicorn: Callable[..., Server], redis_env: dict[str, str]
) -> None:
    """The ASGI middleware and its RedisStore built in the master (``--preload``), two uvicorn
    workers: the session goes on across both, and at SIGTERM each worker closes the store at
    its lifespan shutdown, quietly."""
    require_module("uvicorn")
    server = gunicorn(
        ASGI_APP,
        "--preload",
        "--workers",
        "2",
        "--worker-class",
        uvicorn_worker_class(),
        **redis_env,
    )
    with httpx.Client(base_url=server.url, timeout=10) as http:
        views, pids = count_on_both_workers(http)
        assert redis_value(redis_env, http.cookies["koa.sess"]) == {"views": views}
    output = server.output()
    workers = worker_pids(output)
    assert pids <= set(workers)
    assert closed_in(output) == workers
    assert_clean(output, server.port)
