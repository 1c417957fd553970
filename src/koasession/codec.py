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


#: Deepest nesting a payload may have; sessions are shallow, deeper input is an attack.
MAX_DEPTH = 32


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def loads_object(text: str) -> dict[str, Any] | None:
    """Parse ``text`` as a JSON object; ``None`` for anything else or any error."""
    try:
        value = _decoder.decode(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    # Counting brackets is cheap; only payloads that could be too deep get walked.
    if text.count("{") + text.count("[") > MAX_DEPTH and _depth(value) > MAX_DEPTH:
        return None
    return value


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
