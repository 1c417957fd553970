"""The cookie payload codec: compact JSON in standard base64, as koa-session writes it.

Encoding matches ``Buffer.from(JSON.stringify(data)).toString('base64')`` byte for byte on the
data web apps keep in sessions (strings, integers, booleans, lists, objects). Decoding is as
lenient as Node's base64 reader (url-safe alphabet, missing padding, stray characters) so cookies
minted by koa-session are read, but it is strict about what comes out: only a JSON object of
finite numbers is a session, and every failure is reported as ``None``, never an exception.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from typing import Any

#: Names the middleware writes into the payload; application data may use any other key.
META_KEYS = frozenset({"_expire", "_maxAge", "_session", "_created", "_accessed"})

_B64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_URLSAFE = str.maketrans("-_", "+/")


def _refuse_constant(name: str) -> Any:
    # JavaScript's JSON has no NaN or Infinity; a payload that carries them was not made by us.
    raise ValueError(f"non-standard JSON constant {name}")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


_decoder = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)
_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_ascii_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def dumps(data: Any) -> str:
    """Serialise ``data`` as compact JSON, the way ``JSON.stringify`` does.

    Raises ``TypeError`` or ``ValueError`` for data JSON cannot represent.
    """
    return _encoder.encode(data)


#: Deepest nesting of objects/arrays a session may have, the top-level object counting as 1.
#: Sessions are shallow; deeper data is refused when saved and deeper input when loaded, before
#: anything recursive (the JSON decoder, change detection, re-encoding) can run out of stack.
MAX_DEPTH = 32

# The only characters that matter to nesting: brackets, and what opens, closes or escapes strings.
_STRUCTURE = re.compile(r'[\[\]{}"\\]')


def nesting_depth(text: str, stop: int | None = None) -> int:
    """The deepest bracket nesting of JSON ``text``, brackets inside strings not counted.

    One linear pass over the structural characters, no recursion, whatever the input (valid JSON
    or not). With ``stop``, returns as soon as the depth exceeds it.
    """
    depth = deepest = 0
    in_string = False
    skip = -1  # position of a character escaped by a backslash inside a string
    for match in _STRUCTURE.finditer(text):
        ch = match.group()
        if in_string:
            pos = match.start()
            if pos == skip:
                continue
            if ch == "\\":
                skip = pos + 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "{" or ch == "[":
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop is not None and depth > stop:
                    return depth
        elif ch == "}" or ch == "]":
            depth -= 1
    return deepest


def too_deep(text: str) -> bool:
    """True when JSON ``text`` nests objects/arrays more than :data:`MAX_DEPTH` levels."""
    # Fewer brackets than the limit cannot nest past it: two C-speed counts for most sessions.
    if text.count("{") + text.count("[") <= MAX_DEPTH:
        return False
    return nesting_depth(text, MAX_DEPTH) > MAX_DEPTH


def exceeds_depth(value: Any, limit: int = MAX_DEPTH) -> bool:
    """True when ``value`` nests dicts/lists more than ``limit`` levels (iterative, no recursion).

    For data that did not come through :func:`loads_object`: a custom ``decode`` result or what
    a store returns. A self-referencing structure counts as too deep.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > limit:
            return True
        for child in children:
            if isinstance(child, (dict, list, tuple)):
                stack.append((child, depth + 1))
    return False


def check_save_depth(text: str) -> None:
    """Raise ``ValueError`` naming the limit when the JSON ``text`` of a session is too deep.

    Saving such data would write a cookie or store entry that the next request refuses.
    """
    if too_deep(text):
        raise ValueError(
            f"session data is nested {nesting_depth(text)} levels deep; the limit is {MAX_DEPTH} "
            "(deeper data would be refused when read back)"
        )


def loads_object(text: str) -> dict[str, Any] | None:
    """Parse ``text`` as a JSON object; ``None`` for anything else or any error."""
    if too_deep(text):
        return None  # before the decoder, which recurses once per level
    try:
        value = _decoder.decode(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def to_bytes(data: Any) -> bytes:
    """Compact JSON of ``data`` as UTF-8 bytes."""
    text = _encoder.encode(data)
    try:
        return text.encode()
    except UnicodeEncodeError:
        # A lone surrogate cannot be UTF-8; JSON.stringify escapes it as \\udXXX, so do we.
        return _ascii_encoder.encode(data).encode()


def encode(data: dict[str, Any]) -> str:
    """Encode a session payload as koa-session does: base64 of compact JSON."""
    return base64.b64encode(to_bytes(data)).decode("ascii")


def lenient_b64decode(value: str) -> bytes | None:
    """Decode base64 the way Node's ``Buffer.from(s, 'base64')`` does, or return ``None``.

    Node reads both alphabets, stops at the first ``=``, skips characters outside the alphabet
    and drops a trailing lone character.
    """
    if len(value) % 4 == 0:
        try:
            return base64.b64decode(value, validate=True)  # the common, canonical case
        except (binascii.Error, ValueError):
            pass
    head = value.partition("=")[0].translate(_URLSAFE)
    if not _B64_ALPHABET.issuperset(head):
        head = "".join(ch for ch in head if ch in _B64_ALPHABET)
    extra = len(head) % 4
    if extra == 1:
        head = head[:-1]
    elif extra:
        head += "=" * (4 - extra)
    try:
        return base64.b64decode(head, validate=True)
    except (binascii.Error, ValueError):
        return None


def decode(value: str) -> dict[str, Any] | None:
    """Decode a koa-session cookie value; ``None`` when it is not a session payload."""
    raw = lenient_b64decode(value)
    if raw is None:
        return None
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return None
    return loads_object(text)
