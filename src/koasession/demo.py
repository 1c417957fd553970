"""The demo app behind ``make demo``: a views counter, log in and out, the session shown.

Its forms carry a CSRF token (``CSRFMiddleware`` refuses a POST without it) and a login leaves a
flash message for the next page. In store mode a logged-in user gets a "your sessions" page
(``/sessions``): every session of that user with its device (user agent and a coarse IP prefix,
recorded at login), when it started and was last seen; each can be ended there, or all but this
one.

Run ``koasession demo [--store URL] [--port 3000] [--keys KEY]``. Cookie mode needs no server;
``--store`` takes ``memory://``, ``redis://...``, ``postgresql://...``, ``mysql://...``,
``sqlite://`` (a file in the user's cache directory) or ``sqlite:///path``. Keys come from
``--keys`` or ``KOASESSION_KEY``; without either, a random key per start (every session ends
at a restart).

The demo keeps to itself on shared servers: Redis keys start with ``koasession-demo:`` and the
PostgreSQL or MySQL table is ``koasession_demo_sessions``.
"""

from __future__ import annotations

import argparse
import errno
import html
import json
import os
import secrets
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from .asgi import Message, Receive, Scope, Send, SessionMiddleware
from .csrf import CSRF_SESSION_KEY, CSRFMiddleware, csrf_token
from .devices import DevicePolicy
from .diagnose import format_duration
from .envkeys import KEY_ENV, keys_from_env_or_random
from .flash import flash, pop_flashes
from .options import validate_keys

#: Where the demo's entries live on shared servers, apart from real applications'.
REDIS_PREFIX = "koasession-demo:"
SQL_TABLE = "koasession_demo_sessions"

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>koasession demo</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;color:#222}}
pre{{background:#f4f4f4;padding:.75rem;overflow:auto}} form{{display:inline-block;margin:.25rem 0}}
button{{padding:.3rem .8rem}} .muted{{color:#666}}
.flash{{padding:.5rem .75rem;background:#e8f5e9;border-left:4px solid #43a047}}
</style></head><body>
<h1>koasession demo</h1>
{flashes}<p class="muted">Mode: <b id="mode">{mode}</b></p>
{id_block}<p>Created: <b id="created">{created}</b>; expires: <b id="expires">{expires}</b>
<span class="muted">(<code>session.created_at</code>, <code>session.remaining</code>)</span></p>
<form method="post" action="/flush">{flush_csrf}<button id="flush">Start over</button></form>
<span class="muted">(<code>await session.flush()</code>: a new, empty session)</span>
<p>You have viewed this page <b id="views">{views}</b> time(s).</p>
{user_block}
<h2>Decoded session</h2>
<pre id="session">{session}</pre>
<p class="muted">Not shown: the CSRF secret ({csrf_key!r}) the forms' tokens are made from.</p>
<p>Session cookie size: <b id="cookie-size">{cookie_size}</b> bytes
<span class="muted">(as your browser sent it on this request)</span></p>
</body></html>
"""

_CSRF_INPUT = '<input type="hidden" name="csrf_token" value="{token}">'

_LOGIN = """<form method="post" action="/login">{csrf}
<label>Name <input name="user" id="user" required maxlength="64"></label>
<label><input type="checkbox" name="remember" id="remember" value="1"> Remember me (30 days)</label>
<button id="login">Log in</button></form>"""

_LOGGED_IN = """<p>Logged in as <b id="who">{user}</b>{remember}.</p>
<form method="post" action="/logout">{csrf}<button id="logout">Log out</button></form>
{everywhere}"""

_EVERYWHERE = """<form method="post" action="/logout-everywhere">{csrf}
<button id="logout-everywhere">Log out everywhere</button></form>
<p><a href="/sessions" id="your-sessions">Your sessions</a></p>"""

_SESSIONS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Your sessions - koasession demo</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}}
table{{border-collapse:collapse;width:100%}} td,th{{text-align:left;padding:.35rem;
border-bottom:1px solid #ddd;vertical-align:top}} .muted{{color:#666}}
.flash{{padding:.5rem .75rem;background:#e8f5e9;border-left:4px solid #43a047}}
</style></head><body>
<h1>Where you are signed in</h1>
{flashes}<p>Sessions of <b id="who">{user}</b>: <b id="count">{count}</b></p>
<table id="sessions"><tr><th>Device</th><th>IP prefix</th><th>Signed in</th><th>Last seen</th>
<th>Expires</th><th></th></tr>
{rows}</table>
<form method="post" action="/sessions/others">{csrf}
<button id="revoke-others">Log out all other sessions</button></form>
<p class="muted">Device facts are recorded at login: the browser's user agent and a coarse
network prefix of its address, never the full address.</p>
<p><a href="/">Back</a></p>
</body></html>
"""

_SESSION_ROW = """<tr class="session" data-handle="{handle}"><td class="device">{device}</td>
<td class="ip">{ip}</td><td>{created}</td><td>{seen}</td><td>{expires}</td><td>{action}</td></tr>
"""

_REVOKE = """<form method="post" action="/sessions/revoke">{csrf}
<input type="hidden" name="handle" value="{handle}"><button class="revoke">End</button></form>"""

# The demo shows a coarse network prefix so the page has something to show; the library's default
# records no address at all.
DEVICE_POLICY = DevicePolicy(ip="prefix")

REMEMBER_ME = 30 * 86400


def build_app(store: Any = None, keys: Sequence[str] | None = None) -> SessionMiddleware:
    """The demo ASGI app wrapped in :class:`SessionMiddleware`."""
    keys = list(keys or [secrets.token_urlsafe(32)])

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        session = scope["session"]
        method, path = scope["method"], scope["path"]
        if method == "POST":
            form = await _read_form(receive)
            if path == "/login" and form.get("user"):
                session["user"] = form["user"][:64]
                flash(session, f"Welcome, {session['user']}!", "success")
                if form.get("remember"):
                    session.max_age = REMEMBER_ME
                    session["remember"] = True
                await session.regenerate()  # a new id at login defeats session fixation
            elif path.startswith("/sessions/") and session.get("user") and _owned(store):
                await _manage_sessions(store, session, path, form)
                await _send(send, 303, b"", [(b"location", b"/sessions")])
                return
            elif path == "/logout":
                session.destroy()
            elif path == "/flush":
                await session.flush()  # Django's flush: the old session ends, a new id follows
            elif path == "/logout-everywhere" and session.get("user"):
                destroy_owner = getattr(store, "destroy_owner", None)
                if destroy_owner is not None:
                    await destroy_owner(session["user"])
                session.destroy()
            await _send(send, 303, b"", [(b"location", b"/")])
            return
        if path == "/sessions" and _owned(store):
            if not session.get("user"):
                await _send(send, 303, b"", [(b"location", b"/")])
                return
            page = await _sessions_page(store, session)
            await _send(send, 200, page.encode(), [(b"content-type", b"text/html; charset=utf-8")])
            return
        if path != "/":
            await _send(send, 404, b"not found", [(b"content-type", b"text/plain")])
            return
        session["views"] = session.get("views", 0) + 1
        shown_flashes = "".join(
            f'<p class="flash" id="flash-{html.escape(f.category)}">'
            f"{html.escape(str(f.message))}</p>\n"
            for f in pop_flashes(session)
        )
        user = session.get("user")
        # Tokens are made before the save below, so a new session's CSRF secret is saved too.
        user_block = (
            _LOGGED_IN.format(
                user=html.escape(user),
                remember=" (remembered)" if session.get("remember") else "",
                csrf=_csrf_input(session),
                everywhere=_EVERYWHERE.format(csrf=_csrf_input(session)) if _owned(store) else "",
            )
            if user
            else _LOGIN.format(csrf=_csrf_input(session))
        )
        # Saved now rather than at the response's start, so the page can show the id the store
        # gave it; the middleware does not write it twice.
        await session.save()
        # The secret stays out of the page: tokens are masked so no body repeats it (BREACH).
        shown = {k: v for k, v in session.to_json().items() if k != CSRF_SESSION_KEY}
        page = _PAGE.format(
            mode=html.escape(
                f"store: {type(store).__name__}" if store is not None else "signed cookie"
            ),
            views=session["views"],
            id_block=_id_block(session.external_key) if store is not None else "",
            expires=html.escape(_expiry(session.remaining, store is not None)),
            created=html.escape(_when(_timestamp(session.created_at))),
            flush_csrf=_csrf_input(session),
            user_block=user_block,
            session=html.escape(json.dumps(shown, indent=2)),
            csrf_key=CSRF_SESSION_KEY,
            flashes=shown_flashes,
            cookie_size=_cookie_size(scope),
        )
        await _send(send, 200, page.encode(), [(b"content-type", b"text/html; charset=utf-8")])

    # The middleware records each login's device (and refreshes last_seen on saves).
    policy = DEVICE_POLICY if _owned(store) else None
    return SessionMiddleware(CSRFMiddleware(app), keys=keys, store=store, device_policy=policy)


def _owned(store: Any) -> bool:
    """Whether ``store`` keeps a per-owner index (the demo's stores do: owner = the user)."""
    return getattr(store, "owner", None) is not None


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "\u2013"
    return f"{datetime.fromtimestamp(timestamp, tz=timezone.utc):%Y-%m-%d %H:%M} UTC"


async def _manage_sessions(store: Any, session: Any, path: str, form: dict[str, str]) -> None:
    """End one session of the logged-in user (by handle), or all but the current one."""
    user = session["user"]
    if path == "/sessions/revoke":
        ended = await store.revoke(user, form.get("handle", ""))
        flash(session, "Session ended." if ended else "No such session.", "success")
    elif path == "/sessions/others":
        count = await store.destroy_owner(user, keep=session.external_key)
        flash(session, f"Logged out {count} other session(s).", "success")


async def _sessions_page(store: Any, session: Any) -> str:
    """The "your sessions" page: the user's sessions, this one marked, the others revocable."""
    user = session["user"]
    csrf = _csrf_input(session)
    flashes = "".join(
        f'<p class="flash" id="flash-{html.escape(f.category)}">{html.escape(str(f.message))}</p>\n'
        for f in pop_flashes(session)
    )
    # Saved first, so the page lists this session with its latest last_seen; the middleware does
    # not write it twice.
    await session.save()
    entries = await store.list_owner(user, current=session.external_key)
    entries.sort(key=lambda e: (not e.is_current, -(e.created_at or 0)))
    rows = []
    for entry in entries:
        device = entry.device or {}
        action = (
            '<b class="current">This session</b>'
            if entry.is_current
            else _REVOKE.format(csrf=csrf, handle=html.escape(entry.handle))
        )
        rows.append(
            _SESSION_ROW.format(
                handle=html.escape(entry.handle),
                device=html.escape(device.get("user_agent", "unknown device")),
                ip=html.escape(device.get("ip", "\u2013")),
                created=_when(entry.created_at),
                seen=_when(entry.last_seen),
                expires=_when(entry.expires_at),
                action=action,
            )
        )
    return _SESSIONS_PAGE.format(
        flashes=flashes,
        user=html.escape(user),
        count=len(entries),
        rows="".join(rows),
        csrf=csrf,
    )


def _csrf_input(session: Any) -> str:
    return _CSRF_INPUT.format(token=csrf_token(session))


def _id_block(session_id: str | None) -> str:
    # Shortened: the whole id is a credential, and the page may end up in a screenshot.
    shown = "(none)" if session_id is None else session_id[:8] + "\u2026"
    return f'<p>Session id: <code id="sid">{html.escape(shown)}</code></p>\n'


def _timestamp(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _expiry(max_age: float | str | None, in_store: bool) -> str:
    if max_age is None or max_age == "session":
        where = " (the store keeps it 1 day)" if in_store else ""
        return "when the browser closes" + where
    assert not isinstance(max_age, str)
    at = datetime.fromtimestamp(time.time() + max_age, tz=timezone.utc)
    # To the minute: the time left is read a moment after the save (86399.9 s is "1 day").
    return f"{at:%Y-%m-%d %H:%M} UTC (in {format_duration(round(max_age / 60) * 60)})"


def _cookie_size(scope: Scope) -> int:
    return sum(len(v) for k, v in scope.get("headers", ()) if k == b"cookie")


async def _read_form(receive: Receive) -> dict[str, str]:
    body = b""
    more = True
    while more and len(body) < 65536:
        message: Message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def default_sqlite_path() -> Path:
    """The demo's SQLite file when ``--store sqlite://`` names none: in the user's cache."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    directory = Path(cache) / "koasession"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        directory = Path(tempfile.gettempdir())
    return directory / "demo.db"


def make_store(url: str) -> Any:
    """The demo's store for ``url``, kept apart from other users of the same server."""
    from .stores import store_from_url

    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    options: dict[str, Any] = {"owner": lambda data: data.get("user")}
    if scheme.startswith(("redis", "rediss", "unix")):
        options["key_prefix"] = REDIS_PREFIX
    elif scheme in ("postgres", "postgresql", "mysql", "mariadb"):
        options["table"] = SQL_TABLE
    elif scheme == "sqlite" and rest.strip("/") == "":
        url = f"sqlite:///{default_sqlite_path()}"
    return store_from_url(url, **options)


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket, bound before uvicorn starts so a taken port is our error to report."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the demo with uvicorn; returns the exit status."""
    parser = argparse.ArgumentParser(prog="koasession demo", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument(
        "--store",
        help="memory://, redis://..., postgresql://..., mysql://..., sqlite:// or sqlite:///path",
    )
    parser.add_argument(
        "--keys",
        action="append",
        metavar="KEY",
        help=f"app key, repeatable, the first signing (default: ${KEY_ENV})",
    )
    args = parser.parse_args(argv)
    try:
        import uvicorn
    except ImportError:
        print(
            "koasession demo: error: the demo needs uvicorn: pip install 'koasession[demo]'",
            file=sys.stderr,
        )
        return 1
    keys = [k for value in args.keys or () for k in value.split()]
    if not keys:
        keys = keys_from_env_or_random(program="koasession demo")
    # Refuse weak keys before anything listens, once: the command line reports the error, so the
    # middleware's own ERROR log line (meant for lazily built stacks) would only repeat it.
    validate_keys(keys, required=True, allow_weak=False)
    store = make_store(args.store) if args.store else None
    app = build_app(store, keys=keys)
    try:
        sock = _listen(args.host, args.port)
    except OSError as exc:
        reason = "the port is already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        print(
            f"koasession demo: error: cannot listen on {args.host}:{args.port}: {reason} "
            f"(choose another with --port)",
            file=sys.stderr,
        )
        return 1
    print(f"koasession demo on http://{args.host}:{args.port}/", flush=True)
    config = uvicorn.Config(app, log_level="warning")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
