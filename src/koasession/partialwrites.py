"""Store writes that change part of a stored value: ``touch`` refreshes and ``merge`` saves.

Part of the engine (see :mod:`koasession.lifecycle`), used by the commit: a refresh whose only
reason is rolling, renew or idle activity extends the entry without rewriting the data this
request loaded, and ``merge=True`` sends only the keys this request changed or deleted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import decisions, merging, storeio
from .enginestate import EngineState, _resolve
from .errors import ConfigurationError, StoreError

#: The metadata ``touch`` sets inside the stored value.
_TOUCHED = ("_expire", "_maxAge", "_accessed")


class PartialWrites(EngineState):
    """``touch`` and ``merge`` writes, and what follows any store write."""

    if TYPE_CHECKING:
        # Implemented by Committing.
        def metadata(self) -> dict[str, Any]: ...

    async def refresh(self) -> bool:
        """Extend the loaded store entry with the store's ``touch``, leaving its data as stored
        (see :class:`~koasession.protocols.TouchableStore`); ``False`` when only a full save
        can do it (no ``touch``, a new id, or metadata that ``touch`` does not set)."""
        opts = self.opts_view
        touch = getattr(self.store, "touch", None) if opts.uses_store else None
        key = self.external_key
        if touch is None or key is None or key != self.loaded_key or key != self.stored_key:
            return False
        meta = self.metadata()
        if ("_expire" in meta) != (self.loaded_expire is not None) or (
            "_created" in meta and self.loaded_created is None
        ):
            return False  # the lifetime kind changed, or a timeout was switched on
        fields = {name: meta[name] for name in _TOUCHED if name in meta}
        ttl = decisions.store_ttl(opts.max_age, opts.session_store_ttl)
        try:
            written = await self.store_call("touch", touch, key, ttl, fields=fields, ctx=self.ctx)
        except StoreError:
            if opts.on_store_error == "raise":
                raise
            return True  # as a failed save: the cookie keeps pointing at the stored entry
        if written is None:
            return False  # the store cannot touch this entry: save it in full
        await self._written(key, written)
        return True

    async def merge(self, data_json: str) -> bool:
        """Save only the keys this request changed or deleted, merged into the stored value by
        the store's ``merge`` (``merge=True``); ``False`` when only a full save can do it (a
        session not loaded from the store, or a store that declines this value)."""
        key = self.external_key
        prev_json = self.prev_json
        if key is None or prev_json is None or key != self.loaded_key or key != self.stored_key:
            return False
        merge = getattr(self.store, "merge", None)
        if merge is None:
            raise ConfigurationError(
                f"merge=True needs a store with a merge() method; {self.store!r} has none"
            )
        opts = self.opts_view
        changed, deleted = merging.diff(prev_json, data_json, self.metadata())
        ttl = decisions.store_ttl(opts.max_age, opts.session_store_ttl)
        try:
            written = await self.store_call(
                "merge", merge, key, changed, deleted, ttl, ctx=self.ctx
            )
        except StoreError:
            if opts.on_store_error == "raise":
                raise
            return True  # as a failed save: the cookie keeps pointing at the stored entry
        if written is None:
            return False
        await self._written(key, written)
        return True

    async def _written(self, key: str, written: Any) -> None:
        """After a store write under ``key``: point the cookie at it, unless it vanished."""
        opts = self.opts_view
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
