"""The loading part of the engine: read the cookie or the store, check, adopt.

koa's ``initFromCookie`` and ``initFromExternal``.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeGuard

from . import codec, cookieformat, cookiesize, decisions
from .errors import (
    SessionNotLoaded,
    StoreError,
)
from .ids import check_made_id, is_valid_id

if TYPE_CHECKING:
    pass


from .enginestate import _resolve
from .migrating import Migrating


class Loading(Migrating):
    """The loading part of the engine: read the cookie or the store, check, adopt."""

    # -- reading -------------------------------------------------------------------------
    def read_signed_cookie(self, name: str, *, chunked: bool = False) -> tuple[str | None, bool]:
        """The value of cookie ``name`` if its signature holds, and whether it was rotated.

        A bad or missing signature emits ``tampered`` and expires the stale ``.sig``. With
        ``chunked`` (``chunk=True``) the chunks ``name.1..N`` are read when ``name`` does not
        verify, and a ``.sig`` they verify under is kept (see :mod:`.cookiesize`, Chunking).
        """
        signer = self.cfg.signer if self._opts is None else self.signer
        value, rotated, problem = cookieformat.read_signed(self.cookies, name, signer)
        if problem is None and (value is not None or not chunked):
            return value, rotated
        joined = self.read_chunks(name) if chunked else None
        if problem is None:  # no whole cookie
            return joined, False
        assert value is not None
        if problem == cookieformat.MISSING_SIGNATURE:
            if self.cfg.options.uses_store and cookieformat.looks_encrypted(value):
                self.cross_mode(value, "cookie from cookie mode")
            else:
                self.emit("tampered", None, value, reason=problem)
        else:
            self.emit("tampered", None, value, reason=problem)
            if joined is None:  # else the .sig is the manifest of chunks that verify
                self.expire_cookie(name + ".sig", sign=False)
        return joined, False

    def read_chunks(self, name: str) -> str | None:
        """The value the chunks ``name.1..N`` carry if their signature in ``name.sig`` holds."""
        signer = self.signer
        if signer is None or name + ".sig" not in self.cookies:
            return None
        joined = cookiesize.join_chunks(name, self.cookies, signer)
        if joined is None:
            return None
        if joined[1]:
            # An older key signed the chunks: re-chunk under the first key on this response.
            self.emit("rotated", None, joined[0], reason="signed with an older key")
            self.session._require()
        return joined[0]

    def load(self) -> None:
        """Load the session from the cookie (cookie mode, on first use)."""
        if self.store is not None:  # store mode (options.uses_store, without the property)
            # Only reachable with lazy=True: the other store-mode requests load before the app.
            raise SessionNotLoaded(
                "the session is not loaded yet: with lazy=True, `await session.load()` before "
                "using it (store reads are asynchronous; a request that never loads it makes no "
                "store call)"
            )
        self.read = True
        plain = self.cfg.plain_cookie if self._opts is None else None
        if plain is not None:  # the default configuration's fast lane (see plaincookie)
            found = plain.read(self.cookies, time.time() * 1000)
            if found is not None:
                self.adopt_plain(*found)
                return
        self.load_general()

    def load_general(self) -> None:
        """:meth:`load` the general way: every check, with its events and reasons."""
        data, rotated = self.cookie_payload()
        if data is not None:
            verdict = self.check(data, None)
            if type(verdict) is not bool and inspect.isawaitable(verdict):
                verdict.close()  # type: ignore[attr-defined]
                raise TypeError(
                    "valid() returned an awaitable from a plain function; declare it with "
                    "`async def` so the middleware loads the session before the handler"
                )
            if verdict:
                self.accept(data, None, rotated)
                return
        if not self.adopt_fallback():
            self.adopt(None, None)

    def cookie_payload(self) -> tuple[dict[str, Any] | None, bool]:
        """The verified, decoded cookie payload (or ``None``), and whether it was rotated."""
        opts = self.cfg.options
        value, rotated = self.read_signed_cookie(opts.key, chunked=opts.chunk)
        if value is None:
            return None, rotated
        if value.startswith(cookiesize.COMPRESSED_PREFIX) and self.cfg.cipher is None:
            expanded = cookiesize.expand_value(value)
            if expanded is None:
                self.emit("invalid", None, value, reason="malformed compressed payload")
                return None, False
            value = expanded
        return self.decode(value), rotated

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
            elif not self.adopt_fallback():
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
            key, rotated = self._id_from_cookie()
        if key and not is_valid_id(key):
            self.emit("invalid", None, key, reason="malformed session id")
            key = None
        if not key:
            await self.adopt_new()
            return
        assert self.store is not None  # store mode
        try:
            data = await self.store_call(
                "get", self.store.get, key, opts.max_age, rolling=opts.rolling, ctx=self.ctx
            )
        except StoreError:
            if opts.on_store_error == "raise":
                # A lazy load runs in the app: a framework that renders the error as its 500
                # page gets the 503 instead, as for a failed save.
                self.store_error_raised = True
                raise
            await self.adopt_new()
            return
        await self._adopt_stored(data, key, rotated)

    async def _adopt_stored(self, data: object, key: str, rotated: bool) -> None:
        """Adopt what the store answered for ``key`` if it is a valid session, else start anew."""
        resealed = False
        if self.cfg.store_cipher is not None and isinstance(data, dict):
            data, resealed = self.unseal(data, key)
            if data is None:
                await self.adopt_new()
                return
        if self._usable(data, key) and await _resolve(self.check(data, key)):
            self.loaded_key = self.stored_key = key
            self.accept(data, key, rotated)
            if resealed:
                self.emit("rotated", key, None, reason="sealed at rest with an older key")
                self.session._require()
            return
        await self.adopt_new()

    def _id_from_cookie(self) -> tuple[str | None, bool]:
        """The session id in the signed cookie and whether it was signed with an old key."""
        key, rotated = self.read_signed_cookie(self.cfg.options.key)
        if key and cookieformat.is_cookie_payload(key):
            # Sent by this app in cookie mode before a configuration change: looking it up
            # would only be a miss (and put session data in a store query).
            self.cross_mode(key, "cookie from cookie mode")
            key = None
        return key, rotated

    def _usable(self, data: object, key: str) -> TypeGuard[dict[str, Any]]:
        """Whether the store's answer is session data; emits ``missed``/``invalid`` if not."""
        if data is None or (not isinstance(data, dict) and decisions.js_falsy(data)):
            self.emit("missed", key, data)  # koa: any falsy value from the store
        elif not isinstance(data, dict):
            self.emit("invalid", key, data, reason="store returned a non-object")
        elif data and codec.exceeds_depth(data):
            self.emit("invalid", key, None, reason=cookieformat.TOO_DEEP)
        else:
            return True
        return False

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
        serializer = opts.serializer
        if serializer is not None:
            try:
                # In place: the caller goes on with this dict (fresh from a cookie or a store).
                data.update(serializer.from_json_safe(data))
            except ValueError as exc:
                self.emit("invalid", key, data, reason=f"serializer refused the data: {exc}")
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
        self.loaded_device = meta.device
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
        self.note_loaded(body)

    def adopt_plain(self, data: dict[str, Any], expire: int, created: int | None) -> None:
        """:meth:`adopt` for a payload the fast lane accepted (see :mod:`plaincookie`): its
        data, with its metadata (``_expire`` and ``_created``) already taken out."""
        self.loaded_expire = expire
        self.loaded_created = created
        self.session._adopt(data, is_new=False)
        self.note_loaded(data)

    async def adopt_new(self) -> None:
        """Start a fresh session with a new id (store mode), or one an old cookie carries."""
        if not self.adopt_fallback():
            self.adopt(None, None)
        self.external_key = await self.new_id()

    async def new_id(self) -> str:
        """A new session id from ``genid`` (or the default generator)."""
        # Checked here, where it is made: it goes into Set-Cookie and the store as is.
        return check_made_id(await _resolve(self.cfg.genid(self.ctx)), "genid")
