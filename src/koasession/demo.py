"""The demo app behind ``make demo``: a views counter, log in and out, the session shown.

Run ``python -m koasession.demo [--store URL] [--port 3000]``. Cookie mode needs no server;
``--store`` takes ``memory://``, ``redis://...``, ``postgresql://...`` or ``sqlite:///path``.
"""

from __future__ import annotations

import argparse
import html
import json
import secrets
import sys
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs

from .asgi import Message, Receive, Scope, Send, SessionMiddleware

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>koasession demo</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;color:#222}}
pre{{background:#f4f4f4;padding:.75rem;overflow:auto}} form{{display:inline-block;margin:.25rem 0}}
button{{padding:.3rem .8rem}} .muted{{color:#666}}
</style></head><body>
<h1>koasession demo</h1>
<p class="muted">Mode: <b id="mode">{mode}</b></p>
<p>You have viewed this page <b id="views">{views}</b> time(s).</p>
{user_block}
<h2>Decoded session</h2>
<pre id="session">{session}</pre>
<p>Session cookie size: <b id="cookie-size">{cookie_size}</b> bytes
<span class="muted">(as your browser sent it on this request)</span></p>
</body></html>
"""

_LOGIN = """<form method="post" action="/login">
<label>Name <input name="user" id="user" required maxlength="64"></label>
<label><input type="checkbox" name="remember" id="remember" value="1"> Remember me (30 days)</label>
<button id="login">Log in</button></form>"""

_LOGGED_IN = """<p>Logged in as <b id="who">{user}</b>{remember}.</p>
<form method="post" action="/logout"><button id="logout">Log out</button></form>
{everywhere}"""

_EVERYWHERE = """<form method="post" action="/logout-everywhere">
<button id="logout-everywhere">Log out everywhere</button></form>"""

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
                if form.get("remember"):
                    session.max_age = REMEMBER_ME
                    session["remember"] = True
                await session.regenerate()  # a new id at login defeats session fixation
            elif path == "/logout":
                session.destroy()
            elif path == "/logout-everywhere" and session.get("user"):
                destroy_owner = getattr(store, "destroy_owner", None)
                if destroy_owner is not None:
                    await destroy_owner(session["user"])
                session.destroy()
            await _send(send, 303, b"", [(b"location", b"/")])
            return
        if path != "/":
            await _send(send, 404, b"not found", [(b"content-type", b"text/plain")])
            return
        session["views"] = session.get("views", 0) + 1
        user = session.get("user")
        everywhere = _EVERYWHERE if getattr(store, "owner", None) is not None else ""
        user_block = (
            _LOGGED_IN.format(
                user=html.escape(user),
                remember=" (remembered)" if session.get("remember") else "",
                everywhere=everywhere,
            )
            if user
            else _LOGIN
        )
        page = _PAGE.format(
            mode=html.escape(
                f"store: {type(store).__name__}" if store is not None else "signed cookie"
            ),
            views=session["views"],
            user_block=user_block,
            session=html.escape(json.dumps(session.to_json(), indent=2)),
            cookie_size=_cookie_size(scope),
        )
        await _send(send, 200, page.encode(), [(b"content-type", b"text/html; charset=utf-8")])

    return SessionMiddleware(app, keys=keys, store=store)


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


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the demo with uvicorn."""
    parser = argparse.ArgumentParser(prog="koasession demo", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--store", help="memory://, redis://..., postgresql://..., sqlite:///path")
    args = parser.parse_args(argv)
    try:
        import uvicorn
    except ImportError:
        print("the demo needs uvicorn: pip install 'koasession[demo]'", file=sys.stderr)
        return 1
    store = None
    if args.store:
        from .stores import store_from_url

        store = store_from_url(args.store, owner=lambda data: data.get("user"))
    print(f"koasession demo on http://{args.host}:{args.port}/", flush=True)
    uvicorn.run(build_app(store), host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
