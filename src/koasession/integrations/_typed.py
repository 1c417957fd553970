"""Framework-neutral typed sessions: a pydantic model read from and written back to a session.

The FastAPI and Litestar integrations wrap :class:`TypedBinding` in their own dependency
systems. This module imports pydantic, so the Litestar integration imports it only when a typed
session is asked for (pydantic is the optional ``[pydantic]`` extra).

Rules, the same in every framework:

- The model lives either in the whole session (its fields are top-level session keys, other keys
  are left alone) or under one session key (``key="cart"``: ``session["cart"]``).
- The data is validated as JSON, the form the session keeps it in, so ``datetime``, ``tuple`` or
  ``set`` fields and strict models round-trip.
- A new session has no data, so the model must validate from nothing: every field needs a
  default. This is checked when the dependency is declared.
- Data that does not validate (a model changed between deploys; signed data is not forged)
  is repaired: the fields that fail fall back to their defaults, the others keep their values
  (when that does not validate either, the whole model is the defaults). The repaired values are
  written back at the end of the request and an ``INFO`` record goes to the ``koasession``
  logger.
- Changes are written back automatically when the handler returns, and only when the model's
  JSON differs from what was loaded (or was repaired), so a handler that only reads the model
  never creates or re-saves a session. A handler that raises writes nothing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from ..codec import META_KEYS
from ..session import Session

__all__ = ["Loaded", "TypedBinding"]

logger = logging.getLogger("koasession")

M = TypeVar("M", bound=BaseModel)


@dataclass
class Loaded(Generic[M]):
    """A model read from a session, with what is needed to write its changes back."""

    model: M
    #: The model's JSON form as loaded: the write-back compares against it.
    initial: dict[str, Any]
    #: True when the stored data did not validate and defaults replaced some of it.
    repaired: bool


class TypedBinding(Generic[M]):
    """How one pydantic model maps onto session data (the whole session or one key)."""

    __slots__ = ("key", "model")

    def __init__(self, model: type[M], key: str | None = None) -> None:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"a typed session needs a pydantic BaseModel class; got {model!r}")
        if key is not None and (not isinstance(key, str) or key in META_KEYS):
            raise ValueError(f"key={key!r} cannot hold a typed session; use another name")
        self.model = model
        self.key = key
        try:
            empty = model.model_validate_json("{}")
        except ValidationError as exc:
            raise TypeError(
                f"a new session has no data, so {model.__name__} must validate from {{}}: give "
                f"every field a default ({exc.error_count()} error(s): "
                f"{_summary(exc)})"
            ) from None
        if key is None:
            reserved = sorted(set(_dump(empty)) & META_KEYS)
            if reserved:
                raise ValueError(
                    f"{model.__name__} would write {reserved} into the session; those names are "
                    "reserved for session metadata: rename the fields or use key=..."
                )

    def load(self, session: Session) -> Loaded[M]:
        """The model validated from the session, repaired with defaults where it fails."""
        if self.key is None:
            data: object = dict(session)
        else:
            data = session.get(self.key)
            if data is None:
                data = {}
        model, problem = self._validate(data)
        if problem:
            logger.info(
                "typed session %s%s: stored data did not validate (%s); using defaults",
                self.model.__name__,
                "" if self.key is None else f" under {self.key!r}",
                problem,
            )
        return Loaded(model, _dump(model), repaired=bool(problem))

    def write_back(self, session: Session, loaded: Loaded[M]) -> None:
        """Put the model's changes (or its repairs) into the session."""
        final = _dump(loaded.model)
        if final == loaded.initial and not loaded.repaired:
            return
        if self.key is not None:
            if session.get(self.key) != final:
                session[self.key] = final
            return
        for name, value in final.items():
            # Only what differs, so an unchanged key is not rewritten.
            if name not in session or session[name] != value:
                session[name] = value

    def _validate(self, data: object) -> tuple[M, str]:
        model = self.model
        if not isinstance(data, dict):
            return model.model_validate_json("{}"), f"not an object: {type(data).__name__}"
        try:
            return model.model_validate_json(json.dumps(data)), ""
        except ValidationError as exc:
            problem = _summary(exc)
            failed = {err["loc"][0] for err in exc.errors() if err["loc"]}
        kept = {name: value for name, value in data.items() if name not in failed}
        if failed and len(kept) < len(data):
            try:
                return model.model_validate_json(json.dumps(kept)), problem
            except ValidationError:
                pass  # a model-level rule spans fields: fall back to every default
        return model.model_validate_json("{}"), problem


def _dump(model: BaseModel) -> dict[str, Any]:
    # by_alias: the same names the JSON validation reads, so the data round-trips.
    return model.model_dump(mode="json", by_alias=True)


def _summary(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in err['loc']) or '(model)'}: {err['msg']}"
        for err in exc.errors()[:3]
    )
