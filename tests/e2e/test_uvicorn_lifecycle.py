"""The lifecycles of issue 9 under a real server: uvicorn in a subprocess, real HTTP (httpx).

uvicorn serves a socket this test bound on a free loopback port (passed with ``--fd``, so no
other process can take the port in between). The apps are written to a temporary module.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from _services import REDIS_URL, require_module, require_redis

pytestmark = pytest.mark.timeout(120)


BANK_APP = """
import os
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from koasession import SessionMiddleware
from koasession.stores import store_from_url

async def balance(request: Request) -> JSONResponse:
    request.session.setdefault("balance", 100)
    return JSONResponse({"balance": request.session["balance"]})

async def spend(request: Request) -> JSONResponse:
    request.session["balance"] -= 50
    if request.query_params.get("save"):
        await request.session.save()
    raise RuntimeError("crash half-way through")

store_url = os.environ.get("STORE_URL")
options = {}
if store_url:
    options["store"] = store_from_url(store_url, key_prefix=os.environ["KEY_PREFIX"])
app = SessionMiddleware(
    Starlette(routes=[Route("/balance", balance), Route("/spend", spend, methods=["POST"])]),
    keys=["uvicorn lifecycle test key, 32+ bytes long"],
    **options,
)
"""

#: A MemoryStore that fails like a server gone away once ``down`` is set (app sources use it).
SWITCHED_STORE = """
from koasession import MemoryStore

class SwitchedStore(MemoryStore):
    down = False

    async def set(self, key, *args, **kwargs):
        if self.down:
            raise ConnectionError("store down")
        return await super().set(key, *args, **kwargs)

    async def destroy(self, key, **kwargs):
        if self.down:
            raise ConnectionError("store down")
        await super().destroy(key, **kwargs)
"""

LOGIN_APP = (
    SWITCHED_STORE
    + """
from fastapi import FastAPI
from koasession import SessionMiddleware
from koasession.integrations.fastapi import SessionDep

store = SwitchedStore()
api = FastAPI()

@api.get("/")
async def home(session: SessionDep) -> dict:
    session["views"] = session.get("views", 0) + 1
    return {"views": session["views"]}

@api.post("/outage")
async def outage() -> dict:
    store.down = True
    return {}

@api.post("/login")
async def login(session: SessionDep) -> dict:
    session["user"] = "ada"
    await session.regenerate()
    return {"user": "ada"}

app = SessionMiddleware(api, keys=["uvicorn lifecycle test key, 32+ bytes long"], store=store)
"""
)

MISCONFIGURED_APP = """
from starlette.applications import Starlette
from starlette.middleware import Middleware
from koasession import SessionMiddleware

app = Starlette(middleware=[Middleware(SessionMiddleware, keys=["short"])])
"""


@dataclass
class Server:
    """A running uvicorn subprocess."""

    url: str
    proc: subprocess.Popen[str]

    def output(self) -> str:
        """Stop the server and return everything it printed."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung server
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out


@pytest.fixture
def uvicorn_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """``start(source, **env)``: serve ``app`` from ``source`` with uvicorn; stopped after."""
    require_module("uvicorn")
    servers: list[Server] = []

    def start(source: str, **env: str) -> Server:
        module = f"app_{secrets.token_hex(4)}"
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        port = sock.getsockname()[1]
        cmd = [sys.executable, "-m", "uvicorn", f"{module}:app", "--app-dir", str(tmp_path)]
        cmd += ["--fd", str(sock.fileno()), "--log-level", "info"]
        proc = subprocess.Popen(
            cmd,
            pass_fds=(sock.fileno(),),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **env},
        )
        sock.close()  # the child holds its own copy
        server = Server(f"http://127.0.0.1:{port}", proc)
        servers.append(server)
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"uvicorn exited early:\n{server.output()}")
            try:
                httpx.get(server.url + "/", timeout=1)
                return server
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"uvicorn did not answer:\n{server.output()}") from None
                time.sleep(0.1)

    yield start
    for server in servers:
        server.output()


def check_outage_in_a_login(server: Any) -> None:
    """LOGIN_APP's store fails during a login: a 503 with Retry-After and no cookie, and the
    server's output has the store_error line but no traceback. ``server``: ``url``, ``output()``."""
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.get("/").json() == {"views": 1}
        assert http.post("/outage").status_code == 200
        login = http.post("/login")
        assert login.status_code == 503
        assert login.headers["retry-after"] == "5"
        assert not login.headers.get_list("set-cookie")
    output = server.output()
    assert "session store_error" in output and "store down" in output
    assert "Traceback" not in output


def check_crash_writes_nothing(url: str) -> str:
    """The balance survives a crash and follows an explicit save; returns the cookie value."""
    # Starlette's 500 page goes out without "Connection: close", then the exception reaches the
    # server, which closes the connection: a client that reuses it for the next request races
    # that close (a reset under load; browsers retry, httpx does not). The crashing requests
    # ask for their own connection to be closed, so the next request opens a new one.
    close = {"connection": "close"}
    with httpx.Client(base_url=url, timeout=10) as http:
        assert http.get("/balance").json() == {"balance": 100}
        crash = http.post("/spend", headers=close)
        assert crash.status_code == 500
        assert not crash.headers.get_list("set-cookie")
        assert http.get("/balance").json() == {"balance": 100}
        saved = http.post("/spend", params={"save": 1}, headers=close)
        assert saved.status_code == 500
        assert http.get("/balance").json() == {"balance": 50}
        return http.cookies["koa.sess"]


def test_crash_writes_nothing_in_cookie_mode(uvicorn_server: Callable[..., Server]) -> None:
    server = uvicorn_server(BANK_APP)
    check_crash_writes_nothing(server.url)
    assert "RuntimeError: crash half-way through" in server.output()


def test_crash_writes_nothing_in_the_redis_store(uvicorn_server: Callable[..., Server]) -> None:
    import redis

    client = redis.Redis.from_url(require_redis(), socket_connect_timeout=2)
    prefix = f"kstest-uvicorn:{secrets.token_hex(4)}:"
    try:
        server = uvicorn_server(BANK_APP, STORE_URL=REDIS_URL, KEY_PREFIX=prefix)
        sid = check_crash_writes_nothing(server.url)
        stored = json.loads(client.get(prefix + sid))
        assert stored["balance"] == 50  # the explicit save, and nothing from the crash
        assert len(list(client.scan_iter(match=prefix + "*"))) == 1
    finally:
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)
        client.close()


def test_store_outage_in_a_login_answers_503_without_a_traceback(
    uvicorn_server: Callable[..., Server],
) -> None:
    """FastAPI's own 500 page sits inside the wrapping middleware; the outage is still a 503."""
    check_outage_in_a_login(uvicorn_server(LOGIN_APP))


def test_configuration_error_shows_in_the_server_output(
    uvicorn_server: Callable[..., Server],
) -> None:
    """Starlette builds the middleware lazily; uvicorn alone would only say "lifespan
    unsupported" and answer 500: the reason must be in the start-up output."""
    server = uvicorn_server(MISCONFIGURED_APP)
    assert httpx.get(server.url + "/", timeout=10).status_code == 500
    output = server.output()
    assert "invalid SessionMiddleware configuration: keys[0] is 5 bytes" in output
