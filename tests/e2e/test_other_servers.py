"""The real-server promises under Hypercorn (asyncio, uvloop and trio workers) and Granian:
subprocesses, real HTTP (httpx).

tests/e2e/test_uvicorn_lifecycle.py checks them under uvicorn; users also serve ASGI apps with
Hypercorn (asyncio and uvloop workers) and Granian (``--interface asgi``, whose ``send``
returns an awaitable that is not a coroutine). Hypercorn (and uvicorn, for the files that run a
promise under every server) serves a socket this test bound on a free loopback port
(``--bind fd://N``, ``--fd N``); Granian cannot take a descriptor, so it gets a free port
and the start is retried when another process took the port in between. Each server runs in a
session of its own, killed as a group after the test. When Hypercorn or Granian is missing the
tests are skipped, except under ``CI=true``, where they fail (both are in the dev extra).

The server output is written to a file and examined: ``PYTHONWARNINGS=default`` makes the
``Unclosed ...`` ResourceWarnings visible, so a store left open at shutdown shows there.
"""

from __future__ import annotations

import importlib.util
import json
import re
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from _services import require_postgres, require_redis, unavailable

from ._processes import ServerProcess, assert_quiet, listening_socket, redis_env, spawn
from .test_uvicorn_lifecycle import (
    BANK_APP,
    LOGIN_APP,
    MISCONFIGURED_APP,
    SWITCHED_STORE,
    check_crash_writes_nothing,
    check_outage_in_a_login,
)

pytestmark = pytest.mark.timeout(120)


#: Server variants: (module that must be importable, command before the app and address).
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "hypercorn": ("hypercorn", ["hypercorn", "-k", "asyncio"]),
    "hypercorn-uvloop": ("hypercorn", ["hypercorn", "-k", "uvloop"]),
    "hypercorn-trio": ("hypercorn", ["hypercorn", "-k", "trio"]),
    "granian": ("granian", ["granian", "--interface", "asgi", "--loop", "asyncio"]),
    "granian-uvloop": ("granian", ["granian", "--interface", "asgi", "--loop", "uvloop"]),
    # uvicorn's lifecycle tests are in test_uvicorn_lifecycle.py; this entry runs the send
    # paths below and the files that run one promise under every server (test_websockets.py)
    "uvicorn": ("uvicorn", ["uvicorn"]),
}
BASIC = ["hypercorn", "granian"]


def require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        unavailable(f"{module} is not installed (pip install -e '.[dev]')")
    if module == "uvloop" and sys.platform == "win32":  # pragma: no cover
        pytest.skip("uvloop does not run on Windows")


@dataclass
class Server(ServerProcess):
    """An ASGI server subprocess, and which of :data:`VARIANTS` it is."""

    variant: str = ""

    def output(self) -> str:
        """Stop the server (SIGTERM) and return everything it printed."""
        self.stop()
        return self.text()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """``serve(variant, source, *args, wait=True, http2=False, **env)``: serve ``app`` from
    ``source``, with ``env`` added to the environment and ``args`` on the command line.

    With ``wait`` (the default) returns once the server answers ``/`` (over HTTP/2 with
    ``http2``: prior knowledge); without, at once (for a server expected to exit).
    """
    servers: list[Server] = []

    def launch(variant: str, module: str, args: tuple[str, ...], env: dict[str, str]) -> Server:
        command = list(VARIANTS[variant][1])
        log = tmp_path / f"{module}.{len(servers)}.log"
        sock: socket.socket | None = None
        if command[0] in ("hypercorn", "uvicorn"):
            sock, port = listening_socket()
            if command[0] == "hypercorn":
                command += ["--bind", f"fd://{sock.fileno()}", "--log-level", "info"]
            else:
                command += ["--fd", str(sock.fileno()), "--log-level", "info"]
        else:
            port = _free_port()
            command += ["--host", "127.0.0.1", "--port", str(port)]
            command += ["--working-dir", str(tmp_path), "--log-level", "info"]
        proc = spawn(
            ["-m", *command, *args, f"{module}:app"],
            cwd=tmp_path,
            log=log,
            env=env,
            pass_fds=(sock.fileno(),) if sock else (),
        )
        if sock is not None:
            sock.close()  # the child holds its own copy
        server = Server(f"http://127.0.0.1:{port}", proc, log, variant)
        servers.append(server)
        return server

    def start(
        variant: str, source: str, *args: str, wait: bool = True, http2: bool = False, **env: str
    ) -> Server:
        require(VARIANTS[variant][0])
        if "uvloop" in variant:
            require("uvloop")
        if "trio" in variant:
            require("trio")
        module = f"app_{secrets.token_hex(4)}"
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        for _attempt in range(5):
            server = launch(variant, module, args, env)
            if not wait:
                return server
            deadline = time.monotonic() + 30
            while True:
                if server.proc.poll() is not None:
                    break
                try:
                    with httpx.Client(http1=not http2, http2=http2, timeout=1) as probe:
                        probe.get(server.url + "/")
                    return server
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise AssertionError(
                            f"{variant} did not answer:\n{server.text()}"
                        ) from None
                    time.sleep(0.1)
            if "Address already in use" not in server.text():
                raise AssertionError(f"{variant} exited early:\n{server.text()}")
            # Granian's port was taken between _free_port() and its bind: another port.
        raise AssertionError(f"{variant} found no free port:\n{server.text()}")

    yield start
    for server in servers:
        server.stop_and_kill()


def assert_clean(output: str) -> None:
    assert_quiet(output)


# -- 1. a crash writes nothing ------------------------------------------------------------------


@pytest.mark.parametrize("variant", BASIC)
def test_crash_writes_nothing_in_cookie_mode(serve: Callable[..., Server], variant: str) -> None:
    server = serve(variant, BANK_APP)
    check_crash_writes_nothing(server.url)
    assert "RuntimeError: crash half-way through" in server.output()


@pytest.mark.parametrize("variant", BASIC)
def test_crash_writes_nothing_in_the_redis_store(
    serve: Callable[..., Server], variant: str
) -> None:
    import redis

    url = require_redis()
    client = redis.Redis.from_url(url)
    prefix = f"kstest-servers:{secrets.token_hex(4)}:"
    try:
        server = serve(variant, BANK_APP, STORE_URL=url, KEY_PREFIX=prefix)
        sid = check_crash_writes_nothing(server.url)
        raw = client.get(prefix + sid)
        assert isinstance(raw, bytes)
        stored = json.loads(raw)
        assert stored["balance"] == 50  # the explicit save, and nothing from the crash
        assert len(list(client.scan_iter(match=prefix + "*"))) == 1
        assert "RuntimeError: crash half-way through" in server.output()
    finally:
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)
        client.close()


# -- 2. a store outage during a login ------------------------------------------------------------


@pytest.mark.parametrize("variant", BASIC)
def test_store_outage_in_a_login_answers_503_without_a_traceback(
    serve: Callable[..., Server], variant: str
) -> None:
    check_outage_in_a_login(serve(variant, LOGIN_APP))


# -- 3. a configuration error at start-up --------------------------------------------------------

CONFIG_ERROR = "invalid SessionMiddleware configuration: keys[0] is 5 bytes"

EAGER_MISCONFIGURED_APP = """
from starlette.applications import Starlette
from koasession import SessionMiddleware

app = SessionMiddleware(Starlette(), keys=["short"])
"""


@pytest.mark.parametrize("variant", BASIC)
def test_lazy_configuration_error_shows_at_start_up(
    serve: Callable[..., Server], variant: str
) -> None:
    """Starlette builds the middleware in the first lifespan event: both servers then carry
    on without lifespan and answer 500, as uvicorn does; the reason shows first, on a line of
    its own, before any traceback."""
    server = serve(variant, MISCONFIGURED_APP)
    assert httpx.get(server.url + "/", timeout=10).status_code == 500
    output = server.output()
    first = output.index(CONFIG_ERROR)
    assert re.search(r"^koasession: " + re.escape(CONFIG_ERROR), output, re.MULTILINE)
    traceback = output.find("Traceback")
    assert traceback == -1 or first < traceback, output


@pytest.mark.parametrize("variant", BASIC)
def test_eager_configuration_error_stops_the_server(
    serve: Callable[..., Server], variant: str
) -> None:
    """Built at import: the worker cannot load the app and the server exits. (Hypercorn 0.18
    exits with status 0 even then, for any app that fails to import: not asserted.)"""
    server = serve(variant, EAGER_MISCONFIGURED_APP, wait=False)
    try:
        server.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{variant} kept running:\n{server.output()}")
    output = server.text()
    assert re.search(r"^koasession: " + re.escape(CONFIG_ERROR), output, re.MULTILINE), output
    if variant.startswith("granian"):
        assert server.proc.returncode != 0


# -- 4. stores opened on the server's loop close at shutdown -------------------------------------

LIFESPAN_APP = """
import os
from contextlib import asynccontextmanager
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from koasession import SessionMiddleware
from koasession.stores import store_from_url

@asynccontextmanager
async def lifespan(app):
    os.write(1, f"APP STARTED {os.getpid()}\\n".encode())  # one write: workers share the log
    yield
    os.write(1, f"APP STOPPED {os.getpid()}\\n".encode())  # one write: workers share the log

async def count(request: Request) -> JSONResponse:
    request.session["n"] = request.session.get("n", 0) + 1
    return JSONResponse({"n": request.session["n"], "pid": os.getpid()})

url = os.environ["STORE_URL"]
if url.startswith("redis"):
    store = store_from_url(url, key_prefix=os.environ["KEY_PREFIX"])
else:
    store = store_from_url(url, table=os.environ["TABLE"])
_close = store.close

async def close():
    await _close()
    os.write(1, f"STORE CLOSED {os.getpid()}\\n".encode())  # one write: workers share the log

store.close = close
app = SessionMiddleware(
    Starlette(routes=[Route("/", count)], lifespan=lifespan),
    keys=["tONGABbpJHX1qcgawgKRl25XMtIgY78OAfLS-XgbRG8"],
    store=store,
)
"""

SIGTERM = pytest.param(signal.SIGTERM, False, id="sigterm")
CTRL_C = pytest.param(signal.SIGINT, True, id="ctrl-c")  # to the whole process group

#: (variant, extra args, workers, signal, to the group). Hypercorn runs one worker: with several,
#: its main process terminates (SIGTERM, unhandled in its workers) the workers still shutting
#: down once the first one has exited, so their lifespan shutdown is cut short, whatever the app
#: (Hypercorn 0.18). Granian with several workers gets SIGTERM at its main process only: when a
#: Ctrl-C reaches its workers too, under load one of them now and then never begins its lifespan
#: shutdown and the server waits for it forever (seen on Python 3.13, which warns that Granian
#: forks from a multi-threaded process); the app never hears of the shutdown, so no store can
#: close there.
SHUTDOWN_CASES = [
    *(
        pytest.param(variant, (), 1, *sig.values, id=f"{sig.id}-{variant}")
        for variant in ("hypercorn", "hypercorn-uvloop", "granian")
        for sig in (SIGTERM, CTRL_C)
    ),
    pytest.param("granian-uvloop", ("--workers", "2"), 2, *SIGTERM.values, id="sigterm-granian-2"),
]


@pytest.fixture
def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of LIFESPAN_APP for the store kind ``request.param``; cleaned after."""
    kind = request.param
    token = secrets.token_hex(4)
    if kind == "redis":
        with redis_env("servers") as env:
            yield env
    elif kind == "postgres":
        import asyncio

        import asyncpg

        url = require_postgres()
        table = f"kstest_servers_{token}"
        yield {"STORE_URL": url, "TABLE": table}

        async def drop() -> None:
            conn = await asyncpg.connect(url, timeout=3)
            try:
                await conn.execute(f"DROP TABLE IF EXISTS {table}")
            finally:
                await conn.close()

        asyncio.run(drop())
    else:
        yield {"STORE_URL": f"sqlite:///{tmp_path / 'sessions.db'}", "TABLE": "sessions"}


@pytest.mark.parametrize("store_env", ["redis", "postgres", "sqlite"], indirect=True)
@pytest.mark.parametrize(("variant", "args", "workers", "sig", "group"), SHUTDOWN_CASES)
def test_stores_close_cleanly_at_shutdown(
    serve: Callable[..., Server],
    store_env: dict[str, str],
    variant: str,
    args: tuple[str, ...],
    workers: int,
    sig: signal.Signals,
    group: bool,
) -> None:
    server = serve(variant, LIFESPAN_APP, *args, **store_env)
    # Every worker up before the signal: Granian loses a worker that a Ctrl-C meets in its
    # lifespan startup (the server then waits for it forever), whatever the app.
    server.wait_for("APP STARTED", workers)
    # With several workers, a connection per request: any worker may answer.
    headers = {"connection": "close"} if workers > 1 else {}
    with httpx.Client(base_url=server.url, timeout=10, headers=headers) as http:
        for n in range(1, 7):
            assert http.get("/").json()["n"] == n  # the session carries on
    code = server.stop(sig, group=group)
    assert code is not None, f"{variant} did not exit:\n{server.text()}"
    output = server.wait_for("STORE CLOSED", workers)
    assert code == 0, output
    assert output.count("APP STOPPED") == workers, output
    for pid in re.findall(r"^APP STOPPED (\d+)$", output, re.MULTILINE):
        stopped = output.index(f"APP STOPPED {pid}")
        assert output.index(f"STORE CLOSED {pid}") > stopped  # after the app's own shutdown
    assert_clean(output)


def test_a_store_left_open_shows_in_hypercorns_output(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    """The control of the test above: a store whose close() does nothing leaves its connection
    to the garbage collector, and Hypercorn's worker prints the ResourceWarning. (Granian's
    workers exit without that collection: there, "STORE CLOSED" is the evidence.)"""
    leaking = LIFESPAN_APP.replace("    await _close()\n", "    pass\n")
    assert leaking != LIFESPAN_APP
    env = {"STORE_URL": f"sqlite:///{tmp_path / 'sessions.db'}", "TABLE": "sessions"}
    server = serve("hypercorn", leaking, **env)
    assert httpx.get(server.url + "/", timeout=10).json()["n"] == 1
    assert server.stop() == 0
    with pytest.raises(AssertionError, match=r"deleted before being closed|unclosed"):
        assert_clean(server.text())


# -- 5. Granian's send: counter, streaming, 503 replacement, change after the start --------------

STREAM_APP = (
    SWITCHED_STORE
    + """
import asyncio
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route
from koasession import SessionMiddleware

store = SwitchedStore()
lost = []

async def count(request: Request):
    request.session["n"] = request.session.get("n", 0) + 1
    return JSONResponse({"n": request.session["n"]})

async def stream(request: Request):
    session = request.session
    session["n"] = session.get("n", 0) + 1

    async def body():
        for i in range(3):
            yield f"chunk{i} ".encode()
            await asyncio.sleep(0.01)
        session["late"] = "while streaming"

    return StreamingResponse(body(), media_type="text/plain")

async def background(request: Request):
    session = request.session
    session["n"] = session.get("n", 0) + 1

    def change():
        session["late"] = "in a background task"

    return PlainTextResponse("ok", background=BackgroundTask(change))

async def outage(request: Request):
    store.down = request.query_params["down"] == "1"
    return PlainTextResponse("ok")

async def events(request: Request):
    return JSONResponse(lost)

def on_event(name, payload):
    if name == "lost":
        lost.append(payload.get("reason"))

routes = [
    Route("/", count, methods=["GET", "HEAD"]),
    Route("/stream", stream),
    Route("/background", background),
    Route("/outage", outage, methods=["POST"]),
    Route("/events", events),
]
app = SessionMiddleware(
    Starlette(routes=routes),
    keys=["tONGABbpJHX1qcgawgKRl25XMtIgY78OAfLS-XgbRG8"],
    store=store,
    on_event=on_event,
)
"""
)

PROBE_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    sent = send({"type": "http.response.start", "status": 200, "headers": []})
    kind = type(sent).__name__
    await sent
    await send({"type": "http.response.body", "body": kind.encode()})
"""


def test_granian_send_returns_no_coroutine(serve: Callable[..., Server]) -> None:
    """What makes Granian worth testing: the path of asgi.py for a send that returns a future."""
    server = serve("granian", PROBE_APP)
    response = httpx.get(server.url + "/", timeout=10)
    assert response.status_code == 200
    kind = response.text  # the type name of what Granian's send returned
    assert kind.isidentifier() and kind != "coroutine", kind


def session_cookies(response: httpx.Response) -> list[str]:
    """The names of the cookies the response sets."""
    return sorted(line.split("=", 1)[0] for line in response.headers.get_list("set-cookie"))


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "hypercorn-trio"])
def test_send_paths(serve: Callable[..., Server], variant: str) -> None:
    server = serve(variant, STREAM_APP)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        first = http.get("/")
        assert first.json() == {"n": 1}
        assert session_cookies(first) == ["koa.sess", "koa.sess.sig"]  # once each
        assert first.headers.get_list("vary") == ["Cookie"]
        assert first.headers["cache-control"] == "private"
        assert http.get("/").json() == {"n": 2}

        streamed = http.get("/stream")
        assert streamed.status_code == 200
        assert streamed.text == "chunk0 chunk1 chunk2 "
        assert session_cookies(streamed) == ["koa.sess", "koa.sess.sig"]
        assert http.get("/").json() == {"n": 4}  # the change made before the stream started

        head = http.head("/")
        assert head.status_code == 200 and head.content == b""
        assert session_cookies(head) == ["koa.sess", "koa.sess.sig"]
        assert http.get("/").json() == {"n": 6}

        assert http.get("/background").text == "ok"
        assert http.get("/").json() == {"n": 8}
        deadline = time.monotonic() + 5
        # The background task runs after the response went out: maybe after the next request.
        while len(reasons := http.get("/events").json()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reasons == ["changed after the response started"] * 2

        assert http.post("/outage", params={"down": 1}).text == "ok"
        for path in ("/", "/stream"):
            replaced = http.get(path)
            assert replaced.status_code == 503
            assert replaced.text == "Session store unavailable"
            assert replaced.headers["retry-after"] == "5"
            assert not replaced.headers.get_list("set-cookie")
        assert http.post("/outage", params={"down": 0}).text == "ok"
        assert http.get("/").json() == {"n": 9}  # the 503s wrote nothing
    output = server.output()
    assert output.count("session change lost") == 1  # logged once per middleware
    assert output.count("session store_error") == 2
    assert_clean(output)


@pytest.mark.parametrize("variant", BASIC)
def test_http2_prior_knowledge(serve: Callable[..., Server], variant: str) -> None:
    """HTTP/2 in clear text (h2c, prior knowledge). (Granian over HTTP/2 sends the body of a
    HEAD response, a Granian bug seen without koasession too, so HEAD is not tried here.)"""
    require("h2")  # hypercorn depends on it; httpx needs it for HTTP/2
    extra = ("--http", "2") if variant.startswith("granian") else ()
    server = serve(variant, STREAM_APP, *extra, http2=True)
    with httpx.Client(base_url=server.url, http1=False, http2=True, timeout=10) as http:
        first = http.get("/")
        assert first.http_version == "HTTP/2"
        assert first.json() == {"n": 1}
        assert session_cookies(first) == ["koa.sess", "koa.sess.sig"]
        streamed = http.get("/stream")
        assert streamed.text == "chunk0 chunk1 chunk2 "
        assert session_cookies(streamed) == ["koa.sess", "koa.sess.sig"]
        assert http.get("/").json() == {"n": 3}
    assert_clean(server.output())


# -- 6. Hypercorn's trio worker ------------------------------------------------------------------

TRIO_APP = """
import os
import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from koasession import SessionMiddleware
from koasession.stores import store_from_url

class TrioStore:
    \"\"\"A store of the application's own that waits on trio, as a trio driver would.\"\"\"

    def __init__(self):
        self.entries = {}

    async def get(self, key, *args, **kwargs):
        await trio.sleep(0)
        return self.entries.get(key)

    async def set(self, key, data, *args, **kwargs):
        await trio.sleep(0)
        self.entries[key] = data

    async def destroy(self, key, **kwargs):
        await trio.sleep(0)
        self.entries.pop(key, None)

async def count(request: Request) -> JSONResponse:
    request.session["n"] = request.session.get("n", 0) + 1
    return JSONResponse({"n": request.session["n"]})

async def login(request: Request) -> JSONResponse:
    request.session["user"] = "ada"
    await request.session.regenerate()
    return JSONResponse({"user": "ada", "n": request.session.get("n")})

url = os.environ.get("STORE_URL")
store = store_from_url(url, key_prefix=os.environ["KEY_PREFIX"]) if url else TrioStore()
app = SessionMiddleware(
    Starlette(routes=[Route("/", count), Route("/login", login, methods=["POST"])]),
    keys=["tONGABbpJHX1qcgawgKRl25XMtIgY78OAfLS-XgbRG8"],
    store=store,
)
"""


def test_trio_worker_cookie_mode(serve: Callable[..., Server]) -> None:
    server = serve("hypercorn-trio", BANK_APP)
    check_crash_writes_nothing(server.url)
    assert "RuntimeError: crash half-way through" in server.output()


def test_trio_worker_with_a_store_of_the_apps_own(serve: Callable[..., Server]) -> None:
    """Its calls run under store_timeout (anyio's, off asyncio): they work, a login included."""
    server = serve("hypercorn-trio", TRIO_APP)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.get("/").json() == {"n": 1}
        assert http.get("/").json() == {"n": 2}
        before = http.cookies["koa.sess"]
        assert http.post("/login").json() == {"user": "ada", "n": 2}
        assert http.cookies["koa.sess"] != before
        assert http.get("/").json() == {"n": 3}
    output = server.output()
    assert "store_error" not in output
    assert_clean(output)


def test_trio_worker_with_a_bundled_store_says_it_needs_asyncio(
    serve: Callable[..., Server],
) -> None:
    """Not a 503 "Session store unavailable" on every request, as if Redis were down: a 500,
    and the server's log says what is wrong."""
    prefix = f"kstest-servers:{secrets.token_hex(4)}:"
    server = serve("hypercorn-trio", TRIO_APP, STORE_URL=require_redis(), KEY_PREFIX=prefix)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        response = http.get("/")
    assert response.status_code == 500
    assert not response.headers.get_list("set-cookie")
    output = server.output()
    assert "ConfigurationError: RedisStore needs an asyncio event loop" in output
    assert "but it was called under trio" in output
    assert "store_error" not in output
