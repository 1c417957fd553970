"""The ASGI adapter: puts the session in ``scope[scope_key]`` and commits at response start."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from types import CoroutineType
from typing import TYPE_CHECKING, Any

from . import events
from .config import SessionConfig, check_wrapped_app
from .errors import ConfigurationError, StoreError
from .lifecycle import (
    UNAVAILABLE,
    RequestSession,
    engine_of,
    release,
)
from .options import SessionOptions, SessionOptionsDict
from .plainrequest import General, PlainRequest, deferred_engines
from .session import Session

if TYPE_CHECKING:
    from typing_extensions import Unpack

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _HttpSession(Session):
    """The session of one HTTP request, which also gives the app its ``send``.

    ``_send_message`` is the ``send`` the app calls. As a method of the session the request
    makes anyway, it costs one bound method per request where a closure costs a function and a
    cell per variable it shares; and as a plain function that returns the server's coroutine, a
    message passed through makes no coroutine of ours (issue 12). Only a commit that must wait
    (a store write), the 503 that replaces the response, or a server whose ``send`` returns
    some other awaitable (a future) gets one: the app always gets a coroutine, as from an
    ``async def`` send, which ``asyncio.create_task`` and anyio's ``start_soon`` insist on.

    The response start is committed when the app calls ``send`` with it, not when it awaits
    the result: a change made in between is a change after the response started.
    """

    __slots__ = ("_downstream", "_middleware")

    #: Where the app's messages go: the server's send; ``_dropping`` once our 503 replaced the
    #: response (nowhere, so a message passed on needs no test of its own); and
    #: ``_sent_after_return`` once the app returned (an error).
    _downstream: Send
    _middleware: SessionMiddleware

    def _send_message(self, message: Message) -> Awaitable[None]:
        if message["type"] == "http.response.start":
            status = message.get("status", 200)
            mw = self._middleware
            if self._bound is None and status < 500 and self._request.get(mw._scope_key) is self:
                self._make = mw._engine_after_start  # nothing to add to this response
            else:
                if self._downstream is _dropping:
                    return _dropped()  # our 503 answered: nothing to commit
                if self._downstream is _sent_after_return:
                    _sent_after_return(message)  # the engine is released: nothing to commit
                rs = self._bound or engine_of(self)
                ok = rs.start_response(status)
                if ok is not True:
                    return self._start_after(ok, message)
                self._add_headers(message)
        sent = self._downstream(message)
        return sent if type(sent) is CoroutineType else _awaited(sent)

    async def _start_after(self, ok: bool | Awaitable[bool], message: Message) -> None:
        """The response start once the commit awaited (a store write), or the 503 instead."""
        if ok is False or not await ok:  # type: ignore[misc]
            send = self._downstream
            if send is not _sent_after_return:  # once the app returned, a send stays an error
                self._downstream = _dropping  # the app's later messages go nowhere
            await _send_unavailable(send)
            return
        if self._downstream is _sent_after_return:
            _sent_after_return(message)  # the app returned while the commit waited
        self._add_headers(message)
        await self._downstream(message)

    def _add_headers(self, message: Message) -> None:
        """The session's headers merged into the response start ``message``, once committed."""
        rs = self._bound  # the general engine if the plain one handed over
        if rs.read or rs.cookie_lines or rs.extra_headers:
            message["headers"] = rs.merge_headers(message.get("headers") or [])


async def _dropped() -> None:
    """A message of the app's after our 503 replaced its response: sent nowhere."""


def _dropping(message: Message) -> Awaitable[None]:
    """The app's ``send`` after our 503 replaced its response (see ``_HttpSession``)."""
    return _dropped()


async def _awaited(sent: Awaitable[None]) -> None:
    """The server's awaitable (not a coroutine) as a coroutine, as the app would get from an
    ``async def`` send."""
    await sent


def _sent_after_return(message: Message) -> Awaitable[None]:
    raise RuntimeError(
        f"the app sent an ASGI {message.get('type')!r} message after it returned; "
        "the server's send is no longer reachable through the session middleware"
    )


class SessionMiddleware:
    """koa-session for ASGI apps.

    ``SessionMiddleware(app, keys=[...], **options)``; see the README for every option
    (a misspelt or koa-style option name is a ``TypeError`` naming it). The
    session is ``scope[scope_key]`` (``request.session`` in Starlette and FastAPI). Cookie mode
    loads lazily; store mode loads before the app, or with ``lazy=True`` when the app awaits
    ``session.load()``. Requests that ``exclude`` matches get no session at all. The commit
    runs when the app sends ``http.response.start``, so streamed responses carry the cookie. A
    5xx response is never committed automatically and an exception that escapes the app leaves
    nothing written; a ``StoreError`` from a session call in the app answers 503 like a failed
    load.
    """

    def __init__(
        self,
        app: ASGIApp,
        keys: Sequence[str | bytes] | None = None,
        **options: Unpack[SessionOptionsDict],
    ) -> None:
        check_wrapped_app(app, wsgi=False)
        self.app = app
        try:
            self.config = SessionConfig.build(keys, **options)
        except ConfigurationError as exc:
            # Starlette's add_middleware builds this inside the first lifespan or request, where
            # a server may report only "lifespan unsupported" and then a 500 for every request:
            # the reason must show in the start-up output.
            events.logger.error("koasession: invalid SessionMiddleware configuration: %s", exc)
            raise
        self.config.offer_store_timeout()
        # Made once: a Session with a deferred engine holds one of these, not a new closure.
        self._engine_on_use, self._engine_after_start = deferred_engines(
            self.config, _engine_on_use, _plain_on_use
        )
        # Read on every request, so looked up once here.
        self._scope_key = self.config.options.scope_key
        self._deferred = not self.config.eager and self.config.excluded is None
        self._released = self.config.released

    @property
    def options(self) -> SessionOptions:
        """The validated :class:`~koasession.options.SessionOptions`."""
        return self.config.options

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._not_http(scope, receive, send)
            return
        # The HTTP path stays in this coroutine: a helper coroutine would cost every request.
        key = self._scope_key
        if self._deferred:
            # The engine is made when the app first uses the session: most requests never do.
            session = scope[key] = _HttpSession(None, self._engine_on_use, scope)
        else:
            found = await self._session_of(scope, receive, send)
            if found is None:
                return  # answered already
            session = found
        session._downstream = send
        session._middleware = self
        try:
            await self.app(scope, receive, session._send_message)
        except StoreError:
            if session._downstream is not _dropping and not await _answer_outage(
                engine_of(session), send
            ):
                raise
        except Exception:
            await _answer_crash(engine_of(session), send)
            raise
        else:
            # lifecycle.finish() in line: an untouched session, the commonest request, has
            # nothing to report, and a used one goes straight to its engine.
            if session._downstream is not _dropping and (  # else our 503 answered
                session._bound is not None or scope.get(key) is not session
            ):
                engine = session._bound
                if engine is None:
                    engine = engine_of(session)  # replaced (None, a dict) too late
                engine.finish()
        finally:
            session._downstream = _sent_after_return  # the server's send holds the scope
            # lifecycle.end() in line, saving a call on every request.
            if (rs := session._bound) is None:
                # Session._rebind for the untouched session: let go of the scope.
                session._bound = self._released
                session._request = None
            elif rs.pending_events:
                await release(rs)  # its events to deliver first
            else:
                rs.release()

    async def _session_of(self, scope: Scope, receive: Receive, send: Send) -> _HttpSession | None:
        """The session of a request under an ``exclude`` rule or in store mode (loaded before
        the app); ``None`` when the request is answered already: excluded, the app ran with no
        session (no store call, no headers), or the store failed and the 503 went out."""
        cfg = self.config
        if cfg.excluded is not None and cfg.excluded(scope):
            await self.app(scope, receive, send)
            return None
        if cfg.eager:
            return await _loaded_session(cfg, scope, send)
        session = scope[self._scope_key] = _HttpSession(None, self._engine_on_use, scope)
        return session

    async def _not_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Websocket sessions, the lifespan protocol, and anything else passed through."""
        kind = scope["type"]
        if kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(self.app, self.close, scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A websocket's session: loaded at connect, never committed to a cookie.

        A store outage while loading propagates: there is no HTTP response to answer 503 with.
        """
        cfg = self.config
        rs = _engine(cfg, scope, websocket=True)
        try:
            if cfg.eager:
                await rs.load_async()
            await self.app(scope, receive, send)
            rs.finish()
        finally:
            await release(rs)

    async def close(self) -> None:
        """Close the stores this middleware uses: ``store`` and the ``context_store`` instances
        it made that are still alive, where they have a ``close()`` (sync or async).

        Runs at the ASGI lifespan shutdown; call it yourself when the server does not send
        lifespan events. A failure to close one store is logged and does not stop the others.
        """
        await self.config.close_stores()


async def _lifespan(
    app: ASGIApp, close: Callable[[], Awaitable[None]], scope: Scope, receive: Receive, send: Send
) -> None:
    """Pass the lifespan protocol through to the app; close the stores at shutdown.

    The app sees startup and shutdown as usual and answers them itself; the stores are
    closed once its shutdown has completed (or failed). An app that does not speak the
    protocol (it raises or returns without answering, as a plain ASGI app does) is treated
    as uvicorn treats it in "auto" mode: startup and shutdown are completed here.
    """
    seen: list[str] = []  # the lifespan messages the app received, in order
    answered: list[str] = []  # the answers the app sent

    async def app_receive() -> Message:
        message = await receive()
        seen.append(message["type"])
        return message

    async def app_send(message: Message) -> None:
        kind = message["type"]
        if kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            await close()
        answered.append(kind)
        await send(message)

    error: Exception | None = None
    try:
        await app(scope, app_receive, app_send)
    except Exception as exc:
        error = exc
    if any(a.startswith("lifespan.shutdown.") for a in answered):
        pass  # the app finished the protocol; app_send closed the stores
    elif "lifespan.startup.failed" in answered:
        await close()  # the server stops here
    elif error is not None and "lifespan.shutdown" in seen:
        # The app's own shutdown crashed without answering: report it, as Starlette does.
        await close()
        await send({"type": "lifespan.shutdown.failed", "message": repr(error)})
    else:
        if not answered:
            events.logger.info(
                "the app does not handle the ASGI lifespan protocol (%r); the session "
                "middleware completes startup and shutdown itself",
                error or "it returned",
            )
        elif error is not None:
            events.logger.error("the app's lifespan task failed", exc_info=error)
        error = None
        await _finish_lifespan(close, receive, send, seen, answered)
    if error is not None:
        raise error


async def _finish_lifespan(
    close: Callable[[], Awaitable[None]],
    receive: Receive,
    send: Send,
    seen: list[str],
    answered: list[str],
) -> None:
    """Answer what the app left unanswered: startup, then shutdown after closing."""
    if "lifespan.startup.complete" not in answered:
        if "lifespan.startup" not in seen:
            await receive()
        await send({"type": "lifespan.startup.complete"})
    if "lifespan.shutdown" not in seen:
        while (await receive())["type"] != "lifespan.shutdown":
            pass
    await close()
    await send({"type": "lifespan.shutdown.complete"})


async def _loaded_session(cfg: SessionConfig, scope: Scope, send: Send) -> _HttpSession | None:
    """The session loaded before the app (store mode); ``None`` after answering a store outage."""
    session = _HttpSession(None)
    rs = _engine(cfg, scope, session=session)
    scope[cfg.options.scope_key] = session  # once the engine (and any context_store) is made
    try:
        await rs.load_async()
    except StoreError:
        await release(rs)
        await _send_unavailable(send)
        return None
    return session


async def _answer_outage(rs: RequestSession, send: Send) -> bool:
    """Answer 503 for a store outage raised by the app; False when the response had started.

    A ``StoreError`` from save(), regenerate(), destroy() or manually_commit() in the handler is
    the same outage as a failed load, so it gets the same 503 (its store_error event is out).
    """
    if rs.started:
        return False
    rs.started = True
    await _send_unavailable(send)
    return True


async def _answer_crash(rs: RequestSession, send: Send) -> None:
    """The 500 a crashing app gets when the engine has headers for it (a cleared cookie)."""
    extra = rs.error_headers()
    if extra is not None:
        await _send_error(send, 500, b"Internal Server Error", extra)


def _engine(
    cfg: SessionConfig, scope: Scope, *, websocket: bool = False, session: Session | None = None
) -> RequestSession:
    """The engine for one HTTP or WebSocket scope, its session published in the scope.

    With ``session`` (made first, engine deferred), the engine takes that one, already in the
    scope unless the app replaced it there.
    """
    # The client address only feeds the device policy: without one, skip the lookup.
    client = scope.get("client") if cfg.options.device_policy is not None else None
    rs = RequestSession(
        cfg,
        scope.get("headers") or (),
        scheme=scope.get("scheme"),
        slot=scope,
        raw=scope,
        websocket=websocket,
        client=client[0] if client else None,
        session=session,
    )
    if session is None:
        scope[cfg.options.scope_key] = rs.session
    return rs


def _engine_on_use(cfg: SessionConfig, session: Session, scope: Scope) -> RequestSession:
    """The deferred engine of ``session``, made when the app first uses it."""
    return _engine(cfg, scope, session=session)


def _plain_on_use(
    general: General, cfg: SessionConfig, session: Session, scope: Scope
) -> PlainRequest:
    """The deferred engine when the configuration allows the plain path (see plainrequest);
    ``general(session, scope)`` makes the general one it may hand the request to."""
    headers = scope.get("headers") or ()
    return PlainRequest(cfg, session, headers, scope.get("scheme"), scope, scope, general)


async def _send_unavailable(send: Send) -> None:
    status, headers, body = UNAVAILABLE
    await _send_error(send, status, body, headers)


async def _send_error(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    start_headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        *headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": start_headers})
    await send({"type": "http.response.body", "body": body})
