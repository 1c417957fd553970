"""The state shared by the parts of the per-request engine (see :mod:`koasession.lifecycle`)."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

from . import cookies, events, storeio
from .context import SessionContext
from .options import SessionOptions
from .protocols import Store
from .released import ReleasedEngine
from .session import RequestOptions, Session
from .signing import Signer

if TYPE_CHECKING:
    from .config import SessionConfig
    from .decisions import SaveReason


#: The response that replaces the application's when the store fails (status, headers, body).
UNAVAILABLE: tuple[int, list[tuple[bytes, bytes]], bytes] = (
    503,
    [(b"retry-after", b"5")],
    b"Session store unavailable",
)
#: Request headers as an adapter passes them: ``(lower-case name, value)`` byte pairs.
Headers = Sequence[tuple[bytes, bytes]]


def request_is_secure(scheme: str | None, headers: Headers, proxy: bool) -> bool:
    """Whether a request arrived over TLS (trusting X-Forwarded-Proto only with ``proxy``)."""
    if scheme in ("https", "wss"):
        return True
    if proxy:
        for key, value in headers:
            if key == b"x-forwarded-proto":
                first = value.split(b",", 1)[0].strip().lower()
                return first in (b"https", b"wss")
    return False


async def _resolve(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class EngineState:
    """The state of one request's session and the accessors every part of the engine uses.

    :class:`~koasession.lifecycle.RequestSession` combines it with the loading, committing
    and responding parts; the declarations under ``TYPE_CHECKING`` are the methods one part
    calls in another.
    """

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
    #: ``_device`` as loaded, or as the device hook recorded it (written back with metadata).
    loaded_device: Any = None
    # koa's ``_maxAge`` as loaded, and the lifetime in seconds it became: written back as is
    # while the lifetime is unchanged, so a re-save keeps koa's exact milliseconds.
    loaded_max_age_ms: float | None = None
    loaded_max_age: float | None = None
    # prev_json's value (None: nothing was loaded), or, while _prev_flat is set, not made yet.
    _prev_json: str | None = None
    #: A copy of flat loaded data standing in for its snapshot until one is needed (see
    #: :meth:`note_clean_flat`); ``None`` once ``prev_json`` is text.
    _prev_flat: dict[str, Any] | None = None
    #: The session's write count when its data was last known to read as ``prev_json`` with
    #: nothing in it that can change in place (see :meth:`note_clean`); -1 when unknown.
    clean_writes = -1
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
    #: ``session.skip_save()`` was called: the automatic commit writes nothing.
    skipped = False
    # Shared empty defaults, so a request that adds nothing allocates no list: each is replaced
    # by a new sequence when something is added, never changed in place.
    #: The Set-Cookie lines to send, ``(cookie name, line)``.
    cookie_lines: Sequence[tuple[str, str]] = ()
    #: Headers added through ``ctx.set_header``.
    extra_headers: Sequence[tuple[bytes, bytes]] = ()
    #: Awaitables of async event listeners, settled by the adapter after the request.
    pending_events: Sequence[Awaitable[Any]] = ()
    store: Store | None = None

    def __init__(
        self,
        cfg: SessionConfig,
        headers: Headers,
        *,
        scheme: str | None,
        slot: MutableMapping[str, Any],
        raw: Any = None,
        websocket: bool = False,
        client: str | None = None,
        session: Session | None = None,
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
        #: The client address as the adapter knows it (ASGI: ``scope["client"][0]``).
        self.client = client
        #: The session: made here, or one an adapter made first (bound to this engine now).
        if session is None:
            self.session = Session(self)
        else:
            session._bound = self
            self.session = session
        if cfg.options.context_store is not None:  # it takes precedence over ``store``
            self.store = cfg.options.context_store(self.ctx)
            cfg.track_context_store(self.store)
            cfg.offer_store_timeout(self.store)
        elif cfg.options.store is not None:
            self.store = cfg.options.store

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
        """Whether the request arrived over TLS (see :func:`request_is_secure`)."""
        return request_is_secure(self.scheme, self.headers, self.cfg.options.proxy)

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
            self.pending_events = [*self.pending_events, pending]

    def json_safe(self, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` as the codec writes it: through the ``serializer`` option when one is set."""
        serializer = self.cfg.options.serializer
        return data if serializer is None else serializer.to_json_safe(data)

    def store_call(
        self, operation: str, method: Callable[..., Any], key: str, *args: Any, **kw: Any
    ) -> Awaitable[Any]:
        """Call a store method under the store I/O policy (see :func:`storeio.call`)."""
        # Not a coroutine itself: one coroutine per store call is enough on the hot path.
        return storeio.call(
            operation,
            method,
            key,
            args,
            kw,
            timeout=self.cfg.store_timeout,
            store=self.store,
            report=self._report_store_error,
        )

    def release(self) -> None:
        """End of request (after the events settled): drop the references back to this engine.

        The session, the scope, the context, a ``context_store`` and event payloads all point
        back here; cutting those links lets reference counting free the request's objects
        without the garbage collector (see :mod:`koasession.released`).
        """
        if self._opts is None and self.external_key is None:
            # The common case: nothing of this request to keep, so one stand-in serves all.
            released = self.cfg.released
        else:
            released = ReleasedEngine(self.external_key, self._opts or self.cfg.options)
        self.session._rebind(released)
        # Only set when used: an untouched request skips the assignments.
        if self._ctx is not None:
            self._ctx = None
            self.store = None
        if self.pending_events:
            self.pending_events = ()

    def _report_store_error(self, operation: str, key: str, exc: BaseException) -> None:
        self.emit("store_error", key, None, operation=operation, error=exc)

    if TYPE_CHECKING:
        # Implemented by the other parts of RequestSession (see the module docstring).
        def load(self) -> None: ...
        async def load_async(self) -> None: ...
        def adopt(self, data: dict[str, Any] | None, key: str | None) -> None: ...
        async def new_id(self) -> str: ...
        async def adopt_new(self) -> None: ...
        async def remove(self) -> None: ...
        async def commit(self, *, save: bool = False, regenerate: bool = False) -> None: ...
        async def _commit(self, *, save: bool, regenerate: bool) -> None: ...
        def touched(self) -> bool: ...

        # changes.Changes
        @property
        def prev_json(self) -> str | None: ...
        @prev_json.setter
        def prev_json(self, data_json: str | None) -> None: ...

        def forget_loaded(self) -> None: ...
        def note_clean(self, data_json: str) -> None: ...
        def note_clean_flat(self, data: dict[str, Any]) -> None: ...
        def note_loaded(self, data: dict[str, Any]) -> None: ...
        def only_read(self) -> bool: ...
        def reason_to_save(self, data_json: str) -> SaveReason: ...
        def unsaved_change(self) -> bool: ...
        def report_lost(self, reason: str, explanation: str) -> None: ...
        def max_age_ms(self, max_age: float) -> float: ...
        def reissue_signature(self) -> None: ...
        def write_cookie(self, name: str, value: str) -> None: ...
        def write_chunked(self, name: str, value: str) -> None: ...
        def expire_cookie(self, name: str, *, sign: bool = True) -> None: ...
        def note_device(self, data: dict[str, Any], *, regenerate: bool) -> None: ...
        # verbs.Verbs
        async def flush(self) -> None: ...
        def flush_now(self) -> None: ...
        async def reload(self) -> None: ...
        def reload_now(self) -> None: ...
        def skip(self) -> None: ...
        def created_ms(self) -> float | None: ...
        def accessed_ms(self) -> float | None: ...
        def expires_ms(self) -> float | None: ...
