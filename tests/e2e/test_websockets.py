"""The README's WebSocket promises under real servers (uvicorn, Hypercorn, Granian): a real
WebSocket handshake carrying the cookie of a login made over real HTTP.

- A WebSocket reads the session of its cookie.
- Cookie mode: no response can carry a cookie, so a change emits ``lost`` (its warning logged
  once per middleware) and ``save()`` raises ``ResponseStartedError``; the cookie is unchanged.
- Store mode: ``await session.save()`` writes the store (the next HTTP request sees it); a
  change left unsaved emits ``lost``; ``regenerate()``, and saving a session with no stored id
  yet, raise ``ResponseStartedError``, since the cookie would have to change.

The servers are started by ``serve`` of test_other_servers.py; the client is the websockets
library's (a dependency of ``uvicorn[standard]``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest

from _services import require_module

from ._processes import redis_env as redis_env_of
from ._processes import redis_keys
from .test_other_servers import Server, assert_clean, serve  # noqa: F401 - serve: a fixture

pytestmark = pytest.mark.timeout(120)

SERVERS = ["uvicorn", "hypercorn", "granian"]
LOST = "koasession: session change lost"

WS_APP = """
import os

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from koasession import SessionMiddleware
from koasession.errors import ResponseStartedError
from koasession.stores import store_from_url

URL = os.environ.get("STORE_URL")
store = store_from_url(URL, key_prefix=os.environ["KEY_PREFIX"]) if URL else None


async def home(request):
    return JSONResponse(dict(request.session))


async def login(request):
    request.session["user"] = "ada"
    return JSONResponse({"ok": True})


async def ws(websocket):
    await websocket.accept()
    session = websocket.session
    await websocket.send_json({"user": session.get("user"), "is_new": session.is_new})
    action = await websocket.receive_text()
    outcome = "done"
    try:
        if action == "change":
            session["seen"] = action  # left unsaved
        elif action == "save":
            session["seen"] = action
            await session.save()
            outcome = "saved"
        elif action == "regenerate":
            await session.regenerate()
    except ResponseStartedError as exc:
        outcome = f"ResponseStartedError: {exc}"
    await websocket.send_text(outcome)
    await websocket.close()


app = SessionMiddleware(
    Starlette(routes=[Route("/", home), Route("/login", login), WebSocketRoute("/ws", ws)]),
    keys=["p1YwW0d3xKq7Rz9bT4mN2vC8sL5hJ6gF0aE3uI9oQ2k"],
    store=store,
)
"""


def ws_call(server: Server, cookie: str | None, action: str) -> tuple[dict[str, object], str]:
    """Open ``/ws`` with ``cookie``, send ``action``; what the app read, and its outcome."""
    from websockets.sync.client import connect

    url = server.url.replace("http://", "ws://") + "/ws"
    headers = {"Cookie": cookie} if cookie else None
    with connect(url, additional_headers=headers, open_timeout=10) as socket:
        seen = json.loads(socket.recv(timeout=10))
        socket.send(action)
        outcome = socket.recv(timeout=10)
    assert isinstance(outcome, str)
    return seen, outcome


def logged_in(server: Server) -> tuple[httpx.Client, str]:
    """An HTTP client logged in as ada, and its Cookie header for the WebSocket."""
    client = httpx.Client(base_url=server.url, timeout=10)
    response = client.get("/login")
    assert response.status_code == 200
    cookie = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    assert cookie
    return client, cookie


@pytest.fixture
def websockets_client() -> None:
    require_module("websockets")


@pytest.fixture
def redis_env() -> Iterator[dict[str, str]]:
    with redis_env_of("websockets") as env:
        yield env


@pytest.mark.parametrize("variant", SERVERS)
def test_cookie_mode_websocket_reads_and_cannot_write(
    serve: Callable[..., Server],  # noqa: F811
    websockets_client: None,
    variant: str,
) -> None:
    """Cookie mode: the WebSocket reads the session; a change is lost (logged once for two
    WebSockets), ``save()`` raises, and the session over HTTP is as it was."""
    server = serve(variant, WS_APP)
    client, cookie = logged_in(server)
    seen, outcome = ws_call(server, cookie, "change")
    assert seen == {"user": "ada", "is_new": False}
    assert outcome == "done"
    assert ws_call(server, cookie, "change")[1] == "done"
    seen, outcome = ws_call(server, cookie, "save")
    assert outcome.startswith("ResponseStartedError: a WebSocket has no HTTP response")
    assert client.get("/").json() == {"user": "ada"}
    output = server.wait_for(LOST)
    assert "the session changed on a WebSocket in cookie mode" in output
    output = server.output()
    assert output.count(LOST) == 1
    assert "Traceback" not in output


@pytest.mark.parametrize("variant", SERVERS)
def test_store_mode_websocket_saves_to_the_store(
    serve: Callable[..., Server],  # noqa: F811
    websockets_client: None,
    redis_env: dict[str, str],
    variant: str,
) -> None:
    """Store mode (Redis): ``save()`` on the WebSocket writes the store, which the next HTTP
    request reads with the same cookie; ``regenerate()`` raises; an unsaved change is lost."""
    server = serve(variant, WS_APP, **redis_env)
    client, cookie = logged_in(server)
    assert len(redis_keys(redis_env)) == 1
    seen, outcome = ws_call(server, cookie, "save")
    assert seen == {"user": "ada", "is_new": False}
    assert outcome == "saved"
    assert client.get("/").json() == {"user": "ada", "seen": "save"}
    _, outcome = ws_call(server, cookie, "regenerate")
    assert outcome.startswith("ResponseStartedError: regenerate() on a WebSocket")
    assert client.get("/").json() == {"user": "ada", "seen": "save"}  # the old id still works
    assert len(redis_keys(redis_env)) == 1  # and no other was made
    _, outcome = ws_call(server, cookie, "change")
    assert outcome == "done"
    assert "without `await session.save()`" in server.wait_for(LOST)
    assert client.get("/").json() == {"user": "ada", "seen": "save"}
    assert_clean(server.output())


@pytest.mark.parametrize("variant", SERVERS)
def test_store_mode_websocket_without_a_session_cannot_save(
    serve: Callable[..., Server],  # noqa: F811
    websockets_client: None,
    redis_env: dict[str, str],
    variant: str,
) -> None:
    """Store mode: a WebSocket with no session cookie gets a new session, which it cannot save
    (its id would need a cookie); nothing is written."""
    server = serve(variant, WS_APP, **redis_env)
    seen, outcome = ws_call(server, None, "save")
    assert seen == {"user": None, "is_new": True}
    assert outcome.startswith(
        "ResponseStartedError: saving a session that has no stored id on a WebSocket"
    )
    assert redis_keys(redis_env) == []
    assert_clean(server.output())


LOGIN_WS_APP = """
from fastapi import FastAPI, WebSocket

from koasession import SessionMiddleware
from koasession.integrations.fastapi import LoggedIn, SessionDep

api = FastAPI()


@api.get("/login")
async def login(session: SessionDep) -> dict[str, bool]:
    session["user_id"] = 7
    return {"ok": True}


@api.websocket("/ws")
async def ws(websocket: WebSocket, user_id: LoggedIn) -> None:
    await websocket.accept()
    await websocket.send_text(f"user {user_id}")
    await websocket.close()


app = SessionMiddleware(api, keys=["p1YwW0d3xKq7Rz9bT4mN2vC8sL5hJ6gF0aE3uI9oQ2k"])
"""


@pytest.mark.parametrize("variant", SERVERS)
def test_login_check_refuses_a_websocket_handshake_with_403(
    serve: Callable[..., Server],  # noqa: F811
    websockets_client: None,
    variant: str,
) -> None:
    """The README: the login check closes a WebSocket with 1008 before accepting it, which a
    real server sends as a refused handshake (HTTP 403); a logged-in socket is accepted."""
    require_module("fastapi")
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    server = serve(variant, LOGIN_WS_APP)
    url = server.url.replace("http://", "ws://") + "/ws"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, open_timeout=10)
    assert refused.value.response.status_code == 403
    _, cookie = logged_in(server)
    with connect(url, additional_headers={"Cookie": cookie}, open_timeout=10) as socket:
        assert socket.recv(timeout=10) == "user 7"
