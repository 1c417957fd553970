"""The engine of a request that stays on the default cookie's plain path (issue 12).

Most requests that use their session in the default configuration do the same few things:
read a good cookie (:mod:`koasession.plaincookie` accepts it), read or change a few values,
and answer with the next cookie. :class:`PlainRequest` does exactly that, with none of the
general engine's machinery (:class:`~koasession.lifecycle.RequestSession`: per-request options,
hooks, events, stores, context, fallbacks).

Anything else hands the request over to the general engine, built then with this request's
state, so that from there on the request is the general engine's alone: a cookie the fast lane
does not accept, a replaced or removed session, an equal-but-rewritten flat value, a cookie
line near the size limit, a change after the response started, or any session method beyond
reading and writing values (``save()``, ``regenerate()``, ``max_age``, ``options``,
``created_at``...). The hand-over is one-way and keeps the verdicts identical;
``tests/core/test_plainrequest.py`` runs the same requests through both engines and compares
responses and events.

It is used only when the configuration allows it (:func:`usable`): cookie mode with the fast
lane, automatic commits and no ``before_save``. Change detection and the
reasons to save (``rolling``, ``renew``) are the general engine's (:mod:`koasession.changes`,
:func:`koasession.decisions.reason_to_save`): flat data is compared with a copy and proven
unchanged by the write count, nested data by its snapshot.
"""

from __future__ import annotations

import binascii
import functools
import time
from collections.abc import Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from . import codec, cookies, decisions
from .changes import holds_no_container
from .enginestate import Headers, request_is_secure
from .lifecycle import started_engine
from .responding import merge_session_headers

if TYPE_CHECKING:
    from .config import SessionConfig
    from .lifecycle import RequestSession
    from .options import SessionOptions
    from .session import RequestOptions, Session, SessionEngine

#: Builds the general engine for the same request: ``general(session, raw)``.
General = Callable[["Session", Any], "RequestSession"]


#: Builds an adapter's engine for the session of a request: ``make(cfg, session, request)``.
MakeGeneral = Callable[["SessionConfig", "Session", Any], "RequestSession"]
#: The same for the plain engine, given the general one to hand over to.
MakePlain = Callable[[General, "SessionConfig", "Session", Any], "PlainRequest | RequestSession"]
#: What a deferred :class:`~koasession.session.Session` calls: ``make(session, request)``.
Make = Callable[["Session", Any], "SessionEngine"]


def deferred_engines(
    cfg: SessionConfig, general: MakeGeneral, plain: MakePlain
) -> tuple[Make, Make]:
    """An adapter's two ``make(session, request)`` for a deferred session: on first use, and on
    a first use after the response started (:func:`~koasession.lifecycle.started_engine`).

    ``plain`` when the configuration allows the plain path (:func:`usable`), else ``general``.
    Made once per middleware: each deferred session holds one, not a new closure.
    """
    make: Callable[[SessionConfig, Session, Any], PlainRequest | RequestSession] = general
    if usable(cfg):
        make = functools.partial(plain, functools.partial(general, cfg))
    return functools.partial(make, cfg), functools.partial(started_engine, make, cfg)


def usable(cfg: SessionConfig) -> bool:
    """Whether requests under ``cfg`` may start on the plain path."""
    opts = cfg.options
    return (
        cfg.plain_cookie is not None
        and opts.auto_commit
        and opts.before_save is None
        and not opts.chunk
    )


class _GeneralVerbs:
    """The rest of the session's engine interface (``SessionEngine``): the general engine's.

    Each takes the request over to the general engine (``general()``), except ``external_key``
    and ``opts_view``, which the plain engine answers as the general one would, and
    ``load_async``, which is ``load`` (a cookie needs no I/O).
    """

    __slots__ = ()

    if TYPE_CHECKING:
        cfg: SessionConfig
        _general: RequestSession | None

        def general(self) -> RequestSession: ...
        def load(self) -> None: ...

    @property
    def external_key(self) -> str | None:
        """The store id: none in cookie mode (answered without handing over)."""
        return None

    @property
    def opts(self) -> RequestOptions:
        """This request's own options: changing them takes the request to the general engine."""
        return self.general().opts

    @property
    def opts_view(self) -> SessionOptions:
        """The options in force: the configuration's, until the request is handed over."""
        general = self._general
        return self.cfg.options if general is None else general.opts_view

    async def load_async(self) -> None:
        """:meth:`load`: a cookie needs no I/O (``session.load()`` in cookie mode)."""
        self.load()

    async def commit(self, *, save: bool = False, regenerate: bool = False) -> None:
        """An explicit commit (``save()``, ``regenerate()``, ``manually_commit()``)."""
        await self.general().commit(save=save, regenerate=regenerate)

    async def flush(self) -> None:
        """``session.flush()``."""
        await self.general().flush()

    def flush_now(self) -> None:
        """``session.flush_sync()``."""
        self.general().flush_now()

    async def reload(self) -> None:
        """``session.reload()``."""
        await self.general().reload()

    def reload_now(self) -> None:
        """``session.reload_sync()``."""
        self.general().reload_now()

    def skip(self) -> None:
        """``session.skip_save()``."""
        self.general().skip()

    def created_ms(self) -> float | None:
        """``session.created_at``."""
        return self.general().created_ms()

    def accessed_ms(self) -> float | None:
        """``session.accessed_at``."""
        return self.general().accessed_ms()

    def expires_ms(self) -> float | None:
        """``session.expires_at``."""
        return self.general().expires_ms()


class _AfterStart(_GeneralVerbs):
    """The plain engine once the response started: its headers, the after-app check, release."""

    __slots__ = ()

    if TYPE_CHECKING:
        session: Session
        slot: MutableMapping[str, Any]
        read: bool
        started: bool
        error_response: bool
        clean_writes: int
        cookie_lines: list[tuple[str, str]] | tuple[()]
        _prev: dict[str, Any] | None
        _loaded_json: str | None
        _saved_json: str | None

    def merge_headers(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """``headers`` with the session's merged in (see ``Responding.merge_headers``)."""
        general = self._general
        if general is not None:
            return general.merge_headers(headers)
        return merge_session_headers(
            headers, self.cookie_lines, (), read=self.read, overwrite=self.cfg.options.overwrite
        )

    def error_headers(self) -> list[tuple[bytes, bytes]] | None:
        """A plain request has nothing for an error response (see ``Responding``)."""
        general = self._general
        return None if general is None else general.error_headers()

    def finish(self) -> None:
        """After the application: a change made after the response started is reported by the
        general engine (event ``lost``)."""
        general = self._general
        if general is not None:
            general.finish()
            return
        if not self.started or self.error_response:
            return
        session = self.session
        if self.slot.get(self.cfg.options.scope_key) is not session or (
            # _unsaved()'s first tests, here: most sessions are proven unchanged without its call.
            (session._writes != self.clean_writes or session._removed or session._require_save)
            and self._unsaved()
        ):
            self.general().finish()  # it reports the change (or the replacement) as lost

    def _unsaved(self) -> bool:
        """``Responding.unsaved_change`` for the plain engine's state: whether the session holds
        a change no commit wrote."""
        session = self.session
        data = session._data
        if data is None:
            return False
        if session._removed or session._require_save:
            return True
        if session._writes == self.clean_writes:
            return False
        if self._saved_json is not None:
            reference = self._saved_json
        elif self._loaded_json is not None:
            reference = self._loaded_json
        else:
            assert self._prev is not None  # loaded flat, or a new session's {}
            reference = codec.snapshot_flat(self._prev)
        try:
            return codec.snapshot(data) != reference
        except (TypeError, ValueError):
            return True

    def release(self) -> None:
        """End of request: the session lets go of this engine (no reference cycle left)."""
        general = self._general
        if general is not None:
            general.release()
        else:
            # Session._rebind in line (a call less on every request that used its session).
            session = self.session
            session._bound = self.cfg.released
            session._make = session._request = None


class PlainRequest(_AfterStart):
    """A request's session engine while it stays on the plain path (see the module doc)."""

    __slots__ = (
        "_created",
        "_expire",
        "_general",
        "_loaded_json",
        "_make_general",
        "_prev",
        "_raw",
        "_saved_json",
        "cfg",
        "clean_writes",
        "cookie_lines",
        "error_response",
        "headers",
        "read",
        "scheme",
        "session",
        "slot",
        "started",
    )

    #: Nothing else is ever added to a plain response (a read on the class, no slot needed).
    extra_headers = ()
    pending_events = ()
    #: A WebSocket's session is the general engine's (the adapters never make this one for it).
    websocket = False

    def __init__(
        self,
        cfg: SessionConfig,
        session: Session,
        headers: Headers,
        scheme: str | None,
        slot: MutableMapping[str, Any],
        raw: Any,
        make_general: General,
    ) -> None:
        self.cfg = cfg
        self.session = session
        self.headers = headers
        self.scheme = scheme
        self.slot = slot
        self._raw = raw
        self._make_general = make_general
        self._general: RequestSession | None = None
        self.read = False
        self.started = False
        self.error_response = False
        self.cookie_lines: list[tuple[str, str]] | tuple[()] = ()
        self.clean_writes = -1
        #: A copy of the data as loaded (flat, so a dict compare tells a change) until saved.
        self._prev: dict[str, Any] | None = None
        #: The snapshot of nested data as loaded (flat data keeps the copy ``_prev`` instead).
        self._loaded_json: str | None = None
        #: The data's snapshot once saved (what the general engine keeps as ``prev_json``).
        self._saved_json: str | None = None
        #: ``_expire`` as loaded; ``None`` for a new session (no cookie).
        self._expire: int | None = None
        self._created: int | None = None
        session._bound = self

    # -- handing over --------------------------------------------------------------------
    def general(self) -> RequestSession:
        """The general engine, made now (with this request's state) if it was not yet."""
        rs = self._general
        if rs is None:
            # Building it binds the session to it: from here on the request is its alone.
            rs = self._general = self._make_general(self.session, self._raw)
            # The request as this engine first read it, as a general engine from the start has.
            rs.headers = self.headers
            rs.scheme = self.scheme
            rs.started = self.started
            rs.error_response = self.error_response
            if self.read:
                rs.read = True
                rs.loaded_expire = self._expire
                rs.loaded_created = self._created
                if self._saved_json is not None:
                    rs.prev_json = self._saved_json
                    rs.committed = True
                    rs.cookie_lines = self.cookie_lines
                    rs.clean_writes = self.clean_writes
                elif self._loaded_json is not None:
                    rs.prev_json = self._loaded_json
                    rs.clean_writes = self.clean_writes
                elif self._expire is not None:
                    rs._prev_flat = self._prev
                    rs.clean_writes = self.clean_writes
                # else a new session: no snapshot and no write count, as adopt(None) leaves it
        return rs

    # -- loading -------------------------------------------------------------------------
    def load(self) -> None:
        """Load the session from a plainly valid cookie, or hand the request over."""
        self.read = True
        values = []
        for name, value in self.headers:  # a loop: a list comprehension is a call before 3.12
            if name == b"cookie":
                values.append(value.decode("latin-1"))
        jar = cookies.parse_cookie_header(values) if values else {}
        plain = self.cfg.plain_cookie
        found = None if plain is None else plain.read(jar, time.time() * 1000)
        if found is None:
            if self._no_cookie(jar):
                # A first visit: nothing to read, nothing to report (the general engine's
                # adopt(None)).
                session = self.session
                session._adopt({}, is_new=True)
                self._prev = {}
                self.clean_writes = session._writes
                return
            # Not plainly valid (a lifetime of its own included): the general rules apply,
            # the cookie read again, with the events and reasons.
            self.read = False
            rs = self.general()
            rs.read = True
            rs._cookies = jar
            rs.load_general()
            return
        data, self._expire, self._created = found
        session = self.session
        session._adopt(data, is_new=False)
        # Changes.note_loaded: a copy of flat data, the snapshot of nested data (which can
        # change in place, so the write count proves nothing: clean_writes stays -1).
        if codec.is_flat(data):
            self._prev = dict(data)
            self.clean_writes = session._writes
        else:
            self._loaded_json = codec.snapshot(data)

    def _no_cookie(self, jar: dict[str, str]) -> bool:
        """Whether the request carries no session cookie at all, and no ``fallback`` reader
        could find an old-format one."""
        name = self.cfg.options.key
        return name not in jar and name + ".sig" not in jar and not self.cfg.options.fallback

    # -- the response --------------------------------------------------------------------
    def start_response(self, status: int) -> bool:
        """Commit as the response starts (the general engine's rules, on the plain path)."""
        general = self._general
        if general is not None:
            return general.start_response(status)  # type: ignore[return-value]
        if status >= 500:
            self.started = self.error_response = True
            return True
        session = self.session
        opts = self.cfg.options
        in_slot = self.slot.get(opts.scope_key) is session
        if session._data is None and in_slot:
            self.started = True  # never loaded, not replaced: nothing to commit
            return True
        if not (self.read and in_slot) or session._require_save or session._removed:
            return self.general().start_response(status)  # type: ignore[return-value]
        if session._writes == self.clean_writes and not (opts.rolling or opts.renew):
            self.started = True  # only read, and nothing refreshes the lifetime
            return True
        data = session._data
        assert data is not None
        try:
            outcome = self._commit(data)
        except BaseException:
            self.started = True  # as the general engine's failed commit: a later change is lost
            raise
        if outcome is None:
            return self.general().start_response(status)  # type: ignore[return-value]
        self.started = True
        return True

    def _commit(self, data: dict[str, Any]) -> bool | None:
        """The general engine's automatic commit of changed ``data`` (``Committing._commit``
        for this configuration): True once saved, False when nothing changed, ``None`` when the
        general engine must decide."""
        prev = self._prev
        if prev is not None and codec.is_flat(data):
            # Flat first: comparing other values may raise (an array's ==).
            if data != prev:
                return self._save(data, codec.snapshot_flat(data), True)
            if self.session._writes != self.clean_writes:
                return None  # equal as dicts may still differ as JSON (1 and 1.0)
            data_json = codec.snapshot_flat(data)
            # A new session has no loaded snapshot (its prev_json is None there).
            return self._refresh(data, data_json, None if self._expire is None else data_json)
        data_json = codec.snapshot(data)  # raises for what JSON cannot hold, as there
        if prev is not None:
            if data == prev:  # JSON values now, which compare without raising
                return None
        elif data_json == self._loaded_json:
            return self._refresh(data, data_json, data_json)  # nested, loaded, unchanged
        codec.check_save_depth(data_json)
        return self._save(data, data_json)

    def _refresh(self, data: dict[str, Any], data_json: str, prev_json: str | None) -> bool | None:
        """Save unchanged data when ``rolling`` or ``renew`` says so; False when not."""
        if not refresh_reason(self.cfg.options, self._expire, data_json, prev_json):
            return False
        codec.check_save_depth(data_json)
        return self._save(data, data_json)

    def _save(self, data: dict[str, Any], data_json: str, flat: bool = False) -> bool | None:
        """Queue the cookie for ``data`` (whose snapshot is ``data_json``; ``flat``: known to
        pass :func:`codec.is_flat`); ``None`` when a line may be too long for this path."""
        value, expire, created = cookie_value(self.cfg, data, data_json, self._created, flat)
        plain = self.cfg.plain_cookie
        secure = request_is_secure(self.scheme, self.headers, self.cfg.options.proxy)
        lines = None if plain is None else plain.lines(value, expire, secure)
        if lines is None:
            return None
        self._created = created
        self.cookie_lines = lines
        self._saved_json = data_json
        self._prev = self._loaded_json = None
        # Changes.note_clean's rule, so that a hand-over leaves the state it would have made.
        # Flat data holds no container: the snapshot need not be searched for one.
        no_container = flat or holds_no_container(data_json)
        self.clean_writes = self.session._writes if no_container else -1
        return True


def cookie_value(
    cfg: SessionConfig,
    data: dict[str, Any],
    data_json: str,
    created: int | None,
    flat: bool = False,
) -> tuple[str, int, int | None]:
    """The session cookie's value for ``data`` (``data_json`` its snapshot; ``flat``: known to
    pass :func:`codec.is_flat`) with the general engine's metadata (``Committing.metadata``)
    for a plain request; its ``_expire``; and the ``_created`` it records (``created`` as
    loaded, now for a session that had none)."""
    plain = cfg.plain_cookie
    assert plain is not None  # see usable()
    now_ms = int(time.time() * 1000)
    expire = now_ms + plain.max_age_ms
    if cfg.record_created:
        if created is None:
            created = now_ms
        metadata = f'"_expire":{expire}{plain.max_age_member},"_created":{created}'
    else:
        metadata = f'"_expire":{expire}{plain.max_age_member}'
    raw = codec.join_payload(data, data_json, metadata, flat)
    cipher = cfg.cipher
    if cipher is None:
        return binascii.b2a_base64(raw, newline=False).decode("ascii"), expire, created
    return cipher.seal_bytes(raw), expire, created


def refresh_reason(
    opts: SessionOptions, loaded_expire: int | None, data_json: str, prev_json: str | None
) -> decisions.SaveReason:
    """The general engine's reason to save unchanged data (``data_json`` as loaded, whose
    snapshot was ``prev_json``): :func:`decisions.reason_to_save` for a plain request, which
    has no timeouts and commits once."""
    return decisions.reason_to_save(
        data_json=data_json,
        prev_json=prev_json,
        committed=False,
        rolling=opts.rolling,
        renew=opts.renew,
        max_age=opts.max_age,
        loaded_expire=loaded_expire,
        idle_timeout=None,
        loaded_accessed=None,
        now_ms=time.time() * 1000,
    )
