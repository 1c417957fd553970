"""The committing part of the engine: decide and write or remove (koa's ``commit``)."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from . import atrest, codec, cookieformat, cookiesize, decisions, storeio
from .errors import (
    ResponseStartedError,
    StoreError,
)
from .session import Session, check_key

if TYPE_CHECKING:
    pass


from .enginestate import _resolve
from .partialwrites import PartialWrites

#: Save reasons that only refresh the lifetime: a store with ``touch`` need not rewrite data.
_REFRESHES = frozenset({"rolling", "renew", "idle"})
#: The metadata a ``touch`` sets (``_created`` and ``_session`` never change on a refresh).


class Committing(PartialWrites):
    """The committing part of the engine: decide and write or remove (koa's ``commit``).

    Its methods read ``self._opts or self.cfg.options`` (what ``opts_view`` returns) directly:
    they run on every saving request, where a property call each adds up.
    """

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
        # An adapter's own Session subclass (asgi's) is still a Session to the reader, and only
        # another session middleware puts one in the slot: say so.
        kind = type(value).__name__
        if isinstance(value, Session):
            kind = (
                f"Session, put there by a second session middleware with the same "
                f"scope_key={scope_key!r}: give each middleware its own scope_key (and cookie key)"
            )
        raise TypeError(f"scope[{scope_key!r}] can only be set to None or a dict; got {kind}")

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
        opts = self._opts or self.cfg.options
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
            await self.commit_removal()
            return
        self.removed = False
        opts = self._opts or self.cfg.options
        if regenerate:
            await self.remove()
            if opts.uses_store:
                self.external_key = await self.new_id()
                self.loaded_key = None
        data = self.json_safe(session._load())
        data_json = self.prev_json if session._writes == self.clean_writes else None
        if data_json is None:
            data_json = codec.snapshot(data)
        if save or regenerate or session._require_save:
            reason: decisions.SaveReason = "force"
        else:
            reason = self.reason_to_save(data_json)
        if not reason:
            if data_json == self.prev_json and session._writes != self.clean_writes:
                self.note_clean(data_json)  # the finish check can then skip serialising
            return
        if opts.before_save is not None:
            await _resolve(opts.before_save(self.ctx, session))
            data = self.json_safe(session._load())
            data_json = codec.snapshot(data)
        # The load side refuses deeper data: writing it would lose the session next request.
        codec.check_save_depth(data_json)
        # koa's stores see ``changed`` on the write that carries a change; a forced save is
        # that write too when the data differs from what was loaded (koa writes twice then).
        changed = reason == "changed" or (reason == "force" and data_json != self.prev_json)
        if opts.device_policy is not None:
            self.note_device(data, regenerate=regenerate)
        # touch() and merge() edit the stored JSON in place: not possible when the value is
        # sealed at rest, nor when a serializer tags values the partial write would not see.
        partial = self.cfg.store_cipher is None and opts.serializer is None
        if (
            partial
            and reason in _REFRESHES
            and data_json == self.prev_json
            and await self.refresh()
        ):
            pass
        elif self.store is None:  # cookie mode: no store write to await
            self.save_cookie(data, data_json)
        elif not (partial and opts.merge and await self.merge(data_json)):
            await self.save(data, changed=changed, data_json=data_json)
        session._require(False)
        self.note_clean(data_json)
        self.committed = True

    def payload(self, data: dict[str, Any]) -> dict[str, Any]:
        """The data plus koa's metadata (and ours for timeouts)."""
        out = dict(data)
        out.update(self.metadata())
        return out

    def metadata(self) -> dict[str, Any]:
        """koa's ``_expire`` and ``_maxAge`` (or ``_session``), and ours (timeouts, device)."""
        opts = self._opts or self.cfg.options
        max_age = opts.max_age
        out = decisions.metadata(
            now_ms=int(time.time() * 1000),
            max_age=max_age,
            max_age_ms=None if isinstance(max_age, str) else self.max_age_ms(max_age),
            created=self.loaded_created,
            absolute_timeout=opts.absolute_timeout,
            idle_timeout=opts.idle_timeout,
            record_created=self.cfg.record_created,
        )
        if self.loaded_created is None and "_created" in out:
            self.loaded_created = out["_created"]  # a new session's created_at: its first save
        if self.loaded_device is not None:
            out["_device"] = self.loaded_device
        return out

    def max_age_ms(self, max_age: float) -> float:
        """koa's ``maxAge`` in ms for ``max_age`` seconds (see :func:`decisions.lifetime_ms`)."""
        loaded_ms = self.loaded_max_age_ms
        if loaded_ms is None:  # the common case, without the call
            return round(max_age * 1000)
        return decisions.lifetime_ms(max_age, loaded_ms, self.loaded_max_age)

    async def save(
        self, data: dict[str, Any], *, changed: bool, data_json: str | None = None
    ) -> None:
        """Write the session to the store, then the id cookie (store mode; cookie mode writes
        with :meth:`save_cookie`).

        ``data_json`` is ``codec.snapshot(data)`` when the caller has it.
        """
        opts = self._opts or self.cfg.options
        if data_json is None:
            codec.snapshot(data)  # data JSON cannot hold is the app's error, not the store's
        payload = self.payload(data)
        ttl = decisions.store_ttl(opts.max_age, opts.session_store_ttl)
        key = self.external_key or await self.new_id()
        store = self.store
        assert store is not None  # store mode

        cipher = self.cfg.store_cipher

        def write(key: str) -> Awaitable[Any]:
            kw = {"rolling": opts.rolling, "changed": changed, "ctx": self.ctx}
            value = payload
            if cipher is not None:  # sealed per id: a collision retry seals again
                value = atrest.seal_value(cipher, payload, atrest.bound_id(store, key))
            return self.store_call("set", store.set, key, value, ttl, **kw)

        try:
            key, written = await storeio.save_new_id(
                write, key, self.new_id, loaded_key=self.loaded_key
            )
        except StoreError:
            if opts.on_store_error == "raise":
                raise
            return  # never point the cookie at data that was not saved
        await self._written(key, written)

    def save_cookie(self, data: dict[str, Any], data_json: str | None) -> None:
        """Write the session into the cookie itself (cookie mode)."""
        opts = self._opts or self.cfg.options
        plain = self.cfg.plain_cookie if self._opts is None else None
        if plain is not None and data_json is not None and not self.cookie_lines:
            # The default configuration's fast lane (see plaincookie); None: the general way.
            metadata = self.metadata()
            cipher = self.cfg.cipher
            if cipher is None:
                value = codec.encode_payload(data, data_json, metadata)
            else:
                value = cipher.seal_bytes(codec.payload_bytes(data, data_json, metadata))
            lines = plain.lines(value, metadata["_expire"], self.is_secure())
            if lines is not None:
                self.cookie_lines = lines
                return
        elif data_json is not None and opts.encode is None:
            # The commit's snapshot, with the metadata appended, instead of a second encode.
            cipher = self.cfg.cipher
            if cipher is None:
                value = codec.encode_payload(data, data_json, self.metadata())
            else:
                value = cipher.seal_bytes(codec.payload_bytes(data, data_json, self.metadata()))
        else:
            value = self.encode(self.payload(data))
        if opts.compress:
            value = cookiesize.compress_value(value)
        if opts.chunk:
            self.write_chunked(opts.key, value)
        else:
            self.write_cookie(opts.key, value)

    def encode(self, payload: dict[str, Any]) -> str:
        """Serialise a payload for the cookie (see :func:`cookieformat.seal_payload`)."""
        cfg = self.cfg
        encode = None if cfg.cipher is not None else (self._opts or cfg.options).encode
        return cookieformat.seal_payload(payload, cipher=cfg.cipher, encode=encode)

    async def commit_removal(self) -> None:
        """Commit the removal the application asked for (koa's ``ctx.session = null``), once;
        what the application writes to the session afterwards is a new session."""
        if not self.removed:
            await self.remove()
            self.removed = True
            # Compared with what was loaded, data written back after the removal would look
            # unchanged and never be saved: the removal would stand over the application's data.
            self.forget_loaded()
        # No id until a save draws a new one: the destroyed id's entry is gone (a store refuses
        # or resurrects it), and one flush() drew since the removal was never stored.
        self.external_key = None

    async def remove(self) -> None:
        """Destroy the store entry (if any) and expire the cookies."""
        opts = self._opts or self.cfg.options
        key = self.stored_key
        if key and opts.uses_store and self.store is not None:
            try:
                await self.store_call("destroy", self.store.destroy, key, ctx=self.ctx)
            except StoreError:
                if opts.on_store_error == "raise":
                    raise
            else:
                self.stored_key = None
        if opts.external_key is None:
            self.expire_cookie(opts.key)
            if opts.chunk:
                for name in cookiesize.stale_chunk_names(opts.key, self.cookies, 0):
                    self.expire_cookie(name, sign=False)
