"""Flask with koasession: Flask's ``session`` stays Flask's; ``koasession_session()`` is ours.

Run: ``flask --app examples.flask_app run`` (set ``KOASESSION_KEY``, e.g. to the output of
``koasession keygen``). The same app in store mode: ``init_app(app, KEYS, store=RedisStore())``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request

from koasession import keys_from_env_or_random
from koasession.flask import init_app, koasession_session, run

# Without KOASESSION_KEY: a random key per start and a warning (sessions end at restart).
KEYS = keys_from_env_or_random(program=__name__)

app = Flask(__name__)


@app.get("/")
def home() -> dict[str, Any]:
    """Count this browser's views."""
    session = koasession_session()
    views = session.get("views", 0) + 1
    session["views"] = views
    return {"views": views, "user": session.get("user")}


@app.post("/login")
def login() -> dict[str, Any]:
    """Log in: a new session id for the same data (no session fixation), plus the user."""
    body = request.get_json(silent=True) or {}
    user = str(body.get("user", "anonymous"))
    session = koasession_session()
    session["user"] = user
    if body.get("remember"):
        session.max_age = 30 * 86400  # "remember me": this session lives 30 days
    run(session.regenerate())  # the session's methods are coroutines; run() drives them
    return {"user": user}


@app.post("/logout")
def logout() -> dict[str, Any]:
    """Log out: the session is removed at commit (koa's ``ctx.session = null``)."""
    koasession_session().destroy()
    return {"user": None}


# Wraps app.wsgi_app in koasession.wsgi.SessionMiddleware.
middleware = init_app(app, KEYS)
