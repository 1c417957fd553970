"""Reading the Cookie request header and writing Set-Cookie lines.

Parsing is a single split per header field, so it stays linear on any input; names are matched
exactly and case-sensitively, and the first occurrence of a name wins (as in Node's ``cookies``).
Only ASCII spaces and tabs around a name are dropped (RFC 6265): ``str.strip()`` would also drop
Unicode whitespace such as ``\xa0`` or ``\x85``, so a cookie named ``"\xa0koa.sess"`` (which no
browser treats as ``koa.sess``, and which a sibling subdomain can set even next to a ``__Host-``
cookie) would shadow the real one.
Set-Cookie attributes are written in koa's order, lower-case.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import Any

#: ``expires`` value that makes a browser drop a cookie at once.
EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"

# RFC 6265 token characters: any visible ASCII except separators.
_SEPARATORS = frozenset('()<>@,;:\\"/[]?={} \t')
TOKEN_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F)) - _SEPARATORS


# The optional whitespace RFC 6265 allows around a cookie-pair: nothing else is stripped.
_OWS = " \t"


# What Node's ``cookies`` (koa) accepts in a value: header field-content without ';'. Stricter
# than RFC 6265's cookie-octet, which would refuse the raw JSON some koa apps' encode() returns,
# but it keeps out everything that could end the value early or split the header.
_LOOSE_VALUE = re.compile(r"[\x20-\x3A\x3C-\x7E\x80-\xFF]*")


def is_safe_value(value: str) -> bool:
    """True when ``value`` cannot inject cookie attributes or headers into a Set-Cookie line.

    No ``;``, no control characters (CR, LF, NUL, tab...), nothing outside Latin-1.
    """
    return _LOOSE_VALUE.fullmatch(value) is not None


def is_token(name: str) -> bool:
    """True when ``name`` is a valid RFC 6265 cookie name."""
    return bool(name) and TOKEN_CHARS.issuperset(name)


def parse_cookie_header(values: Iterable[str]) -> dict[str, str]:
    """Parse one or more Cookie header fields into ``{name: value}``.

    HTTP/2 may deliver the header as several fields; all are read. Malformed pairs (no ``=``,
    empty name) are skipped. Names are kept exactly as sent apart from surrounding ASCII spaces
    and tabs. Values are returned with surrounding spaces removed and one pair of surrounding
    double quotes removed (RFC 6265's quoted cookie-value, which Node's ``cookies`` also unquotes
    before verifying: a signature covers the unquoted value).
    """
    jar: dict[str, str] = {}
    for header in values:
        quoted = '"' in header  # one scan per field keeps unquoted headers on the short path
        for pair in header.split(";"):
            name, sep, value = pair.partition("=")
            if not sep:
                continue
            name = name.strip(_OWS)
            if name and name not in jar:
                value = value.strip()
                if quoted and len(value) > 1 and value[0] == '"' == value[-1]:
                    value = value[1:-1]
                jar[name] = value
    return jar


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_last_date: tuple[int, str] = (-1, "")


def http_date(timestamp: float) -> str:
    """Format a POSIX timestamp as an IMF-fixdate (``Thu, 01 Jan 1970 00:00:00 GMT``)."""
    global _last_date
    second = int(timestamp)
    cached_second, cached = _last_date
    if second == cached_second:
        return cached  # most responses within one second share their expiry date
    t = time.gmtime(second)
    text = (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )
    _last_date = (second, text)
    return text


def attributes(
    *,
    path: str | None = "/",
    expires: float | str | None = None,
    max_age: int | None = None,
    domain: str | None = None,
    priority: str | None = None,
    same_site: str | None = None,
    secure: bool = False,
    http_only: bool = True,
    partitioned: bool = False,
) -> str:
    """The attribute part of a Set-Cookie line, in koa's order, lower-case.

    ``expires`` is a POSIX timestamp or a ready HTTP date. ``max_age`` (seconds) is written
    next to it so browsers that prefer Max-Age agree with those that read Expires.
    """
    parts = []
    if path:
        parts.append(f"path={path}")
    if expires is not None:
        parts.append(f"expires={expires if isinstance(expires, str) else http_date(expires)}")
    if max_age is not None:
        parts.append(f"max-age={max_age}")
    if domain:
        parts.append(f"domain={domain}")
    if priority:
        parts.append(f"priority={priority}")
    if same_site:
        parts.append(f"samesite={same_site}")
    if secure:
        parts.append("secure")
    if http_only:
        parts.append("httponly")
    if partitioned:
        parts.append("partitioned")
    return "; ".join(parts)


def serialize(name: str, value: str, **attrs: Any) -> str:
    """Build a Set-Cookie header value; ``attrs`` as for :func:`attributes`."""
    tail = attributes(**attrs)
    return f"{name}={value}; {tail}" if tail else f"{name}={value}"
