"""Values from another format or mode: sealed store values, cross-mode cookies, migrations.

Part of the engine (see :mod:`koasession.lifecycle`): what loading does when the cookie or the
stored value was not written the way this middleware writes it today, including the verdict on
a cookie value that does not open (:meth:`Migrating.decode`).
"""

from __future__ import annotations

from typing import Any

from . import atrest, cookieformat, fallbacks
from .enginestate import EngineState


class Migrating(EngineState):
    """Open sealed store values, recognise cookies of the other mode, adopt old formats."""

    def decode(self, value: str) -> dict[str, Any] | None:
        """Turn a cookie value into a payload, or emit ``invalid`` and return ``None``."""
        cfg = self.cfg
        decode = None if cfg.cipher is not None else (self._opts or cfg.options).decode
        try:
            data, rotated, problem = cookieformat.open_payload(
                value, cipher=cfg.cipher, decode=decode
            )
        except Exception:
            if decode is None:
                raise
            # koa: any other error from a custom decode clears the cookie, so the next request
            # recovers.
            self.expire_cookie(cfg.options.key)
            self.clear_on_error = True
            raise
        if problem is None:
            if rotated:
                self.emit("rotated", None, data, reason="encrypted with an older key")
                # Re-seal under the first key now, so the old key can be retired safely.
                self.session._require()
            payload: dict[str, Any] = data
            return payload
        if problem == cookieformat.EMPTY:
            # koa's valid() reports a falsy payload (null, 0, false, "") as missed.
            self.emit("missed", None, data, reason=problem)
        elif problem == cookieformat.TOO_DEEP:
            self.emit("invalid", None, value, reason=problem)
        elif decode is None and self._is_store_id_cookie(value):
            self.cross_mode(value, "cookie from store mode")
        elif problem == cookieformat.CANNOT_DECRYPT:
            self.emit("tampered", None, value, reason=problem)
        else:
            self.emit("invalid", None, value, reason=problem)
        return None

    def unseal(self, stored: dict[str, Any], key: str) -> tuple[dict[str, Any] | None, bool]:
        """Open a value sealed at rest (``encrypt=True`` in store mode); ``None`` if it fails.

        Returns the payload and whether an older key sealed it.
        """
        cipher = self.cfg.store_cipher
        assert cipher is not None
        data, rotated, problem = atrest.open_value(cipher, stored, atrest.bound_id(self.store, key))
        if problem is not None:
            self.emit("invalid", key, None, reason=problem)
        return data, rotated

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

    def adopt_fallback(self) -> bool:
        """Adopt a session from an old-format cookie (``fallback=``); False when none reads.

        The session is re-issued in the current format on this response (a forced save), the
        old cookies are expired, and ``migrated`` is emitted with the reader's ``source``.
        """
        opts = self.cfg.options
        if not opts.fallback:
            return False
        result = fallbacks.read_fallback(opts.fallback, self.cookies)
        if result is None:
            return False
        data = dict(result.data)
        if opts.serializer is not None:
            try:
                data = opts.serializer.from_json_safe(data)
            except ValueError as exc:
                self.emit("invalid", None, None, reason=f"serializer refused the data: {exc}")
                return False
        self.adopt(data, None)
        self.prev_json = None  # the current format has never held this session
        self.clean_writes = -1
        self.session._require()
        # Cookies this response writes anyway (the old format may share our cookie name) are
        # left to that write: expiring them as well would race it in the browser.
        ours = {opts.key, opts.key + ".sig"}
        for name in result.remove:
            if name not in ours:
                self.expire_cookie(name, sign=False)
        self.emit("migrated", None, dict(data), source=result.source)
        return True
