"""The per-request session engine: load, validate, decide, commit (koa's ``ContextSession``).

One :class:`RequestSession` lives for one request. It is protocol-neutral (sans-IO towards the
client): an adapter gives it the request headers, the URL scheme, a mapping to publish the
session in (the ASGI scope, an aiohttp request, a WSGI environ) and an opaque ``raw`` request
for hooks; it answers with headers to add (:meth:`RequestSession.merge_headers`) and whether
the response must become an error (:meth:`RequestSession.start_response`,
:meth:`RequestSession.error_headers`). Decisions live in :mod:`koasession.decisions`, the cookie
format in :mod:`koasession.cookieformat`, store I/O in :mod:`koasession.storeio`.

The adapter's part, for any protocol::

    rs = RequestSession(cfg, headers, scheme=..., slot=mapping, raw=request, client=address)
    mapping[cfg.options.scope_key] = rs.session
    if cfg.eager: await rs.load_async()        # StoreError: answer UNAVAILABLE
    ...run the app...
    at response start: ok = rs.start_response(status)  (await it unless a bool)
                       if not ok: answer UNAVAILABLE
                       else headers = rs.merge_headers(headers)
    if the app raised: extra = rs.error_headers() -> a 500 carrying them, when not None
    after a normal end: rs.finish()
    always: await release(rs)                  # the events, then no reference cycles left

Outside store mode the adapters defer the engine, since most requests never use the session:
they publish ``Session(None, make, request)``, whose engine ``make(session, request)`` builds
on first use. At the response start, a session still without one and still in the mapping
gets ``started_engine`` as its ``make`` (nothing can reach this response any more) and adds
nothing; otherwise ``engine_of(session)`` and the steps above. After the app,
``finish(session, mapping, scope_key)``; at the end, ``end(session, cfg)`` lets go of the
request or returns the engine whose events ``release`` delivers.

Module map: :mod:`~koasession.enginestate` (state and accessors), :mod:`~koasession.loading`,
:mod:`~koasession.committing` and :mod:`~koasession.responding` (the three parts this module
combines), :mod:`~koasession.changes` (change detection), over the pure
:mod:`~koasession.decisions`, :mod:`~koasession.cookieformat` and :mod:`~koasession.storeio`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from . import cookieformat, decisions, events
from .changes import Changes
from .committing import Committing
from .devicehook import DeviceHook
from .enginestate import UNAVAILABLE, Headers
from .loading import Loading
from .responding import Responding
from .session import Session
from .verbs import Verbs

if TYPE_CHECKING:
    from .config import SessionConfig

__all__ = [
    "COOKIE_LINE_LIMIT",
    "STORE_GRACE",
    "UNAVAILABLE",
    "Headers",
    "RequestSession",
    "end",
    "engine_of",
    "finish",
    "release",
    "started_engine",
]

COOKIE_LINE_LIMIT = cookieformat.COOKIE_LINE_LIMIT
STORE_GRACE = decisions.STORE_GRACE


class RequestSession(Loading, Committing, Responding, Verbs, DeviceHook, Changes):
    """Session state and logic for one request: the engine an adapter drives."""


# -- a deferred engine (issue 12) ----------------------------------------------------------------
# An adapter may publish a Session that makes its engine on first use (``Session(None, make,
# request)``, ``make(session, request)`` building the engine); these are the steps every such
# adapter takes with it.


def engine_of(session: Session) -> RequestSession:
    """The engine of ``session``, made now if it was deferred (always a RequestSession)."""
    rs: Any = session._rs
    if not isinstance(rs, RequestSession):
        rs = rs.general()  # a plain engine (see plainrequest) hands the request over
    assert isinstance(rs, RequestSession)
    return rs


class _Engine(Protocol):
    started: bool


E = TypeVar("E", bound=_Engine)


def started_engine(
    make: Callable[[SessionConfig, Session, Any], E],
    cfg: SessionConfig,
    session: Session,
    request: Any,
) -> E:
    """``make(cfg, session, request)`` for a session first used after its response started."""
    rs = make(cfg, session, request)
    rs.started = True  # nothing can be added to the response any more
    return rs


def finish(session: Session, slot: Mapping[str, Any] | None, scope_key: str) -> None:
    """After the application: report a change no response could carry.

    A session never used has no engine and nothing to report, unless the application replaced
    it in ``slot`` (``None``, a dict) after the response started.
    """
    rs = session._bound
    if rs is None and slot is not None and slot.get(scope_key) is not session:
        rs = engine_of(session)
    if rs is not None:
        rs.finish()


def end(session: Session, cfg: SessionConfig) -> RequestSession | None:
    """End of request: the session lets go of its request now (``None``), unless its engine
    has events to deliver; then the engine, for the adapter to ``await release(rs)``.

    Synchronous, so that the commonest ends (an untouched session, a used one with no event
    listeners) make no coroutine.
    """
    rs: RequestSession | None = session._bound
    if rs is None:
        session._rebind(cfg.released)
    elif not rs.pending_events:
        rs.release()
        return None
    return rs


# Kept for callers of the old private names.
_is_cookie_payload = cookieformat.is_cookie_payload


async def release(rs: RequestSession) -> None:
    """End of a request whose session was used: deliver its events, then free the engine."""
    if rs.pending_events:
        await events.settle(rs.pending_events)
    rs.release()
