"""Exceptions raised by koasession.

Every error the library raises on purpose derives from :class:`SessionError`, so an application
can catch them in one place. :func:`check_flag` is the one check every on/off option shares.
"""

from __future__ import annotations


class SessionError(Exception):
    """Base class of every error raised by koasession on purpose."""


class ConfigurationError(SessionError, ValueError):
    """The middleware options are invalid; raised at start-up with the exact reason."""


def check_flag(name: str, value: object) -> bool:
    """``value`` of the on/off option ``name``, which must be ``True`` or ``False``: "false"
    read from a settings file is truthy, and would turn on what it meant to turn off."""
    if type(value) is not bool:
        raise ConfigurationError(f"{name} must be True or False; got {value!r}")
    return value


class InsecureConnectionError(SessionError):
    """A ``secure`` cookie would be sent over plain http (koa's same error)."""

    def __init__(self) -> None:
        super().__init__(
            "Cannot send secure cookie over unencrypted connection; "
            "serve over https, or set proxy=True when a proxy terminates TLS and sends "
            "X-Forwarded-Proto"
        )


class CookieTooLargeError(SessionError):
    """A Set-Cookie line exceeds the browser limit of 4096 bytes."""


class StoreError(SessionError):
    """A session store call failed or timed out (see ``on_store_error``)."""


class SessionIdCollision(SessionError):
    """Raised by a store when a newly generated session id already exists.

    The middleware reacts by generating another id and saving again.
    """


class NoSessionError(SessionError, LookupError, RuntimeError):
    """No koasession session where one was asked for: the middleware is missing, or runs with
    another ``scope_key``, or the call happened outside a request.

    A ``LookupError`` and a ``RuntimeError`` too, which is what the lookups raised before it
    existed, so existing ``except`` clauses keep catching it.
    """


class ResponseStartedError(SessionError):
    """A session commit was attempted after the response headers were sent."""


class SessionNotLoaded(SessionError, RuntimeError):
    """A ``lazy=True`` store-mode session was used before ``await session.load()``.

    Store reads are asynchronous and the session's mapping methods are not, so with
    ``lazy=True`` the data arrives only when the application awaits ``session.load()``.
    """
