"""The everyday verbs and metadata of the engine: flush, reload, skip a save, read times.

``session.flush()`` (Django's ``flush``), ``session.reload()``, ``session.skip_save()`` and the
read-only ``created_at`` / ``accessed_at`` / ``expires_at`` / ``remaining`` of
:class:`~koasession.session.Session` call into this part of
:class:`~koasession.lifecycle.RequestSession`.
"""

from __future__ import annotations

import time
from typing import Any

from .enginestate import EngineState
from .errors import ResponseStartedError


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


class Verbs(EngineState):
    """Flush, reload, skip and the session's times (see the module docstring)."""

    def _check_not_started(self, verb: str) -> None:
        if self.started:
            raise ResponseStartedError(
                f"session.{verb}() after the response headers were sent: call it before responding"
            )

    def _forget_loaded(self) -> None:
        """Drop what was loaded, so the next adopt starts from nothing."""
        self.forget_loaded()
        session = self.session
        session._removed = False
        session._require(False)
        self.slot[self.cfg.options.scope_key] = session

    def flush_now(self) -> None:
        """Cookie mode: expire the cookie and start an empty new session (no I/O)."""
        self._check_not_started("flush")
        if self.opts_view.uses_store:
            raise TypeError(
                "session.flush_sync() is for cookie mode; in store mode use "
                "`await session.flush()`, which destroys the stored entry"
            )
        self.session._load()
        self.remove_cookie_only()
        self._forget_loaded()
        self.adopt(None, None)

    async def flush(self) -> None:
        """Destroy the session (store entry, cookie) and start an empty one with a new id."""
        self._check_not_started("flush")
        self.session._load()
        if not self.opts_view.uses_store:
            self.flush_now()
            return
        await self.remove()
        self._forget_loaded()
        self.stored_key = None
        await self.adopt_new()

    def remove_cookie_only(self) -> None:
        """Expire the session cookie (cookie mode's whole ``remove``)."""
        opts = self.opts_view
        if opts.external_key is None:
            self.expire_cookie(opts.key)

    async def reload(self) -> None:
        """Read the session again as the request sent it, discarding this request's changes."""
        self._check_not_started("reload")
        self._forget_loaded()
        self.stored_key = None
        self.external_key = None
        await self.load_async()

    def reload_now(self) -> None:
        """Cookie mode with a plain ``valid``: :meth:`reload` without awaiting."""
        self._check_not_started("reload")
        if self.cfg.eager:
            raise TypeError(
                "session.reload_sync() reads the request cookie in cookie mode; with a store "
                "(or an async valid()) use `await session.reload()`"
            )
        self._forget_loaded()
        self.load()

    def skip(self) -> None:
        """Write nothing automatically for this request (no save, refresh or removal)."""
        self.skipped = True

    # -- times -----------------------------------------------------------------------------
    def created_ms(self) -> float | None:
        """When the session was created (ms): loaded ``_created``, or now for a new session."""
        self.session._load()
        created = _number(self.loaded_created)
        if created is None and self.prev_json is None:
            # A new session: fix the moment now, so the ``_created`` it saves is this one.
            self.loaded_created = created = float(int(time.time() * 1000))
        return created

    def accessed_ms(self) -> float | None:
        """The loaded ``_accessed`` (ms), recorded with ``idle_timeout``; ``None`` otherwise."""
        self.session._load()
        return _number(self.loaded_accessed)

    def expires_ms(self) -> float | None:
        """When the session expires (ms): loaded ``_expire``, or now plus the lifetime."""
        self.session._load()
        max_age = self.opts_view.max_age
        if isinstance(max_age, str):
            return None
        expire = _number(self.loaded_expire)
        if expire is not None and self.prev_json is not None:
            return expire
        return time.time() * 1000 + max_age * 1000
