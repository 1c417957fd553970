"""CSRF tokens tied to the session, and an opt-in ASGI middleware that checks them.

The session holds one random secret under :data:`CSRF_SESSION_KEY` (``"_csrf"``), made on the
first :func:`csrf_token` call. ``Session.regenerate()`` drops it, so the session a login
creates gets a new one, as Django and Rails rotate theirs at login: a token an attacker learnt
(or planted) before the login is worthless after it.

Every :func:`csrf_token` call returns a different string: the secret XOR a fresh random mask,
with the mask in front (Django's approach). A page that reflects attacker-chosen text next to
the token then never repeats the same bytes across responses, which is what BREACH-style
compression attacks need. :func:`verify_csrf` removes the mask and compares in constant time.
The unmasked secret is never accepted and never needs to leave the server (in cookie mode it
is inside the signed cookie, which scripts cannot read with ``http_only``).

:class:`CSRFMiddleware` goes inside :class:`~koasession.SessionMiddleware` and refuses unsafe
requests (POST, PUT, PATCH, DELETE) without a valid token in the ``X-CSRF-Token`` header or the
``csrf_token`` field of a form (urlencoded or multipart), and, when the browser names the page
it comes from (``Origin``, or ``Referer`` over https), from an origin it does not trust.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import unquote_plus, urlsplit

from .b64 import b64url_decode, b64url_encode
from .enginestate import request_is_secure
from .errors import ConfigurationError, NoSessionError, check_flag
from .session import CSRF_SESSION_KEY, Session

__all__ = ["CSRF_SESSION_KEY", "CSRFMiddleware", "csrf_token", "verify_csrf"]

_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]
#: What it wraps: any ASGI callable. Litestar's and Quart's apps declare narrower scope and
#: message types (TypedDicts), which a callable of mappings does not accept.
_AnyApp = Callable[..., Awaitable[None]]


_SECRET_BYTES = 32
_SECRET_LENGTH = 43  # base64url of 32 bytes, unpadded
_TOKEN_LENGTH = 86  # base64url of mask + masked secret, 64 bytes, unpadded
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def _secret(session: MutableMapping[str, Any]) -> bytes | None:
    stored = session.get(CSRF_SESSION_KEY)
    if not isinstance(stored, str) or len(stored) != _SECRET_LENGTH:
        return None
    raw = b64url_decode(stored)
    return raw if raw is not None and len(raw) == _SECRET_BYTES else None


def csrf_token(session: MutableMapping[str, Any]) -> str:
    """A token for a form or a script to send back; different on every call, all valid.

    The first call in a session creates its secret, which changes the session (it is saved with
    the response). Put the token in a hidden ``csrf_token`` field or an ``X-CSRF-Token`` header.
    """
    secret = _secret(session)
    if secret is None:
        secret = secrets.token_bytes(_SECRET_BYTES)
        session[CSRF_SESSION_KEY] = b64url_encode(secret)
    mask = secrets.token_bytes(_SECRET_BYTES)
    return b64url_encode(mask + bytes(m ^ s for m, s in zip(mask, secret, strict=True)))


def verify_csrf(session: MutableMapping[str, Any], token: str | bytes | None) -> bool:
    """Whether ``token`` came from :func:`csrf_token` for this session (constant time).

    False when the session has no secret yet; never creates one.
    """
    secret = _secret(session)
    if secret is None or token is None:
        return False
    if isinstance(token, bytes):
        try:
            token = token.decode("ascii")
        except UnicodeDecodeError:
            return False
    if len(token) != _TOKEN_LENGTH:
        return False
    raw = b64url_decode(token)
    if raw is None or len(raw) != 2 * _SECRET_BYTES:
        return False
    mask, masked = raw[:_SECRET_BYTES], raw[_SECRET_BYTES:]
    return hmac.compare_digest(bytes(m ^ c for m, c in zip(mask, masked, strict=True)), secret)


class CSRFMiddleware:
    """Refuse unsafe requests that do not carry the session's CSRF token (403, plain text).

    Place it inside ``SessionMiddleware``: ``SessionMiddleware(CSRFMiddleware(app), keys=...)``.

    - ``field_name``: the form field read from ``application/x-www-form-urlencoded`` and
      ``multipart/form-data`` bodies. The body is read only as far as the field (at most
      ``max_body_size`` bytes; put the hidden input first in big upload forms) and replayed to
      the app unchanged.
    - ``header_name``: the header checked first (scripts: ``fetch(url, {headers: ...})``).
    - ``exempt_paths``: a list of paths not checked (webhooks that authenticate otherwise),
      each starting with ``/``; an entry ending in ``*`` is a prefix (``"/hooks/*"``).
    - ``trusted_origins``: a list of origins (``"https://admin.example.com"``) allowed besides
      the request's own. When a browser sends ``Origin`` it must be one of them; over https a
      request without ``Origin`` must have a ``Referer`` from one of them (Django's rule).
      ``check_origin=False`` turns this off. Behind a TLS-terminating proxy, let the server
      see the real scheme (uvicorn ``--proxy-headers``), give ``SessionMiddleware``
      ``proxy=True`` (its ``X-Forwarded-Proto`` rule then applies here too), or list the
      public origin here.
    - ``scope_key``: the session's scope key, as given to ``SessionMiddleware``.

    The options are checked when it is made (``ConfigurationError``). With ``lazy=True`` store
    mode it loads the session itself for the requests it checks.
    """

    def __init__(
        self,
        app: _AnyApp,
        *,
        field_name: str = "csrf_token",
        header_name: str = "X-CSRF-Token",
        exempt_paths: Iterable[str] = (),
        trusted_origins: Iterable[str] = (),
        check_origin: bool = True,
        max_body_size: int = 1_048_576,
        scope_key: str = "session",
    ) -> None:
        self.app = app
        for name, value in (
            ("field_name", field_name),
            ("header_name", header_name),
            ("scope_key", scope_key),
        ):
            if not isinstance(value, str) or not value:
                raise ConfigurationError(f"{name} must be a non-empty string; got {value!r}")
        check_flag("check_origin", check_origin)
        if (
            isinstance(max_body_size, bool)
            or not isinstance(max_body_size, int)
            or max_body_size < 1
        ):
            raise ConfigurationError(
                f"max_body_size must be a positive number of bytes; got {max_body_size!r}"
            )
        self.field_name = field_name
        self.header_name = header_name
        self._header_key = header_name.lower().encode("latin-1")
        paths = _strings("exempt_paths", exempt_paths, "['/webhooks/*']")
        for path in paths:
            # "*" alone, or a relative path, would match every path, or none.
            if not path.startswith("/"):
                raise ConfigurationError(
                    f"exempt_paths: {path!r} must start with '/' (exact paths, or prefixes "
                    "ending in '*': '/webhooks/*')"
                )
        self.exempt_exact = frozenset(p for p in paths if not p.endswith("*"))
        self.exempt_prefixes = tuple(p[:-1] for p in paths if p.endswith("*"))
        trusted = []
        for origin in _strings("trusted_origins", trusted_origins, "['https://admin.example.com']"):
            normal = _origin_of(origin)
            if normal is None:
                raise ConfigurationError(
                    f"trusted_origins: {origin!r} is not an origin; use scheme://host[:port], "
                    "e.g. 'https://admin.example.com'"
                )
            trusted.append(normal)
        self.trusted_origins = frozenset(trusted)
        self.check_origin = check_origin
        self.max_body_size = max_body_size
        self.scope_key = scope_key

    def _exempt(self, path: str) -> bool:
        return path in self.exempt_exact or (
            bool(self.exempt_prefixes) and path.startswith(self.exempt_prefixes)
        )

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in _SAFE_METHODS
            or self._exempt(scope.get("path", ""))
        ):
            await self.app(scope, receive, send)
            return
        session = scope.get(self.scope_key)
        if session is None:
            raise NoSessionError(
                f"CSRFMiddleware found no session under scope[{self.scope_key!r}]: put it "
                "inside SessionMiddleware (SessionMiddleware(CSRFMiddleware(app), ...))"
            )
        headers: dict[bytes, bytes] = {}
        for name, value in scope.get("headers") or ():
            headers.setdefault(name.lower(), value)
        if self.check_origin:
            refused = self._origin_problem(_scheme(scope, session), headers)
            if refused is not None:
                await _forbidden(send, refused)
                return
        token: str | None = headers.get(self._header_key, b"").decode("latin-1") or None
        replay: list[_Message] = []
        if token is None:
            token, replay, disconnected = await self._token_from_body(headers, receive)
            if disconnected:
                return
        if isinstance(session, Session):
            # Store mode with lazy=True reads the store only when asked: the secret is there.
            await session.load()
        if not verify_csrf(session, token):
            if token is None:
                reason = (
                    f"CSRF token missing: send it in the {self.field_name!r} form field or the "
                    f"{self.header_name!r} header (from koasession.csrf_token(session))"
                )
            elif _secret(session) is None:
                reason = (
                    "CSRF token incorrect: this session has no CSRF token (no session cookie, "
                    "or the session expired): reload the page and try again"
                )
            else:
                reason = "CSRF token incorrect: reload the page and try again"
            await _forbidden(send, reason)
            return
        await self.app(scope, _replaying(replay, receive) if replay else receive, send)

    def _origin_problem(self, scheme: str, headers: dict[bytes, bytes]) -> str | None:
        """Why the request's Origin (or, over https, Referer) is refused; None if it is not."""
        own = _own_origin(scheme, headers)
        origin = headers.get(b"origin")
        if origin is not None:
            sent = origin.decode("latin-1").strip()
            normal = _origin_of(sent)
            if normal is not None and (normal == own or normal in self.trusted_origins):
                return None
            return f"CSRF check failed: origin {sent!r} is not trusted"
        if scheme != "https":
            return None  # plain http: a Referer proves little and privacy settings drop it
        referer = headers.get(b"referer")
        if referer is None:
            return "CSRF check failed: an https request without Origin must send a Referer"
        normal = _origin_of(referer.decode("latin-1").strip())
        if normal is not None and (normal == own or normal in self.trusted_origins):
            return None
        return "CSRF check failed: the Referer is not a trusted origin"

    async def _token_from_body(
        self, headers: dict[bytes, bytes], receive: _Receive
    ) -> tuple[str | None, list[_Message], bool]:
        """Read the body up to the token field: (token, messages read, client disconnected)."""
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        media, _, params = content_type.partition(";")
        media = media.strip().lower()
        boundary: bytes | None = None
        if media == "multipart/form-data":
            match = re.search(r'boundary="?([^";]+)"?', params, re.IGNORECASE)
            if match is None:
                return None, [], False
            boundary = match.group(1).encode("latin-1")
        elif media != "application/x-www-form-urlencoded":
            return None, [], False
        messages: list[_Message] = []
        body = bytearray()  # grown in place: `bytes +=` would copy it all per message
        # Each byte is searched once and each pair or part examined once, however many messages
        # the body comes in: rescanning all of it per message is quadratic (a slow client
        # sending 1 MiB of "&" in small pieces kept the event loop busy for seconds).
        scan = _Scan(0 if boundary is None else -1)
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None, messages, True
            messages.append(message)
            body += message.get("body", b"")
            complete = not message.get("more_body", False)
            if boundary is None:
                found = self._find_urlencoded(body, complete, scan)
            else:
                found = self._find_multipart(body, complete, boundary, scan)
            if found is not False:
                return (found if isinstance(found, str) else None), messages, False
            if complete or len(body) >= self.max_body_size:
                return None, messages, False

    def _find_urlencoded(self, body: bytearray, complete: bool, scan: _Scan) -> str | bool | None:
        """The field's value; None when the complete body lacks it; False: read on.

        Pairs are examined up to the last ``&`` (the rest may be cut short), once each.
        """
        end = len(body) if complete else body.rfind(b"&", scan.searched)
        scan.searched = len(body)
        if end < scan.start:
            return False
        for pair in bytes(memoryview(body)[scan.start : end]).split(b"&"):
            name, _, value = pair.partition(b"=")
            if unquote_plus(name.decode("latin-1")) == self.field_name:
                return unquote_plus(value.decode("latin-1"))
        scan.start = end + 1
        return None if complete else False

    def _find_multipart(
        self, body: bytearray, complete: bool, boundary: bytes, scan: _Scan
    ) -> str | bool | None:
        """The field's value from a multipart body; None when absent; False: read on.

        The parts between delimiters are examined once each, the last one only when the body is
        complete; ``scan.start`` is where the part being read begins (-1: no delimiter yet).
        """
        delimiter = b"--" + boundary
        while (found := body.find(delimiter, scan.searched)) >= 0:
            if scan.start >= 0:
                value = self._field_of_part(bytes(memoryview(body)[scan.start : found]))
                if value is not None:
                    return value
            scan.start = scan.searched = found + len(delimiter)
        # A delimiter may be arriving: the next search starts where it could begin.
        scan.searched = max(scan.searched, len(body) - len(delimiter) + 1)
        if not complete:
            return False
        if scan.start >= 0:
            return self._field_of_part(bytes(memoryview(body)[scan.start :]))
        return None

    def _field_of_part(self, part: bytes) -> str | None:
        """The value of a multipart ``part`` when it is the token field, else None."""
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            return None
        disposition = re.search(
            rb"(?im)^content-disposition:\s*form-data(.*)$", head.lstrip(b"\r\n")
        )
        if disposition is None:
            return None
        attrs = disposition.group(1)
        name = re.search(rb';\s*name="([^"]*)"', attrs)
        if name is None or b"filename=" in attrs.lower():
            return None
        if name.group(1).decode("latin-1") == self.field_name:
            return content.removesuffix(b"\r\n").decode("latin-1")
        return None


class _Scan:
    """How far :meth:`CSRFMiddleware._token_from_body` has read a body: where the pair or part
    being read begins, and where the next search for a separator starts."""

    __slots__ = ("searched", "start")

    def __init__(self, start: int = 0) -> None:
        self.start = start
        self.searched = 0


def _replaying(messages: list[_Message], receive: _Receive) -> _Receive:
    """A ``receive`` that hands out the already-read messages, then the rest of the request."""
    pending = list(messages)

    async def replay() -> _Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


def _strings(name: str, values: object, example: str) -> list[str]:
    """``values`` as a list of str; a single string is refused (iterating it gives characters:
    exempt_paths="/api/*" would exempt "/" and, through its "*", every path)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ConfigurationError(
            f"{name} must be a list of strings: {name}={example}; got {values!r}"
        )
    items = list(values)
    for item in items:
        if not isinstance(item, str):
            raise ConfigurationError(f"{name} must be a list of strings; got {item!r} in it")
    return items


def _origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of a URL, lowercase, default ports dropped; None if unusable."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != default else "")


def _scheme(scope: _Scope, session: object) -> str:
    """The request's scheme as the session middleware sees it: with its ``proxy=True``, an
    http request whose ``X-Forwarded-Proto`` says https (a TLS-terminating proxy) is https."""
    scheme: str = scope.get("scheme", "http")
    if scheme == "https":
        return scheme
    # The options in force, read without session.options: that is this request's own copy,
    # which takes a plain request over to the general engine (see plainrequest).
    proxy = isinstance(session, Session) and session._rs.opts_view.proxy
    if proxy and request_is_secure(scheme, scope.get("headers") or (), True):
        return "https"
    return scheme


def _own_origin(scheme: str, headers: dict[bytes, bytes]) -> str | None:
    """The origin the request was sent to, from its scheme and ``Host`` header."""
    host = headers.get(b"host")
    if host is None:
        return None
    return _origin_of(f"{scheme}://{host.decode('latin-1').strip()}")


async def _forbidden(send: _Send, reason: str) -> None:
    body = (reason + "\n").encode()
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
