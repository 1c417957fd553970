"""aiohttp: koasession as an ``aiohttp.web`` middleware, on the same engine as the ASGI one.

::

    from aiohttp import web
    from koasession.aiohttp import get_session, setup

    async def home(request: web.Request) -> web.Response:
        session = await get_session(request)  # or request["session"]
        session["views"] = session.get("views", 0) + 1
        return web.Response(text=f"{session['views']} views")

    app = web.Application()
    app.router.add_get("/", home)
    setup(app, keys=[...])

The session commits when the handler returns (before aiohttp sends the response, so outer
middlewares still see the final headers), or, for a response the handler prepares itself
(``StreamResponse.prepare``, a download or server-sent events), as it prepares, through
aiohttp's ``on_response_prepare`` signal. A ``web.HTTPException`` raised as control flow (an
``HTTPFound`` redirect after login) is a response like any other: a 3xx or 4xx commits. A 5xx
commits nothing automatically, nor does an exception that escapes the handler; a store outage
answers 503. The stores are closed on ``app.on_cleanup``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from aiohttp import web
from multidict import CIMultiDict

from .config import SessionConfig, check_second_middleware
from .errors import StoreError
from .lifecycle import (
    UNAVAILABLE,
    RequestSession,
    end,
    engine_of,
    finish,
    release,
)
from .options import SessionOptions, SessionOptionsDict
from .plainrequest import General, PlainRequest, deferred_engines
from .session import Session, find_session

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["SessionMiddleware", "get_session", "setup"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# aiohttp logs an exception that escapes a handler under this name; a 500 we answer ourselves
# (to carry a manual save's cookie) logs it the same way.
_server_log = logging.getLogger("aiohttp.server")


class _Unavailable(Exception):
    """The commit at ``prepare`` failed: the handler's stream must not go out.

    Not a ``StoreError``: the ``store_error`` event is already out, and the middleware, not the
    handler, answers it.
    """

    def __init__(self, chunked: bool) -> None:
        super().__init__("the session store failed at the commit")
        #: prepare() had already switched the connection's writer to chunked encoding.
        self.chunked = chunked


class SessionMiddleware:
    """koa-session for ``aiohttp.web``: an aiohttp middleware (``web.Application(middlewares=
    [...])``); :func:`setup` adds it to an app with its signal and cleanup.

    ``SessionMiddleware(keys=[...], **options)`` takes the options of
    :class:`koasession.SessionMiddleware`. The session is ``request[scope_key]``. Without
    :func:`setup`, append :meth:`on_response_prepare` to ``app.on_response_prepare`` (streamed
    responses) and await :meth:`close` at shutdown yourself.
    """

    # aiohttp 3 calls a middleware with (request, handler) only when it carries this mark.
    __middleware_version__ = 1

    def __init__(
        self, keys: Sequence[str | bytes] | None = None, **options: Unpack[SessionOptionsDict]
    ) -> None:
        self.config = SessionConfig.build(keys, **options)
        self.config.offer_store_timeout()
        # The sessions of the requests in flight, by id(request), for on_response_prepare; one
        # table per middleware, so two sessions (two scope keys) on one app stay apart.
        self._sessions: dict[int, Session] = {}
        # Made once: a Session with a deferred engine holds one of these, not a new closure.
        self._engine_on_use, self._engine_after_start = deferred_engines(
            self.config, _engine, _plain
        )
        self._scope_key = self.config.options.scope_key

    @property
    def options(self) -> SessionOptions:
        """The validated :class:`~koasession.options.SessionOptions`."""
        return self.config.options

    def install(self, app: web.Application) -> None:
        """Add this middleware, its ``on_response_prepare`` hook and its cleanup to ``app``.

        Call it before the app starts (aiohttp freezes middlewares and signals then).
        """
        if not isinstance(app, web.Application):
            raise TypeError(f"setup() needs an aiohttp.web.Application, got {type(app).__name__}")
        for installed in app.middlewares:
            if isinstance(installed, SessionMiddleware):
                check_second_middleware(installed.options, self.options, "setup()")
        app.middlewares.append(self)
        app.on_response_prepare.append(self.on_response_prepare)
        app.on_cleanup.append(self._cleanup)

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        cfg = self.config
        eager: RequestSession | None = None  # store mode: loaded before the handler
        if cfg.eager:
            eager = _engine(cfg, None, request)
            session = eager.session
        else:
            # The engine is made when the handler first uses the session: most never do.
            session = request[self._scope_key] = Session(None, self._engine_on_use, request)
        self._sessions[id(request)] = session
        try:
            if eager is not None:
                try:
                    await eager.load_async()
                except StoreError:
                    return _unavailable()
            try:
                response = await handler(request)
            except Exception as exc:
                if _is_websocket(request):
                    raise  # no HTTP answer can go out on an upgraded connection
                answer = await self._answer(session, exc)
                if answer is None:
                    raise
                return answer
            # A WebSocket's response is prepared (the connection is over): nothing to commit.
            if not response.prepared and not await self._respond(
                session, response.status, response.headers, response
            ):
                return _unavailable()
            finish(session, cast("MutableMapping[str, Any]", request), self._scope_key)
            return response
        finally:
            del self._sessions[id(request)]
            # No reference cycles left behind (see koasession.released).
            engine = end(session, cfg)
            if engine is not None:
                await release(engine)

    async def _answer(self, session: Session, exc: Exception) -> web.StreamResponse | None:
        """The response for an exception from the handler, or ``None`` to let it propagate.

        Called in the ``except`` block, so a logged error carries its traceback.
        """
        if isinstance(exc, web.HTTPException):
            # Control flow (a redirect, a 404): a response like a returned one.
            if await self._respond(session, exc.status, exc.headers):
                return None
            return _unavailable()
        if isinstance(exc, _Unavailable):
            # The commit at prepare failed before the handler's headers went out.
            return _unavailable(chunked=exc.chunked)
        if isinstance(exc, StoreError):
            # From save(), regenerate() or destroy() in the handler: the same outage as a
            # failed load.
            engine = engine_of(session)
            if engine.started:
                return None
            engine.started = True
            return _unavailable()
        extra = None if session._bound is None else session._bound.error_headers()
        if extra is None:
            return None
        _server_log.exception("Error handling request")
        return _error_response(500, "Internal Server Error", extra)

    async def on_response_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        """The commit for a response the handler prepares itself (streamed)."""
        session = self._sessions.get(id(request))
        if session is None or isinstance(response, web.WebSocketResponse):
            return  # a WebSocket saves with `await session.save()` (store mode), not here
        if not await self._respond(session, response.status, response.headers, response):
            raise _Unavailable(response.headers.get("Transfer-Encoding") == "chunked")

    async def _respond(
        self,
        session: Session,
        status: int,
        headers: CIMultiDict[str],
        response: web.StreamResponse | None = None,
    ) -> bool:
        """Commit for a response of ``status``, then merge the session headers into it."""
        rs: RequestSession | None = session._bound
        if rs is None:
            if status < 500 and session._request.get(self._scope_key) is session:
                session._make = self._engine_after_start  # nothing to add to this response
                return True
            rs = engine_of(session)
        if rs.started or rs.websocket:
            return True
        ok = rs.start_response(status)
        if not (ok if isinstance(ok, bool) else await ok):
            return False
        rs = session._bound or rs  # the general engine if the plain one handed over
        assert rs is not None
        if rs.read or rs.cookie_lines or rs.extra_headers:
            if response is not None and rs.cookie_lines and rs.opts_view.overwrite:
                # Cookies the handler set with response.set_cookie() join the headers only at
                # prepare: the session's own lines replace them, as in the ASGI adapter.
                for name, _ in rs.cookie_lines:
                    response.cookies.pop(name, None)
            # aiohttp sends str headers as UTF-8, so any str the handler set (a filename or
            # text echoed from the request included) must come back unchanged: UTF-8 with
            # surrogatepass encodes every str and decodes back to it, where latin-1 raised on
            # the first character past U+00FF. The session's own lines are ASCII either way.
            merged = rs.merge_headers([(_encode(k), _encode(v)) for k, v in headers.items()])
            headers.clear()
            for key, value in merged:
                headers.add(_decode(key), _decode(value))
        return True

    async def _cleanup(self, app: web.Application) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the stores this middleware uses (runs on ``app.on_cleanup``)."""
        await self.config.close_stores()


def setup(
    app: web.Application,
    keys: Sequence[str | bytes] | None = None,
    **options: Unpack[SessionOptionsDict],
) -> SessionMiddleware:
    """Add koasession to ``app``; return the :class:`SessionMiddleware`.

    Options are those of :class:`koasession.SessionMiddleware`. Calling it twice (with
    different ``key`` and ``scope_key`` values) gives the app two independent sessions.
    """
    middleware = SessionMiddleware(keys, **options)
    middleware.install(app)
    return middleware


async def get_session(request: web.Request, scope_key: str = "session") -> Session:
    """The koasession :class:`~koasession.Session` of ``request`` (``request[scope_key]``),
    loaded.

    Awaitable like aiohttp-session's ``get_session``, and like FastAPI's ``SessionDep`` it
    loads the session, so with ``lazy=True`` the store is read here (a ``StoreError`` is the
    middleware's 503). Raises :class:`~koasession.NoSessionError` when no koasession
    middleware put a session there.
    """
    fix = "call koasession.aiohttp.setup(app, keys=[...])"
    session = find_session(cast("Mapping[str, Any]", request), scope_key, where="request", fix=fix)
    return await session.load()


def _engine(cfg: SessionConfig, session: Session | None, request: web.Request) -> RequestSession:
    """The engine of one request, its session published in the request unless given (the
    deferred engine of ``session``, made when the handler first uses it)."""
    rs = RequestSession(
        cfg,
        [(k.lower(), v) for k, v in request.raw_headers],
        scheme=request.scheme,
        # aiohttp types its keys as str | RequestKey; the engine uses str keys only.
        slot=cast("MutableMapping[str, Any]", request),
        raw=request,
        websocket=_is_websocket(request),
        session=session,
    )
    if session is None:
        request[cfg.options.scope_key] = rs.session
    return rs


def _plain(
    general: General, cfg: SessionConfig, session: Session, request: web.Request
) -> PlainRequest | RequestSession:
    """The deferred engine when the configuration allows the plain path (see plainrequest), but
    for a WebSocket; ``general(session, request)`` makes the general one."""
    if _is_websocket(request):
        return general(session, request)
    headers = [(k.lower(), v) for k, v in request.raw_headers]
    slot = cast("MutableMapping[str, Any]", request)
    return PlainRequest(cfg, session, headers, request.scheme, slot, request, general)


def _encode(text: str) -> bytes:
    """A header name or value as bytes for the engine; :func:`_decode` gives it back."""
    return text.encode("utf-8", "surrogatepass")


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogatepass")


def _is_websocket(request: web.Request) -> bool:
    """Whether ``request`` asks for a WebSocket (its engine then never commits)."""
    return request.headers.get("Upgrade", "").lower() == "websocket"


def _unavailable(*, chunked: bool = False) -> web.Response:
    status, headers, body = UNAVAILABLE
    response = _error_response(status, body.decode(), headers)
    if chunked:
        # The connection's writer already encodes chunks (aiohttp set it up in prepare()
        # before the hook that failed): the replacement must say so.
        response.enable_chunked_encoding()
    return response


def _error_response(status: int, text: str, headers: list[tuple[bytes, bytes]]) -> web.Response:
    response = web.Response(status=status, text=text)
    for key, value in headers:
        response.headers.add(key.decode("latin-1"), value.decode("latin-1"))
    return response
