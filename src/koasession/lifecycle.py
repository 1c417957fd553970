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
    always: await events.settle(rs.pending_events)

Module map: :mod:`~koasession.enginestate` (state and accessors), :mod:`~koasession.loading`,
:mod:`~koasession.committing` and :mod:`~koasession.responding` (the three parts this module
combines), :mod:`~koasession.changes` (change detection), over the pure
:mod:`~koasession.decisions`, :mod:`~koasession.cookieformat` and :mod:`~koasession.storeio`.
"""

from __future__ import annotations

from . import cookieformat, decisions
from .changes import Changes
from .committing import Committing
from .devicehook import DeviceHook
from .enginestate import UNAVAILABLE, Headers
from .loading import Loading
from .responding import Responding
from .verbs import Verbs

__all__ = ["COOKIE_LINE_LIMIT", "STORE_GRACE", "UNAVAILABLE", "Headers", "RequestSession"]

COOKIE_LINE_LIMIT = cookieformat.COOKIE_LINE_LIMIT
STORE_GRACE = decisions.STORE_GRACE


class RequestSession(Loading, Committing, Responding, Verbs, DeviceHook, Changes):
    """Session state and logic for one request: the engine an adapter drives."""


# Kept for callers of the old private names.
_is_cookie_payload = cookieformat.is_cookie_payload
