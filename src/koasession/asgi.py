"""The ASGI adapter: puts the session in ``scope[scope_key]`` and commits at response start."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

from . import events
from .config import SessionConfig
from .errors import ConfigurationError, StoreError
from .lifecycle import RequestSession
from .options import SessionOptions, SessionOptionsDict

if TYPE_CHECKING:
    from typing_extensions import Unpack

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_UNAVAILABLE = b"Session store unavailable"


class SessionMiddleware:
    """koa-session for ASGI apps.

    ``SessionMiddleware(app, keys=[...], **options)``; see the README for every option
    (a misspelt or koa-style option name is a ``TypeError`` naming it). The
    session is ``scope[scope_key]`` (``request.session`` in Starlette and FastAPI). Cookie mode
    loads lazily; store mode loads before the app. The commit runs when the app sends
    ``http.response.start``, so streamed responses carry the cookie. A 5xx response is never
    committed automatically and an exception that escapes the app leaves nothing written; a
    ``StoreError`` from a session call in the app answers 503 like a failed load.
    """

    def __init__(
        self,
        app: ASGIApp,
        keys: Sequence[str | bytes] | None = None,
        **options: Unpack[SessionOptionsDict],
    ) -> None:
        self.app = app
        try:
            self.config = SessionConfig.build(keys, **options)
        except ConfigurationError as exc:
            # Starlette's add_middleware builds this inside the first lifespan or request, where
            # a server may report only "lifespan unsupported" and then a 500 for every request:
            # the reason must show in the start-up output.
            events.logger.error("koasession: invalid SessionMiddleware configuration: %s", exc)
            raise
        _offer_store_timeout(self.config)

    @property
    def options(self) -> SessionOptions:
        """The validated :class:`~koasession.options.SessionOptions`."""
        return self.config.options

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            if kind == "lifespan":
                await self._lifespan(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        cfg = self.config
        rs = RequestSession(cfg, scope)  # type: ignore[arg-type]
        scope[cfg.options.scope_key] = rs.session
        if cfg.eager:
            try:
                await rs.load_async()
            except StoreError:
                await events.settle(rs.pending_events)
                if kind == "http":
                    await _send_unavailable(send)
                    return
                raise
        if kind == "websocket":
            await self._websocket(rs, scope, receive, send)
            return

        replaced = False  # our 503 went out instead of the app's reply
        error_response = False  # a 5xx: nothing is committed automatically

        async def send_with_session(message: Message) -> None:
            nonlocal replaced, error_response
            if replaced:
                return
            if message["type"] == "http.response.start":
                status = message.get("status", 200)
                if status >= 500:
                    if status == 500 and rs.store_error_raised:
                        # A framework turned the StoreError of a session call into its 500 page
                        # inside us; answer the outage as a failed load or commit does.
                        replaced = True
                        rs.started = True
                        await _send_unavailable(send)
                        return
                    # Django's rule: an error response never commits the half-done work of
                    # the request that failed, whoever produced it.
                    error_response = True
                elif cfg.options.auto_commit and rs.touched():
                    try:
                        await rs.commit()
                    except StoreError:
                        replaced = True
                        rs.started = True
                        await _send_unavailable(send)
                        return
                rs.started = True
                if rs.read or rs.cookie_lines or rs.extra_headers:
                    _add_headers(rs, message)
            await send(message)

        try:
            await self.app(scope, receive, send_with_session)
        except StoreError:
            # From save(), regenerate(), destroy() or manually_commit() in the handler: the same
            # outage as a failed load, so the same 503 (the store_error event is already out).
            if replaced:
                return
            if rs.started:
                raise
            rs.started = True
            await _send_unavailable(send)
        except Exception:
            if not rs.started and (rs.clear_on_error or rs.cookie_lines or rs.extra_headers):
                # Only explicit work is in these headers (a manual save, koa's clearing of a
                # cookie whose custom decode failed): it goes out with the error response.
                rs.started = True
                await _send_error(send, 500, b"Internal Server Error", rs.response_headers())
            raise
        else:
            if (
                rs.started
                and not (replaced or error_response)
                and cfg.options.auto_commit
                and rs.touched()
                and rs.unsaved_change()
            ):
                rs.report_lost(
                    "changed after the response started",
                    "the session changed after the response started (while streaming, or in a "
                    "background task), so the change could not be sent; change it, or call "
                    "`await session.save()`, before the response starts",
                )
        finally:
            if rs.pending_events:
                await events.settle(rs.pending_events)

    async def _websocket(
        self, rs: RequestSession, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Run a WebSocket: the session can be read; there is no response to carry a cookie."""
        try:
            await self.app(scope, receive, send)
            if self.config.options.auto_commit and rs.touched() and rs.unsaved_change():
                if self.config.options.uses_store:
                    rs.report_lost(
                        "websocket changes not saved",
                        "the session changed on a WebSocket without `await session.save()`; "
                        "WebSocket sessions are not committed automatically",
                    )
                else:
                    rs.report_lost(
                        "websocket in cookie mode",
                        "the session changed on a WebSocket in cookie mode, where no response "
                        "can carry the cookie; use a store to save sessions from WebSockets",
                    )
        finally:
            if rs.pending_events:
                await events.settle(rs.pending_events)

    # -- lifespan ------------------------------------------------------------------------------

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the lifespan protocol through to the app; close the stores at shutdown.

        The app sees startup and shutdown as usual and answers them itself; the stores are
        closed once its shutdown has completed (or failed). An app that does not speak the
        protocol (it raises or returns without answering, as a plain ASGI app does) is treated
        as uvicorn treats it in "auto" mode: startup and shutdown are completed here.
        """
        seen: list[str] = []  # the lifespan messages the app received, in order
        answered: list[str] = []  # the answers the app sent

        async def app_receive() -> Message:
            message = await receive()
            seen.append(message["type"])
            return message

        async def app_send(message: Message) -> None:
            kind = message["type"]
            if kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await self.close()
            answered.append(kind)
            await send(message)

        error: Exception | None = None
        try:
            await self.app(scope, app_receive, app_send)
        except Exception as exc:
            error = exc
        if any(a.startswith("lifespan.shutdown.") for a in answered):
            pass  # the app finished the protocol; app_send closed the stores
        elif "lifespan.startup.failed" in answered:
            await self.close()  # the server stops here
        elif error is not None and "lifespan.shutdown" in seen:
            # The app's own shutdown crashed without answering: report it, as Starlette does.
            await self.close()
            await send({"type": "lifespan.shutdown.failed", "message": repr(error)})
        else:
            if not answered:
                events.logger.info(
                    "the app does not handle the ASGI lifespan protocol (%r); the session "
                    "middleware completes startup and shutdown itself",
                    error or "it returned",
                )
            elif error is not None:
                events.logger.error("the app's lifespan task failed", exc_info=error)
            error = None
            await self._finish_lifespan(receive, send, seen, answered)
        if error is not None:
            raise error

    async def _finish_lifespan(
        self, receive: Receive, send: Send, seen: list[str], answered: list[str]
    ) -> None:
        """Answer what the app left unanswered: startup, then shutdown after closing."""
        if "lifespan.startup.complete" not in answered:
            if "lifespan.startup" not in seen:
                await receive()
            await send({"type": "lifespan.startup.complete"})
        if "lifespan.shutdown" not in seen:
            while (await receive())["type"] != "lifespan.shutdown":
                pass
        await self.close()
        await send({"type": "lifespan.shutdown.complete"})

    async def close(self) -> None:
        """Close the stores this middleware uses: ``store`` and the ``context_store`` instances
        it made that are still alive, where they have a ``close()`` (sync or async).

        Runs at the ASGI lifespan shutdown; call it yourself when the server does not send
        lifespan events. A failure to close one store is logged and does not stop the others.
        """
        stores = [self.config.options.store, *self.config.context_store_instances()]
        for store in stores:
            close = getattr(store, "close", None)
            if store is None or not callable(close):
                continue
            try:
                result = close()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                events.logger.exception("closing the session store %r failed", store)


def _offer_store_timeout(cfg: SessionConfig) -> None:
    """Tell the store the middleware's ``store_timeout`` if it wants to bound its own driver
    timeouts by it (the optional ``use_store_timeout`` of :mod:`koasession.stores.base`)."""
    hook = getattr(cfg.options.store, "use_store_timeout", None)
    if cfg.store_timeout and callable(hook):
        hook(cfg.store_timeout)


def _add_headers(rs: RequestSession, message: Message) -> None:
    """Merge the session's headers into the response start message."""
    extra = rs.response_headers()
    headers: list[tuple[bytes, bytes]] = list(message.get("headers") or ())
    if rs.cookie_lines:
        if rs.opts_view.overwrite and any(k.lower() == b"set-cookie" for k, _ in headers):
            # One Set-Cookie per name: ours replace any the app wrote for the same names.
            prefixes = tuple(f"{name}=".encode("latin-1") for name, _ in rs.cookie_lines)
            headers = [
                (k, v)
                for k, v in headers
                if not (k.lower() == b"set-cookie" and v.startswith(prefixes))
            ]
        if not any(k.lower() == b"cache-control" for k, _ in headers):
            headers.append((b"cache-control", b"private"))
    if rs.read or rs.cookie_lines:
        # A response that sets or clears the session cookie (a logout that never read the
        # session included) must not be served from a shared cache to another browser.
        _add_vary_cookie(headers)
    headers.extend(extra)
    message["headers"] = headers


def _add_vary_cookie(headers: list[tuple[bytes, bytes]]) -> None:
    for index, (key, value) in enumerate(headers):
        if key.lower() == b"vary":
            tokens = [t.strip().lower() for t in value.split(b",")]
            if b"cookie" not in tokens and b"*" not in tokens:
                headers[index] = (key, value + b", Cookie")
            return
    headers.append((b"vary", b"Cookie"))


async def _send_unavailable(send: Send) -> None:
    await _send_error(send, 503, _UNAVAILABLE, [(b"retry-after", b"5")])


async def _send_error(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    start_headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        *headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": start_headers})
    await send({"type": "http.response.body", "body": body})
