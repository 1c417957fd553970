"""One small banking app per framework and set-up, for the failure tests.

Every app has the same routes:

- ``GET /balance``: the session's balance (100 for a new session, which is then saved);
- ``POST /spend``: takes 50 off the balance, then crashes (``?save=1``: after ``await
  session.save()``);
- ``POST /login``: ``session["user"] = "ada"`` then ``await session.regenerate()``;
- ``POST /logout``: ``session.destroy()`` (Litestar: ``request.clear_session()``, which never
  reads the session);
- ``GET /stream``: starts a streaming response, then changes the session.

``SETUPS`` lists ``(framework, setup)`` pairs: ``wrapped`` is ``SessionMiddleware(app)`` around
the framework's application (the README's pattern); ``inside`` is the framework's own way of
adding middleware (Starlette's ``middleware=[...]``, Litestar's ``session_middleware``, Quart's
``install``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar import Request
from litestar.response import Stream

from koasession import Session, SessionMiddleware

# Module level: FastAPI and Litestar resolve string annotations in the functions' globals.
from koasession.integrations.fastapi import SessionDep

KEY = "_IHtOhi8zgmibpkO7zPZzGA8VWyuifgZLVqCy3WYh_0"

SETUPS = [
    ("plain", "wrapped"),
    ("starlette", "wrapped"),
    ("starlette", "inside"),
    ("fastapi", "wrapped"),
    ("fastapi", "inside"),
    ("litestar", "wrapped"),
    ("litestar", "inside"),
    ("quart", "wrapped"),
    ("quart", "inside"),
]
SETUP_IDS = [f"{framework}-{setup}" for framework, setup in SETUPS]


class Crash(RuntimeError):
    """The bug in the handler."""


async def balance(session: Session) -> dict[str, Any]:
    await session.load()  # with lazy=True, the store is read here (a no-op otherwise)
    session.setdefault("balance", 100)
    return {"balance": session["balance"]}


async def spend(session: Session, save: bool) -> None:
    session["balance"] -= 50
    if save:
        await session.save()
    raise Crash("half-way through")


async def login(session: Session) -> dict[str, Any]:
    session["user"] = "ada"
    await session.regenerate()
    return {"user": "ada"}


def logout(session: Session) -> dict[str, Any]:
    session.destroy()
    return {"user": None}


def build(framework: str, setup: str, **options: Any) -> Any:
    """The app of ``framework`` with koasession installed as ``setup`` says."""
    options.setdefault("keys", [KEY])
    return _BUILDERS[framework](setup, options)


def _plain(setup: str, options: dict[str, Any]) -> Any:
    import json

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        session: Session = scope["session"]
        path = scope["path"]
        if path == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            session["streamed"] = True
            await send({"type": "http.response.body", "body": b"done"})
            return
        if path == "/balance":
            result = await balance(session)
        elif path == "/spend":
            await spend(session, scope["query_string"] == b"save=1")
        elif path == "/login":
            result = await login(session)
        else:
            result = logout(session)
        body = json.dumps(result).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return SessionMiddleware(app, **options)


def _stream_chunks(session: Session) -> AsyncIterator[bytes]:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"start "
        session["streamed"] = True
        yield b"done"

    return chunks()


def _starlette(setup: str, options: dict[str, Any]) -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request as StarletteRequest
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    def of(request: StarletteRequest) -> Session:
        session = request.session
        assert isinstance(session, Session)
        return session

    async def get_balance(request: StarletteRequest) -> JSONResponse:
        return JSONResponse(await balance(of(request)))

    async def post_spend(request: StarletteRequest) -> JSONResponse:
        await spend(of(request), request.query_params.get("save") == "1")
        raise AssertionError("unreachable")  # pragma: no cover

    async def post_login(request: StarletteRequest) -> JSONResponse:
        return JSONResponse(await login(of(request)))

    async def post_logout(request: StarletteRequest) -> JSONResponse:
        return JSONResponse(logout(of(request)))

    async def stream(request: StarletteRequest) -> StreamingResponse:
        return StreamingResponse(_stream_chunks(of(request)))

    routes = [
        Route("/balance", get_balance),
        Route("/spend", post_spend, methods=["POST"]),
        Route("/login", post_login, methods=["POST"]),
        Route("/logout", post_logout, methods=["POST"]),
        Route("/stream", stream),
    ]
    if setup == "wrapped":
        return SessionMiddleware(Starlette(routes=routes), **options)
    return Starlette(routes=routes, middleware=[Middleware(SessionMiddleware, **options)])


def _fastapi(setup: str, options: dict[str, Any]) -> Any:
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    api = FastAPI()

    @api.get("/balance")
    async def get_balance(session: SessionDep) -> dict[str, Any]:
        return await balance(session)

    @api.post("/spend")
    async def post_spend(session: SessionDep, save: int = 0) -> None:
        await spend(session, bool(save))

    @api.post("/login")
    async def post_login(session: SessionDep) -> dict[str, Any]:
        return await login(session)

    @api.post("/logout")
    async def post_logout(session: SessionDep) -> dict[str, Any]:
        return logout(session)

    @api.get("/stream")
    async def stream(session: SessionDep) -> StreamingResponse:
        return StreamingResponse(_stream_chunks(session))

    if setup == "wrapped":
        return SessionMiddleware(api, **options)
    api.add_middleware(SessionMiddleware, **options)
    return api


def _litestar(setup: str, options: dict[str, Any]) -> Any:
    from litestar import Litestar, get, post

    from koasession.integrations.litestar import LitestarSessionMiddleware, session_middleware

    def of(request: Request[Any, Any, Any]) -> Session:
        session: object = request.session
        assert isinstance(session, Session)
        return session

    @get("/balance")
    async def get_balance(request: Request[Any, Any, Any]) -> dict[str, Any]:
        return await balance(of(request))

    @post("/spend")
    async def post_spend(request: Request[Any, Any, Any]) -> None:
        await spend(of(request), request.query_params.get("save") == "1")

    @post("/login", status_code=200)
    async def post_login(request: Request[Any, Any, Any]) -> dict[str, Any]:
        return await login(of(request))

    @post("/logout", status_code=200)
    async def post_logout(request: Request[Any, Any, Any]) -> dict[str, Any]:
        request.clear_session()  # Litestar's own call: koa's ctx.session = null
        return {"user": None}

    @get("/stream")
    async def stream(request: Request[Any, Any, Any]) -> Stream:
        return Stream(_stream_chunks(of(request)))

    handlers = [get_balance, post_spend, post_login, post_logout, stream]
    if setup == "wrapped":
        return LitestarSessionMiddleware(Litestar(route_handlers=handlers), **options)
    return Litestar(route_handlers=handlers, middleware=[session_middleware(**options)])


def _quart(setup: str, options: dict[str, Any]) -> Any:
    from quart import Quart, request

    from koasession.integrations.quart import current_session, install

    app = Quart(__name__)

    @app.get("/balance")
    async def get_balance() -> dict[str, Any]:
        return await balance(current_session())

    @app.post("/spend")
    async def post_spend() -> dict[str, Any]:
        await spend(current_session(), request.args.get("save") == "1")
        raise AssertionError("unreachable")  # pragma: no cover

    @app.post("/login")
    async def post_login() -> dict[str, Any]:
        return await login(current_session())

    @app.post("/logout")
    async def post_logout() -> dict[str, Any]:
        return logout(current_session())

    @app.get("/stream")
    async def stream() -> Any:
        return _stream_chunks(current_session())

    if setup == "wrapped":
        return SessionMiddleware(app, **options)  # type: ignore[arg-type]
    install(app, **options)
    return app


_BUILDERS = {
    "plain": _plain,
    "starlette": _starlette,
    "fastapi": _fastapi,
    "litestar": _litestar,
    "quart": _quart,
}
