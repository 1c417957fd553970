"""Framework-neutral parts of the login-required dependencies (no pydantic needed)."""

from __future__ import annotations

import re
from typing import Any

from ..cookies import is_token
from ..errors import ConfigurationError
from ..session import Session

__all__ = [
    "NOT_LOGGED_IN",
    "check_cookie_name",
    "check_login_arguments",
    "logged_in_value",
    "scheme_name_for",
]

#: The ``detail`` of the 401 answered when the session holds no login.
NOT_LOGGED_IN = "Not logged in"

#: OpenAPI component names allow only these characters; a cookie name may hold others.
_NOT_IN_COMPONENT_NAME = re.compile(r"[^A-Za-z0-9._-]")


def check_login_arguments(key: object, cookie: object, scope_key: object) -> None:
    """Refuse, when the dependency is declared, what would answer 401 to every request (a
    ``key`` that is no session key) or fail each one (a ``cookie`` no middleware can have)."""
    if not isinstance(key, str) or not key:
        raise ConfigurationError(f"key must be the session key of the login; got {key!r}")
    if not isinstance(scope_key, str) or not scope_key:
        raise ConfigurationError(f"scope_key must be a non-empty string; got {scope_key!r}")
    if not isinstance(cookie, str) or not is_token(cookie):
        raise ConfigurationError(
            f"cookie={cookie!r} is not a cookie name: pass the middleware's key option "
            "(cookie='koa.sess' by default)"
        )


def scheme_name_for(cookie: str) -> str:
    """The OpenAPI security scheme name used for session cookie ``cookie``."""
    return _NOT_IN_COMPONENT_NAME.sub("_", cookie) or "session"


def check_cookie_name(session: Session, cookie: str) -> None:
    """Refuse a declaration whose cookie name is not the middleware's (the docs would lie)."""
    actual = session.options.key
    if actual != cookie:
        raise RuntimeError(
            f"the login dependency declares the session cookie {cookie!r} in OpenAPI, but the "
            f"middleware's cookie is {actual!r}: pass cookie={actual!r} to the dependency"
        )


def logged_in_value(session: Session, key: str) -> Any:
    """``session[key]``, or ``None`` when it is missing (not logged in)."""
    return session.get(key)
