"""Cookie size relief for cookie mode: opt-in compression and chunking of the session cookie.

Browsers drop a Set-Cookie line over about 4096 bytes. Two opt-in helpers push that limit back;
both are pure functions on cookie values, for the middleware to call around its usual encoding.

Compression
===========

:func:`compress_value` takes the payload the codec wrote (base64 of JSON) and returns
``"~" + base64url(zlib(json))`` when, and only when, that is shorter. The ``~`` marker is outside
both base64 alphabets, so the value fails *closed* in readers that do not know it: Node's
``Buffer.from(v, 'base64')`` (koa-session) and :func:`koasession.codec.decode` skip the ``~`` and
decode the compressed bytes as if they were JSON text, which they are not, so the cookie is
refused as malformed instead of being misread. :func:`expand_value` undoes it, with a cap on the
output size (:data:`MAX_EXPANDED_SIZE` by default) so a small forged cookie cannot inflate into
gigabytes (a "zip bomb"); decompression stops at the cap.

**Never combined with encryption.** Compressing before encrypting makes the ciphertext length
depend on the content: when an attacker can put chosen text into the session next to a secret
(a search term, a form value echoed into the session) and watch the cookie's length, each guess
that matches part of the secret compresses better and yields a shorter cookie, so the secret
leaks one character at a time. That is the CRIME and BREACH attacks on TLS and HTTP
compression. Encryption hides the content, not the length, so the middleware refuses
``compress=True`` with ``encrypt=True`` (:func:`check_compression`). Signed cookies are readable
by their owner anyway, so compressing them leaks nothing new.

Chunking
========

:func:`split_value` cuts a value into ``<name>.1`` .. ``<name>.N`` cookies, each of whose
Set-Cookie line (``<name>.<i>=<chunk>; <attributes>``) stays within :data:`COOKIE_LINE_LIMIT`
bytes. :func:`chunk_cookies` adds ONE signature over all of them, in ``<name>.sig`` as
``<N>.<signature>``: the signed message is ``<name>:<N>=<joined value>``, so the signature
covers both the count and every chunk in order. (``:`` cannot occur in a cookie name, so this
message never equals the ``<name>=<value>`` message of an ordinary signed cookie.)
:func:`join_chunks` reassembles from the request's cookie jar and refuses a missing, extra or
reordered chunk. :func:`stale_chunk_names` lists the chunk cookies a response must expire when
the count shrinks (or chunking stops). Both know only ``<name>.1`` .. ``<name>.MAX_CHUNKS``, the
names a response can write: others are ignored, however many a request sends.

The whole cookie ``<name>`` and the chunks share ``<name>.sig``, and at most one of them
verifies under it (a manifest is ``<N>.<signature>``; an ordinary signature has no ``.``). The
middleware reads the whole cookie first and the chunks when it fails. A whole cookie that fails
next to chunks that verify is reported (event ``tampered``) but does not cost the session:
``<name>.sig`` is expired, as koa expires a signature that failed, only when no chunk set
verifies under it either, since for the chunks it is the manifest. Anyone who can set a cookie
for the domain (a sibling subdomain, an old cookie on another path: cookie tossing) could
otherwise end every chunked session with a junk ``<name>``. The junk cookie itself is not
expired on a read: an expiry only reaches a cookie with our path and domain, and the next write
of the session (chunks or whole) replaces or expires that one.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import zlib
from collections.abc import Mapping

from .b64 import b64url_decode, b64url_encode
from .errors import ConfigurationError
from .signing import Signer

__all__ = [
    "COMPRESSED_PREFIX",
    "COOKIE_LINE_LIMIT",
    "MAX_CHUNKS",
    "MAX_EXPANDED_SIZE",
    "check_compression",
    "chunk_cookies",
    "compress_value",
    "expand_value",
    "is_compressed",
    "join_chunks",
    "split_value",
    "stale_chunk_names",
]

#: Marks a compressed payload; outside standard and url-safe base64, so old readers fail closed.
COMPRESSED_PREFIX = "~"

#: Longest Set-Cookie line (``name=value; attributes``) browsers keep, in bytes.
COOKIE_LINE_LIMIT = 4096

#: Most chunks a session cookie may span; browsers keep about 50 cookies per site at least.
MAX_CHUNKS = 20

#: Default cap on a decompressed payload: every chunk full, times a generous compression ratio.
MAX_EXPANDED_SIZE = MAX_CHUNKS * COOKIE_LINE_LIMIT * 16

_COUNT = re.compile(r"[1-9][0-9]{0,3}")


def check_compression(*, compress: bool, encrypt: bool) -> None:
    """Raise :class:`ConfigurationError` for ``compress=True`` with ``encrypt=True``.

    See the module docstring: compressed ciphertext leaks secrets through its length.
    """
    if compress and encrypt:
        raise ConfigurationError(
            "compress=True cannot be combined with encrypt=True: compressing before encrypting "
            "lets an attacker who can put text in the session learn secrets from the cookie's "
            "length (the CRIME/BREACH attacks)"
        )


def is_compressed(value: str) -> bool:
    """Whether a cookie value is a compressed payload (starts with :data:`COMPRESSED_PREFIX`)."""
    return value.startswith(COMPRESSED_PREFIX)


def compress_value(value: str, *, level: int = 9) -> str:
    """The compressed form of a codec payload ``value`` if shorter, else ``value`` unchanged.

    ``value`` is what :func:`koasession.codec.encode` wrote (standard base64 of the JSON).
    A value that is not such base64 is returned unchanged.
    """
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return value
    packed = b64url_encode(zlib.compress(raw, level))
    candidate = COMPRESSED_PREFIX + packed
    return candidate if len(candidate) < len(value) else value


def expand_value(value: str, *, max_size: int = MAX_EXPANDED_SIZE) -> str | None:
    """The codec payload (standard base64) inside a cookie value, or ``None`` if it is bad.

    An unmarked value is returned unchanged, so callers run every cookie through this before
    the codec. A marked one is decompressed to at most ``max_size`` bytes: ``None`` for bad
    base64, a corrupt or truncated stream, trailing data, or output over the cap. Never raises.
    """
    if not value.startswith(COMPRESSED_PREFIX):
        return value
    body = value[len(COMPRESSED_PREFIX) :]
    packed = b64url_decode(body)
    if packed is None:
        return None
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(packed, max_size)
    except zlib.error:
        return None
    # unconsumed_tail: output stopped at the cap; not eof: truncated; unused_data: junk after.
    if inflater.unconsumed_tail or not inflater.eof or inflater.unused_data:
        return None
    return base64.b64encode(raw).decode("ascii")


def _prefix_length(name: str, index: int) -> int:
    return len(name) + 1 + len(str(index)) + 1  # "<name>.<index>="


def split_value(
    name: str, value: str, *, attributes_length: int, limit: int = COOKIE_LINE_LIMIT
) -> list[tuple[str, str]]:
    """Cut ``value`` into ``[(f"{name}.1", part), ...]`` whose Set-Cookie lines fit ``limit``.

    ``attributes_length`` is the length of the attribute string that follows ``"; "`` on each
    line (``Path=/; Expires=...; HttpOnly``), 0 for none. Cookie values are ASCII, so characters
    are bytes. Raises ``ValueError`` when a line cannot hold a single character of value or the
    value would need more than :data:`MAX_CHUNKS` chunks.
    """
    overhead = attributes_length + 2 if attributes_length else 0
    parts: list[tuple[str, str]] = []
    position = 0
    while position < len(value) or not parts:
        index = len(parts) + 1
        room = limit - _prefix_length(name, index) - overhead
        if room < 1:
            raise ValueError(f"a Set-Cookie line for {name!r} cannot fit within {limit} bytes")
        parts.append((f"{name}.{index}", value[position : position + room]))
        position += room
    if len(parts) > MAX_CHUNKS:
        raise ValueError(
            f"the cookie {name!r} would need {len(parts)} chunks, over the limit of {MAX_CHUNKS}"
        )
    return parts


def _message(name: str, count: int, joined: str) -> str:
    return f"{name}:{count}={joined}"


def chunk_cookies(
    name: str,
    value: str,
    signer: Signer,
    *,
    attributes_length: int,
    limit: int = COOKIE_LINE_LIMIT,
) -> list[tuple[str, str]]:
    """The cookies to set for a chunked ``value``: the chunks, then ``<name>.sig``.

    The signature cookie's value is ``<count>.<signature>``, one signature over the count and
    all the chunks. Raises ``ValueError`` as :func:`split_value` does.
    """
    parts = split_value(name, value, attributes_length=attributes_length, limit=limit)
    signature = signer.sign(_message(name, len(parts), value))
    return [*parts, (f"{name}.sig", f"{len(parts)}.{signature}")]


def join_chunks(name: str, cookies: Mapping[str, str], signer: Signer) -> tuple[str, int] | None:
    """Reassemble a chunked value from the request's ``cookies``; ``None`` unless all is right.

    Returns ``(value, key_index)``, ``key_index`` as :meth:`Signer.verify` reports it (non-zero:
    re-sign under the first key). ``None`` when ``<name>.sig`` is missing or malformed, a chunk
    is missing, there is a chunk beyond the signed count (up to :data:`MAX_CHUNKS`: see
    :func:`stale_chunk_names`), or the signature does not cover these chunks in this order.
    Never raises.
    """
    manifest = cookies.get(f"{name}.sig")
    if manifest is None:
        return None
    count_text, dot, signature = manifest.partition(".")
    if not dot or _COUNT.fullmatch(count_text) is None:
        return None
    count = int(count_text)
    if count > MAX_CHUNKS or stale_chunk_names(name, cookies, count):
        return None
    parts: list[str] = []
    for index in range(1, count + 1):
        part = cookies.get(f"{name}.{index}")
        if part is None:
            return None
        parts.append(part)
    joined = "".join(parts)
    index = signer.verify(_message(name, count, joined), signature)
    return None if index < 0 else (joined, index)


def stale_chunk_names(name: str, cookies: Mapping[str, str], count: int) -> list[str]:
    """Names of chunk cookies in ``cookies`` beyond ``count``, which a response must expire.

    ``count`` is the number of chunks this response writes (0 when it writes the cookie whole
    or removes it). Only names the browser sent are listed, in ascending order, and only
    ``<name>.1`` .. ``<name>.MAX_CHUNKS``: no response writes a chunk past :data:`MAX_CHUNKS`,
    and nothing signs a chunk's name, so a request could send ``<name>.N`` for thousands of N
    and have each expired with a Set-Cookie line of its own. Looking the possible names up
    costs the same whatever the request carries.
    """
    return [chunk for chunk in _chunk_names(name)[count:] if chunk in cookies]


@functools.lru_cache(maxsize=8)
def _chunk_names(name: str) -> tuple[str, ...]:
    # Made once per cookie name (an app has one or two): the lookups above run per request.
    return tuple(f"{name}.{index}" for index in range(1, MAX_CHUNKS + 1))
