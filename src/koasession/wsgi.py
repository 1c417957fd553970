"""The WSGI adapter: the same engine as :mod:`koasession.asgi`, for plain WSGI apps and Flask.

The session is ``environ["koasession.session"]`` (``scope_key``). Cookie mode needs no event
loop: the engine's coroutines finish without suspending, so they are stepped in the request's
own thread. Store mode runs the (async) stores on an event loop in a daemon thread owned by the
middleware; :meth:`SessionMiddleware.close` (also run at exit) closes the stores and the loop.
From application code, :func:`run` drives a session coroutine (``save()``, ``regenerate()``,
``manually_commit()``) to its end.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import inspect
import os
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from . import events
from .config import SessionConfig, check_wrapped_app
from .errors import ConfigurationError, StoreError
from .lifecycle import UNAVAILABLE, RequestSession, end, engine_of, finish
from .options import SessionOptions, SessionOptionsDict, is_async_callable
from .plainrequest import General, PlainRequest, deferred_engines
from .session import Session

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["DEFAULT_SCOPE_KEY", "SessionMiddleware", "run"]

T = TypeVar("T")
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
Environ = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

#: Where the session is published in the environ unless ``scope_key`` says otherwise.
DEFAULT_SCOPE_KEY = "koasession.session"
#: How long closing the stores may take before the loop is abandoned (at exit, for instance).
CLOSE_TIMEOUT = 5.0

_current: contextvars.ContextVar[SessionMiddleware] = contextvars.ContextVar("koasession_wsgi")


def run(awaitable: Awaitable[T]) -> T:
    """Run a session coroutine from WSGI code and return its result.

    ``run(session.regenerate())``, ``run(session.save())``, ``run(session.manually_commit())``:
    the session's methods are coroutines (they may call an async store), and a WSGI view cannot
    await. Call it while handling a request under :class:`SessionMiddleware` (the innermost one,
    if several are nested); a ``StoreError`` it raises answers 503 if the view lets it escape.
    """
    middleware = _current.get(None)
    if middleware is None:
        if inspect.iscoroutine(awaitable):
            awaitable.close()
        raise RuntimeError(
            "koasession.wsgi.run() drives a session coroutine while a request is handled under "
            "koasession.wsgi.SessionMiddleware; no such request is running in this context"
        )
    return middleware._drive(awaitable)


class _LoopThread:
    """An event loop running in a daemon thread: store calls are made there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.pid = os.getpid()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="koasession-wsgi-loop", daemon=True
        )
        self.thread.start()

    def run(self, awaitable: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(_as_coroutine(awaitable), self.loop).result()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(CLOSE_TIMEOUT)
        if not self.thread.is_alive():
            self.loop.close()


async def _as_coroutine(awaitable: Awaitable[T]) -> T:
    return await awaitable


async def _resume(coro: Coroutine[Any, Any, T], yielded: Any) -> T:
    """Finish on the loop a coroutine that suspended while stepped without one.

    A bare ``yield`` (``asyncio.sleep(0)``) is a plain suspension; after it the coroutine runs
    on the loop, so what it awaits belongs to that loop and is awaited here for it.
    """
    while True:
        if yielded is None:
            await asyncio.sleep(0)
        elif asyncio.isfuture(yielded):
            await asyncio.wait((yielded,))
        else:
            coro.close()
            raise RuntimeError(f"a session coroutine yielded {yielded!r}, not an asyncio future")
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            result: T = stop.value
            return result


class SessionMiddleware:
    """koa-session for WSGI apps: ``SessionMiddleware(app, keys=[...], **options)``.

    The options are those of the ASGI middleware (see the README); ``scope_key`` defaults to
    ``"koasession.session"``, the environ key the session is published under. The commit runs
    when the app calls ``start_response``, so streamed bodies carry the cookie. A 5xx response
    is never committed automatically, an exception from the app leaves nothing written, and a
    store outage (on load, commit, or a ``StoreError`` escaping the app) answers 503.
    """

    def __init__(
        self,
        app: WSGIApp,
        keys: Sequence[str | bytes] | None = None,
        **options: Unpack[SessionOptionsDict],
    ) -> None:
        check_wrapped_app(app, wsgi=True)
        self.app = app
        options.setdefault("scope_key", DEFAULT_SCOPE_KEY)
        try:
            self.config = SessionConfig.build(keys, **options)
        except ConfigurationError as exc:
            events.logger.error("koasession: invalid SessionMiddleware configuration: %s", exc)
            raise
        self.config.offer_store_timeout()
        opts = self.config.options
        hooks = (opts.valid, opts.before_save, opts.genid, opts.on_event)
        # Without a store or an async hook, no engine coroutine ever waits for anything: it is
        # stepped in the request's thread and no loop thread is started.
        self._in_thread = not opts.uses_store and not any(map(is_async_callable, hooks))
        # Made once: a Session with a deferred engine holds one of these, not a new closure.
        self._engine_on_use, self._engine_after_start = deferred_engines(
            self.config, _engine, _plain
        )
        self._scope_key = opts.scope_key
        self._loop: _LoopThread | None = None
        self._lock = threading.Lock()
        self._closed = False
        atexit.register(_close_at_exit, weakref.ref(self))

    @property
    def options(self) -> SessionOptions:
        """The validated :class:`~koasession.options.SessionOptions`."""
        return self.config.options

    # -- running the engine's coroutines ---------------------------------------------------

    def _drive(self, awaitable: Awaitable[T]) -> T:
        if self._in_thread and inspect.iscoroutine(awaitable):
            try:
                yielded = awaitable.send(None)
            except StopIteration as stop:
                result: T = stop.value
                return result
            resumed: T = self._loop_thread().run(_resume(awaitable, yielded))
            return resumed
        return self._loop_thread().run(awaitable)

    def _loop_thread(self) -> _LoopThread:
        loop = self._loop
        if loop is None or loop.pid != os.getpid():  # none yet, or inherited across a fork
            with self._lock:
                if self._closed:
                    raise RuntimeError("this koasession SessionMiddleware was closed")
                loop = self._loop
                if loop is None or loop.pid != os.getpid():
                    loop = self._loop = _LoopThread()
        return loop

    def close(self) -> None:
        """Close the stores (as the ASGI middleware's ``close()`` does), then the loop thread.

        Idempotent; registered with :mod:`atexit`. The loop thread is a daemon thread, so an
        unclosed middleware never keeps the process alive.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop = self._loop
            self._loop = None
        if loop is None or loop.pid != os.getpid():
            if not self.config.options.uses_store:
                return
            loop = _LoopThread()  # the stores were never used here; close them all the same
        try:
            closer = self.config.close_stores()
            asyncio.run_coroutine_threadsafe(closer, loop.loop).result(CLOSE_TIMEOUT)
        except Exception:
            events.logger.exception("closing the koasession stores failed")
        finally:
            loop.stop()

    # -- the request -------------------------------------------------------------------------

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        cfg = self.config
        _current.set(self)
        if cfg.eager:
            rs = _engine(cfg, None, environ)
            session = rs.session
            try:
                self._drive(rs.load_async())
            except StoreError:
                self._settle(session)
                return _unavailable(start_response)
        else:
            # The engine is made when the app first uses the session: most requests never do.
            session = environ[self._scope_key] = Session(None, self._engine_on_use, environ)
        response = _Response(self, session, start_response)
        try:
            body = self.app(environ, response.start_response)
        except StoreError:
            rs = engine_of(session)
            if rs.started:
                self._settle(session)
                raise
            rs.started = True
            self._settle(session)
            return _unavailable(start_response)
        except Exception:
            extra = None if session._bound is None else session._bound.error_headers()
            self._settle(session)
            if extra is None:
                raise
            # Explicit work (a manual save, the clearing of a cookie that failed to decode)
            # must reach the browser: answer the 500 here rather than let the server's own
            # error page drop these headers. The error is logged as a server would.
            events.logger.exception("the WSGI application raised")
            return _error(start_response, 500, b"Internal Server Error", extra, None)
        return _Body(response, body)

    def _settle(self, session: Session) -> None:
        """Deliver the request's events, then release its engine (no reference cycles left);
        ``end()`` has already let go of a request with no events to deliver."""
        rs = end(session, self.config)
        if rs is not None:
            self._drive(events.settle(rs.pending_events))
            rs.release()


class _Response:
    """The ``start_response`` the app calls: commits, merges headers or answers 503."""

    __slots__ = ("middleware", "replaced", "server_start", "session", "started")

    def __init__(
        self, middleware: SessionMiddleware, session: Session, server_start: StartResponse
    ) -> None:
        self.middleware = middleware
        self.session = session
        self.server_start = server_start
        self.replaced = False  # our 503 went out instead of the app's reply
        self.started = False  # start_response was called

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], object]:
        if self.replaced:
            return _discard
        session = self.session
        rs = session._bound
        if self.started or (rs is not None and rs.started):
            # A second call (an error page after the first start): nothing more to commit.
            return self.server_start(status, headers, exc_info)
        try:
            code = int(status.split(None, 1)[0])
        except (ValueError, IndexError):
            raise ValueError(f"start_response status must begin with a code: {status!r}") from None
        self.started = True  # after the check: a corrected call after a bad one still commits
        middleware = self.middleware
        if rs is None:
            if code < 500 and session._request.get(middleware._scope_key) is session:
                session._make = middleware._engine_after_start  # nothing to add
                return self.server_start(status, headers, exc_info)
            rs = engine_of(session)
        ok = rs.start_response(code)
        if not (ok if isinstance(ok, bool) else middleware._drive(ok)):
            self.replaced = True
            _unavailable(self.server_start)
            return _discard
        rs = session._bound or rs  # the general engine if the plain one handed over
        if rs.read or rs.cookie_lines or rs.extra_headers:
            # PEP 3333 headers are latin-1 text. An app that sets a header beyond it (Flask's
            # test client passes one on) gets it back unchanged all the same: UTF-8 with
            # surrogatepass encodes any str and decodes back to it; the server then decides.
            codec = "latin-1"
            try:
                raw = [(k.lower().encode(codec), v.encode(codec)) for k, v in headers]
            except UnicodeEncodeError:
                codec = "utf-8"
                raw = [
                    (k.lower().encode(codec, "surrogatepass"), v.encode(codec, "surrogatepass"))
                    for k, v in headers
                ]
            # Keep the app's own spelling of its header names; ours are lower case.
            names = {k.lower(): k for k, _ in headers}
            headers = [
                (
                    names.get(name := k.decode(codec, "surrogatepass"), name),
                    v.decode(codec, "surrogatepass"),
                )
                for k, v in rs.merge_headers(raw)
            ]
        return self.server_start(status, headers, exc_info)


class _Body:
    """The app's body, passed through; at its end the engine's ``finish`` and the events."""

    __slots__ = ("_body", "_response")

    def __init__(self, response: _Response, body: Iterable[bytes]) -> None:
        self._response = response
        self._body = body

    def __iter__(self) -> Iterator[bytes]:
        response = self._response
        if response.replaced:
            yield UNAVAILABLE[2]
            return
        for chunk in self._body:
            if response.replaced:  # start_response was called while making the first chunk
                yield UNAVAILABLE[2]
                return
            yield chunk

    def close(self) -> None:
        response = self._response
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            session = response.session
            if not response.replaced:
                finish(session, session._request, response.middleware._scope_key)
            response.middleware._settle(session)


class _EnvironHeaders(Sequence[tuple[bytes, bytes]]):
    """The request headers as the engine reads them, lower-case ``(name, value)`` byte pairs.

    Made from the environ on first use: a request that never touches its session (or only
    writes it) does not pay for converting every header.
    """

    __slots__ = ("_environ", "_pairs")

    def __init__(self, environ: Environ) -> None:
        self._environ = environ
        self._pairs: list[tuple[bytes, bytes]] | None = None

    def _list(self) -> list[tuple[bytes, bytes]]:
        pairs = self._pairs
        if pairs is None:
            try:
                pairs = [
                    (key[5:].replace("_", "-").lower().encode("latin-1"), value.encode("latin-1"))
                    for key, value in self._environ.items()
                    if key.startswith("HTTP_")
                ]
            except UnicodeEncodeError:
                # Not PEP 3333's latin-1 text (Werkzeug's test client passes a header's str on
                # as given): bytes all the same, rather than a 500 for a header we may not read.
                pairs = [
                    (_header_bytes(key[5:].replace("_", "-").lower()), _header_bytes(value))
                    for key, value in self._environ.items()
                    if key.startswith("HTTP_")
                ]
            self._pairs = pairs
        return pairs

    def __getitem__(self, index: Any) -> Any:
        return self._list()[index]

    def __len__(self) -> int:
        return len(self._list())

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(self._list())


def _engine(cfg: SessionConfig, session: Session | None, environ: Environ) -> RequestSession:
    """The engine of one request, its session published in the environ unless given (the
    deferred engine of ``session``, made when the app first uses it)."""
    rs = RequestSession(
        cfg,
        _EnvironHeaders(environ),
        scheme=environ.get("wsgi.url_scheme"),
        slot=environ,
        raw=environ,
        session=session,
    )
    if session is None:
        environ[cfg.options.scope_key] = rs.session
    return rs


def _plain(
    general: General, cfg: SessionConfig, session: Session, environ: Environ
) -> PlainRequest:
    """The deferred engine when the configuration allows the plain path (see plainrequest);
    ``general(session, environ)`` makes the general one it may hand the request to."""
    headers = _EnvironHeaders(environ)
    return PlainRequest(
        cfg, session, headers, environ.get("wsgi.url_scheme"), environ, environ, general
    )


def _discard(data: bytes) -> None:
    """The ``write`` callable once our 503 replaced the app's response."""


def _unavailable(start_response: StartResponse) -> list[bytes]:
    status, headers, body = UNAVAILABLE
    return _error(start_response, status, body, headers, None)


def _error(
    start_response: StartResponse,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
    exc_info: Any,
) -> list[bytes]:
    reason = "Service Unavailable" if status == 503 else "Internal Server Error"
    start_headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        *((k.decode("latin-1"), v.decode("latin-1")) for k, v in headers),
    ]
    start_response(f"{status} {reason}", start_headers, exc_info)
    return [body]


def _header_bytes(text: str) -> bytes:
    """``text`` as latin-1 bytes, as PEP 3333 has it, or else as UTF-8 (never raises)."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _close_at_exit(ref: weakref.ref[SessionMiddleware]) -> None:
    middleware = ref()
    if middleware is not None:
        middleware.close()
