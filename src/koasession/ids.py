"""Session ids: how they are made and which ones the middleware accepts from a client."""

from __future__ import annotations

import re
import secrets
from typing import Any

#: Ids a client may present: what our generators, koa's UUIDs and common prefixes produce.
_ID_PATTERN = re.compile(r"[A-Za-z0-9._:+/=-]{1,200}")


def is_valid_id(key: str) -> bool:
    """True when ``key`` has a safe length and alphabet to pass to a store."""
    return _ID_PATTERN.fullmatch(key) is not None


def make_genid(prefix: str | None = None) -> Any:
    """The default id generator: 256 random bits from ``secrets``, base64url, optional prefix."""
    if prefix:
        return lambda ctx: prefix + secrets.token_urlsafe(32)
    return lambda ctx: secrets.token_urlsafe(32)
