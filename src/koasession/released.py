"""What a :class:`~koasession.session.Session` talks to once its request is over.

The per-request engine and the session point at each other, and the ASGI scope, the
:class:`~koasession.context.SessionContext` and event payloads point back at the engine: left
alone, every request would leave a reference cycle for the garbage collector, which under load
costs more server CPU than the session work itself (issue 12). At the end of the request the
adapter calls :meth:`RequestSession.release`, which hands the session this stand-in instead, so
reference counting frees everything at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

from .errors import ResponseStartedError

if TYPE_CHECKING:
    from .options import SessionOptions


class ReleasedEngine:
    """A :class:`~koasession.session.SessionEngine` for a session whose request has ended.

    Data the request loaded stays readable; loading, committing or changing options now raise
    :class:`~koasession.errors.ResponseStartedError`, since no response can carry the result.
    """

    __slots__ = ("external_key", "opts_view")

    def __init__(self, external_key: str | None, opts_view: SessionOptions) -> None:
        #: The store id the session had when its request ended.
        self.external_key = external_key
        #: The options that were in force.
        self.opts_view = opts_view

    @property
    def opts(self) -> NoReturn:
        """Refused: per-request options cannot change once the request is over."""
        raise ResponseStartedError("the request is over: its session options can no longer change")

    def load(self) -> None:
        """Refused: the session was not read during its request."""
        raise ResponseStartedError(
            "the request is over and its session was never read during it; read the session "
            "inside the request (or its background tasks) to use it afterwards"
        )

    async def commit(self, *, save: bool = False, regenerate: bool = False) -> None:
        """Refused, as a commit after the response headers is."""
        raise ResponseStartedError("the request is over; commit the session before responding")

    async def load_async(self) -> None:
        """Refused, as :meth:`load` is."""
        self.load()

    async def flush(self) -> None:
        """Refused: no response can carry the new session."""
        raise ResponseStartedError("the request is over; flush the session before responding")

    def flush_now(self) -> None:
        """Refused, as :meth:`flush` is."""
        raise ResponseStartedError("the request is over; flush the session before responding")

    async def reload(self) -> None:
        """Refused: the request that could read the session again is over."""
        raise ResponseStartedError("the request is over; reload the session during it")

    def reload_now(self) -> None:
        """Refused, as :meth:`reload` is."""
        raise ResponseStartedError("the request is over; reload the session during it")

    def skip(self) -> None:
        """Nothing to skip: the request is over and wrote what it wrote."""

    def created_ms(self) -> float | None:
        """Refused: the session's times are read during its request."""
        raise ResponseStartedError("the request is over; read the session's times during it")

    def accessed_ms(self) -> float | None:
        """Refused, as :meth:`created_ms` is."""
        raise ResponseStartedError("the request is over; read the session's times during it")

    def expires_ms(self) -> float | None:
        """Refused, as :meth:`created_ms` is."""
        raise ResponseStartedError("the request is over; read the session's times during it")
