"""The WSGI adapter answers the same with the plain engine as with the general one.

tests/core/test_plainrequest.py compares the two engines through the ASGI adapter; this runs a
smaller set of handlers through koasession.wsgi, whose start_response and body iterator reach
the engine their own way (a change while the body is iterated is after the response started).
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from werkzeug.test import Client

from koasession import Session, plainrequest
from koasession.plainrequest import PlainRequest
from koasession.wsgi import SessionMiddleware, run

KEY = "t7Qx2bKzVnW9pLr4MmYc8dHs3JgE6aUo1fNiR5vZkXw"
FUTURE = int(time.time() * 1000) + 86_400_000


def signed_cookie(payload: dict[str, Any]) -> str:
    value = base64.b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()
    digest = hmac.new(KEY.encode(), f"koa.sess={value}".encode(), "sha256").digest()
    signature = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return f"koa.sess={value}; koa.sess.sig={signature}"


Environ = dict[str, Any]
StartResponse = Callable[..., Any]
Handler = Callable[[Session], Iterator[bytes]]


def _respond(session: Session) -> Iterator[bytes]:
    yield repr(sorted(session.to_json().items())).encode()


def read(session: Session) -> Iterator[bytes]:
    session.get("views")
    return _respond(session)


def counter(session: Session) -> Iterator[bytes]:
    session["views"] = (session.get("views") or 0) + 1
    return _respond(session)


def nested_in_place(session: Session) -> Iterator[bytes]:
    session.setdefault("cart", []).append(1)
    return _respond(session)


def late_change(session: Session) -> Iterator[bytes]:
    session.get("views")
    yield b"first chunk"
    session["late"] = True  # the response started with the first chunk: lost


def regenerate(session: Session) -> Iterator[bytes]:
    session["user"] = "ada"
    run(session.regenerate())
    return _respond(session)


def destroy(session: Session) -> Iterator[bytes]:
    session.destroy()
    return _respond(session)


HANDLERS: list[Handler] = [read, counter, nested_in_place, late_change, regenerate, destroy]
COOKIES = {
    "none": None,
    "valid": signed_cookie({"views": 3, "_expire": FUTURE, "_maxAge": 86_400_000}),
    "nested": signed_cookie({"cart": [0], "_expire": FUTURE, "_maxAge": 86_400_000}),
}


def _run(handler: Handler, cookie: str | None, plain: bool, patch: pytest.MonkeyPatch) -> Any:
    events: list[tuple[str, Any]] = []
    engines: list[str] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        session = environ["koasession.session"]
        body = handler(session)
        start_response("200 OK", [("Content-Type", "text/plain")])
        engines.append(type(session._bound).__name__)  # the commit has run: which engine did it
        yield from body

    with patch.context() as p:
        if not plain:
            p.setattr(plainrequest, "usable", lambda cfg: False)
        middleware = SessionMiddleware(
            app, keys=[KEY], on_event=lambda n, e: events.append((n, e.get("reason")))
        )
    headers = {"Cookie": cookie} if cookie else {}
    response = Client(middleware).get("/", headers=headers)
    lines = [_masked(line) for line in response.headers.getlist("Set-Cookie")]
    other = sorted((k, v) for k, v in response.headers.items() if k.lower() != "set-cookie")
    return (response.status_code, response.get_data(), lines, other, events), engines


def _masked(line: str) -> tuple[str, Any, str]:
    """A Set-Cookie line with the times of "now" taken out: the two runs are ms apart."""
    name, _, rest = line.partition("=")
    value, _, attributes = rest.partition(";")
    attributes = re.sub(r"expires=[^;]*", "expires=<date>", attributes)
    if name == "koa.sess" and value:
        payload = json.loads(base64.b64decode(value))
        return (
            name,
            {k: v for k, v in payload.items() if k not in ("_expire", "_created")},
            attributes,
        )
    return name, "signature" if name.endswith(".sig") and value else value, attributes


@pytest.mark.parametrize("cookie", list(COOKIES), ids=list(COOKIES))
@pytest.mark.parametrize("handler", HANDLERS, ids=lambda h: h.__name__)
def test_wsgi_plain_and_general_engines_agree(
    handler: Handler, cookie: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = time.time()  # one clock for both runs: a Max-Age from a loaded expiry must not tick
    monkeypatch.setattr(time, "time", lambda: now)
    plain, plain_engines = _run(handler, COOKIES[cookie], True, monkeypatch)
    general, general_engines = _run(handler, COOKIES[cookie], False, monkeypatch)
    assert plain == general
    assert PlainRequest.__name__ not in general_engines
    if handler in (read, counter, nested_in_place):
        assert plain_engines == [PlainRequest.__name__]  # no hand-over for these
