"""The responding part of the engine: Set-Cookie lines and the rules of the response."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any

from . import codec, cookieformat, cookies, cookiesize, events
from .cookieformat import COOKIE_LINE_LIMIT
from .errors import (
    CookieTooLargeError,
    StoreError,
)

if TYPE_CHECKING:
    pass


from .enginestate import EngineState


class Responding(EngineState):
    """The responding part of the engine: Set-Cookie lines and the rules of the response."""

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

    def write_chunked(self, name: str, value: str) -> None:
        """Queue ``name=value`` whole when its line fits, else as ``name.1..N`` (``chunk=True``).

        One signature in ``name.sig`` covers every chunk; chunk cookies the browser holds beyond
        the count written are expired.
        """
        expires, seconds = self._lifetime()
        opts = self._opts or self.cfg.options
        secure = cookieformat.resolve_secure(opts.secure, self.is_secure())
        attrs = cookieformat.attributes(opts, secure=secure, expires=expires, max_age=seconds)
        signer = self.signer
        count = 0
        if signer is None or len(name) + len(value) + len(attrs) + 3 < COOKIE_LINE_LIMIT:
            self._queue(name, value, expires, seconds, sign=True)
        else:
            try:
                # One byte under the limit: "each line under 4096 bytes", the strict reading.
                limit = COOKIE_LINE_LIMIT - 1
                parts = cookiesize.chunk_cookies(
                    name, value, signer, attributes_length=len(attrs), limit=limit
                )
            except ValueError as exc:
                if self.cfg.options.on_oversize == "raise":
                    raise CookieTooLargeError(str(exc)) from None
                events.logger.warning("%s; cookie not sent", exc)
                return
            if name in self.cookies:
                self.expire_cookie(name, sign=False)  # the manifest replaces its .sig
            new = [(part, f"{part}={text}; {attrs}") for part, text in parts]
            self.cookie_lines = cookieformat.merge(self.cookie_lines, new, overwrite=True)
            count = len(parts) - 1
        for stale in cookiesize.stale_chunk_names(name, self.cookies, count):
            self.expire_cookie(stale, sign=False)

    def _lifetime(self) -> tuple[Any, Any]:
        max_age = (self._opts or self.cfg.options).max_age
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
        opts = self._opts or self.cfg.options
        secure = cookieformat.resolve_secure(opts.secure, self.is_secure())
        attrs = cookieformat.attributes(opts, secure=secure, expires=expires, max_age=max_age)
        signer = (self.cfg.signer if self._opts is None else self.signer) if sign else None
        new = cookieformat.lines(name, value, attrs, signer, with_value=with_value)
        # Each line is at most name + value (or a signature, under 100 characters) + attributes
        # + 10: only lines that may be near the limit need the exact check.
        near_limit = len(name) + len(value) + len(attrs) + 100 > cookieformat.COOKIE_LINE_LIMIT
        if near_limit and not cookieformat.fits(new, self.cfg.options.on_oversize):
            return
        if self.cookie_lines:
            self.cookie_lines = cookieformat.merge(self.cookie_lines, new, overwrite=opts.overwrite)
        else:
            self.cookie_lines = new

    # -- the response --------------------------------------------------------------------
    def start_response(self, status: int) -> bool | Awaitable[bool]:
        """Commit as the response starts; False when it must become :data:`UNAVAILABLE`.

        Returns an awaitable giving that answer when there is a commit to run, so that a
        request that did not touch its session makes no coroutine. A 5xx response is never
        committed automatically (Django's rule: an error response does not commit the
        half-done work of the request that failed, whoever produced it); a 500 that a
        framework made of a ``StoreError`` from a session call becomes the 503.
        """
        if status >= 500:
            self.started = True
            if status == 500 and self.store_error_raised:
                return False
            self.error_response = True
            return True
        if (
            self.cfg.options.auto_commit
            and not self.skipped
            and self.touched()
            and not self.only_read()  # most requests that use the session only read it
        ):
            return self._commit_at_start()
        self.started = True
        return True

    async def _commit_at_start(self) -> bool:
        # commit() without its entry checks, which start_response has just made (not started,
        # touched, not a websocket): one coroutine less on every saving request.
        try:
            await self._commit(save=False, regenerate=False)
        except StoreError:
            self.store_error_raised = True
            return False
        finally:
            self.started = True
        return True

    def merge_headers(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """``headers`` (the application's response headers) with the session's merged in
        (see :func:`merge_session_headers`)."""
        overwrite = (self._opts or self.cfg.options).overwrite
        return merge_session_headers(
            headers, self.cookie_lines, self.extra_headers, read=self.read, overwrite=overwrite
        )

    def error_headers(self) -> list[tuple[bytes, bytes]] | None:
        """Headers for the 500 an adapter sends when the application raised, or ``None``.

        Only explicit work is in them (a manual save, koa's clearing of a cookie whose custom
        decode failed), with the ``Vary`` and ``Cache-Control`` of any response that sets or
        clears the cookie; ``None`` when there is none, or the response already started.
        """
        if self.started or not (self.clear_on_error or self.cookie_lines or self.extra_headers):
            return None
        self.started = True
        return self.merge_headers([])

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
        if session._writes == self.clean_writes:
            return False  # see note_clean
        try:
            data_json = codec.snapshot(self.json_safe(data))  # the text of prev_json
            prev = self.prev_json  # made now for flat data loaded as a copy (see changes.py)
        except (TypeError, ValueError):
            return True
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

    def finish(self) -> None:
        """After the application returned: report a change that no response could carry."""
        opts = self.cfg.options
        if not (self.websocket or (self.started and not self.error_response)):
            return
        # unsaved_change() is False for an untouched session: no touched() needed first.
        if self.skipped or not (opts.auto_commit and self.unsaved_change()):
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


#: The response headers the merge has a rule for (a tuple: membership compares with ==, so a
#: bytearray name works as it did; a set would need the name hashable).
_RULED = (b"set-cookie", b"cache-control", b"vary")


def merge_session_headers(
    headers: list[tuple[bytes, bytes]],
    queued: Sequence[tuple[str, str]],
    extra: Sequence[tuple[bytes, bytes]],
    *,
    read: bool,
    overwrite: bool,
) -> list[tuple[bytes, bytes]]:
    """``headers`` (the application's response headers) with a session's merged in.

    ``queued`` are the session's Set-Cookie lines as ``(cookie name, line)``, ``extra`` its
    other headers, ``read`` whether the request read the session. The session's lines replace
    the application's for the same names (with ``overwrite``); a response that sets a cookie
    gets ``Cache-Control: private`` unless it has a Cache-Control, and one that read or set the
    session gets ``Vary: Cookie``. ``extra`` (what hooks set with ``ctx.set_header``) is the
    application's too: the same rules apply to it.
    """
    if not (read or queued or extra):
        return headers
    # One pass over the application's headers finds all three names (each lower() once);
    # responses carry a handful of headers, so this beats a scan per rule.
    out: list[tuple[bytes, bytes]] = []
    vary = -1
    has_cache_control = False
    prefixes: tuple[bytes, ...] | None = None
    for header in [*headers, *extra] if extra else headers:
        # One membership test passes the headers none of the rules is about, most of them.
        if (lower := header[0].lower()) in _RULED:
            if lower == b"set-cookie":
                if queued and overwrite:
                    if prefixes is None:
                        prefixes = tuple([f"{name}=".encode("latin-1") for name, _ in queued])
                    if header[1].startswith(prefixes):
                        continue  # replaced by the session's line for the same cookie
            elif lower == b"cache-control":
                has_cache_control = True
            elif vary < 0:
                vary = len(out)
        out.append(header)
    if queued and not has_cache_control:
        out.append((b"cache-control", b"private"))
    if read or queued:
        # A response that sets or clears the session cookie (a logout that never read the
        # session included) must not be served from a shared cache to another browser.
        if vary < 0:
            out.append((b"vary", b"Cookie"))
        else:
            key, value = out[vary]
            tokens = [t.strip().lower() for t in value.split(b",")]
            if b"cookie" not in tokens and b"*" not in tokens:
                out[vary] = (key, value + b", Cookie")
    for _, line in queued:
        out.append((b"set-cookie", line.encode("latin-1")))
    return out
