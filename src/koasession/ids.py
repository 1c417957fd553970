"""Session ids: the one rule every id follows, and the default generator.

An id travels in a cookie (or a header chosen by ``external_key``) and is a key in a store, so
the rule is the RFC 6265 cookie-value alphabet (visible ASCII except ``"``, ``,``, ``;`` and
``\\``; no whitespace or control characters) minus ``|``, within 1..200 characters. It is checked
where an id is made (``prefix`` at start-up, each ``genid`` result when returned) and where one is
read (the cookie, ``external_key.get``, and every bundled store's ``get``/``set``/``destroy``).

Why ``|`` is excluded: RedisStore keeps its owner index under ``<key_prefix>owner|<owner id>``
next to the sessions under ``<key_prefix><id>``; without ``|`` no id can name an index key. The
other bundled stores cannot collide whatever the id: MemoryStore keeps the owner index in a
separate dict, the SQL stores in a separate column, and every id reaches SQL as a bound
parameter. No store builds a Redis key pattern from an id, so ``*`` and ``?`` are harmless, and
``hash_ids=True`` stores only a hex HMAC. The default ids (``secrets.token_urlsafe(32)``, 43
characters of ``A-Z a-z 0-9 - _``) and koa's uuid-v4 ids are well inside the rule.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable

#: The longest id accepted.
MAX_ID_LENGTH = 200
#: Characters the default generator adds after any ``prefix``.
DEFAULT_ID_LENGTH = 43
#: The rule in words, for error messages.
ID_RULE = (
    f"1-{MAX_ID_LENGTH} visible ASCII characters except the double quote, comma, semicolon, "
    "backslash and |, without spaces or control characters"
)


def fingerprint(key: str) -> str:
    """What the logs and error messages show of a session id: a live id is a credential (anyone
    who reads it from a log could send it as the cookie), so they show ``#`` and the first 12
    hex digits of its SHA-256 instead, enough to tell sessions apart and follow one through a
    log, and nothing a client could use."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return "#" + digest[:12]


# cookie-octet (RFC 6265 4.1.1) is %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E; '|' is %x7C.
_ID_CHARS = r"\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7B\x7D\x7E"
_ID_PATTERN = re.compile(f"[{_ID_CHARS}]{{1,{MAX_ID_LENGTH}}}")


def is_valid_id(key: object) -> bool:
    """True when ``key`` is a session id the middleware and every bundled store accept."""
    return isinstance(key, str) and _ID_PATTERN.fullmatch(key) is not None


def prefix_problem(prefix: str) -> str | None:
    """Why ``prefix`` cannot start the default ids, or ``None`` when it can."""
    if len(prefix) + DEFAULT_ID_LENGTH > MAX_ID_LENGTH:
        return (
            f"is {len(prefix)} characters; ids are at most {MAX_ID_LENGTH} and the random part "
            f"takes {DEFAULT_ID_LENGTH}"
        )
    bad = sorted({ch for ch in prefix if not _ID_PATTERN.fullmatch(ch)})
    if bad:
        return f"contains {''.join(bad)!r}, which a session id cannot (ids are {ID_RULE})"
    return None


def check_made_id(key: object, source: str) -> str:
    """Return ``key`` if it is a valid id; raise a clear error naming ``source`` otherwise.

    A made id goes into a Set-Cookie line (or a header) and a store key, so one that breaks the
    rule would inject cookie attributes, or be refused by the store and the next request.
    """
    if not isinstance(key, str) or not key:
        raise TypeError(f"{source} must return a non-empty string; got {key!r}")
    if _ID_PATTERN.fullmatch(key) is None:
        shown = key if len(key) <= 60 else key[:60] + "..."
        raise ValueError(f"{source} returned {shown!r}, which is not a valid session id: {ID_RULE}")
    return key


def make_genid(prefix: str | None = None) -> Callable[[object], str]:
    """The default id generator: 256 random bits from ``secrets``, base64url, optional prefix."""
    if prefix:
        return lambda ctx: prefix + secrets.token_urlsafe(32)
    return lambda ctx: secrets.token_urlsafe(32)
