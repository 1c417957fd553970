"""Hostile bytes over a raw socket, through real servers' own parsing into the middleware.

httpx cannot send what these requests carry (bytes outside ASCII in a Cookie header, several
Cookie fields, pipelined requests, HTTP/1.0 without Host), so a plain socket sends them to
uvicorn (its default HTTP parser and h11), Hypercorn and Granian, and to a Flask app under
gunicorn (the WSGI adapter), in cookie mode and with a Redis store. The validly signed ones
are signed with the app's key: hostile content behind a good signature. Every answer is either
the server's own refusal (a 4xx before the app runs) or a 200 with a fresh session, its
Set-Cookie lines plain ASCII; the server prints no traceback. tests/security/
test_hostile_input.py covers the same content in process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from ._processes import redis_env
from .test_gunicorn import Server as GunicornServer
from .test_gunicorn import assert_clean as assert_gunicorn_clean
from .test_gunicorn import gunicorn  # noqa: F401 - a fixture
from .test_other_servers import Server, assert_clean, serve  # noqa: F401 - serve: a fixture

pytestmark = pytest.mark.timeout(180)

KEY = b"hostile bytes test key, 32+ bytes long"

APP = f"""
import json
import os

from koasession import SessionMiddleware
from koasession.stores import store_from_url


async def counter(scope, receive, send):
    if scope["type"] != "http":
        return
    session = scope["session"]
    session["views"] = session.get("views", 0) + 1
    body = json.dumps({{"data": dict(session), "new": session.is_new}}).encode()
    await send({{"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]}})
    await send({{"type": "http.response.body", "body": body}})


url = os.environ.get("STORE_URL")
options = {{"store": store_from_url(url, key_prefix=os.environ["KEY_PREFIX"])}} if url else {{}}
app = SessionMiddleware(counter, keys=[{KEY.decode()!r}], **options)
"""

FLASK_APP = f"""
import json
import os

from flask import Flask

from koasession.flask import init_app, koasession_session
from koasession.stores import store_from_url

app = Flask(__name__)


@app.get("/ping")
def ping():
    return "pong"


@app.route("/", methods=["GET", "HEAD"])
def counter():
    session = koasession_session()
    session["views"] = session.get("views", 0) + 1
    body = json.dumps({{"data": dict(session), "new": session.is_new}})
    return app.response_class(body, mimetype="application/json")


url = os.environ.get("STORE_URL")
options = {{"store": store_from_url(url, key_prefix=os.environ["KEY_PREFIX"])}} if url else {{}}
init_app(app, [{KEY.decode()!r}], **options)
"""

SERVERS = {
    "uvicorn": ("uvicorn", ()),  # httptools (in the dev extra), as uvicorn[standard] has it
    "uvicorn-h11": ("uvicorn", ("--http", "h11")),
    "hypercorn": ("hypercorn", ()),
    "granian": ("granian", ()),
}


def sign(value: bytes) -> bytes:
    """The .sig of ``koa.sess=<value>`` as the middleware computes it: the header's bytes read
    as latin-1, that text's UTF-8 signed."""
    message = (b"koa.sess=" + value).decode("latin-1").encode()
    digest = hmac.new(KEY, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=")


def signed(value: bytes) -> bytes:
    return b"koa.sess=" + value + b"; koa.sess.sig=" + sign(value)


def payload(text: bytes) -> bytes:
    """A validly signed cookie whose payload is ``text`` (base64, as koa writes it)."""
    return signed(base64.b64encode(text))


def request(*cookies: bytes, method: bytes = b"GET", head: bytes = b"HTTP/1.1") -> bytes:
    lines = [method + b" / " + head]
    if head == b"HTTP/1.1":
        lines += [b"Host: 127.0.0.1", b"Connection: close"]
    lines += [b"Cookie: " + cookie for cookie in cookies]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def future_ms() -> int:
    return int(time.time() * 1000) + 86_400_000


def hostile_requests() -> dict[str, bytes]:
    nested = b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}"
    expire = future_ms()
    return {
        "latin-1": request(b"koa.sess=caf\xe9; koa.sess.sig=\xe9"),
        "invalid UTF-8": request(b"koa.sess=\xff\xfe\x80; koa.sess.sig=\xc3\x28"),
        "signed latin-1": request(signed(b"caf\xe9\xff")),
        "several fields": request(b"a=1", b"koa.sess=xyz", b"koa.sess.sig=abc"),
        "2000 cookies": request(b"; ".join(b"c%d=v%d" % (i, i) for i in range(2000))),
        "duplicates": request(b"koa.sess=one; koa.sess=two; koa.sess.sig=x; koa.sess.sig=y"),
        "empty names": request(b"=; =x; koa.sess=; koa.sess.sig=; ;;; ="),
        "= in values": request(b"koa.sess=a=b=c; koa.sess.sig=d=e"),
        "quoted garbage": request(b'koa.sess="\xff"; koa.sess.sig=""'),
        "base64 of non-UTF-8": request(payload(b"\xff\xfe\xfd")),
        "a list": request(payload(b"[1,2]")),
        "null": request(payload(b"null")),
        "5000 levels": request(payload(nested)),
        "5000 digits": request(payload(b'{"a":' + b"9" * 5000 + b"}")),
        "1e999": request(payload(b'{"a":1e999,"_expire":%d}' % expire)),
        "NaN": request(payload(b'{"a":NaN,"_expire":%d}' % expire)),
        "_expire a string": request(payload(b'{"_expire":"%d"}' % expire)),
        "_expire negative": request(payload(b'{"_expire":-1,"_maxAge":86400000}')),
        "_expire 5000 digits": request(payload(b'{"_expire":' + b"9" * 5000 + b"}")),
        "id *": request(signed(b"*")),
        "id a:b:*": request(signed(b"a:b:*")),
        "id 5000 long": request(signed(b"a" * 5000)),
        "id with a space": request(signed(b"a b")),
        "HEAD": request(signed(b"caf\xe9"), method=b"HEAD"),
        "HTTP/1.0 without Host": request(b"koa.sess=\xff", head=b"HTTP/1.0"),
    }


def exchange(url: str, data: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def check_answer(name: str, answer: bytes, *, head: bool = False) -> None:
    status_line, _, rest = answer.partition(b"\r\n")
    status = int(status_line.split()[1])
    if 400 <= status < 500:
        return  # the server refused the request before the app ran
    assert status == 200, (name, answer[:300])
    headers, _, body = rest.partition(b"\r\n\r\n")
    lines = [
        line.split(b":", 1)[1].strip()
        for line in headers.split(b"\r\n")
        if line.lower().startswith(b"set-cookie:")
    ]
    assert lines, (name, answer[:300])
    for line in lines:
        assert re.fullmatch(rb"[\x20-\x7e]+", line), (name, line)  # nothing echoed
    if not head:
        assert json.loads(body) == {"data": {"views": 1}, "new": True}, (name, body)


@pytest.fixture(params=["cookie", "redis"])
def mode_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    if request.param == "cookie":
        yield {}
        return
    with redis_env("hostile") as env:
        yield env


def check_server(url: str, mode_env: dict[str, str]) -> None:
    """Every hostile request, then three pipelined on one connection."""
    for name, data in hostile_requests().items():
        check_answer(name, exchange(url, data), head=name == "HEAD")
    # Pipelined on one connection: each gets its own answer, the hostile one a fresh session.
    # The third sends the first's cookie again: its data in cookie mode, the stored session.
    valid = exchange(url, request())
    jar = b"; ".join(re.findall(rb"(?i)set-cookie: (koa\.sess(?:\.sig)?=[^;]*)", valid))
    keep = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: "
    answers = exchange(
        url, keep + jar + b"\r\n\r\n" + keep + b"koa.sess=\xff\r\n\r\n" + request(jar)
    )
    bodies = re.findall(rb'\{"data": ?\{[^}]*\}, ?"new": ?\w+\}', answers)
    assert [json.loads(b) for b in bodies] == [
        {"data": {"views": 2}, "new": False},
        {"data": {"views": 1}, "new": True},
        {"data": {"views": 3 if mode_env else 2}, "new": False},
    ], answers


@pytest.mark.parametrize("server_name", list(SERVERS))
def test_hostile_cookies_get_a_fresh_session_or_the_servers_refusal(
    serve: Callable[..., Server],  # noqa: F811
    server_name: str,
    mode_env: dict[str, str],
) -> None:
    variant, args = SERVERS[server_name]
    server = serve(variant, APP, *args, **mode_env)
    check_server(server.url, mode_env)
    assert_clean(server.output())


def test_hostile_cookies_through_gunicorn_and_the_wsgi_adapter(
    gunicorn: Callable[..., GunicornServer],  # noqa: F811
    mode_env: dict[str, str],
) -> None:
    # gthread workers keep connections open, so the pipelined requests are answered in turn.
    server = gunicorn(FLASK_APP, "--worker-class", "gthread", "--threads", "2", **mode_env)
    check_server(server.url, mode_env)
    assert_gunicorn_clean(server.output(), server.port)
