"""Framework integrations.

Each submodule imports its framework, so import only the one you use:

- :mod:`koasession.integrations.fastapi`: ``SessionDep``, a typed ready-made dependency, and
  ``get_session_dependency(scope_key=...)`` for a second middleware; ``TypedSession[Model]``
  (the session as a pydantic model, written back) and ``LoggedIn`` (401 without a login, the
  session cookie declared in OpenAPI).
- :mod:`koasession.integrations.litestar`: ``LitestarSessionMiddleware``, which maps Litestar's
  ``request.set_session()`` / ``request.clear_session()`` onto koa's semantics;
  ``typed_session(Model)`` and ``LoginRequired`` (also the plugin declaring the cookie in
  OpenAPI). Only ``typed_session`` needs pydantic (the ``[pydantic]`` extra).
- :mod:`koasession.integrations.quart`: ``install(app, keys=...)`` wraps ``app.asgi_app``;
  ``current_session()`` returns the session of the current request or websocket.

Starlette needs no integration: ``request.session`` is ``scope["session"]``, our
:class:`~koasession.Session`. Plain ASGI apps read ``scope["session"]`` (or use
:func:`koasession.get_session`).
"""

from __future__ import annotations
