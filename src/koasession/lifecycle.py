"""The per-request session engine: load, validate, decide, commit (koa's ``ContextSession``).

One :class:`RequestSession` lives for one request. It is protocol-neutral (sans-IO towards the
client): an adapter gives it the request headers, the URL scheme, a mapping to publish the
session in (the ASGI scope, an aiohttp request, a WSGI environ) and an opaque ``raw`` request
for hooks; it answers with headers to add (:meth:`RequestSession.merge_headers`) and whether
the response must become an error (:meth:`RequestSession.start_response`,
:meth:`RequestSession.error_headers`). Decisions live in :mod:`koasession.decisions`, the cookie
format in :mod:`koasession.cookieformat`, store I/O in :mod:`koasession.storeio`.

The adapter's part, for any protocol::

    rs = RequestSession(cfg, headers, scheme=..., slot=mapping, raw=request)
    mapping[cfg.options.scope_key] = rs.session
    if cfg.eager: await rs.load_async()        # StoreError: answer UNAVAILABLE
    ...run the app...
    at response start: if not await rs.start_response(status): answer UNAVAILABLE
                       else headers = rs.merge_headers(headers)
    if the app raised: extra = rs.error_headers() -> a 500 carrying them, when not None
    after a normal end: rs.finish()
    always: await events.settle(rs.pending_events)
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

from . import codec, cookieformat, cookies, decisions, events, storeio
from .context import SessionContext
from .errors import (
    ResponseStartedError,
    StoreError,
)
from .ids import check_made_id, is_valid_id
from .options import SessionOptions
from .session import RequestOptions, Session, check_key
from .signing import Signer

if TYPE_CHECKING:
    from .config import SessionConfig

COOKIE_LINE_LIMIT = cookieformat.COOKIE_LINE_LIMIT
STORE_GRACE = decisions.STORE_GRACE

#: The response that replaces the application's when the store fails (status, headers, body).
UNAVAILABLE: tuple[int, list[tuple[bytes, bytes]], bytes] = (
    503,
    [(b"retry-after", b"5")],
    b"Session store unavailable",
)
#: Request headers as an adapter passes them: ``(lower-case name, value)`` byte pairs.
Headers = Sequence[tuple[bytes, bytes]]


async def _resolve(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class RequestSession:
    """Session state and logic for one request."""

    # Class-level defaults: a request that never touches its session assigns only what
    # __init__ does, which keeps the untouched hot path cheap.
    _opts: RequestOptions | None = None
    _cookies: dict[str, str] | None = None
    _ctx: SessionContext | None = None
    _signer: Signer | None = None
    external_key: str | None = None
    loaded_key: str | None = None
    loaded_expire: float | None = None
    loaded_created: float | None = None
    loaded_accessed: float | None = None
    # koa's ``_maxAge`` as loaded, and the lifetime in seconds it became: written back as is
    # while the lifetime is unchanged, so a re-save keeps koa's exact milliseconds.
    loaded_max_age_ms: float | None = None
    loaded_max_age: float | None = None
    prev_json: str | None = None
    read = False
    clear_on_error = False
    removed = False
    committed = False
    started = False
    #: The id known to exist in the store (loaded, or written by this request); only it is
    #: ever destroyed, so regenerating a session that was never stored sends no delete.
    stored_key: str | None = None
    #: A StoreError from a session method reached the application (see the ASGI adapter).
    store_error_raised = False
    #: The response started with a 5xx status: nothing is committed automatically.
    error_response = False

    def __init__(
        self,
        cfg: SessionConfig,
        headers: Headers,
        *,
        scheme: str | None,
        slot: MutableMapping[str, Any],
        raw: Any = None,
        websocket: bool = False,
    ) -> None:
        self.cfg = cfg
        #: The request headers, as ``(lower-case name, value)`` byte pairs.
        self.headers = headers
        self.scheme = scheme
        #: Where the application finds the session under ``scope_key`` and may replace it
        #: (koa's ``ctx.session = null / {...}``).
        self.slot = slot
        #: The adapter's request object, for hooks (``ctx.scope``): the ASGI scope in ASGI.
        self.raw = raw
        self.websocket = websocket
        self.session = Session(self)
        self.store: Any = cfg.options.store
        self.cookie_lines: list[tuple[str, str]] = []
        self.extra_headers: list[tuple[bytes, bytes]] = []
        self.pending_events: list[Awaitable[Any]] = []
        if cfg.options.context_store is not None:
            self.store = cfg.options.context_store(self.ctx)
            cfg.track_context_store(self.store)

    # -- small accessors -----------------------------------------------------------------
    @property
    def opts(self) -> RequestOptions:
        """This request's own copy of the options, made on first use."""
        if self._opts is None:
            self._opts = RequestOptions.of(self.cfg)
        return self._opts

    @property
    def signer(self) -> Signer | None:
        """The signer for this request's cookies; ``None`` when they are not signed.

        ``session.options.signed`` may differ from the configuration (koa honours it per
        request); a signer the configuration did not build is made on first use.
        """
        opts = self._opts
        if opts is None:
            return self.cfg.signer
        cfg = self.cfg
        if opts.signed == cfg.options.signed:
            return cfg.signer
        if not opts.signed:
            return None
        if self._signer is None:
            self._signer = Signer(cfg.keys, cfg.options.algorithms)
        return self._signer

    @property
    def opts_view(self) -> SessionOptions:
        """The options in force, without copying them."""
        return self._opts or self.cfg.options

    @property
    def ctx(self) -> SessionContext:
        """The :class:`SessionContext` of this request, made on first use."""
        if self._ctx is None:
            self._ctx = SessionContext(self)
        return self._ctx

    @property
    def cookies(self) -> dict[str, str]:
        """The request's cookies, parsed on first use."""
        if self._cookies is None:
            values = [v.decode("latin-1") for k, v in self.headers if k == b"cookie"]
            self._cookies = cookies.parse_cookie_header(values) if values else {}
        return self._cookies

    def is_secure(self) -> bool:
        """Whether the request arrived over TLS (trusting X-Forwarded-Proto only with proxy)."""
        if self.scheme in ("https", "wss"):
            return True
        if self.cfg.options.proxy:
            for key, value in self.headers:
                if key == b"x-forwarded-proto":
                    first = value.split(b",", 1)[0].strip().lower()
                    return first in (b"https", b"wss")
        return False

    def current(self) -> Session | None:
        """The session as the application left it in the slot (``None`` once removed)."""
        value = self.slot.get(self.cfg.options.scope_key, self.session)
        if value is None or self.session._removed:
            return None
        self.session._load()
        return self.session

    def emit(
        self, name: str, key: str | None, value: Any, *, notice: str | None = None, **extra: Any
    ) -> None:
        """Deliver an event with koa's ``{key, value, ctx}`` payload.

        With ``notice``, the event is logged at DEBUG and ``notice`` once per middleware at the
        event's level: a misconfiguration repeats on every request, its explanation need not.
        """
        payload = {"key": key, "value": value, "ctx": self.ctx, **extra}
        level = None
        if notice is not None:
            level = logging.DEBUG
            once = (name, extra.get("reason"))
            if once not in self.cfg.notices:
                self.cfg.notices.add(once)
                events.logger.log(events.LEVELS.get(name, logging.INFO), "%s", notice)
        pending = events.emit(self.cfg.options.on_event, name, payload, level=level)
        if pending is not None:
            self.pending_events.append(pending)

    # -- reading -------------------------------------------------------------------------
    def read_signed_cookie(self, name: str) -> tuple[str | None, bool]:
        """The value of cookie ``name`` if its signature holds, and whether it was rotated.

        A bad or missing signature emits ``tampered`` and expires the stale ``.sig``.
        """
        signer = self.cfg.signer if self._opts is None else self.signer
        read = cookieformat.read_signed(self.cookies, name, signer)
        problem = read.problem
        if problem is None:
            return read.value, read.rotated
        value = read.value
        assert value is not None
        if problem == cookieformat.MISSING_SIGNATURE:
            if self.cfg.options.uses_store and cookieformat.looks_encrypted(value):
                self.cross_mode(value, "cookie from cookie mode")
            else:
                self.emit("tampered", None, value, reason=problem)
        else:
            self.emit("tampered", None, value, reason=problem)
            self.expire_cookie(name + ".sig", sign=False)
        return None, False

    def load(self) -> None:
        """Load the session from the cookie (cookie mode, on first use)."""
        self.read = True
        data, rotated = self.cookie_payload()
        if data is not None:
            verdict = self.check(data, None)
            if inspect.isawaitable(verdict):
                verdict.close()  # type: ignore[attr-defined]
                raise TypeError(
                    "valid() returned an awaitable from a plain function; declare it with "
                    "`async def` so the middleware loads the session before the handler"
                )
            if verdict:
                self.accept(data, None, rotated)
                return
        self.adopt(None, None)

    def cookie_payload(self) -> tuple[dict[str, Any] | None, bool]:
        """The verified, decoded cookie payload (or ``None``), and whether it was rotated."""
        value, rotated = self.read_signed_cookie(self.cfg.options.key)
        return (None if value is None else self.decode(value)), rotated

    def accept(self, data: dict[str, Any], key: str | None, rotated: bool) -> None:
        """Adopt a payload that passed every check; re-sign it if an older key signed it."""
        self.adopt(data, key)
        if rotated:
            self.reissue_signature()

    async def load_async(self) -> None:
        """Load before the handler: store mode, or cookie mode with an async ``valid``."""
        self.read = True
        opts = self.cfg.options
        if not opts.uses_store:
            data, rotated = self.cookie_payload()
            if data is not None and await _resolve(self.check(data, None)):
                self.accept(data, None, rotated)
            else:
                self.adopt(None, None)
            return

        rotated = False
        if opts.external_key is not None:
            key = await _resolve(opts.external_key.get(self.ctx))
            if key is not None and not isinstance(key, str):
                raise TypeError(
                    f"external_key.get must return the session id as a str, or None; got {key!r}"
                )
        else:
            key, rotated = self.read_signed_cookie(opts.key)
            if key and cookieformat.is_cookie_payload(key):
                # Sent by this app in cookie mode before a configuration change: looking it up
                # would only be a miss (and put session data in a store query).
                self.cross_mode(key, "cookie from cookie mode")
                key = None
        if key and not is_valid_id(key):
            self.emit("invalid", None, key, reason="malformed session id")
            key = None
        if not key:
            await self.adopt_new()
            return
        try:
            data = await self.store_call(
                "get", self.store.get, key, opts.max_age, rolling=opts.rolling, ctx=self.ctx
            )
        except StoreError:
            if opts.on_store_error == "raise":
                raise
            await self.adopt_new()
            return
        if data is None or (not isinstance(data, dict) and decisions.js_falsy(data)):
            self.emit("missed", key, data)  # koa: any falsy value from the store
        elif not isinstance(data, dict):
            self.emit("invalid", key, data, reason="store returned a non-object")
        elif data and codec.exceeds_depth(data):
            self.emit("invalid", key, None, reason=cookieformat.TOO_DEEP)
        elif await _resolve(self.check(data, key)):
            self.loaded_key = self.stored_key = key
            self.accept(data, key, rotated)
            return
        await self.adopt_new()

    def decode(self, value: str) -> dict[str, Any] | None:
        """Turn a cookie value into a payload, or emit ``invalid`` and return ``None``."""
        cfg = self.cfg
        decode = None if cfg.cipher is not None else (self._opts or cfg.options).decode
        try:
            opened = cookieformat.open_payload(value, cipher=cfg.cipher, decode=decode)
        except Exception:
            if decode is None:
                raise
            # koa: any other error from a custom decode clears the cookie, so the next request
            # recovers.
            self.expire_cookie(cfg.options.key)
            self.clear_on_error = True
            raise
        problem = opened.problem
        if problem is None:
            if opened.rotated:
                self.emit("rotated", None, opened.data, reason="encrypted with an older key")
                # Re-seal under the first key now, so the old key can be retired safely.
                self.session._require()
            data: dict[str, Any] = opened.data
            return data
        if problem == cookieformat.EMPTY:
            # koa's valid() reports a falsy payload (null, 0, false, "") as missed.
            self.emit("missed", None, opened.data, reason=problem)
        elif problem == cookieformat.TOO_DEEP:
            self.emit("invalid", None, value, reason=problem)
        elif decode is None and self._is_store_id_cookie(value):
            self.cross_mode(value, "cookie from store mode")
        elif problem == cookieformat.CANNOT_DECRYPT:
            self.emit("tampered", None, value, reason=problem)
        else:
            self.emit("invalid", None, value, reason=problem)
        return None

    def _is_store_id_cookie(self, value: str) -> bool:
        cfg = self.cfg
        return cookieformat.is_store_id_cookie(
            value,
            jar=self.cookies,
            name=cfg.options.key,
            signed=cfg.signer is not None,
            encrypted=cfg.cipher is not None,
            keys=cfg.keys,
            algorithms=cfg.options.algorithms,
        )

    def cross_mode(self, value: str, reason: str) -> None:
        """Report a cookie written by this app in the other mode; a fresh session follows."""
        mode = "store mode" if self.cfg.options.uses_store else "cookie mode"
        self.emit(
            "invalid",
            None,
            value,
            reason=reason,
            notice=(
                f"a {self.cfg.options.key!r} cookie written in the other mode ({reason}) reached "
                f"this {mode} middleware: was the configuration changed? Such cookies start "
                "fresh sessions (event 'invalid'; logged once)"
            ),
        )

    def check(self, data: dict[str, Any], key: str | None) -> bool | Awaitable[Any]:
        """koa's validity checks in order: expiry, our timeouts, then the ``valid`` hook."""
        opts = self.cfg.options
        problem = decisions.check_times(
            data,
            time.time() * 1000,
            absolute_timeout=opts.absolute_timeout,
            idle_timeout=opts.idle_timeout,
        )
        if problem is not None:
            if problem.reason is None:
                self.emit(problem.event, key, data)
            else:
                self.emit(problem.event, key, data, reason=problem.reason)
            return False
        valid = opts.valid
        if valid is None:
            return True
        verdict = valid(self.ctx, data)
        if inspect.isawaitable(verdict):
            return self._await_valid(verdict, data, key)
        if not verdict:
            self.emit("invalid", key, data, reason="rejected by valid()")
        return bool(verdict)

    async def _await_valid(
        self, verdict: Awaitable[Any], data: dict[str, Any], key: str | None
    ) -> bool:
        if await verdict:
            return True
        self.emit("invalid", key, data, reason="rejected by valid()")
        return False

    def adopt(self, data: dict[str, Any] | None, key: str | None) -> None:
        """Make ``data`` (a checked payload, or ``None`` for a new session) the session."""
        session = self.session
        if data is None:
            session._adopt({}, is_new=True)
            return
        body, meta = decisions.split_metadata(data)
        self.loaded_expire = meta.expire
        self.loaded_created = meta.created
        self.loaded_accessed = meta.accessed
        configured = (self._opts or self.cfg.options).max_age
        seconds, override, exact = decisions.loaded_lifetime(meta.max_age, configured)
        if override:
            self.opts.override(max_age=seconds)
        if exact:
            # Written back as loaded while the lifetime is unchanged (see decisions.lifetime_ms).
            self.loaded_max_age_ms = meta.max_age
            self.loaded_max_age = seconds  # type: ignore[assignment]
        session._adopt(body, is_new=False)
        self.external_key = key
        self.prev_json = codec.snapshot(body)

    async def adopt_new(self) -> None:
        """Start a fresh session with a new id (store mode)."""
        self.adopt(None, None)
        self.external_key = await self.new_id()

    async def new_id(self) -> str:
        """A new session id from ``genid`` (or the default generator)."""
        # Checked here, where it is made: it goes into Set-Cookie and the store as is.
        return check_made_id(await _resolve(self.cfg.genid(self.ctx)), "genid")

    # -- committing ----------------------------------------------------------------------
    def touched(self) -> bool:
        """Whether commit has anything to consider (the session was loaded or replaced)."""
        return (
            self.session._data is not None
            or self.slot.get(self.cfg.options.scope_key, self.session) is not self.session
        )

    def _take_scope_value(self) -> bool:
        """Apply koa's ``ctx.session = null / {...}``; return True if the session is removed."""
        scope_key = self.cfg.options.scope_key
        session = self.session
        value = self.slot.get(scope_key, session)
        if value is session:
            session._load()
            return bool(session._removed)
        if value is None:
            session._mark_removed()
            return True
        if isinstance(value, dict):
            # Load first so the replacement keeps the id and lifetime (koa does the same).
            session._load()
            for name in value:
                check_key(name)
            session._replace(dict(value))
            self.slot[scope_key] = session
            return False
        raise TypeError(
            f"scope[{scope_key!r}] can only be set to None or a dict; got {type(value).__name__}"
        )

    async def commit(self, *, save: bool = False, regenerate: bool = False) -> None:
        """Decide and apply: remove, save or nothing (koa's ``commit``)."""
        if self.started:
            raise ResponseStartedError(
                "the response headers were already sent; commit the session before responding"
            )
        if not (save or regenerate) and not self.touched():
            return
        if self.websocket:
            self._check_websocket_commit(regenerate)
        try:
            await self._commit(save=save, regenerate=regenerate)
        except StoreError:
            self.store_error_raised = True
            raise

    def _check_websocket_commit(self, regenerate: bool) -> None:
        """Refuse a commit on a WebSocket whose result a cookie would have to carry."""
        opts = self.opts_view
        if not opts.uses_store:
            raise ResponseStartedError(
                "a WebSocket has no HTTP response to carry the session cookie: in cookie mode a "
                "WebSocket can only read the session (use a store to save from a WebSocket)"
            )
        if regenerate or (self.stored_key is None and opts.external_key is None):
            what = "regenerate()" if regenerate else "saving a session that has no stored id"
            raise ResponseStartedError(
                f"{what} on a WebSocket would need a new session cookie, which a WebSocket "
                "cannot send; do it in an HTTP request"
            )

    async def _commit(self, *, save: bool, regenerate: bool) -> None:
        session = self.session
        if self._take_scope_value():
            if not self.removed:
                await self.remove()
                self.removed = True
            return
        self.removed = False
        opts = self.opts_view
        if regenerate:
            await self.remove()
            if opts.uses_store:
                self.external_key = await self.new_id()
                self.loaded_key = None
        data_json = codec.snapshot(session._data)
        if save or regenerate or session._require_save:
            reason = "force"
        else:
            reason = self.reason_to_save(data_json)
        if not reason:
            return
        if opts.before_save is not None:
            await _resolve(opts.before_save(self.ctx, session))
            data_json = codec.snapshot(session._data)
        # The load side refuses deeper data: writing it would lose the session next request.
        codec.check_save_depth(data_json)
        # koa's stores see ``changed`` on the write that carries a change; a forced save is
        # that write too when the data differs from what was loaded (koa writes twice then).
        changed = reason == "changed" or (reason == "force" and data_json != self.prev_json)
        await self.save(session._load(), changed=changed, data_json=data_json)
        session._require(False)
        self.prev_json = data_json
        self.committed = True

    def reason_to_save(self, data_json: str) -> decisions.SaveReason:
        """Why an unforced commit saves (see :func:`decisions.reason_to_save`)."""
        opts = self.opts_view
        return decisions.reason_to_save(
            data_json=data_json,
            prev_json=self.prev_json,
            committed=self.committed,
            rolling=opts.rolling,
            renew=opts.renew,
            max_age=opts.max_age,
            loaded_expire=self.loaded_expire,
            idle_timeout=opts.idle_timeout,
            loaded_accessed=self.loaded_accessed,
            now_ms=time.time() * 1000,
        )

    def unsaved_change(self) -> bool:
        """Whether the session holds a change that no commit wrote (checked after the app)."""
        session = self.session
        value = self.slot.get(self.cfg.options.scope_key, session)
        if value is None:
            return not self.removed
        if value is not session:
            return True
        data = session._data
        if data is None:
            return False
        if session._removed:
            return not self.removed
        if session._require_save:
            return True
        try:
            data_json = codec.snapshot(data)  # the same text as prev_json, for comparison
        except (TypeError, ValueError):
            return True
        prev = self.prev_json
        return data_json != ("{}" if prev is None else prev)

    def report_lost(self, reason: str, explanation: str) -> None:
        """Emit ``lost`` for a change that cannot be delivered; explain it once in the log."""
        data = self.session._data
        self.emit(
            "lost",
            self.external_key,
            None if data is None else dict(data),
            reason=reason,
            notice=f"koasession: session change lost: {explanation} (event 'lost'; logged once)",
        )

    def payload(self, data: dict[str, Any]) -> dict[str, Any]:
        """The data plus koa's metadata (and ours for timeouts)."""
        out = dict(data)
        out.update(self.metadata())
        return out

    def metadata(self) -> dict[str, Any]:
        """koa's ``_expire`` and ``_maxAge`` (or ``_session``), and ours for the timeouts."""
        opts = self.opts_view
        max_age = opts.max_age
        return decisions.metadata(
            now_ms=int(time.time() * 1000),
            max_age=max_age,
            max_age_ms=None if isinstance(max_age, str) else self.max_age_ms(max_age),
            created=self.loaded_created,
            absolute_timeout=opts.absolute_timeout,
            idle_timeout=opts.idle_timeout,
        )

    def max_age_ms(self, max_age: float) -> float:
        """koa's ``maxAge`` in ms for ``max_age`` seconds (see :func:`decisions.lifetime_ms`)."""
        return decisions.lifetime_ms(max_age, self.loaded_max_age_ms, self.loaded_max_age)

    async def save(
        self, data: dict[str, Any], *, changed: bool, data_json: str | None = None
    ) -> None:
        """Write the session: to the store then the id cookie, or into the cookie itself.

        ``data_json`` is ``codec.snapshot(data)`` when the caller has it: the default cookie
        encoding then appends the metadata to it instead of serialising the data again.
        """
        opts = self.opts_view
        if not opts.uses_store:
            if data_json is not None and self.cfg.cipher is None and opts.encode is None:
                value = codec.encode_payload(data, data_json, self.metadata())
            else:
                value = self.encode(self.payload(data))
            self.write_cookie(opts.key, value)
            return
        if data_json is None:
            codec.snapshot(data)  # data JSON cannot hold is the app's error, not the store's
        payload = self.payload(data)
        ttl = decisions.store_ttl(opts.max_age, opts.session_store_ttl)
        key = self.external_key or await self.new_id()

        def write(key: str) -> Awaitable[Any]:
            kw = {"rolling": opts.rolling, "changed": changed, "ctx": self.ctx}
            return self.store_call("set", self.store.set, key, payload, ttl, **kw)

        try:
            key, written = await storeio.save_new_id(
                write, key, self.new_id, loaded_key=self.loaded_key
            )
        except StoreError:
            if opts.on_store_error == "raise":
                raise
            return  # never point the cookie at data that was not saved
        self.external_key = key
        if storeio.vanished(written):
            # The entry vanished (a logout, or a login's regenerate(), in a concurrent request):
            # do not resurrect it. The cookie is left alone: the browser may already hold the
            # new login cookie under the same name, and clearing it would undo that login. The
            # next request that sends the old id finds it missing.
            self.stored_key = None
            self.emit("missed", key, None, reason="destroyed while this request ran")
            return
        self.stored_key = key
        if opts.external_key is not None:
            await _resolve(opts.external_key.set(self.ctx, key))
        else:
            self.write_cookie(opts.key, key)

    def encode(self, payload: dict[str, Any]) -> str:
        """Serialise a payload for the cookie (see :func:`cookieformat.seal_payload`)."""
        cfg = self.cfg
        encode = None if cfg.cipher is not None else (self._opts or cfg.options).encode
        return cookieformat.seal_payload(payload, cipher=cfg.cipher, encode=encode)

    async def remove(self) -> None:
        """Destroy the store entry (if any) and expire the cookies."""
        opts = self.opts_view
        key = self.stored_key
        if key and opts.uses_store:
            try:
                await self.store_call("destroy", self.store.destroy, key, ctx=self.ctx)
            except StoreError:
                if opts.on_store_error == "raise":
                    raise
            else:
                self.stored_key = None
        if opts.external_key is None:
            self.expire_cookie(opts.key)

    async def store_call(
        self, operation: str, method: Callable[..., Any], key: str, *args: Any, **kw: Any
    ) -> Any:
        """Call a store method under the store I/O policy (see :func:`storeio.call`)."""
        return await storeio.call(
            operation,
            method,
            key,
            args,
            kw,
            timeout=self.cfg.store_timeout,
            store=self.store,
            report=self._report_store_error,
        )

    def _report_store_error(self, operation: str, key: str, exc: BaseException) -> None:
        self.emit("store_error", key, None, operation=operation, error=exc)

    # -- cookies -------------------------------------------------------------------------
    def reissue_signature(self) -> None:
        """Re-sign the current cookie with the first key, keeping its expiry (deviation 6)."""
        name = self.cfg.options.key
        value = self.cookies.get(name, "")
        self.emit("rotated", self.loaded_key, value, reason="signed with an older key")
        expire = self.loaded_expire
        expires = expire / 1000 if isinstance(expire, (int, float)) else None
        self.resign_cookie(name, value, expires)

    def write_cookie(self, name: str, value: str) -> None:
        """Queue ``name=value`` (and its ``.sig``) for this request's lifetime."""
        expires, seconds = self._lifetime()
        self._queue(name, value, expires, seconds, sign=True)

    def _lifetime(self) -> tuple[Any, Any]:
        max_age = self.opts_view.max_age
        lifetime_ms = None if isinstance(max_age, str) else self.max_age_ms(max_age)
        return cookieformat.lifetime(max_age, lifetime_ms, int(time.time() * 1000))

    def expire_cookie(self, name: str, *, sign: bool = True) -> None:
        """Queue the removal of cookie ``name`` (and its ``.sig`` when ``sign``)."""
        self._queue(name, "", cookies.EPOCH, 0, sign=sign)

    def resign_cookie(self, name: str, value: str, expires_at: float | None) -> None:
        """Queue only a fresh ``.sig`` for ``value``, expiring at ``expires_at``.

        Without ``expires_at`` (a payload with no usable ``_expire``), the lifetime in force.
        """
        if expires_at is None:
            expires, max_age = self._lifetime()
        else:
            expires, max_age = expires_at, max(0, int(expires_at - time.time()))
        self._queue(name, value, expires, max_age, sign=True, with_value=False)

    def _queue(
        self,
        name: str,
        value: str,
        expires: float | str | None,
        max_age: int | None,
        *,
        sign: bool,
        with_value: bool = True,
    ) -> None:
        opts = self.opts_view
        secure = cookieformat.resolve_secure(opts.secure, self.is_secure())
        attrs = cookieformat.attributes(opts, secure=secure, expires=expires, max_age=max_age)
        signer = (self.cfg.signer if self._opts is None else self.signer) if sign else None
        new = cookieformat.lines(name, value, attrs, signer, with_value=with_value)
        if cookieformat.fits(new, self.cfg.options.on_oversize):
            self.cookie_lines = cookieformat.merge(self.cookie_lines, new, overwrite=opts.overwrite)

    def response_headers(self) -> list[tuple[bytes, bytes]]:
        """Set-Cookie lines and extra headers to add to the response start."""
        headers = [(b"set-cookie", line.encode("latin-1")) for _, line in self.cookie_lines]
        headers.extend(self.extra_headers)
        return headers

    # -- the response --------------------------------------------------------------------
    async def start_response(self, status: int) -> bool:
        """Commit as the response starts; False when it must become :data:`UNAVAILABLE`.

        A 5xx response is never committed automatically (Django's rule: an error response
        does not commit the half-done work of the request that failed, whoever produced it);
        a 500 that a framework made of a ``StoreError`` from a session call becomes the 503.
        """
        if status >= 500:
            if status == 500 and self.store_error_raised:
                self.started = True
                return False
            self.error_response = True
        elif self.cfg.options.auto_commit and self.touched():
            try:
                await self.commit()
            except StoreError:
                self.started = True
                return False
        self.started = True
        return True

    def merge_headers(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """``headers`` (the application's response headers) with the session's merged in.

        The session's Set-Cookie lines replace the application's for the same names (with
        ``overwrite``); a response that sets a cookie gets ``Cache-Control: private`` unless it
        has a Cache-Control, and one that read or set the session gets ``Vary: Cookie``.
        """
        if not (self.read or self.cookie_lines or self.extra_headers):
            return headers
        extra = self.response_headers()
        headers = list(headers)
        if self.cookie_lines:
            if self.opts_view.overwrite and any(k.lower() == b"set-cookie" for k, _ in headers):
                prefixes = tuple(f"{name}=".encode("latin-1") for name, _ in self.cookie_lines)
                headers = [
                    (k, v)
                    for k, v in headers
                    if not (k.lower() == b"set-cookie" and v.startswith(prefixes))
                ]
            if not any(k.lower() == b"cache-control" for k, _ in headers):
                headers.append((b"cache-control", b"private"))
        if self.read or self.cookie_lines:
            # A response that sets or clears the session cookie (a logout that never read the
            # session included) must not be served from a shared cache to another browser.
            _add_vary_cookie(headers)
        headers.extend(extra)
        return headers

    def error_headers(self) -> list[tuple[bytes, bytes]] | None:
        """Headers for the 500 an adapter sends when the application raised, or ``None``.

        Only explicit work is in them (a manual save, koa's clearing of a cookie whose custom
        decode failed); ``None`` when there is none, or the response already started.
        """
        if self.started or not (self.clear_on_error or self.cookie_lines or self.extra_headers):
            return None
        self.started = True
        return self.response_headers()

    def finish(self) -> None:
        """After the application returned: report a change that no response could carry."""
        opts = self.cfg.options
        if not (self.websocket or (self.started and not self.error_response)):
            return
        if not (opts.auto_commit and self.touched() and self.unsaved_change()):
            return
        if self.websocket:
            if opts.uses_store:
                self.report_lost(
                    "websocket changes not saved",
                    "the session changed on a WebSocket without `await session.save()`; "
                    "WebSocket sessions are not committed automatically",
                )
            else:
                self.report_lost(
                    "websocket in cookie mode",
                    "the session changed on a WebSocket in cookie mode, where no response "
                    "can carry the cookie; use a store to save sessions from WebSockets",
                )
        else:
            self.report_lost(
                "changed after the response started",
                "the session changed after the response started (while streaming, or in a "
                "background task), so the change could not be sent; change it, or call "
                "`await session.save()`, before the response starts",
            )


def _add_vary_cookie(headers: list[tuple[bytes, bytes]]) -> None:
    for index, (key, value) in enumerate(headers):
        if key.lower() == b"vary":
            tokens = [t.strip().lower() for t in value.split(b",")]
            if b"cookie" not in tokens and b"*" not in tokens:
                headers[index] = (key, value + b", Cookie")
            return
    headers.append((b"vary", b"Cookie"))


# Kept for callers of the old private names.
_is_cookie_payload = cookieformat.is_cookie_payload
